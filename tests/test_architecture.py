"""docs/architecture.md cannot drift: every module of the package is listed with its job, and every listed
module exists; no module grows past one job's size; imports follow the layers; production code never imports the
phantom generator."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workflow" / "cxlseg"

# The package's layers, bottom first: a module imports only from its own subpackage and the layers below it, so
# no stage imports a stage above it and no two stages import each other. docs/architecture.md draws the same.
LAYERS = (
    {"config", "io", "device", "metrics", "preprocess", "film", "cluster", "fingerprint"},  # shared basics (top-level)
    {"mimic"},  # MIMIC-CXR's own conventions and files: radiology text, metadata, CheXpert, official split
    {"ingest", "archives"},  # training sets' native layouts; other archives' layouts (#34)
    {"training"},
    {"inference"},  # everything inference runs on every image, QC features, QC model and view check included
    {"evaluation", "qc", "view_check"},  # jobs that score or build what inference runs, through inference's code
    {"tables"},
    {"reporting", "classify", "phantoms"},
    {"cli"},  # steps a researcher runs by hand
)


def _has_code(init: Path) -> bool:
    body = ast.parse(init.read_text()).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def package_modules() -> set[str]:
    """Every module, a subpackage's `__init__` counted (as the subpackage) when it holds more than a docstring."""
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        if path.name != "__init__.py":
            modules.add(rel.as_posix())
        elif rel.parent != Path(".") and _has_code(path):
            modules.add(rel.parent.as_posix())
    return modules


def module_file(module: str) -> Path:
    path = PACKAGE / f"{module}.py"
    return path if path.is_file() else PACKAGE / module / "__init__.py"


def stage_of(module: str) -> str:
    return module.split("/")[0].split(".")[0]


def layer_of(stage: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if stage in layer)


def imported_stages(path: Path) -> set[str]:
    """The cxlseg stages (first name after `cxlseg.`) a file imports, wherever the import sits."""
    stages = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cxlseg."):
            stages.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "cxlseg":
            stages |= {alias.name for alias in node.names if alias.name != "__version__"}
        elif isinstance(node, ast.Import):
            stages |= {a.name.split(".")[1] for a in node.names if a.name.startswith("cxlseg.")}
    return stages


def documented_modules() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return set(re.findall(r"^\| `([a-z0-9_/]+)` \|", text, re.M))


def test_every_module_is_documented_and_every_documented_module_exists():
    modules, documented = package_modules(), documented_modules()
    assert modules - documented == set(), "modules missing from docs/architecture.md"
    assert documented - modules == set(), "docs/architecture.md lists modules that do not exist"


def test_modules_stay_small():
    long = {m: n for m in package_modules() if (n := len(module_file(m).read_text().splitlines())) > 400}
    assert long == {}


def test_every_stage_has_a_layer():
    stages = {stage_of(m) for m in package_modules()}
    placed = set().union(*LAYERS)
    assert stages - placed == set(), "a new stage or top-level module: place it in LAYERS"
    assert placed - stages == set(), "LAYERS names a stage that does not exist"


def test_no_stage_imports_a_stage_above_it_or_beside_it():
    """Data flows one way through the code too: a module imports its own stage and the layers below, never a
    stage of its own layer or above (which would let two stages import each other); the shared basics, one
    module each, may import one another."""
    wrong = sorted(
        f"{module} imports {other}"
        for module in package_modules()
        for other in imported_stages(module_file(module))
        if other != (stage := stage_of(module))
        and (layer_of(other) > layer_of(stage) or layer_of(other) == layer_of(stage) > 0)
    )
    assert wrong == []


def test_no_rule_script_imports_a_stage_above_its_rule():
    """A script belongs to the stage of the rule file that runs it (`workflow/rules/<stage>.smk`), and imports
    that stage and the layers below only (rule `demo`'s script may read anything below `phantoms`)."""
    scripts = ROOT / "workflow" / "scripts"
    wrong = sorted(
        f"{script}.py ({smk}) imports {other}"
        for smk, script in set(rule_scripts().values())
        if script
        for other in imported_stages(scripts / f"{script}.py")
        if other != smk and (layer_of(other) > layer_of(smk) or layer_of(other) == layer_of(smk) > 0)
    )
    assert len(rule_scripts()) > 20 and wrong == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The check above can fail: an import of a higher stage, inside a function too, is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from cxlseg.tables.merge import merge_tables\n\nfrom cxlseg import io\n")
    assert imported_stages(module) == {"tables", "io"}
    assert layer_of("tables") >= layer_of("inference")


def test_production_code_never_imports_the_phantom_generator():
    importers = [
        m
        for m in package_modules()
        if not m.startswith("phantoms/")
        and m != "cli"  # `cxlseg demo` writes the demo archive by hand
        and re.search(r"^\s*(from|import) cxlseg\.phantoms", module_file(m).read_text(), re.M)
    ]
    assert importers == []


def test_stage_subpackages_show_the_pipeline():
    stages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    expected = {"ingest", "training", "evaluation", "qc", "inference", "tables", "reporting", "classify", "phantoms"}
    assert expected <= stages


def named_inputs(block: str) -> list[str]:
    """The named inputs of one rule's text."""
    inputs = re.search(r"^    input:\n((?:        .*\n|\s*#.*\n)+)", block, re.M)
    return re.findall(r"^        (\w+)=", inputs.group(1), re.M) if inputs else []


def rule_blocks() -> dict[str, str]:
    blocks = {}
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule )", smk.read_text(), flags=re.M)[1:]:
            blocks[re.match(r"rule (\w+):", block).group(1)] = block
    return blocks


def rule_scripts() -> dict[str, tuple[str, str]]:
    """Every rule: (the .smk file it sits in, without suffix; the script it runs)."""
    found = {}
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule )", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            script = re.search(r'^    script:\s*"\.\./scripts/(\w+)\.py"', block, re.M)
            found[name] = (smk.stem, script.group(1) if script else "")
    return found


def test_rule_files_match_the_stages():
    """One .smk per stage subpackage that runs jobs (plus common.smk; mimic/ is a layer of files, no jobs)."""
    rules = {p.stem for p in (ROOT / "workflow" / "rules").glob("*.smk")}
    stages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert rules - {"common"} == stages - {"mimic"}


def test_each_rule_sits_in_the_file_of_the_stage_whose_code_it_runs():
    scripts = ROOT / "workflow" / "scripts"
    wrong = {
        rule: (smk, script)
        for rule, (smk, script) in rule_scripts().items()
        if smk not in imported_stages(scripts / f"{script}.py")
    }
    assert len(rule_scripts()) > 20 and wrong == {}


# Inputs a script finds through another input it reads: selected.json names the checkpoints it loads.
FOUND_THROUGH = {("evaluate_inference", "checkpoints"), ("calibrate_qc", "checkpoints")}


def test_every_declared_input_is_read_by_its_script():
    """What a rule declares is what it reads: a script reads each named input (or hands the whole input to a
    files bundle, `from_rule(snakemake.input)`), so a file never arrives through params while its declared input
    goes unread."""
    scripts, unread = ROOT / "workflow" / "scripts", []
    for rule, block in rule_blocks().items():
        text = (scripts / f"{rule_scripts()[rule][1]}.py").read_text()
        whole = re.search(r"snakemake\.input\b(?!\.)", text)
        unread += [
            f"{rule}: input.{name}"
            for name in named_inputs(block)
            if f"input.{name}" not in text and not whole and (rule, name) not in FOUND_THROUGH
        ]
    assert unread == []


def test_the_demo_archive_names_its_mimic_tables_by_the_schema_only():
    """MIMIC-CXR-JPG's table names are the schema's `mimic.*` defaults: rule demo's outputs (common.smk's
    `demo_mimic_file`) and the archive writer (phantoms/mimic_archive) read them there, never spell them."""
    schema = PACKAGE / "schemas" / "config.schema.yaml"
    spelled = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "workflow").rglob("*")
        if path.suffix in {".py", ".smk"} and path != schema and "mimic-cxr-2.0.0-" in path.read_text()
    )
    assert spelled == []
