"""Every measured figure in README.md and docs/*.md must be traceable: the stored JSON a doc cites exists under
docs/bench/, is valid JSON and names the command that wrote it, and every bench script a doc or a JSON names
exists. A figure whose evidence is gone fails here instead of lingering in the docs."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH_JSON = re.compile(r"docs/bench/[\w.+-]+\.json")
BENCH_SCRIPT = re.compile(r"tests/bench/[\w.-]+\.(?:py|sh)")


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def cited(pattern: re.Pattern, root: Path = ROOT) -> dict[str, list[str]]:
    """Each path the docs cite -> the 'file:line' places citing it."""
    places: dict[str, list[str]] = {}
    for doc in doc_files(root):
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
            for path in pattern.findall(line):
                places.setdefault(path, []).append(f"{doc.relative_to(root)}:{number}")
    return places


def stored(root: Path = ROOT) -> list[Path]:
    return sorted((root / "docs" / "bench").glob("*.json"))


def command_script(command: str) -> str:
    """The tests/bench script a recorded command runs ('VAR=1 python tests/bench/x.py ...' -> tests/bench/x.py)."""
    words = [w for w in shlex.split(command) if "=" not in w or w.startswith("-")]
    scripts = [w for w in words if BENCH_SCRIPT.fullmatch(w)]
    if not scripts:
        raise ValueError(f"command names no tests/bench script: {command!r}")
    return scripts[0]


def test_the_docs_cite_stored_results():
    assert cited(BENCH_JSON), "README.md and docs/*.md cite no docs/bench/*.json: this test would check nothing"


@pytest.mark.parametrize("path", sorted(cited(BENCH_JSON)))
def test_every_cited_json_exists(path):
    assert (ROOT / path).is_file(), f"{path} is cited by {', '.join(cited(BENCH_JSON)[path])} but is not stored"


@pytest.mark.parametrize("path", sorted(cited(BENCH_SCRIPT)))
def test_every_cited_bench_script_exists(path):
    assert (ROOT / path).is_file(), f"{path} is cited by {', '.join(cited(BENCH_SCRIPT)[path])} but does not exist"


@pytest.mark.parametrize("path", stored(), ids=lambda p: p.name)
def test_every_stored_json_names_its_command_and_is_cited(path):
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        pytest.fail(f"{path.relative_to(ROOT)}: not valid JSON ({err})")
    command = record.get("command") if isinstance(record, dict) else None
    assert isinstance(command, str) and command, f"{path.relative_to(ROOT)}: no 'command' field says what wrote it"
    script = command_script(command)
    assert (ROOT / script).is_file(), f"{path.relative_to(ROOT)}: its command runs {script}, which does not exist"
    name = f"docs/bench/{path.name}"
    assert name in cited(BENCH_JSON), f"{name} is stored but no doc cites it: cite it beside its figure or remove it"


def benchmark_rows(readme: str) -> list[list[str]]:
    """The cells of each row of README's "## Benchmarks" table (header and rule left out)."""
    section = readme.split("\n## Benchmarks\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_every_benchmark_row_of_the_readme_names_its_stored_json():
    rows = benchmark_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    assert rows, "README.md has no benchmark rows: this test would check nothing"
    for row in rows:
        assert BENCH_SCRIPT.search(row[0]), f"README benchmark row names no tests/bench script: {row[0]}"
        result = row[-1]
        assert BENCH_JSON.search(result) or "no stored result" in result, (
            f"README benchmark row {row[0]} gives figures without the docs/bench/*.json that backs them"
        )


def test_the_checks_fail_on_a_missing_json_and_a_json_without_command(tmp_path):
    (tmp_path / "docs" / "bench").mkdir(parents=True)
    (tmp_path / "README.md").write_text("0.95 (`docs/bench/gone.json`), 2 s (`tests/bench/bench_gone.py`)\n")
    (tmp_path / "docs" / "bench" / "bare.json").write_text('{"seconds": 2}')
    assert cited(BENCH_JSON, tmp_path) == {"docs/bench/gone.json": ["README.md:1"]}
    assert not (tmp_path / "docs/bench/gone.json").exists()
    assert "command" not in json.loads(stored(tmp_path)[0].read_text())
    with pytest.raises(ValueError, match="names no tests/bench script"):
        command_script("python -c 'print(1)'")
    assert (
        command_script("OMP_NUM_THREADS=1 python tests/bench/bench_dag.py --json x.json") == "tests/bench/bench_dag.py"
    )
