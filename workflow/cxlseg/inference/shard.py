"""The shard loop: segment every image of one shard list with the selected model and write its manifest.

Decoding (reduced-DCT JPEG reads, resize, the network's CLAHE input) runs in DataLoader workers, resizing
as the model was trained (`InputSpec.interpolation`, i.e. preprocess.interpolation); the
forward pass is the shared `Predictor`; clean-up, QC and the two JPEG writes per image run inline or
in a thread pool beside the next forward pass (`write_threads`). Any per-image failure becomes a
manifest row with the reason, never an exception, and progress is flushed so a killed job resumes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cxlseg import io, preprocess
from cxlseg.archives import pixels
from cxlseg.archives.records import image_id_problem
from cxlseg.film import FilmSettings
from cxlseg.inference import gpu_decode
from cxlseg.inference.manifest import load_done, lock_path, partial_path, split_flags, write_manifest
from cxlseg.inference.outputs import finish_image, pending_targets
from cxlseg.inference.predictor import InputSpec, Predictor, ensemble_checkpoints
from cxlseg.inference.qc_model import QCModel
from cxlseg.inference.select_images import LIST_COLUMNS
from cxlseg.inference.settings import InferSettings
from cxlseg.inference.view_check import ViewChecker
from cxlseg.mimic import id_problem

log = logging.getLogger(__name__)


def inference_predictor(selected: dict, settings: InferSettings) -> Predictor:
    """The predictor that segments the archive (and that QC is calibrated with): the selected model, joined by
    the next best architectures up to `infer.ensemble` members."""
    return Predictor.from_checkpoints(
        ensemble_checkpoints(selected, settings.ensemble),
        device=settings.device,
        tta_flip=settings.tta_flip,
        perturb=settings.qc.perturbation,
        amp_dtype=settings.amp_dtype,
        compile=settings.compile,
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, io.ImageReadError):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


class ShardDataset(torch.utils.data.Dataset):
    """Decodes and prepares one list row; any failure becomes a failure record, never an exception."""

    def __init__(
        self,
        items: list[dict],
        mimic_root,
        spec: InputSpec,
        output_size: int,
        reduce_min_ratio: float,
        film: FilmSettings,
    ):
        self.items, self.root, self.spec, self.film = items, Path(mimic_root), spec, film
        self.output_size, self.reduce_min_ratio = int(output_size), float(reduce_min_ratio)

    def decoded(self, index: int, resized: np.ndarray, true_hw, factor: int, note: str) -> dict:
        """The sample of a decoded image: the film inside it prepared for the network, and the check that maps
        its mask back (`film.FilmCheck`)."""
        model_image, check = self.spec.prepare_film(resized, self.film)
        return {
            "index": index,
            "image": resized,
            "model_image": model_image,
            "film": check,
            "ok": True,
            "error": "",
            "orig_hw": true_hw,
            "decode_factor": factor,
            "note": note,
        }

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item, size, net = self.items[index], self.output_size, self.spec.net_size
        sample = {
            "index": index,
            "image": np.zeros((size, size), np.uint8),
            "model_image": np.zeros((net, net), np.uint8),
            "film": None,
            "ok": False,
            "error": "",
            "orig_hw": (None, None),
            "decode_factor": None,
            "note": "",
        }
        try:
            ids = item["dicom_id"], item["subject_id"], item["study_id"]  # another archive's: its image id only
            problem = image_id_problem(ids[0]) if "out_stem" in item else id_problem(*ids)
            if problem:
                raise ValueError(f"unsafe id: {problem}")
            path = io.safe_join(self.root, item["image_path"])
            if "out_stem" in item:  # another archive's file (#34): any format, read at full depth
                resized, true_hw, factor, note = pixels.decode_for_inference(path, size, self.spec.interpolation)
            else:
                resized, true_hw, factor, note = preprocess.decode_for_inference(
                    path, size, item.get("rows"), item.get("columns"), self.reduce_min_ratio, self.spec.interpolation
                )
            sample = self.decoded(index, resized, true_hw, factor, note)
        except Exception as exc:  # noqa: BLE001 - one bad image must never kill the loader
            sample["error"] = _reason(exc)
        return sample


@dataclass(frozen=True)
class _Collate:
    spec: InputSpec

    def __call__(self, samples: list[dict]) -> dict:
        x = self.spec.to_tensor(np.stack([s["model_image"] for s in samples]))
        meta = [{k: v for k, v in s.items() if k not in ("image", "model_image")} for s in samples]
        return {"x": x, "images": np.stack([s["image"] for s in samples]), "meta": meta}


def _worker_init(_worker_id: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _list_items(list_parquet) -> list[dict]:
    """A shard list's rows; another archive's list (`archives/listing`) also names each image's output stem."""
    rows = pd.read_parquet(list_parquet)
    missing = [c for c in LIST_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"{list_parquet}: missing column(s) {missing}")
    items = []
    for rec in rows.to_dict("records"):
        item = {k: str(rec[k]) for k in (*LIST_COLUMNS, *(["out_stem"] if "out_stem" in rec else []))}
        for k in ("rows", "columns"):
            v = rec.get(k)
            item[k] = None if v is None or pd.isna(v) else int(v)
        items.append(item)
    return items


def _failed_record(item: dict, sample: dict, model_id: str, settings_id: str) -> dict:
    h, w = sample["orig_hw"]
    return {
        "dicom_id": item["dicom_id"],
        "subject_id": item["subject_id"],
        "study_id": item["study_id"],
        "source_path": item["image_path"],
        "orig_height": h,
        "orig_width": w,
        "decode_factor": sample["decode_factor"],
        "qc_flags": "",
        "status": "failed",
        "error": sample["error"],
        "note": sample["note"],
        "model_id": model_id,
        "settings_id": settings_id,
    }


def _one_job_per_shard(run):
    """Run a shard under its lock: a job that outlived its killed controller and the job a restarted controller
    submits for the same shard go one after the other, and the second finds the first's images done."""

    @functools.wraps(run)
    def locked(list_parquet, mimic_root, out_root, manifest_path, *args, **kwargs):
        with io.exclusive_lock(lock_path(manifest_path)):
            return run(list_parquet, mimic_root, out_root, manifest_path, *args, **kwargs)

    return locked


@_one_job_per_shard
def infer_shard(
    list_parquet,
    mimic_root,
    out_root,
    manifest_path,
    predictor: Predictor,
    settings: InferSettings,
    *,
    qc_model: QCModel | None = None,
    view_checker: ViewChecker | None = None,
    thumbs_dir=None,
    on_flush: Callable[[int], None] | None = None,
    progress: bool = True,
    code: str | None = None,
) -> dict:
    """Segment every image of one shard list, write the outputs and the shard's manifest; returns a summary.

    `qc_model` predicts each mask's Dice (None: no prediction, anatomy flags only); `view_checker` flags images
    that are not frontal films (None: no view check); `thumbs_dir` receives each mask's review thumbnail
    (None: none), and an image whose thumbnail is missing is not done.
    `on_flush(n_rows_in_partial)` runs after each partial-manifest flush (tests use it to simulate a kill).
    `code` (fingerprint.code_fingerprint()) joins the settings id, so a partial manifest written by another
    version of the code is recomputed, never resumed: a shard is made by one version.
    """
    started = time.perf_counter()
    settings_id = settings.settings_id(predictor.spec, qc_model, view_checker, code)
    items = _list_items(list_parquet)
    done = load_done(manifest_path, out_root, predictor.model_id, settings_id, thumbs_dir)
    done = done[done.dicom_id.isin({it["dicom_id"] for it in items})].reset_index(drop=True)
    pending = [it for it in items if it["dicom_id"] not in set(done.dicom_id)]
    log.info(
        "%s: %d images, %d already done, %d to compute on %s (model %s)",
        list_parquet,
        len(items),
        len(done),
        len(pending),
        predictor.device,
        predictor.model_id,
    )
    targets = [manifest_path, partial_path(manifest_path), *pending_targets(pending, out_root, settings, thumbs_dir)]
    if stale := io.remove_stale_temps(targets):
        log.warning("%s: removed %d temporary files that a killed run left", list_parquet, stale)
    job = _Job(
        pending,
        out_root,
        settings,
        predictor,
        qc_model,
        view_checker,
        predictor.model_id,
        settings_id,
        thumbs_dir,
    )
    records: list[dict] = []
    flushed_at = 0
    in_flight: deque[Future] = deque()
    threads = settings.write_threads
    with ThreadPoolExecutor(threads) if threads else contextlib.nullcontext() as pool:
        submit = pool.submit if pool else _run_now
        for batch in _loader(pending, mimic_root, predictor, settings, list_parquet, progress):
            in_flight.extend(job.submit_batch(batch, submit))
            while in_flight and (in_flight[0].done() or len(in_flight) > 2 * settings.batch_size):
                records.append(in_flight.popleft().result())  # in list order, whatever finishes first
            if len(records) - flushed_at >= settings.flush_every:
                write_manifest([*done.to_dict("records"), *records], partial_path(manifest_path))
                flushed_at = len(records)
                if on_flush is not None:
                    on_flush(len(done) + flushed_at)
        records.extend(f.result() for f in in_flight)
    rows = [*done.to_dict("records"), *records]
    write_manifest(rows, partial_path(manifest_path))  # all of it is progress now: a forced rerun computes nothing
    manifest = write_manifest(rows, manifest_path)
    return _summary(manifest, list_parquet, len(done), len(pending), predictor.model_id, time.perf_counter() - started)


def _loader(
    pending: list[dict], mimic_root, predictor: Predictor, settings: InferSettings, list_parquet, progress: bool
):
    """Batches of decoded images, decoded by worker processes when num_workers > 0; a tqdm bar over batches."""
    if not pending:
        return []
    dataset = ShardDataset(
        pending, mimic_root, predictor.spec, settings.output_size, settings.reduce_min_ratio, settings.film
    )
    workers = settings.num_workers
    if gpu_decode.resolve_decode_device(settings.decode_device, predictor.device) == "gpu":
        batches = gpu_decode.batches(dataset, settings.batch_size, workers, predictor.device, _Collate(predictor.spec))
        n_batches = math.ceil(len(dataset) / settings.batch_size)
        return tqdm(
            batches, total=n_batches, desc=f"infer {Path(list_parquet).stem}", unit="batch", disable=not progress
        )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_Collate(predictor.spec),
        pin_memory=predictor.device.type == "cuda",
        worker_init_fn=_worker_init if workers else None,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
    return tqdm(loader, desc=f"infer {Path(list_parquet).stem}", unit="batch", disable=not progress)


@dataclass
class _Job:
    """What every image of one shard shares: where outputs go, how they are made, which model made them."""

    pending: list[dict]
    out_root: object
    settings: InferSettings
    predictor: Predictor
    qc_model: QCModel | None
    view_checker: ViewChecker | None
    model_id: str
    settings_id: str
    thumbs_dir: object = None

    def submit_batch(self, batch: dict, submit) -> list[Future]:
        """Forward the decoded images of a batch, then queue the clean-up and writes of every image."""
        meta = batch["meta"]
        ok = [i for i, m in enumerate(meta) if m["ok"]]
        x = batch["x"] if len(ok) == len(meta) else batch["x"][ok]  # keep the pinned tensor when all decoded
        out_size = int(batch["images"].shape[-1])
        pred = self.predictor.predict_batch(x, out_size, self.settings.threshold) if ok else None
        at = {i: j for j, i in enumerate(ok)}
        not_frontal = self.view_checker.p_not_frontal(self._films(batch, ok)) if ok and self.view_checker else None
        return [
            submit(
                self.finish,
                {**self.pending[sample["index"]], "orig_hw": sample["orig_hw"]},
                sample,
                batch["images"][i],
                (pred.prob[at[i]], self._signals(pred, at[i], not_frontal)) if i in at else None,
            )
            for i, sample in enumerate(meta)
        ]

    @staticmethod
    def _films(batch: dict, ok: list[int]) -> np.ndarray:
        """The decoded films as the network saw them (cropped, upright): what the view check judges."""
        return np.stack([batch["meta"][i]["film"].film(batch["images"][i]) for i in ok])

    def _signals(self, pred, j: int, not_frontal) -> dict:
        """What the batched models say about image j beyond its probabilities: agreement, and the view check."""
        signals = pred.agreement(j)
        if not_frontal is not None:
            signals.update(
                p_not_frontal=float(not_frontal[j]), not_frontal=bool(not_frontal[j] >= self.view_checker.threshold)
            )
        return signals

    def finish(self, item: dict, sample: dict, image: np.ndarray, prediction) -> dict:
        """The manifest row of one image; a write failure (a full disk, say) fails this image only."""
        record = _failed_record(item, sample, self.model_id, self.settings_id)
        if sample["ok"]:
            try:
                record.update(
                    finish_image(
                        item,
                        image,
                        *prediction,
                        sample["film"],
                        self.out_root,
                        self.settings,
                        self.predictor.spec,
                        self.qc_model,
                        self.thumbs_dir,
                    ),
                    status="ok",
                    error=None,
                )
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


def _summary(manifest: pd.DataFrame, list_parquet, resumed: int, computed: int, model_id: str, seconds: float) -> dict:
    ok = manifest[manifest.status == "ok"]
    flags = Counter(f for fl in ok.qc_flags.dropna() for f in split_flags(fl))
    return {
        "list": str(list_parquet),
        "images": int(len(manifest)),
        "ok": int(len(ok)),
        "failed": int((manifest.status == "failed").sum()),
        "resumed": int(resumed),
        "computed": int(computed),
        "flagged": int((ok.qc_flags.fillna("") != "").sum()),
        "films_inverted": int(ok.film_inverted.fillna(False).sum()),
        "films_cropped": int(ok.film_cropped.fillna(False).sum()),
        "flag_counts": dict(sorted(flags.items())),
        "failure_reasons": dict(Counter(manifest.loc[manifest.status == "failed", "error"].astype(str))),
        "model_id": model_id,
        "seconds": round(seconds, 3),
        "images_per_second": round(computed / seconds, 3) if seconds > 0 else math.nan,
    }
