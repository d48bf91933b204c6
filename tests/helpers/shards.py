"""A tiny MIMIC shard with good and bad images, toy segmentation models and images, and a run of the shard loop
on them: what the inference and QC tests share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from cxlseg import io
from cxlseg.inference.predictor import InputSpec, Predictor
from cxlseg.inference.settings import InferSettings
from cxlseg.inference.shard import infer_shard
from cxlseg.mimic import image_relpath, study_dir

from helpers.settings import build_infer_settings


@dataclass(frozen=True)
class Shard:
    """A shard's files: the test's folder, the MIMIC-like archive, the shard list."""

    root: Path
    mimic: Path
    list_path: Path


@dataclass(frozen=True)
class InferRun:
    """What one run of the shard loop left: where it wrote, its summary, and what it ran with."""

    out_root: Path
    manifest: Path
    summary: dict
    model: torch.nn.Module | None
    settings: InferSettings
    predictor: Predictor


def radiograph_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Bright body with two dark lung fields, smooth shading and noise (not flat)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = 170 + 30 * np.sin(xx / width * 3.1) + 20 * (yy / height)
    lungs_ = np.zeros((height, width), np.uint8)
    for cx, cy, ax, ay in ((0.3, 0.5, 0.15, 0.3), (0.7, 0.52, 0.13, 0.28)):
        cv2.ellipse(lungs_, (int(width * cx), int(height * cy)), (int(width * ax), int(height * ay)), 0, 0, 360, 1, -1)
    img = np.where(lungs_ > 0, img - 120, img)
    img += cv2.GaussianBlur(rng.normal(0, 10, (height, width)).astype(np.float32), (0, 0), 1.2)
    return np.clip(img, 0, 255).astype(np.uint8)


class DarkIsLung(torch.nn.Module):
    """A 1x1 conv: dark pixels (after CLAHE) are lung. Counts the images it sees."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(-30.0 / channels)
            self.conv.bias.fill_(12.0)
        self.seen = 0
        self.input_sizes: set = set()

    def forward(self, x):
        self.seen += x.shape[0]
        self.input_sizes.add(tuple(x.shape[-2:]))
        return self.conv(x)


class DarkerThanMean(DarkIsLung):
    """Lung = darker than the image's mean: indifferent to how CLAHE's result shifts with resolution."""

    def forward(self, x):
        super().forward(x)
        return 30.0 * (x.mean(dim=(-2, -1), keepdim=True) - x)


class Mirrored(DarkIsLung):
    """Not mirror-symmetric (a left-right ramp is added), so a flipped pass changes the answer."""

    def forward(self, x):
        ramp = torch.linspace(-3, 3, x.shape[-1], device=x.device, dtype=x.dtype)
        return super().forward(x) + ramp


class RecordsDtype(DarkIsLung):
    """DarkIsLung that records the dtype its convolution computed in and whether its input was channels_last:
    what autocast and the CUDA memory format did to the forward pass, seen from inside the network."""

    def __init__(self, channels: int = 1):
        super().__init__(channels)
        self.dtypes: list[torch.dtype] = []
        self.channels_last: list[bool] = []

    def forward(self, x):
        self.channels_last.append(x.is_contiguous(memory_format=torch.channels_last))
        logits = super().forward(x)
        self.dtypes.append(logits.dtype)
        return logits


SUBJECT = "10000032"


def write_case(root: Path, dicom_id: str, study: str, kind: str, shape=(300, 260)) -> None:
    folder = root / study_dir(SUBJECT, study)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dicom_id}.jpg"
    img = radiograph_like(*shape, seed=len(dicom_id) + int(study[-2:]))
    if kind == "gray":
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    elif kind == "rgb":
        cv2.imwrite(str(path), cv2.merge([img, np.clip(img * 0.9, 0, 255).astype(np.uint8), img]))
    elif kind == "png16":  # a 16-bit PNG stored under a .jpg name, 12-bit range
        _, buf = cv2.imencode(".png", img.astype(np.uint16) * 16)
        path.write_bytes(buf.tobytes())
    elif kind == "corrupt":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        _, buf = cv2.imencode(".jpg", img)
        path.write_bytes(buf.tobytes()[: len(buf) // 2])


SHARD_CASES = [  # dicom_id, study, kind, shape, (Rows, Columns) given in the list, expected status
    ("0a-01", "50000001", "gray", (300, 260), None, "ok"),
    ("0a-02", "50000001", "gray", (900, 760), None, "ok"),  # reduced 1/2 decode
    ("0a-03", "50000002", "rgb", (300, 260), None, "ok"),
    ("0a-04", "50000002", "png16", (300, 260), None, "ok"),
    ("0a-05", "50000003", "corrupt", (300, 260), (300, 260), "failed"),
    ("0a-06", "50000003", "truncated", (300, 260), None, "failed"),
    ("0a-07", "50000004", "missing", (300, 260), None, "failed"),
    ("0a-08", "50000004", "gray", (900, 760), (1000, 760), "ok"),  # metadata disagrees -> full decode
]


def write_shard(tmp_path: Path) -> Shard:
    """A shard list of 9 images (5 decodable; corrupt, truncated, missing and an unsafe id) in a MIMIC layout:
    .root (tmp_path), .mimic, .list_path."""
    mimic = tmp_path / "mimic"
    rows = []
    for dicom_id, study, kind, shape, meta_size, _ in SHARD_CASES:
        write_case(mimic, dicom_id, study, kind, shape)
        h, w = meta_size or shape
        rows.append(
            {
                "dicom_id": dicom_id,
                "subject_id": SUBJECT,
                "study_id": study,
                "rows": h,
                "columns": w,
                "image_path": image_relpath(SUBJECT, study, dicom_id),
            }
        )
    rows.append(
        {
            "dicom_id": "../../evil",
            "subject_id": SUBJECT,
            "study_id": "50000005",
            "rows": 10,
            "columns": 10,
            "image_path": "../../etc/passwd",
        }
    )
    list_path = tmp_path / "lists" / "p10.parquet"
    io.write_parquet(pd.DataFrame(rows).astype({"rows": "Int64", "columns": "Int64"}), list_path)
    return Shard(root=tmp_path, mimic=mimic, list_path=list_path)


def toy_spec(net_size: int = 224, in_channels: int = 1) -> InputSpec:
    return InputSpec(net_size=net_size, in_channels=in_channels, clahe_clip=2.0, clahe_tiles=8, clahe_space="gray")


def run_infer(
    shard,
    out: str = "out",
    *,
    model=None,
    spec: InputSpec | None = None,
    predictor: Predictor | None = None,
    on_flush=None,
    qc_model=None,
    view_checker=None,
    thumbs_dir=None,
    code=None,
    **infer,
):
    """infer_shard on the `shard` fixture with a toy model (DarkIsLung by default) wrapped in a Predictor.

    Returns .out_root, .manifest (path), .summary, .model, .settings, .predictor.
    """
    settings = build_infer_settings(**infer)
    if predictor is None:
        model = model or DarkIsLung()
        predictor = Predictor(
            [model], spec or toy_spec(), device="cpu", tta_flip=settings.tta_flip, model_id="test-model"
        )
    out_root = shard.root / out
    manifest = out_root / "manifests" / "p10.parquet"
    summary = infer_shard(
        shard.list_path,
        shard.mimic,
        out_root,
        manifest,
        predictor,
        settings,
        qc_model=qc_model,
        view_checker=view_checker,
        thumbs_dir=thumbs_dir,
        on_flush=on_flush,
        progress=False,
        code=code,
    )
    return InferRun(
        out_root=out_root, manifest=manifest, summary=summary, model=model, settings=settings, predictor=predictor
    )


def fit_toy_qc_model(n: int = 80, seed: int = 0):
    """A predicted-Dice model fitted on synthetic features where true Dice follows soft_dice and flip agreement."""
    from cxlseg.inference.qc_model import QCModel

    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "soft_dice": rng.uniform(0.5, 1.0, n),
            "flip_agreement": rng.uniform(0.6, 1.0, n),
            "lung_area_fraction": rng.uniform(0.1, 0.45, n),
            "member_agreement": np.nan,
        }
    )
    dice = np.clip(0.6 * table.soft_dice + 0.4 * table.flip_agreement + rng.normal(0, 0.01, n), 0, 1)
    return QCModel.fit(table, dice, good_dice=0.9).with_bar(0.9), table, dice  # a fixed bar, as calibrate stores it


def two_lung_mask(size: int = 224, hole: bool = False) -> np.ndarray:
    """Two lung-like ellipses (image-left one a bit larger, as the heart shrinks the patient's left lung)."""
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (68, 110), (34, 70), 0, 0, 360, 1, -1)
    cv2.ellipse(mask, (158, 115), (30, 64), 0, 0, 360, 1, -1)
    if hole:
        cv2.circle(mask, (68, 110), 8, 0, -1)
    return mask


def confident_prob(mask: np.ndarray, confident: float = 0.97) -> np.ndarray:
    """The probability map of a model that is `confident` about every pixel of `mask`."""
    return np.where(mask > 0, confident, 1 - confident).astype(np.float32)
