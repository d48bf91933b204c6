# Config validation, paths, input functions and the final target list.
import math
import os
import sys
from pathlib import Path

# The one bootstrap: this checkout's cxlseg package for the Snakefile and, through PYTHONPATH, for every rule
# script (a Slurm job re-reads this file, so it holds there too). Rule scripts import cxlseg plainly.
_PACKAGE_DIR = str(Path(workflow.basedir) / "workflow")
sys.path.insert(0, _PACKAGE_DIR)
_ENV = dict(os.environ)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (_PACKAGE_DIR, _ENV.get("PYTHONPATH", "")) if p))

from cxlseg.archives.settings import ArchiveSettings  # noqa: E402
from cxlseg.classify.settings import ClassifyRunSettings, ClassifySummarySettings  # noqa: E402
from cxlseg.config import section_defaults, shard_ids as _shard_ids, validate_config  # noqa: E402
from cxlseg.evaluation.settings import EvaluateSettings, SelectModelSettings  # noqa: E402
from cxlseg.inference.select_images import SelectionSettings  # noqa: E402
from cxlseg.inference.settings import InferSettings  # noqa: E402
from cxlseg.ingest.readers import IngestSettings  # noqa: E402
from cxlseg.phantoms.spec import DemoArchiveSpec, DemoSpec, ViewPhantomSettings  # noqa: E402
from cxlseg.qc.settings import CalibrateSettings  # noqa: E402
from cxlseg.reporting.settings import QCReportSettings, ReviewPageSettings, RunReportSettings  # noqa: E402
from cxlseg.tables.archive import manifest_review_rows  # noqa: E402
from cxlseg.tables.provenance import RunRecord  # noqa: E402
from cxlseg.tables.quality import check_review_file  # noqa: E402
from cxlseg.tables.review import ReviewFileError  # noqa: E402
from cxlseg.tables.settings import MergeTablesSettings, TablesSettings  # noqa: E402
from cxlseg.training.settings import AugmentRunSettings, TrainConfig  # noqa: E402
from cxlseg.training.splits import TrainingSplitSettings  # noqa: E402
from cxlseg.training.store import store_file, store_files  # noqa: E402
from cxlseg.view_check.samples import ViewSamplesSettings  # noqa: E402
from cxlseg.view_check.settings import ViewCheckSettings  # noqa: E402

validate_config(config)

DATASETS = ("shenzhen", "montgomery", "v7")
ARCHS = list(config["models"]["architectures"])
DEMO = config["demo"]["enabled"]
R = config["results"].rstrip("/")
DEMO_OUT = config["demo"]["out"].rstrip("/")
SHARDS = _shard_ids(config["mimic"]["shards"], config["mimic"]["chunks_per_shard"])

# Paths several rules name that are declared as no rule's output (every other path is written once, as an
# output, and referenced as `rules.<name>.output.<file>`).
CXLSEG = f"{R}/CXLSeg"  # infer_shard's images and masks; what the manifests' and tables' paths are relative to
THUMBS = f"{R}/review/thumbs"  # infer_shard writes <shard>/<dicom_id>.jpg here, the review page shows them
SHARD_LIST = f"{R}/infer/lists/{{shard}}.parquet"  # one select_images output per shard

# Another archive than MIMIC (archive.kind, #34): its own folder, so switching kinds in one results folder reuses
# the trained models and never touches MIMIC's outputs or another archive's.
ARCHIVE = ArchiveSettings.from_config(config)
ARCHIVE_SHARDS = ARCHIVE.shard_ids()
A = f"{R}/archives/{ARCHIVE.kind}"
ARCHIVE_IMAGES = f"{A}/images"  # infer_archive_shard's images and masks, mirroring the archive's folders
ARCHIVE_LIST = f"{A}/lists/{{ashard}}.parquet"  # one list_archive output per shard
ARCHIVE_THUMBS = f"{A}/review/thumbs"  # as THUMBS: infer_archive_shard writes, archive_review_page shows
DEMO_ARCHIVE = f"{DEMO_OUT}-archives/{ARCHIVE.kind}"  # demo_archive's synthetic archive of that kind
if ARCHIVE.other and not DEMO and not config["archive"]["root"]:
    raise ValueError(f"config key archive.root is required for archive.kind {ARCHIVE.kind} (or demo.enabled: true)")


def refuse_a_bad_review_file():
    """tables.review_file (MIMIC) or archive.review_file (another archive) read at DAG build (by the controller,
    not again in each job), against the shard manifests on disk: a bad file stops the run with one line before
    any output, the quality table or the archive's table above all, is deleted."""
    if workflow.remote_exec or workflow.subprocess_exec:
        return
    if ARCHIVE.other:
        key, path = "archive.review_file", config["archive"]["review_file"]
        manifests, rows = [f"{A}/manifests/{s}.parquet" for s in ARCHIVE_SHARDS], manifest_review_rows
    else:
        key, path = "tables.review_file", config["tables"]["review_file"]
        manifests, rows = [f"{R}/infer/manifests/{shard}.parquet" for shard in SHARDS], None
    if not path:
        return
    try:
        check_review_file(path, manifests, rows=rows)
    except ReviewFileError as exc:
        raise SystemExit(f"{key} refused: {exc}")


refuse_a_bad_review_file()


wildcard_constraints:
    dataset="|".join(DATASETS),
    arch="|".join(ARCHS),
    shard="|".join(SHARDS),
    ashard="|".join(ARCHIVE_SHARDS),
    model="[a-z0-9_]+",
    kind="original|segmented",


def enabled_datasets():
    names = [d for d in DATASETS if config["datasets"][d]["enabled"]]
    if not names:
        raise ValueError("config: no training dataset enabled (datasets.<name>.enabled)")
    return names


def dataset_root(name):
    """The native-layout root of a training set: the demo archive, or datasets.<name>.root."""
    if DEMO:
        return f"{DEMO_OUT}/{name}"
    root = config["datasets"][name].get("root")
    if not root:
        raise ValueError(f"config key datasets.{name}.root is required (or set demo.enabled: true)")
    return root


def mimic_root():
    return f"{DEMO_OUT}/mimic-cxr-jpg" if DEMO else config["mimic"]["root"]


def reports_root():
    return mimic_root() if DEMO or not config["mimic"]["reports_root"] else config["mimic"]["reports_root"]


def demo_mimic_file(key):
    """A table of the demo's MIMIC archive, which the demo rule writes, by MIMIC-CXR-JPG's own name, the schema's default
    for `mimic.<key>`, whatever the config says (phantoms/mimic_archive writes the same)."""
    return f"{DEMO_OUT}/mimic-cxr-jpg/{section_defaults('mimic')[key]}"


def mimic_file(key):
    """The MIMIC table `mimic.<key>` the rules read: the demo's, or the one under `mimic.root`."""
    return demo_mimic_file(key) if DEMO else f"{mimic_root()}/{config['mimic'][key]}"


def cxlseg_split_file():
    """The published CXLSeg-split.csv.gz merge_tables copies (tables.split_source cxlseg), else nothing."""
    tables = config["tables"]
    return [tables["cxlseg_split"]] if tables["split_source"] == "cxlseg" else []


def review_file(tables_only=False):
    """The review decisions (tables.review_file), an input only when set: of the quality table always, of the
    merge only when they change the four tables. Applying a review never reruns inference, and reruns the
    classifiers only when the tables change."""
    path = config["tables"]["review_file"]
    changes_tables = MergeTablesSettings.from_config(config).review_file is not None
    return [path] if path and (not tables_only or changes_tables) else []


def archive_root():
    """Another archive's root: the demo's synthetic archive of that kind, or archive.root."""
    return DEMO_ARCHIVE if DEMO else config["archive"]["root"]


def archive_review_file():
    """archive.review_file, an input of the archive's table only when set: applying it never reruns inference."""
    return [config["archive"]["review_file"]] if config["archive"]["review_file"] else []


def archive_metadata():
    """archive.metadata (kind folder: the CSV naming patient, study and view), an input when set."""
    return [config["archive"]["metadata"]] if config["archive"]["metadata"] else []


def demo_archive_marker():
    """list_archive waits for the synthetic archive when the demo writes it."""
    return [rules.demo_archive.output.summary] if DEMO else []


def demo_marker():
    """Rules reading raw data wait for the demo archive when it is generated by the workflow."""
    return [f"{DEMO_OUT}/demo.json"] if DEMO else []


def settings(cls, wildcard=None):
    """A rule's params: its settings object, all its script reads, and that object's outcome, the rerun trigger
    (Snakemake cannot represent the object itself, so speed-only keys never rerun a job). With `wildcard`, the
    object is built per job from that wildcard's value (one architecture, one dataset)."""
    if wildcard is None:
        built = cls.from_config(config)
        return {"settings": built, "outcome": built.outcome()}
    return {
        "settings": lambda wc: cls.from_config(config, getattr(wc, wildcard)),
        "outcome": lambda wc: cls.from_config(config, getattr(wc, wildcard)).outcome(),
    }


def resource(stage, key):
    """One resource of a stage's jobs, from `resources.<stage>` (defaults in the schema). mem_mb and runtime grow
    on each retry (Snakemake re-evaluates them per attempt) by `resources.retry_growth`, so a job Slurm killed for
    its memory or time limit asks for more."""
    base = config["resources"][stage][key]
    if key not in ("mem_mb", "runtime"):
        return base
    growth = config["resources"]["retry_growth"]
    return lambda wildcards, attempt: int(math.ceil(base * growth ** (attempt - 1)))


def stage_resources(stage):
    """A rule's resources, all from `resources.<stage>` (the rule's threads: `resource(stage, "cpus")`)."""
    return {
        "mem_mb": resource(stage, "mem_mb"),
        "runtime": resource(stage, "runtime"),
        "gpu": resource(stage, "gpu"),
        "cpus_per_task": resource(stage, "cpus"),
    }


def classify_run_names():
    """Every (classifier, input) run, as {model}_{kind}: none when classify is off."""
    if not config["classify"]["enabled"]:
        return []
    return expand("{model}_{kind}", model=config["classify"]["models"], kind=["original", "segmented"])


def classify_runs(name="metrics.json"):
    """One file of every classifier run, in run order (the summary zips them)."""
    return [f"{R}/classify/{run}/{name}" for run in classify_run_names()]


def model_benchmark_files():
    """The benchmark files of the jobs every archive's run shares: the demo, training data, training, selection,
    QC calibration and the view check."""
    view_check = ["view_samples", "view_phantoms", "train_view_check"] if config["view_check"]["enabled"] else []
    single = [*(["demo"] if DEMO else []), "split_training", "augment", "select_model", "calibrate_qc", *view_check]
    files = [str(getattr(rules, name).benchmark) for name in single]
    files += expand(str(rules.ingest.benchmark), dataset=enabled_datasets())
    return files + expand(str(rules.train.benchmark), arch=ARCHS) + expand(str(rules.evaluate.benchmark), arch=ARCHS)


def benchmark_files():
    """Every job's benchmark file but the run report's own: the report's stage times and wall clock read them,
    so they are its inputs (and it runs after every job it times)."""
    classify = ["classify_summary", "table3_pages"] if config["classify"]["enabled"] else []
    single = ["evaluate_inference", "select_images", "merge_tables", "quality_table", "qc_report", "review_page"]
    files = model_benchmark_files() + [str(getattr(rules, name).benchmark) for name in [*single, *classify]]
    files += expand(str(rules.infer_shard.benchmark), shard=SHARDS)
    if config["classify"]["enabled"]:
        files += expand(
            str(rules.classify.benchmark), model=config["classify"]["models"], kind=["original", "segmented"]
        )
    return files


def archive_benchmark_files():
    """Another archive's run report times every job of its DAG but its own (as benchmark_files does MIMIC's)."""
    single = ["list_archive", "archive_table", "archive_review_page", "archive_run_summary", "archive_qc_report"]
    files = model_benchmark_files() + [str(getattr(rules, name).benchmark) for name in single]
    return files + expand(str(rules.infer_archive_shard.benchmark), ashard=ARCHIVE_SHARDS)


def get_final_output():
    if ARCHIVE.other:
        return archive_final_output()
    outputs = [
        rules.merge_tables.output.metadata,
        rules.merge_tables.output.segmented,
        rules.merge_tables.output.split,
        rules.merge_tables.output.mask,
        rules.qc_report.output.markdown,
        rules.select_model.output.markdown,
        rules.augment.output.counts,
        rules.run_report.output.summary,
        rules.quality_table.output.qc,
        rules.review_page.output.page,
        rules.run_report.output.comparison,
        rules.qc_report.output.html,
    ]
    if config["classify"]["enabled"]:
        outputs += [rules.classify_summary.output.markdown, rules.table3_pages.output.table]
    if config["view_check"]["enabled"]:
        outputs.append(rules.train_view_check.output.metrics)
    return outputs + intermediate_outputs()


def intermediate_outputs():
    """One output of every job the final outputs are built from (the shard manifests above all).

    Why: Snakemake deletes a job's outputs before it runs the job, and it does not rebuild a missing intermediate
    while everything downstream is present and newer than its own inputs. A rerun cut off mid-shard would leave the
    tables describing masks that the unfinished run already replaced. Named as targets, a missing intermediate is
    rebuilt by the plain command (a shard resumes from its partial manifest), and so is everything downstream.
    A job reruns when any of its outputs is missing, so one output per job suffices (tests/test_workflow.py checks
    that every job of the DAG has one here).
    """
    outputs = [
        *demo_marker(),
        *expand(rules.ingest.output.manifest, dataset=enabled_datasets()),
        rules.split_training.output.dataset,
        *rules.augment.output.store,
        *expand(rules.train.output.checkpoint, arch=ARCHS),
        *expand(rules.evaluate.output.summary, arch=ARCHS),
        rules.select_model.output.selected,
        rules.evaluate_inference.output.summary,
        rules.calibrate_qc.output.model,
        rules.select_images.output.selection,
        *expand(SHARD_LIST, shard=SHARDS),
        *expand(rules.infer_shard.output.manifest, shard=SHARDS),
        rules.merge_tables.output.summary,
        rules.quality_table.output.summary,
        *classify_runs(),
    ]
    if config["view_check"]["enabled"]:
        outputs += [
            rules.view_samples.output.samples,
            rules.view_phantoms.output.films,
            rules.train_view_check.output.checkpoint,
        ]
    return outputs


def archive_final_output():
    """archive.kind not mimic: the archive's table, review page, run summary, run report and QC report, its listing and shards,
    and the models they need (training, selection, QC, view check); none of MIMIC's jobs, which need MIMIC's files."""
    view_check = config["view_check"]["enabled"]
    outputs = [
        rules.archive_table.output.table,
        rules.archive_review_page.output.page,
        rules.archive_run_summary.output.summary,
        rules.archive_run_report.output.page,
        rules.archive_qc_report.output.html,
        rules.archive_qc_report.output.overlays,
        rules.list_archive.output.summary,
        rules.select_model.output.markdown,
        rules.augment.output.counts,
        *([rules.train_view_check.output.metrics] if view_check else []),
        *demo_marker(),
        *demo_archive_marker(),
        *expand(rules.ingest.output.manifest, dataset=enabled_datasets()),
        rules.split_training.output.dataset,
        *rules.augment.output.store,
        *expand(rules.train.output.checkpoint, arch=ARCHS),
        *expand(rules.evaluate.output.summary, arch=ARCHS),
        rules.select_model.output.selected,
        rules.calibrate_qc.output.model,
        *expand(ARCHIVE_LIST, ashard=ARCHIVE_SHARDS),
        *expand(rules.infer_archive_shard.output.manifest, ashard=ARCHIVE_SHARDS),
        rules.archive_table.output.summary,
    ]
    if view_check:
        outputs += [
            rules.view_samples.output.samples,
            rules.view_phantoms.output.films,
            rules.train_view_check.output.checkpoint,
        ]
    return outputs
