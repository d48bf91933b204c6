"""Rules pass files, never parent folders: each file name is decided once, in its rule (docs/architecture.md).

A script that hands the package a folder again, or a run report input the rule does not declare, fails here; the
report pages' own reads are audited in tests/test_run_report.py."""

import dataclasses
import re
from pathlib import Path

import pytest
from cxlseg.ingest.readers import IngestFiles
from cxlseg.reporting.inputs import ReportFiles
from cxlseg.training.store import TrainingStore, store_files

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
RULES = ROOT / "workflow" / "rules"
# The demo generator writes whole archives in the public datasets' native layouts under one root.
FOLDER_USERS = {"demo.py"}


def rule_block(name: str) -> str:
    """The text of one rule in workflow/rules/*.smk."""
    for smk in RULES.glob("*.smk"):
        text = smk.read_text()
        found = re.search(rf"^rule {name}:\n(.*?)(?=^rule |\Z)", text, re.M | re.S)
        if found:
            return found.group(1)
    raise AssertionError(f"no rule {name}")


def section_names(block: str, section: str) -> set[str]:
    """The named entries (8-space `name=`) of one section (input, output, params) of a rule."""
    found = re.search(rf"^    {section}:\n((?:        .*\n|\s*\n)*)", block, re.M)
    return set(re.findall(r"^        ([a-z_][a-z0-9_]*)=", found.group(1), re.M)) if found else set()


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_scripts_hand_over_files_not_their_folders(script):
    text = (SCRIPTS / script).read_text()
    assert "params.results" not in text and "snakemake.config" not in text
    if script not in FOLDER_USERS:
        assert ".parent" not in text, f"{script}: pass the rule's files, not the folder they sit in"
        assert "store_dir_of" not in text, f"{script}: pass TrainingStore.of(input.store)"


def test_no_rule_hands_a_results_folder_over():
    for smk in RULES.glob("*.smk"):
        assert not re.search(r"^\s+results=", smk.read_text(), re.M), smk.name
        assert ".parents[" not in smk.read_text() and ".parent)" not in smk.read_text(), smk.name


def test_the_run_report_declares_every_file_its_pages_read():
    fields = {f.name for f in dataclasses.fields(ReportFiles)}
    report = section_names(rule_block("run_report"), "input")
    pages = section_names(rule_block("table3_pages"), "input")
    assert report | pages | {"images_root"} == fields, "a ReportFiles field that no rule declares, or the reverse"
    assert "images_root" in section_names(rule_block("run_report"), "params")
    with pytest.raises(ValueError, match="not a run report input: results"):
        ReportFiles.from_rule({"results": "results"})


def test_an_optional_report_input_may_be_absent():
    files = ReportFiles.from_rule({"table3": [], "table3_all_labels": ["t/all.csv"], "manifests": ["a", "b"]})
    assert files.table3 is None and files.table3_all_labels == Path("t/all.csv")
    assert files.manifests == (Path("a"), Path("b")) and files.benchmarks == ()
    assert ReportFiles.from_rule({"manifests": "results/infer/manifests/p10.parquet"}).manifests == (
        Path("results/infer/manifests/p10.parquet"),
    )
    with pytest.raises(ValueError, match="one file expected"):
        ReportFiles.from_rule({"selected": ["a.json", "b.json"]})


def test_the_training_store_is_its_declared_files(tmp_path):
    store = TrainingStore.of(reversed(store_files(tmp_path / "s")))
    assert store.file("validate", "masks") == tmp_path / "s" / "validate_masks.npy"
    with pytest.raises(ValueError, match="not the files of one training store"):
        TrainingStore.of(store_files(tmp_path)[:-1])
    with pytest.raises(ValueError, match="no store file"):
        store.file("val", "images")


def test_ingest_masks_sit_under_the_manifest_folder(tmp_path):
    files = IngestFiles(tmp_path / "m.parquet", tmp_path / "r.csv", tmp_path / "c.json", tmp_path / "masks")
    assert files.mask_path("CHNCXR_0001_0") == "masks/CHNCXR_0001_0.png"  # relative to the manifest, as before
    with pytest.raises(ValueError, match="must sit under the manifest's folder"):
        IngestFiles(tmp_path / "a" / "m.parquet", tmp_path / "r.csv", tmp_path / "c.json", tmp_path / "masks")


def test_a_multi_file_output_is_declared_whole():
    """Every field of a bundle a script builds from `snakemake.output` is a named output of its rule."""
    from cxlseg.classify.run import RunFiles
    from cxlseg.classify.table3 import Table3Files
    from cxlseg.evaluation.evaluate import EvaluationFiles
    from cxlseg.evaluation.select_model import ComparisonFiles
    from cxlseg.reporting.review_page import ReviewFiles
    from cxlseg.tables.settings import TableFiles
    from cxlseg.training.checkpoint import ModelFiles

    bundles = {
        "train": (ModelFiles, {"resume"}),  # the resume checkpoint: params.resume (outputs are deleted before a run)
        "evaluate": (EvaluationFiles, set()),
        "evaluate_inference": (EvaluationFiles, set()),
        "select_model": (ComparisonFiles, set()),
        "ingest": (IngestFiles, set()),
        "merge_tables": (TableFiles, set()),
        "classify": (RunFiles, set()),
        "classify_summary": (Table3Files, set()),
        "review_page": (ReviewFiles, {"thumbs"}),  # infer_shard writes the thumbnails: a params root here
    }
    for rule, (bundle, elsewhere) in bundles.items():
        fields = {f.name for f in dataclasses.fields(bundle)}
        outputs = section_names(rule_block(rule), "output")
        assert fields - elsewhere <= outputs, f"rule {rule}: {sorted(fields - elsewhere - outputs)} not declared"
        assert elsewhere <= section_names(rule_block(rule), "params"), rule
