"""MIMIC-CXR-JPG inference: image selection, shard lists, batched resumable inference, QC validation.

One shard = one parquet list of images (a subject prefix p10..p19, optionally split into chunks so
a prefix can spread over several GPUs) -> one parquet manifest. Progress is flushed to
`<manifest>.partial.parquet` so a killed shard resumes where it stopped; an image counts as done
only when the (partial) manifest says ok for the same model and settings AND both output files
exist. Manifests hold no timestamps, so a rerun writes identical bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .device import resolve_device
from . import io, preprocess
from .config import shard_ids
from . import postprocess as post

log = logging.getLogger(__name__)

DEFAULT_SHARDS = tuple(f"p{i}" for i in range(10, 20))
METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition")
LIST_COLUMNS = ("dicom_id", "subject_id", "study_id", "image_path")

# Manifest schema: column -> pandas dtype (nullable types keep failed rows and reruns byte-identical).
MANIFEST_DTYPES = {
    "dicom_id": "string", "subject_id": "string", "study_id": "string",
    "source_path": "string", "image_path": "string", "mask_path": "string",
    "orig_height": "Int64", "orig_width": "Int64", "decode_factor": "Int64",
    "lung_area_fraction": "float64", "n_components": "Int64", "n_components_kept": "Int64",
    "left_right_ratio": "float64", "mean_fg_prob": "float64", "mean_entropy": "float64",
    "boundary_entropy": "float64", "soft_dice": "float64", "qc_score": "float64",
    "qc_flags": "string", "status": "string", "error": "string", "note": "string",
    "mask_rle": "string", "model_id": "string", "settings_id": "string",
}


# --- selection and shard lists ---------------------------------------------------------------

def id_problem(dicom_id: str, subject_id: str, study_id: str) -> str:
    """Why these ids cannot be turned into a path ('' when they can); ids end up in file names."""
    if not (subject_id.isascii() and subject_id.isdigit() and len(subject_id) >= 2):
        return f"subject_id {subject_id!r} is not a number of at least 2 digits"
    if not (study_id.isascii() and study_id.isdigit()):
        return f"study_id {study_id!r} is not a number"
    parts = dicom_id.split("-")
    if not dicom_id or not all(p and all(c in "0123456789abcdef" for c in p) for p in parts):
        return f"dicom_id {dicom_id!r} is not lower-case hex groups joined by '-'"
    return ""


def study_dir(subject_id: str, study_id: str) -> str:
    """MIMIC's relative folder of a study: files/pXX/pNNNNNNNN/sNNNNNNNN."""
    return f"files/p{subject_id[:2]}/p{subject_id}/s{study_id}"


def _read_metadata(metadata_csv) -> pd.DataFrame:
    meta = pd.read_csv(metadata_csv, dtype=str, keep_default_na=False)
    missing = [c for c in METADATA_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"{metadata_csv}: missing column(s) {missing}")
    for col in ("Rows", "Columns"):
        meta[col] = pd.to_numeric(meta[col], errors="coerce").astype("Int64") if col in meta else pd.NA
    return meta


def _exclude_bad_ids(frontal: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    problems = [id_problem(d, s, t) for d, s, t in zip(frontal.dicom_id, frontal.subject_id, frontal.study_id)]
    problems = pd.Series(problems, index=frontal.index)
    dup = frontal.dicom_id.duplicated(keep="first") & (problems == "")
    problems[dup] = "duplicate dicom_id (first occurrence kept)"
    bad = frontal[problems != ""]
    excluded = [{"dicom_id": d, "subject_id": s, "study_id": t, "reason": r}
                for d, s, t, r in zip(bad.dicom_id, bad.subject_id, bad.study_id, problems[problems != ""])]
    return frontal[problems == ""], excluded


def _studies_with_report(images: pd.DataFrame, reports_root) -> set[tuple[str, str]]:
    """One file-system check per study, not per image."""
    studies = images[["subject_id", "study_id"]].drop_duplicates()
    found = set()
    for subject_id, study_id in tqdm(zip(studies.subject_id, studies.study_id), total=len(studies),
                                     desc="report files", unit="study", mininterval=5):
        if io.safe_join(reports_root, study_dir(subject_id, study_id) + ".txt").is_file():
            found.add((subject_id, study_id))
    return found


def _assign_chunks(df: pd.DataFrame, chunks: int) -> pd.Series:
    """Contiguous, balanced blocks of the (subject, study, dicom) order inside each prefix: stable and
    keeps a subject's folders together on one worker."""
    rank = df.groupby("prefix").cumcount()
    size = df.groupby("prefix")["dicom_id"].transform("size")
    return (rank * chunks // size).astype(int)


def _shard_table(images: pd.DataFrame, shards, chunks: int) -> pd.DataFrame:
    """The images of the configured prefixes in (prefix, subject, study, dicom) order, with shard ids and paths."""
    images = images.assign(prefix="p" + images.subject_id.str[:2])
    selected = images[images.prefix.isin(list(shards))]
    selected = selected.sort_values(["prefix", "subject_id", "study_id", "dicom_id"], kind="stable")
    selected = selected.reset_index(drop=True)
    chunk = _assign_chunks(selected, chunks) if len(selected) else pd.Series(dtype="int64")
    dirs = [study_dir(s, t) for s, t in zip(selected.subject_id, selected.study_id)]
    return pd.DataFrame({
        "dicom_id": selected.dicom_id, "subject_id": selected.subject_id, "study_id": selected.study_id,
        "view_position": selected.ViewPosition, "rows": selected.Rows, "columns": selected.Columns,
        "prefix": selected.prefix, "chunk": chunk.astype("int64"),
        "shard_id": selected.prefix if chunks == 1 else selected.prefix + "-c" + chunk.astype(str),
        "image_path": [f"{d}/{i}.jpg" for d, i in zip(dirs, selected.dicom_id)],
        "report_path": [f"{d}.txt" for d in dirs],
    })


def select_images(metadata_csv, mimic_root, reports_root=None, *, views=("AP", "PA"),
                  shards=DEFAULT_SHARDS, chunks_per_shard: int = 1) -> tuple[pd.DataFrame, dict]:
    """Frontal images whose study has a report, assigned to shards; returns (images, summary).

    `mimic_root` is where the images live (recorded in the summary; the image paths in the table are
    relative to it). Counts after each filter go into the summary; rows with unsafe ids are excluded
    and listed there with the reason.
    """
    ids = shard_ids(shards, chunks_per_shard)  # bad shard names fail before the slow report scan
    reports_root = reports_root if reports_root is not None else mimic_root
    meta = _read_metadata(metadata_csv)
    summary = {"metadata_csv": str(metadata_csv), "mimic_root": str(mimic_root),
               "reports_root": str(reports_root), "views": list(views), "shards": list(shards),
               "chunks_per_shard": int(chunks_per_shard), "metadata_images": int(len(meta))}
    frontal = meta[meta.ViewPosition.isin(list(views))]
    summary["frontal_images"] = int(len(frontal))
    valid, excluded = _exclude_bad_ids(frontal)
    summary["valid_id_images"] = int(len(valid))
    summary["excluded"] = excluded
    with_report = _studies_with_report(valid, reports_root)
    keys = list(zip(valid.subject_id, valid.study_id))
    has_report = np.array([k in with_report for k in keys], dtype=bool)
    summary["frontal_studies"] = int(len(set(keys)))
    summary["frontal_studies_with_report"] = int(len(with_report))
    reported = valid[has_report].copy()
    summary["images_with_report"] = int(len(reported))

    table = _shard_table(reported, shards, chunks_per_shard)
    summary["images_in_shards"] = int(len(table))
    per_shard = table.shard_id.value_counts().reindex(ids, fill_value=0)
    summary["images_per_shard"] = {s: int(n) for s, n in per_shard.items()}
    log.info("selection: %d metadata -> %d frontal -> %d valid ids -> %d with report -> %d in shards",
             summary["metadata_images"], summary["frontal_images"], summary["valid_id_images"],
             summary["images_with_report"], summary["images_in_shards"])
    return table, summary


def write_shard_lists(df: pd.DataFrame, out_dir, shard_ids: list[str]) -> dict[str, int]:
    """Write `out_dir/{shard_id}.parquet` for EVERY configured shard (empty when the prefix is absent)."""
    counts = {}
    for shard in shard_ids:
        part = df[df.shard_id == shard].reset_index(drop=True)
        io.write_parquet(part, io.safe_join(out_dir, f"{shard}.parquet"))
        counts[shard] = int(len(part))
    return counts


def run_selection(metadata_csv, mimic_root, out_dir, reports_root=None, *, views=("AP", "PA"),
                  shards=DEFAULT_SHARDS, chunks_per_shard: int = 1) -> dict:
    """The selection stage: `selection.parquet`, `selection_summary.json` and `lists/{shard}.parquet`."""
    table, summary = select_images(metadata_csv, mimic_root, reports_root, views=views, shards=shards,
                                   chunks_per_shard=chunks_per_shard)
    out_dir = Path(out_dir)
    io.write_parquet(table, out_dir / "selection.parquet")
    write_shard_lists(table, out_dir / "lists", shard_ids(shards, chunks_per_shard))
    io.write_json(out_dir / "selection_summary.json", summary)
    return summary


# --- model -----------------------------------------------------------------------------------

def _state_digest(model: torch.nn.Module) -> str:
    """A content hash of the weights, so a model id never depends on a file name or a date."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def load_inference_model(checkpoint=None, model: torch.nn.Module | None = None, model_id: str | None = None,
                         device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict, str]:
    """(model in eval mode on device, its config, model_id); a given model wins over a checkpoint."""
    config: dict = {}
    meta: dict = {}
    if model is None:
        if checkpoint is None:
            raise ValueError("infer needs a checkpoint path or a model")
        from .train import load_model  # lazily: train pulls in the training stack

        model, meta = load_model(checkpoint, device)
        config = dict(meta.get("config", {}))
    model = model.to(device).eval()
    if not model_id:
        arch = config.get("architecture", type(model).__name__.lower())
        model_id = meta.get("model_id") or f"{arch}-{_state_digest(model)}"
    return model, config, str(model_id)


# --- per-image decode (runs in DataLoader workers) -------------------------------------------

@dataclass(frozen=True)
class DecodeSettings:
    """`size` is the written (and decoded) image size; `model_size` the network's input, when it differs
    (a model trained at 160 px still writes 224 px outputs: probabilities are resized back, as in evaluation)."""
    size: int = 224
    model_size: int | None = None
    in_channels: int = 1
    clahe_clip: float = 2.0
    clahe_tiles: int = 8
    reduce_min_ratio: float = 1.0

    @property
    def net_size(self) -> int:
        return self.model_size or self.size


def _reason(exc: BaseException) -> str:
    if isinstance(exc, io.ImageReadError):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


class ShardDataset(torch.utils.data.Dataset):
    """Decodes and preprocesses one list row; any failure becomes a failure record, never an exception."""

    def __init__(self, items: list[dict], mimic_root, settings: DecodeSettings):
        self.items = items
        self.root = Path(mimic_root)
        self.settings = settings

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item, s = self.items[index], self.settings
        sample = {"index": index, "image": np.zeros((s.size, s.size), np.uint8),
                  "model_image": np.zeros((s.net_size, s.net_size), np.uint8), "ok": False, "error": "",
                  "orig_hw": (None, None), "decode_factor": None, "note": ""}
        try:
            problem = id_problem(item["dicom_id"], item["subject_id"], item["study_id"])
            if problem:
                raise ValueError(f"unsafe id: {problem}")
            path = io.safe_join(self.root, item["image_path"])
            resized, true_hw, factor, note = preprocess.decode_for_inference(
                path, s.size, item.get("rows"), item.get("columns"), s.reduce_min_ratio)
            image = preprocess.clahe(resized, s.clahe_clip, s.clahe_tiles)
            sample.update(image=image, model_image=_model_image(resized, image, s), ok=True,
                          orig_hw=true_hw, decode_factor=factor, note=note)
        except Exception as exc:  # noqa: BLE001 - one bad image must never kill the loader
            sample["error"] = _reason(exc)
        return sample


def _model_image(resized: np.ndarray, written: np.ndarray, s: DecodeSettings) -> np.ndarray:
    """The network's input: resized first, then CLAHE, exactly as training prepared it."""
    if s.net_size == s.size:
        return written
    return preprocess.prepare(resized, s.net_size, s.clahe_clip, s.clahe_tiles)


@dataclass(frozen=True)
class _Collate:
    in_channels: int

    def __call__(self, samples: list[dict]) -> dict:
        images = np.stack([s["image"] for s in samples])
        inputs = np.stack([s["model_image"] for s in samples])
        x = torch.from_numpy(preprocess.to_model_input(inputs, self.in_channels))
        meta = [{k: v for k, v in s.items() if k not in ("image", "model_image")} for s in samples]
        return {"x": x, "images": torch.from_numpy(images), "meta": meta}


def _worker_init(_worker_id: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


# --- forward and per-image outputs -----------------------------------------------------------

def predict(model: torch.nn.Module, x: torch.Tensor, device: torch.device, tta_flip: bool = False,
            out_size: int | None = None) -> np.ndarray:
    """Lung probabilities (N, out_size, out_size) float32 (default: the input's size); mixed precision on CUDA only."""
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else contextlib.nullcontext()
    with torch.inference_mode(), amp:
        x = x.to(device, non_blocking=True)
        logits = model(x)
        if logits.ndim != 4 or logits.shape[1] != 1 or logits.shape[2:] != x.shape[2:]:
            raise ValueError(f"model returned {tuple(logits.shape)} for input {tuple(x.shape)}; expected (N,1,H,W)")
        prob = torch.sigmoid(logits.float())
        if tta_flip:  # average with the mirrored prediction (test-time augmentation)
            prob = (prob + torch.sigmoid(model(x.flip(-1)).float()).flip(-1)) / 2
        if out_size and prob.shape[-1] != out_size:
            prob = F.interpolate(prob, size=(out_size, out_size), mode="bilinear", align_corners=False)
    return prob[:, 0].cpu().numpy()


@dataclass(frozen=True)
class OutputSettings:
    threshold: float = 0.5
    closing: int = 5
    opening: int = 3
    keep_components: int = 2
    fill_holes: bool = True
    min_component_fraction: float = 0.005
    qc_thresholds: dict = field(default_factory=dict)
    mask_format: str = "jpg"
    jpeg_quality: int = 95
    save_full_res_rle: bool = False
    separate_lungs: bool = False


def _rle(mask: np.ndarray, orig_hw: tuple[int, int]) -> str:
    """The 224 mask back at the original resolution (inverse stretch), COCO run-length encoded."""
    from pycocotools import mask as mask_utils

    height, width = orig_hw
    full = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) >= 0.5
    return mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))["counts"].decode("ascii")


def output_paths(item: dict, mask_format: str) -> tuple[str, str]:
    """Output files mirror the source's relative folder: files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>[-mask].*"""
    folder = study_dir(item["subject_id"], item["study_id"])
    return f"{folder}/{item['dicom_id']}.jpg", f"{folder}/{item['dicom_id']}-mask.{mask_format}"


def finish_image(item: dict, image: np.ndarray, prob: np.ndarray, out_root, s: OutputSettings) -> dict:
    """Clean the mask, score it, write the segmented image and the mask; returns the manifest fields."""
    mask = post.clean_mask(prob, threshold=s.threshold, closing=s.closing, opening=s.opening,
                                  keep_components=s.keep_components, fill_holes=s.fill_holes,
                                  min_component_fraction=s.min_component_fraction)
    metrics = post.qc_metrics(prob, mask, threshold=s.threshold)
    flags = post.qc_flags(metrics, s.qc_thresholds)
    if s.separate_lungs:
        labels = post.label_lungs(mask)
        mask_file = np.zeros_like(labels)
        for label, gray in post.LABEL_GRAY.items():
            mask_file[labels == label] = gray
    else:
        mask_file = mask * np.uint8(255)
    segmented = cv2.bitwise_and(image, mask * np.uint8(255))
    image_rel, mask_rel = output_paths(item, s.mask_format)
    quality = [cv2.IMWRITE_JPEG_QUALITY, int(s.jpeg_quality)]
    io.write_image(io.safe_join(out_root, image_rel), segmented, quality)
    io.write_image(io.safe_join(out_root, mask_rel), mask_file,
                   quality if s.mask_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3])
    return {"image_path": image_rel, "mask_path": mask_rel, **metrics, "qc_flags": ";".join(flags),
            "mask_rle": _rle(mask, item["orig_hw"]) if s.save_full_res_rle else None}


# --- manifest and resume ---------------------------------------------------------------------

def manifest_frame(records) -> pd.DataFrame:
    """Records or a read-back manifest -> the manifest schema, sorted by dicom_id."""
    df = pd.DataFrame(records)
    for col in MANIFEST_DTYPES:
        if col not in df:
            df[col] = None
    df = df[list(MANIFEST_DTYPES)].astype(MANIFEST_DTYPES)
    return df.sort_values("dicom_id", kind="stable").reset_index(drop=True)


def partial_path(manifest_path) -> Path:
    return Path(manifest_path).with_suffix(".partial.parquet")


def load_done(manifest_path, out_root, model_id: str, settings_id: str) -> pd.DataFrame:
    """Rows of an earlier (partial or final) run that need no recomputation: ok for this model and these
    settings, with both output files still on disk."""
    frames = [pd.read_parquet(p) for p in (manifest_path, partial_path(manifest_path)) if Path(p).is_file()]
    if not frames:
        return manifest_frame([])
    prior = manifest_frame(pd.concat(frames, ignore_index=True)).drop_duplicates("dicom_id", keep="last")
    candidate = prior[(prior.status == "ok") & (prior.model_id == model_id) & (prior.settings_id == settings_id)]
    on_disk = [io.safe_join(out_root, i).is_file() and io.safe_join(out_root, m).is_file()
               for i, m in zip(candidate.image_path, candidate.mask_path)]
    return candidate[np.array(on_disk, dtype=bool)].reset_index(drop=True)


def _list_items(list_parquet) -> list[dict]:
    rows = pd.read_parquet(list_parquet)
    missing = [c for c in LIST_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"{list_parquet}: missing column(s) {missing}")
    items = []
    for rec in rows.to_dict("records"):
        item = {k: str(rec[k]) for k in LIST_COLUMNS}
        for k in ("rows", "columns"):
            v = rec.get(k)
            item[k] = None if v is None or pd.isna(v) else int(v)
        items.append(item)
    return items


def _failed_record(item: dict, sample: dict, model_id: str, settings_id: str) -> dict:
    h, w = sample["orig_hw"]
    return {"dicom_id": item["dicom_id"], "subject_id": item["subject_id"], "study_id": item["study_id"],
            "source_path": item["image_path"], "orig_height": h, "orig_width": w,
            "decode_factor": sample["decode_factor"], "qc_flags": "", "status": "failed", "error": sample["error"],
            "note": sample["note"], "model_id": model_id, "settings_id": settings_id}


def _settings_id(decode: DecodeSettings, output: OutputSettings, tta_flip: bool) -> str:
    blob = json.dumps({"decode": asdict(decode), "output": asdict(output), "tta_flip": tta_flip},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _decode_settings(config: dict, size, output_size, in_channels, clahe_clip, clahe_tiles,
                     reduce_min_ratio) -> DecodeSettings:
    """Explicit values win; otherwise the checkpoint's training config, so inference preprocesses like training."""
    def pick(value, key, default):
        return value if value is not None else config.get(key, default)

    model_size = int(pick(size, "size", 224))
    return DecodeSettings(size=int(output_size or model_size), model_size=model_size,
                          in_channels=int(pick(in_channels, "in_channels", 1)),
                          clahe_clip=float(pick(clahe_clip, "clahe_clip", 2.0)),
                          clahe_tiles=int(pick(clahe_tiles, "clahe_tiles", 8)),
                          reduce_min_ratio=float(reduce_min_ratio))


def _output_settings(cleanup: dict, postprocess: dict | None, qc_thresholds: dict | None, **options) -> OutputSettings:
    unknown = set(postprocess or {}) - set(cleanup)
    if unknown:
        raise ValueError(f"unknown postprocess key(s) {sorted(unknown)}; known: {sorted(cleanup)}")
    if options["mask_format"] not in ("jpg", "png"):
        raise ValueError(f"mask_format must be 'jpg' or 'png', got {options['mask_format']!r}")
    post.qc_flags({"lung_area_fraction": 0.0}, qc_thresholds)  # unknown threshold keys fail before any work
    return OutputSettings(**{**cleanup, **(postprocess or {})}, qc_thresholds=dict(qc_thresholds or {}), **options)


def infer_shard(list_parquet, mimic_root, out_root, manifest_path, *, checkpoint=None,
                model: torch.nn.Module | None = None, model_id: str | None = None,
                size: int | None = None, output_size: int | None = None, in_channels: int | None = None,
                clahe_clip: float | None = None,
                clahe_tiles: int | None = None, batch_size: int = 16, num_workers: int = 0,
                device: str = "auto", threshold: float = 0.5, closing: int = 5, opening: int = 3,
                keep_components: int = 2, fill_holes: bool = True, min_component_fraction: float = 0.005,
                postprocess: dict | None = None, qc_thresholds: dict | None = None, mask_format: str = "jpg",
                jpeg_quality: int = 95, save_full_res_rle: bool = False, separate_lungs: bool = False,
                tta_flip: bool = False, reduce_min_ratio: float = 1.0, flush_every: int = 256,
                write_threads: int = 0, on_flush: Callable[[int], None] | None = None, progress: bool = True) -> dict:
    """Segment every image of one shard list, write the outputs and the shard's manifest; returns a summary.

    size / in_channels / clahe_* default to the checkpoint's config (224, 1, 2.0, 8 for a bare model);
    output_size (the written images and masks) defaults to the model's size.
    `postprocess` (the config's infer.postprocess block) overrides the clean-up keywords by name.
    `write_threads` > 0 runs clean-up, QC and writes in a thread pool (OpenCV and file I/O release the
    GIL) so they overlap the next forward pass: useful on a GPU, where they would otherwise bound the rate.
    `on_flush(n_rows_in_partial)` runs after each partial-manifest flush (tests use it to simulate a kill).
    """
    started = time.perf_counter()
    cleanup = {"threshold": threshold, "closing": closing, "opening": opening, "keep_components": keep_components,
               "fill_holes": fill_holes, "min_component_fraction": min_component_fraction}
    output = _output_settings(cleanup, postprocess, qc_thresholds, mask_format=mask_format, jpeg_quality=jpeg_quality,
                              save_full_res_rle=save_full_res_rle, separate_lungs=separate_lungs)
    dev = resolve_device(device)
    model, config, model_id = load_inference_model(checkpoint, model, model_id, dev)
    decode = _decode_settings(config, size, output_size, in_channels, clahe_clip, clahe_tiles, reduce_min_ratio)
    settings_id = _settings_id(decode, output, tta_flip)

    items = _list_items(list_parquet)
    done = load_done(manifest_path, out_root, model_id, settings_id)
    done = done[done.dicom_id.isin({it["dicom_id"] for it in items})].reset_index(drop=True)
    done_ids = set(done.dicom_id)
    pending = [it for it in items if it["dicom_id"] not in done_ids]
    log.info("%s: %d images, %d already done, %d to compute on %s (model %s)",
             list_parquet, len(items), len(done_ids), len(pending), dev, model_id)

    records: list[dict] = []
    flushed_at = 0
    in_flight: deque[Future] = deque()
    with ThreadPoolExecutor(write_threads) if write_threads else contextlib.nullcontext() as pool:
        submit = pool.submit if pool else _run_now
        for batch in _loader(pending, mimic_root, decode, batch_size, num_workers, dev, list_parquet, progress):
            in_flight.extend(_submit_batch(batch, pending, model, dev, tta_flip, submit, out_root, output,
                                           model_id, settings_id))
            while in_flight and (in_flight[0].done() or len(in_flight) > 2 * batch_size):
                records.append(in_flight.popleft().result())  # in list order, whatever finishes first
            if len(records) - flushed_at >= flush_every:
                flushed_at = _flush(done, records, manifest_path, on_flush)
        records.extend(f.result() for f in in_flight)

    manifest = manifest_frame([*done.to_dict("records"), *records])
    io.write_parquet(manifest, manifest_path)
    partial_path(manifest_path).unlink(missing_ok=True)
    return _summary(manifest, list_parquet, len(done_ids), len(pending), model_id, time.perf_counter() - started)


def _flush(done: pd.DataFrame, records: list[dict], manifest_path, on_flush) -> int:
    """Progress so far -> `<manifest>.partial.parquet` (atomic); returns how many new records it holds."""
    frame = manifest_frame([*done.to_dict("records"), *records])
    io.write_parquet(frame, partial_path(manifest_path))
    if on_flush is not None:
        on_flush(len(frame))
    return len(records)


def _loader(pending: list[dict], mimic_root, decode: DecodeSettings, batch_size: int, num_workers: int,
            dev: torch.device, list_parquet, progress: bool):
    """Batches of decoded images, decoded by worker processes when num_workers > 0; a tqdm bar over batches."""
    if not pending:
        return []
    loader = torch.utils.data.DataLoader(
        ShardDataset(pending, mimic_root, decode), batch_size=batch_size, shuffle=False, num_workers=num_workers,
        collate_fn=_Collate(decode.in_channels), pin_memory=dev.type == "cuda",
        worker_init_fn=_worker_init if num_workers else None)
    return tqdm(loader, desc=f"infer {Path(list_parquet).stem}", unit="batch", disable=not progress)


def _finish_record(item: dict, sample: dict, image, prob, out_root, output: OutputSettings,
                   model_id: str, settings_id: str) -> dict:
    """The manifest row of one image; a write failure (a full disk, say) fails this image only."""
    record = _failed_record(item, sample, model_id, settings_id)
    if sample["ok"]:
        try:
            record.update(finish_image(item, image, prob, out_root, output), status="ok", error=None)
        except Exception as exc:  # noqa: BLE001 - record it and go on
            record["error"] = f"writing outputs failed: {_reason(exc)}"
    return record


def _run_now(fn, *args) -> Future:
    """Executor.submit without an executor: run inline, hand back a finished future."""
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as exc:  # noqa: BLE001 - re-raised by .result(), as a pool would
        future.set_exception(exc)
    return future


def _submit_batch(batch: dict, pending: list[dict], model, dev, tta_flip: bool, submit, out_root,
                  output: OutputSettings, model_id: str, settings_id: str) -> list[Future]:
    """Forward the decoded images of a batch, then queue the post-processing and writes of every image."""
    meta = batch["meta"]
    ok = [i for i, m in enumerate(meta) if m["ok"]]
    x = batch["x"] if len(ok) == len(meta) else batch["x"][ok]  # keep the pinned tensor when all decoded
    out_size = int(batch["images"].shape[-1])
    prob_of = dict(zip(ok, predict(model, x, dev, tta_flip, out_size))) if ok else {}
    images = batch["images"].numpy()
    return [submit(_finish_record, {**pending[sample["index"]], "orig_hw": sample["orig_hw"]}, sample,
                   images[i], prob_of.get(i), out_root, output, model_id, settings_id)
            for i, sample in enumerate(meta)]


def _summary(manifest: pd.DataFrame, list_parquet, resumed: int, computed: int, model_id: str, seconds: float) -> dict:
    ok = manifest[manifest.status == "ok"]
    flags = Counter(f for fl in ok.qc_flags.dropna() for f in fl.split(";") if f)
    return {"list": str(list_parquet), "images": int(len(manifest)), "ok": int(len(ok)),
            "failed": int((manifest.status == "failed").sum()), "resumed": int(resumed), "computed": int(computed),
            "flagged": int((ok.qc_flags.fillna("") != "").sum()), "flag_counts": dict(sorted(flags.items())),
            "failure_reasons": dict(Counter(manifest.loc[manifest.status == "failed", "error"].astype(str))),
            "model_id": model_id, "seconds": round(seconds, 3),
            "images_per_second": round(computed / seconds, 3) if seconds > 0 else math.nan}


# --- QC validation and review ----------------------------------------------------------------

def _read_truth(path: Path) -> np.ndarray:
    """Ground-truth masks may be 0/255 or lung labels 1/2: any non-zero pixel is lung."""
    image = io.read_image(path)
    gray = image if image.ndim == 2 and image.dtype == np.uint8 else io.to_gray_uint8(image, path)
    return (gray > 0).astype(np.uint8)


def qc_vs_truth(manifest, truth_dir, out_root, *, size: int = 224) -> pd.DataFrame:
    """Per ok image with a ground truth `truth_dir/<dicom_id>.png`: its qc_score, flags and true Dice
    of the written mask against the truth resized the same way (INTER_AREA stretch to size)."""
    df = manifest if isinstance(manifest, pd.DataFrame) else pd.read_parquet(manifest)
    rows = []
    for rec in df[df.status == "ok"].itertuples(index=False):
        truth_path = io.safe_join(truth_dir, f"{rec.dicom_id}.png")
        if not truth_path.is_file():
            continue
        pred = io.read_mask(io.safe_join(out_root, rec.mask_path))
        truth = preprocess.resize_mask(_read_truth(truth_path), size)
        total = int(pred.sum() + truth.sum())
        dice = 1.0 if total == 0 else 2.0 * float((pred & truth).sum()) / total
        rows.append({"dicom_id": rec.dicom_id, "qc_score": float(rec.qc_score),
                     "qc_flags": rec.qc_flags or "", "dice": dice})
    return pd.DataFrame(rows, columns=["dicom_id", "qc_score", "qc_flags", "dice"])


def qc_tracking(validation: pd.DataFrame) -> dict:
    """How well qc_score tracks true Dice: Spearman's rho, and Dice of flagged vs unflagged images."""
    from scipy.stats import spearmanr

    n = int(len(validation))
    result = {"n": n, "spearman_rho": math.nan, "spearman_p": math.nan,
              "mean_dice": float(validation.dice.mean()) if n else math.nan}
    if n >= 3 and validation.qc_score.nunique() > 1 and validation.dice.nunique() > 1:
        rho, p = spearmanr(validation.qc_score, validation.dice)
        result.update(spearman_rho=float(rho), spearman_p=float(p))
    flagged = validation.qc_flags.fillna("") != ""
    result["mean_dice_flagged"] = float(validation.dice[flagged].mean()) if flagged.any() else math.nan
    result["mean_dice_unflagged"] = float(validation.dice[~flagged].mean()) if (~flagged).any() else math.nan
    return result


def write_flagged_overlays(manifest, mimic_root, out_root, out_dir, *, size: int = 224,
                           max_images: int = 24) -> pd.DataFrame:
    """Overlays of the lowest-scoring flagged masks on their preprocessed source images, for the report."""
    df = manifest if isinstance(manifest, pd.DataFrame) else pd.read_parquet(manifest)
    flagged = df[(df.status == "ok") & (df.qc_flags.fillna("") != "")]
    flagged = flagged.sort_values(["qc_score", "dicom_id"]).head(max_images)
    rows = []
    for rec in flagged.itertuples(index=False):
        image, _, _, _ = preprocess.decode_for_inference(io.safe_join(mimic_root, rec.source_path), size)
        mask = io.read_image(io.safe_join(out_root, rec.mask_path), cv2.IMREAD_GRAYSCALE)
        labels = np.digitize(mask, [64, 192]).astype(np.uint8)  # 0 / ~128 / ~255 -> 0 / 1 / 2
        if not (labels == post.RIGHT_LUNG).any():  # a plain 0/255 mask: one colour
            labels = (labels > 0).astype(np.uint8)
        path = io.safe_join(out_dir, f"{rec.dicom_id}.png")
        io.write_image(path, post.overlay(image, labels))
        rows.append({"dicom_id": rec.dicom_id, "qc_score": rec.qc_score, "qc_flags": rec.qc_flags,
                     "overlay": os.fspath(path)})
    return pd.DataFrame(rows, columns=["dicom_id", "qc_score", "qc_flags", "overlay"])
