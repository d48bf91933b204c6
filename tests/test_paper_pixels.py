"""Under config/paper.yaml the written segmented image has CXLSeg's pixels: AND(INTER_LINEAR resize of the original,
mask), within JPEG noise, on a film of the published sample's size (3056 x 2544) through the real shard loop.

The published sample itself (github.com/Wimukti/CXLSeg, sample images/) is a MIMIC-CXR image and cannot ship with
the project; `tests/bench/bench_interpolation.py --sample <folder>` measures against it where a user has it (1.48 grey
levels inside the lungs under `interpolation: linear`, see docs/throughput.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg import io
from cxlseg.config import load_config
from cxlseg.inference.predictor import InputSpec, Predictor
from cxlseg.inference.settings import InferSettings
from cxlseg.inference.shard import infer_shard
from cxlseg.mimic import image_relpath
from cxlseg.training.settings import TrainConfig

CONFIG = Path(__file__).resolve().parents[1] / "config"
SUBJECT, STUDY, DICOM = "10000032", "50414267", "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
SAMPLE_HW = (3056, 2544)  # the published sample's original size


def _film(toys) -> np.ndarray:
    """A full-size radiograph-like film with detector grain and fine rib edges: what makes INTER_LINEAR (which
    samples a few pixels) and INTER_AREA (which averages ~185 of them) disagree on a 13.6x reduction."""
    rng = np.random.default_rng(11)
    img = toys.radiograph_like(*SAMPLE_HW, seed=5).astype(np.float32)
    yy = np.arange(SAMPLE_HW[0], dtype=np.float32)[:, None]
    img += 10 * np.sign(np.sin(yy / 23.0))  # rib-like stripes, sharp edges
    img += rng.normal(0, 7, SAMPLE_HW).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def film_shard(tmp_path_factory, toys):
    root = tmp_path_factory.mktemp("paper-pixels")
    rel = image_relpath(SUBJECT, STUDY, DICOM)
    (root / "mimic" / rel).parent.mkdir(parents=True)
    cv2.imwrite(str(root / "mimic" / rel), _film(toys), [cv2.IMWRITE_JPEG_QUALITY, 95])
    row = {"dicom_id": DICOM, "subject_id": SUBJECT, "study_id": STUDY, "image_path": rel}
    row.update(rows=SAMPLE_HW[0], columns=SAMPLE_HW[1])
    io.write_parquet(pd.DataFrame([row]).astype({"rows": "Int64", "columns": "Int64"}), root / "p10.parquet")
    return root, rel


def _segment(film_shard, toys, *overlays: Path, out: str):
    """The shard loop under config.yaml + overlays, with the input spec a checkpoint trained under them carries."""
    root, rel = film_shard
    config = load_config(CONFIG / "config.yaml", *overlays)
    spec = InputSpec.from_train_config(dataclasses.asdict(TrainConfig.from_config(config, "plain_unet")))
    settings = InferSettings.from_config(config, num_workers=0, device="cpu", batch_size=1)
    predictor = Predictor([toys.DarkIsLung(spec.in_channels)], spec, device="cpu", tta_flip=settings.tta_flip)
    out_root = root / out
    infer_shard(
        root / "p10.parquet", root / "mimic", out_root, out_root / "m.parquet", predictor, settings, progress=False
    )
    manifest = pd.read_parquet(out_root / "m.parquet")
    assert list(manifest.status) == ["ok"], manifest.error.tolist()
    seg = cv2.imread(str(out_root / manifest.image_path[0]), cv2.IMREAD_UNCHANGED)
    mask = io.read_mask(out_root / manifest.mask_path[0]) > 0
    return seg, mask


def _authors_reference(film_shard, mask: np.ndarray) -> np.ndarray:
    """AND(cv2.resize(original, (224, 224)) with OpenCV's default INTER_LINEAR, mask)."""
    root, rel = film_shard
    original = cv2.resize(cv2.imread(str(root / "mimic" / rel), cv2.IMREAD_GRAYSCALE), (224, 224))
    return np.where(mask, original, 0)


def test_paper_segmented_image_is_the_linear_resize_within_jpeg_noise(film_shard, toys):
    seg, mask = _segment(film_shard, toys, CONFIG / "paper.yaml", out="paper")
    assert seg.shape == (224, 224, 3)  # infer.segmented_channels: 3, as the published JPEG
    assert np.array_equal(seg[..., 0], seg[..., 1]) or np.abs(seg[..., 0].astype(int) - seg[..., 2]).max() <= 2
    assert 0.1 < mask.mean() < 0.6
    gray = cv2.cvtColor(seg, cv2.COLOR_BGR2GRAY).astype(int)
    error = np.abs(gray - _authors_reference(film_shard, mask))[mask].mean()
    assert error <= 1.6, f"{error:.2f} grey levels from AND(INTER_LINEAR resize, mask) inside the lungs"


def test_the_default_area_resize_is_not_the_authors_pixels(film_shard, toys):
    """The same film under the default config: area resize, 1 channel; measurably off the authors' pixels, so the
    test above would catch paper.yaml losing its interpolation."""
    seg, mask = _segment(film_shard, toys, out="default")
    assert seg.ndim == 2
    error = np.abs(seg.astype(int) - _authors_reference(film_shard, mask))[mask].mean()
    assert error > 2.5, error
