"""Rule infer_shard's settings: the validated `infer` section in one object, and the resume id it gives a shard."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from cxlseg.config import RuleSettings, build_settings
from cxlseg.film import FilmSettings
from cxlseg.inference.mask_qc import QCSettings
from cxlseg.inference.postprocess import CleanupSettings
from cxlseg.inference.qc_model import QCModel

if TYPE_CHECKING:  # annotation only: the DAG build imports this module and should not load torch
    from cxlseg.inference.predictor import InputSpec


@dataclass(frozen=True)
class InferSettings(RuleSettings):
    """Rule infer_shard: the validated `infer` config section in one object (defaults live in the schema). One
    object because the shard loop, evaluation and QC calibration all read both kinds of key: those that shape
    each image's outputs (threshold .. separate_lungs, what `outputs.finish_image` reads) and those that run the
    loop."""

    SECTIONS = ("infer",)

    threshold: float
    film: FilmSettings
    postprocess: CleanupSettings
    qc: QCSettings
    segmented_source: str
    segmented_channels: int
    mask_format: str
    jpeg_quality: int
    save_full_res_rle: bool
    separate_lungs: bool
    batch_size: int
    num_workers: int
    device: str
    tta_flip: bool
    ensemble: int
    reduce_min_ratio: float
    write_threads: int
    flush_every: int
    amp_dtype: str
    compile: bool
    decode_device: str
    output_size: int

    @classmethod
    def from_config(cls, config: dict, **overrides) -> "InferSettings":
        return build_settings(cls, config["infer"], **{"output_size": config["preprocess"]["size"], **overrides})

    def settings_id(
        self, spec: InputSpec, qc_model: QCModel | None = None, view_checker=None, code: str | None = None
    ) -> str:
        """A hash of everything that shapes the outputs (never the speed-only keys): resume only on a match.
        `code` (a fingerprint of the sources) makes a new version of the code a new id."""
        outcome = self.outcome()
        qc = asdict(qc_model) if qc_model is not None else None
        view = [view_checker.model_id, view_checker.threshold] if view_checker is not None else None
        parts = {"infer": outcome, "input": asdict(spec), "qc_model": qc, "view_check": view}
        blob = json.dumps({**parts, **({"code": code} if code is not None else {})}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
