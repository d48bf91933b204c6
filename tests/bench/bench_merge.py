"""Benchmark merge_tables on a generated full-size CXLSeg input (243,324 images by default).

    python tests/bench/bench_merge.py --rows 243324 --manifests 10 [--json docs/bench/merge.json]

Generates shard manifests, MIMIC metadata / CheXpert / split CSVs and one report
file per study in a temporary folder, then times, each in a fresh process so
peak RSS is its own:
  * baseline: a plain read of the inputs (every manifest column, the CSVs with
    pandas defaults, every report file as text), the floor any merge pays;
  * merge_tables, checked against the targets (60 s, 2 GB).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import record  # noqa: E402
from cxlseg.config import default_config  # noqa: E402
from cxlseg.mimic import CHEXPERT_LABELS  # noqa: E402
from cxlseg.tables.merge import merge_tables  # noqa: E402
from cxlseg.tables.settings import TableFiles, TablesSettings  # noqa: E402

TARGET_SECONDS = 60.0
TARGET_RSS_GB = 2.0

SENTENCES = [
    "The lungs are clear without focal consolidation.",
    "No pleural effusion or pneumothorax is seen.",
    "The cardiomediastinal silhouette is within normal limits.",
    "Mild pulmonary vascular congestion.",
    "Small bilateral pleural effusions with adjacent atelectasis.",
    "Endotracheal tube terminates 4 cm above the carina.",
    "Right internal jugular line ends in the mid SVC.",
    "Moderate cardiomegaly is unchanged.",
    "Patchy opacity in the right lower lobe may reflect pneumonia.",
    "Degenerative changes of the thoracic spine.",
]


def _report(rng: np.random.Generator) -> str:
    """A MIMIC-style report; the mix of layouts exercises every extraction rule."""
    body = lambda k: "  ".join(rng.choice(SENTENCES, k, replace=False))  # noqa: E731
    head = "                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n \n INDICATION:  ___ with cough.\n \n"
    kind = rng.random()
    if kind < 0.70:
        return head + f" COMPARISON:  ___.\n \n FINDINGS: \n \n {body(3)}\n \n IMPRESSION: \n \n {body(1)}\n"
    if kind < 0.85:
        return head + f" COMPARISON:  ___.\n \n IMPRESSION: \n \n {body(2)}\n"
    if kind < 0.92:
        return head + f" FINDINGS:  {body(3)}\n"
    if kind < 0.97:
        return head + f" COMPARISON:  ___.\n \n {body(2)}\n"
    if kind < 0.99:
        return head + f" TECHNIQUE:  Single view.\n \n {body(2)}\n"
    return "                                 FINAL REPORT\n Study cancelled.\n"


def generate(root: Path, rows: int, manifests: int, subjects: int, studies: int, seed: int = 0) -> dict:
    """Write the full-size inputs under root; returns their paths."""
    rng = np.random.default_rng(seed)
    subject_ids = 10_000_000 + np.sort(rng.choice(9_999_999, subjects, replace=False))
    study_subject = np.sort(np.concatenate([np.arange(subjects), rng.integers(0, subjects, studies - subjects)]))
    study_ids = 50_000_000 + rng.choice(9_999_999, studies, replace=False)
    image_study = np.sort(np.concatenate([np.arange(studies), rng.integers(0, studies, rows - studies)]))
    subject = subject_ids[study_subject[image_study]]
    study = study_ids[image_study]
    dicom = np.array(
        [
            f"{h:08x}-{rows - i:08x}-{i:08x}-{h ^ i:08x}-{h % 65536:04x}"
            for i, h in enumerate(rng.integers(0, 2**32, rows))
        ]
    )
    folder = pd.Series([f"files/p{str(s)[:2]}/p{s}/s{t}/" for s, t in zip(subject, study)]) + dicom
    status = np.where(rng.random(rows) < 0.005, "failed", "ok")
    flags = np.where(rng.random(rows) < 0.02, "low_lung_area;n_components", "")
    frame = pd.DataFrame(
        {
            "dicom_id": dicom,
            "subject_id": subject,
            "study_id": study,
            "source_path": folder + ".jpg",
            "image_path": folder + ".jpg",
            "mask_path": folder + "-mask.jpg",
            "orig_height": rng.integers(2000, 3500, rows),
            "orig_width": rng.integers(2000, 3500, rows),
            "lung_area_fraction": rng.random(rows),
            "n_components": rng.integers(1, 4, rows),
            "left_right_ratio": rng.random(rows) + 0.5,
            "mean_fg_prob": rng.random(rows),
            "qc_predicted_dice": rng.random(rows),
            "qc_flags": flags,
            "status": status,
            "error": np.where(status == "failed", "truncated JPEG", ""),
            "model_id": "unet",
        }
    )
    shard = np.asarray(frame["subject_id"].astype(str).str[:2].astype(int) - 10) % manifests
    manifest_paths = []
    for i in range(manifests):
        path = root / "manifests" / f"shard{i:02d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame[shard == i].to_parquet(path, index=False)
        manifest_paths.append(path)

    lateral = frame.sample(frac=0.5, random_state=seed).assign(dicom_id=lambda f: f["dicom_id"].str[::-1])
    meta = pd.concat([frame.assign(ViewPosition="PA"), lateral.assign(ViewPosition="LL")])
    metadata = pd.DataFrame(
        {
            "dicom_id": meta["dicom_id"],
            "subject_id": meta["subject_id"],
            "study_id": meta["study_id"],
            "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
            "ViewPosition": meta["ViewPosition"],
            "Rows": meta["orig_height"],
            "Columns": meta["orig_width"],
            "StudyDate": 21800506,
            "StudyTime": 213014.531,
            "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)",
            "ViewCodeSequence_CodeMeaning": "postero-anterior",
            "PatientOrientationCodeSequence_CodeMeaning": "Erect",
        }
    )
    metadata.to_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    labels = rng.choice(np.array([1.0, 0.0, -1.0, np.nan]), size=(studies, 14), p=[0.15, 0.1, 0.05, 0.7])
    chexpert = pd.DataFrame(labels, columns=CHEXPERT_LABELS)
    chexpert.insert(0, "study_id", study_ids)
    chexpert.insert(0, "subject_id", subject_ids[study_subject])
    chexpert.to_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)
    split = rng.choice(["train", "validate", "test"], subjects, p=[0.98, 0.01, 0.01])[study_subject[image_study]]
    frame[["dicom_id", "study_id", "subject_id"]].assign(split=split).to_csv(
        root / "mimic-cxr-2.0.0-split.csv.gz", index=False
    )

    texts = [_report(rng) for _ in range(64)]
    for s, t, k in tqdm(
        zip(subject_ids[study_subject], study_ids, rng.integers(0, 64, studies)), total=studies, desc="reports"
    ):
        path = root / "reports" / "files" / f"p{str(s)[:2]}" / f"p{s}" / f"s{t}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(texts[k])
    return {
        "manifests": manifest_paths,
        "metadata": root / "mimic-cxr-2.0.0-metadata.csv.gz",
        "chexpert": root / "mimic-cxr-2.0.0-chexpert.csv.gz",
        "reports": root / "reports",
    }


def _baseline(inputs: dict) -> None:
    manifests = pd.concat([pd.read_parquet(p) for p in inputs["manifests"]])
    pd.read_csv(inputs["metadata"])
    pd.read_csv(inputs["chexpert"])
    for path in (inputs["reports"] / "files").rglob("*.txt"):
        path.read_text()
    assert len(manifests)


def _merge(inputs: dict, out: Path, workers: int) -> None:
    merge_tables(
        inputs["manifests"],
        inputs["metadata"],
        inputs["chexpert"],
        inputs["reports"],
        TableFiles(
            *(out / f"CXLSeg-{name}.csv.gz" for name in TableFiles.TABLES),
            out / "CXLSeg-failed.csv.gz",
            out / "summary.json",
        ),
        TablesSettings.from_config(default_config()),
        report_workers=workers,
        progress=False,
    )


def _child(job, args, queue) -> None:
    start = time.perf_counter()
    job(*args)
    seconds = time.perf_counter() - start
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9))  # KiB -> GB


def timed(job, *args) -> tuple[float, float]:
    """(seconds, peak RSS in GB) of job run in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(job, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode:
        raise SystemExit(f"{job.__name__} failed with exit code {proc.exitcode}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=243_324, help="images over all manifests")
    parser.add_argument("--manifests", type=int, default=10, help="parquet shard manifests")
    parser.add_argument("--subjects", type=int, default=None, help="patients (default rows * 65379 / 243324)")
    parser.add_argument("--studies", type=int, default=None, help="studies, one report file each (default rows * 0.9)")
    parser.add_argument("--workers", type=int, default=8, help="report-reading threads of merge_tables")
    parser.add_argument("--keep", type=Path, default=None, help="generate into this folder and keep it")
    parser.add_argument("--json", type=Path, help="write the numbers, the command and the machine here")
    args = parser.parse_args(argv)
    subjects = args.subjects or max(1, round(args.rows * 65_379 / 243_324))
    studies = args.studies or max(subjects, round(args.rows * 0.9))
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_merge_"))
    try:
        start = time.perf_counter()
        inputs = generate(root, args.rows, args.manifests, subjects, studies)
        print(
            f"generated {args.rows} images, {studies} studies, {subjects} subjects, {args.manifests} manifests "
            f"in {time.perf_counter() - start:.1f} s under {root}"
        )
        base_s, base_gb = timed(_baseline, inputs)
        merge_s, merge_gb = timed(_merge, inputs, root / "out", args.workers)
        print(f"baseline (plain read of inputs): {base_s:6.1f} s  peak RSS {base_gb:.2f} GB")
        print(
            f"merge_tables:                    {merge_s:6.1f} s  peak RSS {merge_gb:.2f} GB  "
            f"({merge_s / base_s:.2f}x baseline time)"
        )
        ok_time, ok_rss = merge_s < TARGET_SECONDS, merge_gb < TARGET_RSS_GB
        print(
            f"target < {TARGET_SECONDS:.0f} s: {'PASS' if ok_time else 'FAIL'}; "
            f"target < {TARGET_RSS_GB:.0f} GB: {'PASS' if ok_rss else 'FAIL'}"
        )
        if args.json:
            result = {
                "rows": args.rows,
                "manifests": args.manifests,
                "subjects": subjects,
                "studies": studies,
                "workers": args.workers,
                "baseline_plain_read": {"seconds": round(base_s, 2), "peak_rss_gb": round(base_gb, 3)},
                "merge_tables": {"seconds": round(merge_s, 2), "peak_rss_gb": round(merge_gb, 3)},
                "ratio_merge_over_baseline": round(merge_s / base_s, 3),
                "targets": {"seconds": TARGET_SECONDS, "peak_rss_gb": TARGET_RSS_GB, "pass": ok_time and ok_rss},
            }
            record.write(args.json, result, __file__, argv)
        return 0 if ok_time and ok_rss else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
