# Two commands for a new user: `make demo` (set up + run the whole pipeline on the synthetic demo) and `make test`.
VENV      ?= .venv
PYTHON    ?= python3
CORES     ?= 2
PY        := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
RUN       := PATH=$(abspath $(VENV))/bin:$$PATH

.PHONY: install demo dry-run report test lint clean

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(RUN) $(SNAKEMAKE) --profile profiles/local --configfile config/demo.yaml --cores $(CORES)
	$(RUN) $(SNAKEMAKE) --profile profiles/local --configfile config/demo.yaml --report results/report.html
	@echo "Done: results/CXLSeg/ holds the four CSV.gz tables, segmented images and masks; open results/report.html"

dry-run: install
	$(RUN) $(SNAKEMAKE) -n --configfile config/demo.yaml

test: install
	$(RUN) $(VENV)/bin/pytest

lint: install
	$(RUN) $(VENV)/bin/ruff check .
	$(RUN) $(VENV)/bin/ruff format --check .
	$(RUN) $(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(RUN) $(SNAKEMAKE) --lint --configfile config/demo.yaml

clean:
	rm -rf results resources .snakemake
