"""The run summary, the page the report opens on, and the sample grid of the run.

Why: after a run a researcher asks how many images made it, which segmenter made the masks and how good they
are (with the n behind each number), how well QC catches bad masks, and what the run cost. These pure functions
read the rule's declared inputs (`reporting.inputs.ReportFiles`; every one optional, so a run with a stage
switched off still renders) and write self-contained pages (see `reporting.html`); the table pages live in
`reporting.pages`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cxlseg import io
from cxlseg.inference.manifest import read_manifest_table, shard_of, split_flags
from cxlseg.inference.qc_model import bar_text
from cxlseg.inference.select_images import DROP_CAUSES
from cxlseg.reporting import pages
from cxlseg.reporting.html import count, esc, fixed, hms, kpi, note, page, percent, section, table, toc
from cxlseg.reporting.inputs import ReportFiles
from cxlseg.reporting.pages import read_json, segmenter, split_name
from cxlseg.reporting.run_identity import identity_section, mismatch_banner
from cxlseg.reporting.run_stats import benchmark_times, hardware, shard_throughput, wall_clock
from cxlseg.tables.provenance import check_tables

SPLIT_ORDER = ("train", "validate", "test")
# The menu of the report (category -> entries), named on the summary where links cannot reach.
MENU_HINT = (
    "Everything else is in the report's menu (left): 0. Run summary (dataset tables, sample masks); "
    "1. Training data; 2. Segmentation models (Table IV, learning curves, QC calibration); 3. CXLSeg dataset "
    "(QC report, flagged masks, predicted vs true Dice); 4. Classifier comparison (Table III, ROC)."
)


def shard_manifests(files: ReportFiles) -> dict[str, pd.DataFrame]:
    """Shard id -> manifest (the manifest module's reader), for the shards a run wrote (the DAG guarantees they
    are complete)."""
    return {shard_of(p): read_manifest_table(p).to_pandas() for p in sorted(files.manifests)}


def _manifest(files: ReportFiles) -> pd.DataFrame:
    manifests = shard_manifests(files)
    if not manifests:
        return pd.DataFrame(columns=["dicom_id", "status", "error", "qc_flags"])
    return pd.concat(manifests.values(), ignore_index=True)


def _flagged(manifest: pd.DataFrame) -> pd.Series:
    return manifest["qc_flags"].fillna("").astype(str) != ""


def _split_counts(files: ReportFiles) -> dict:
    if files.split is not None and files.split.is_file():
        counts = pd.read_csv(files.split, usecols=["split"])["split"].map(split_name).value_counts()
    else:
        counts = pd.Series(read_json(files.tables_summary).get("split", {}).get("images", {}))
        counts.index = [split_name(i) for i in counts.index]
    return {s: int(counts.get(s, 0)) for s in SPLIT_ORDER}


def images_section(files: ReportFiles, manifest: pd.DataFrame) -> list[str]:
    """The funnel: selected, segmented, failed (by reason), flagged, in the tables; studies dropped at selection."""
    selection = read_json(files.selection_summary)
    tables = read_json(files.tables_summary)
    ok = manifest["status"] == "ok"
    failed = manifest.loc[~ok, "error"].fillna("unknown").value_counts().rename_axis("reason")
    out = [
        section("images", "Images"),
        kpi("selected", count(selection.get("images_in_shards", len(manifest))), "frontal (AP/PA), with a report"),
        kpi("segmented", count(int(ok.sum()))),
        kpi("failed", count(int((~ok).sum())), "no mask written"),
        kpi("QC-flagged", count(int(_flagged(manifest).sum())), "mask written, quality doubtful"),
        kpi("in the tables", count(tables.get("rows", {}).get("segmented")), "rows of CXLSeg-segmented"),
        "<h3>Failed, by reason</h3>",
        table(failed.reset_index(name="images"), {"images": count}),
    ]
    drops = [(why, f"studies_{cause}", f"images_{cause}") for cause, why in DROP_CAUSES.items()]
    rows = [(why, selection.get(s), selection.get(i)) for why, s, i in drops if s in selection or i in selection]
    out.append("<h3>Studies dropped at selection</h3>")
    out.append(
        table(
            pd.DataFrame(rows, columns=["dropped because", "studies", "images"]),
            {"studies": count, "images": count},
            headers={"dropped because": "Dropped because", "studies": "Studies"},
        )
        if rows
        else note("This run's selection summary does not split dropped studies by cause (written by an older version).")
    )
    splits = _split_counts(files)
    out += ["<h3>Split of the dataset (MIMIC images in CXLSeg-split)</h3>"]
    out += [kpi(s, count(n), "images") for s, n in splits.items()]
    return out


def segmenter_section(files: ReportFiles, *, demo: bool) -> list[str]:
    """The segmenter that made the masks (the ensemble and its members) with its test Dice and n."""
    used = segmenter(files)
    out = [section("segmenter", "Segmenter used for the masks")]
    if not used["selected"]:
        return out + [note("No model selected yet.")]
    members = used["members"]
    kind = f"ensemble of {len(members)} (probabilities averaged)" if len(members) > 1 else "single network"
    out.append(kpi("masks made by", " + ".join(members), kind))
    if used["evaluated"]:
        n = count(used["n_test"])
        out.append(kpi("test Dice", fixed(4)(used["test"].get("dice")), f"mean, n = {n} held-out training-set images"))
        out.append(kpi("test Dice, 5th percentile", fixed(4)(used["test_p5"]), f"n = {n}"))
        out.append(kpi("test HD95", f"{fixed(2)(used['test'].get('hd95'))} px", f"mean, n = {n}"))
    else:
        out.append(note("The segmenter's test Dice was not measured by this run (models/inference missing)."))
    val = fixed(4)(used["val_value"])
    out.append(kpi("selected on validation", used["selected"], f"validation {used['val_metric']} {val}"))
    truth = read_json(files.qc_summary).get("truth", {})
    if truth.get("n"):
        detail = f"mean, n = {count(truth['n'])} segmented masks" + (" (demo phantoms)" if demo else "")
        out.append(kpi("Dice against ground truth", fixed(4)(truth.get("mean_dice")), detail))
    out.append(
        note(
            "Test Dice: the training store's test split (Shenzhen, Montgomery, V7 images never used to train or "
            "select), through the production predictor with inference's flips, threshold and clean-up; Table IV "
            "(menu 2) has each network alone. MIMIC-CXR has no lung masks, so the dataset's own Dice is unknown "
            + ("except on the demo, whose phantoms come with true masks." if demo else "on a real run.")
        )
    )
    return out


def _rate(rate, n, what: str) -> tuple[str, str]:
    return percent(rate), f"n = {count(n)} {what}"


def qc_model_fields(files: ReportFiles) -> tuple[dict, float | None, dict]:
    """(info, good-Dice level, flag bar) of the run's QC model file as `QCModel.save` writes it: the level and the
    bar are top-level fields, beside `info`; (empty, None, empty) without a model."""
    saved = read_json(files.qc_model)
    bar = {"bar": saved.get("min_predicted_dice"), "rate": saved.get("good_flag_rate")}
    return saved.get("info", {}), saved.get("good_dice"), bar if bar["bar"] is not None else {}


def bar_kpi(bar: dict, good) -> str:
    """The flag bar and the good-flag rate it was picked for (or that it is fixed)."""
    if not bar:
        return note("No flag bar: this run has no QC model.")
    how = bar_text(bar["bar"], bar["rate"], good).split(", ", 1)[1]
    return kpi("flag bar", f"predicted Dice < {fixed(3)(bar['bar'])}", how)


def qc_section(files: ReportFiles) -> list[str]:
    """How well QC separates good from bad masks: the flag bar, catch and false-flag rates with their n, and its
    tracking."""
    info, good, bar = qc_model_fields(files)
    truth = read_json(files.qc_summary).get("truth", {})
    out = [section("qc", "Quality control")]
    if not info and not truth:
        return out + [note("No QC calibration in this run.")]
    out.append(bar_kpi(bar, good))
    cv = info.get("cross_validated", {})
    every = cv.get("all", {})
    if every:
        out.append("<h3>Calibration masks (training store validate + test, clean and degraded; cross-validated)</h3>")
        out.append(
            kpi("bad masks caught", *_rate(every.get("bad_caught"), every.get("n_bad"), f"masks with Dice < {good}"))
        )
        out.append(
            kpi(
                "good masks flagged",
                *_rate(every.get("good_flagged"), every.get("n_good"), f"masks with Dice ≥ {good}"),
            )
        )
        for name in ("clean", "all"):
            stats = cv.get(name, {})
            if stats:
                detail = f"n = {count(stats.get('n'))} {name} masks"
                out.append(kpi(f"Pearson r, {name}", fixed(3)(stats.get("pearson")), detail))
                out.append(kpi(f"mean abs. error, {name}", fixed(3)(stats.get("mae")), detail))
    if truth.get("n"):
        out.append("<h3>This run's masks against ground truth</h3>")
        out.append(
            kpi("bad masks caught", *_rate(truth.get("bad_caught"), truth.get("n_bad"), f"masks with Dice < {good}"))
        )
        out.append(
            kpi(
                "good masks flagged",
                *_rate(truth.get("good_flagged"), truth.get("n_good"), f"masks with Dice ≥ {good}"),
            )
        )
        out.append(kpi("Pearson r", fixed(3)(truth.get("pearson")), f"n = {count(truth['n'])} masks"))
    out.append(
        note(
            f"Each mask's predicted Dice comes from the QC model ({count(info.get('n_masks'))} calibration masks, "
            f"segmenter {info.get('model_id', '–')}); a mask is flagged when its predicted Dice is under the flag "
            "bar or an anatomy rule fails. Details: menu 3. CXLSeg dataset → QC report."
        )
    )
    return out


def time_section(files: ReportFiles, manifests: dict[str, pd.DataFrame]) -> list[str]:
    """Wall clock, hardware, every rule's benchmark time, and inference throughput per shard."""
    clock, host, times = wall_clock(files.benchmarks), hardware(), benchmark_times(files.benchmarks)
    gpus = ", ".join(host["gpus"]) or "none"
    memory = "–" if np.isnan(host["memory_gb"]) else f"{host['memory_gb']:.0f} GB"
    times = times.assign(hms=times["seconds"].map(hms))[["stage", "jobs", "seconds", "hms", "peak_rss_mb"]]
    return [
        section("time", "Time and hardware"),
        kpi("wall clock", hms(clock["busy_seconds"]), f"time with a job running, {clock['jobs']} jobs"),
        kpi("first start to last end", hms(clock["seconds"]), "includes pauses between resumed runs"),
        kpi("compute", hms(times["seconds"].sum()), "sum of every job's seconds"),
        f"<p>Hardware (host that built this report): {esc(host['cpu'])}, {host['cores']} cores, {memory} memory, "
        f"GPU: {esc(gpus)}; {esc(host['system'])}.</p>",
        "<h3>Time per stage (every rule's benchmark file)</h3>",
        table(times, {"jobs": count, "seconds": fixed(1), "peak_rss_mb": count}),
        note(
            "Jobs run in parallel, so stage times add up to more than the wall clock. This report's own "
            "rule (run_report) is not in its own table."
        ),
        "<h3>Inference throughput per shard</h3>",
        table(
            shard_throughput(files.benchmarks, manifests),
            {"images": count, "seconds": fixed(1), "images_per_s": fixed(2)},
        ),
    ]


def at_a_glance(files: ReportFiles, manifest: pd.DataFrame, *, demo: bool) -> list[str]:
    """The answers in one screen: how many images, made by what, how good (with n), how well QC catches bad masks,
    how long it took; each box is detailed further down the page."""
    selection = read_json(files.selection_summary)
    ok = manifest["status"] == "ok"
    used = segmenter(files)
    truth = read_json(files.qc_summary).get("truth", {})
    calibration, good, bar = qc_model_fields(files)
    every = calibration.get("cross_validated", {}).get("all", {})
    boxes = [
        kpi("selected", count(selection.get("images_in_shards", len(manifest))), "frontal, with a report"),
        kpi(
            "segmented",
            count(int(ok.sum())),
            f"failed {count(int((~ok).sum()))}, flagged {count(int(_flagged(manifest).sum()))}",
        ),
    ]
    if used["members"]:
        boxes.append(kpi("masks made by", " + ".join(used["members"]), f"{len(used['members'])} network(s)"))
    if used["evaluated"]:
        boxes.append(kpi("test Dice", fixed(3)(used["test"].get("dice")), f"n = {count(used['n_test'])} test images"))
    if truth.get("n"):
        label = "Dice vs demo truth" if demo else "Dice vs ground truth"
        boxes.append(kpi(label, fixed(3)(truth.get("mean_dice")), f"n = {count(truth['n'])} masks"))
    if bar:
        boxes.append(bar_kpi(bar, good))
    if every:
        boxes.append(
            kpi(
                "QC catches bad masks",
                percent(every.get("bad_caught")),
                f"of {count(every.get('n_bad'))} calibration masks, Dice < {good}",
            )
        )
        boxes.append(
            kpi(
                "QC flags good masks",
                percent(every.get("good_flagged")),
                f"of {count(every.get('n_good'))} calibration masks, Dice ≥ {good}",
            )
        )
    boxes.append(kpi("wall clock", hms(wall_clock(files.benchmarks)["busy_seconds"]), "jobs running (pauses excluded)"))
    return [section("glance", "At a glance"), *boxes]


def run_check(files: ReportFiles):
    """The tables-vs-disk check (`cxlseg check-run`'s) on the report's inputs."""
    if files.tables_summary is None:
        return check_tables(Path("summary.json"), (), (), None)
    tables = [p for p in files.tables().values() if p is not None]
    return check_tables(files.tables_summary, files.manifests, tables, files.images_root)


def summary_page(files: ReportFiles, *, demo: bool = False) -> str:
    """Landing page: images, the segmenter used and its Dice, QC's catch rates, splits, time and hardware."""
    manifests = shard_manifests(files)
    manifest = _manifest(files)
    check = run_check(files)
    body = [
        mismatch_banner(check),
        *at_a_glance(files, manifest, demo=demo),
        toc(
            [
                ("images", "Images"),
                ("segmenter", "Segmenter"),
                ("qc", "Quality control"),
                ("time", "Time, hardware"),
                ("run", "Which run"),
            ]
        ),
        *images_section(files, manifest),
        *segmenter_section(files, demo=demo),
        *qc_section(files),
        *time_section(files, manifests),
        identity_section(check, banner=False),
        f"<p class='note' id='more'>{esc(MENU_HINT)}</p>",
    ]
    return page("CXLSeg run summary", "".join(body), demo=demo)


OUTLINE_COLORS = {1: (0, 200, 0), 2: (230, 0, 230)}  # BGR: patient's right lung green, left lung magenta


def _overlay(rec, mimic_root, out_root, size: int) -> np.ndarray:
    """The original film, resized as inference resized it, with the written mask's outline drawn on it (BGR)."""
    from cxlseg import preprocess

    try:
        image, _, _, _ = preprocess.decode_for_inference(io.safe_join(mimic_root, rec.source_path), size)
        mask = io.read_image(io.safe_join(out_root, rec.mask_path), cv2.IMREAD_GRAYSCALE)
    except Exception:  # noqa: BLE001 - one unreadable file shows as a blank tile, never stops the report
        return np.zeros((size, size, 3), np.uint8)
    labels = np.digitize(mask, [64, 192]).astype(np.uint8)  # 0 / ~128 / ~255 -> 0 / 1 / 2
    if not (labels == 1).any():  # a plain 0/255 mask: one colour
        labels = (labels > 0).astype(np.uint8)
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    labels = cv2.resize(labels, out.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    for label, color in OUTLINE_COLORS.items():
        contours, _ = cv2.findContours((labels == label).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, color, 2)
    return out


def sample_grid(
    files: ReportFiles,
    path,
    *,
    mimic_root,
    n: int = 12,
    seed: int = 0,
    cols: int = 4,
    size: int = 224,
    quality: int = 70,
) -> int:
    """A seeded random sample of segmented images: each original film with its mask outlined, titled with its
    predicted Dice and flags; a fixed count, so the grid stays ~100 KB for any run. Returns the count."""
    from matplotlib.figure import Figure

    manifest = _manifest(files)
    ok = manifest[manifest["status"] == "ok"].sort_values("dicom_id", ignore_index=True)
    picks = ok.iloc[np.random.default_rng(seed).permutation(len(ok))[:n]] if len(ok) else ok
    rows = max(1, -(-len(picks) // cols))
    fig = Figure(figsize=(cols * 2.0, rows * 2.2), dpi=100)  # 3 rows: 660 px, fits a 768 px screen
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, rec in zip(axes.flat, picks.itertuples()):
        ax.imshow(cv2.cvtColor(_overlay(rec, mimic_root, files.images_root, size), cv2.COLOR_BGR2RGB))
        flags = split_flags(getattr(rec, "qc_flags", ""))
        dice = getattr(rec, "qc_predicted_dice", np.nan)
        title = f"{str(rec.dicom_id)[:8]}  pred. Dice {dice:.2f}" if pd.notna(dice) else str(rec.dicom_id)[:8]
        title += (
            f"\nflagged: {flags[0]}" + (f" +{len(flags) - 1}" if len(flags) > 1 else "") if flags else "\nnot flagged"
        )
        ax.set_title(title, fontsize=8, color="#b00000" if flags else "black")
    if not len(picks):
        axes.flat[0].text(0.5, 0.5, "No segmented image", ha="center", va="center")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.92, bottom=0.01, wspace=0.05, hspace=0.32)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="jpeg", pil_kwargs={"quality": quality, "optimize": True})
    return len(picks)


PAGES = {
    "summary": summary_page,
    "datasets": pages.datasets_page,
    "comparison": pages.comparison_page,
    "counts": pages.counts_page,
}


def write_pages(
    files: ReportFiles, out: dict, *, mimic_root, demo: bool = False, n_samples: int = 12, seed: int = 0
) -> dict:
    """The report's pages and the sample grid, to `out` (PAGES' names and "samples" -> the rule's outputs)."""
    missing = sorted({*PAGES, "samples"} - set(out))
    if missing:
        raise ValueError(f"run report: no output file for {', '.join(missing)}")
    for name, build in PAGES.items():
        io.write_text(out[name], build(files, demo=demo))
    sample_grid(files, out["samples"], mimic_root=mimic_root, n=n_samples, seed=seed)
    return {name: Path(out[name]) for name in (*PAGES, "samples")}
