"""Shared fixtures: configs and settings built from the schema, tiny training stores and models, a tiny
MIMIC shard with good and bad images, and the training sets' native layouts (bad cases included).

Factories are fixtures returning functions, so a test asks for what it needs and changes only what matters
to it; every setting not named comes from the schema's defaults, as in a run with an empty config file.
"""

from __future__ import annotations

import copy
import json
import types
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from cxlseg import io
from cxlseg.config import deep_update, default_config, validate_config
from cxlseg.inference.predictor import InputSpec, Predictor
from cxlseg.inference.shard import InferSettings, infer_shard
from cxlseg.mimic import image_relpath, study_dir
from cxlseg.training.trainer import TrainConfig, train_model

torch.set_num_threads(1)
cv2.setNumThreads(1)


# =========================================================================== configs and settings


def build_config(**sections) -> dict:
    """default_config() deep-updated with `sections` (nested dicts merge), validated like a real config."""
    config = default_config()
    deep_update(config, copy.deepcopy(sections))
    return validate_config(config)


# Tiny and fast: a few epochs of a narrow network on 32 px images, on the CPU, without worker processes.
TINY_TRAIN = dict(epochs=3, batch_size=4, lr=3e-3, size=32, base_channels=4, num_workers=0, device="cpu")


def build_train_config(architecture: str = "sa_unet", **overrides) -> TrainConfig:
    values = {**TINY_TRAIN, **overrides}
    if architecture in ("unet", "unetplusplus"):
        values.setdefault("encoder_name", "resnet18")
    return TrainConfig.from_config(build_config(), architecture, **values)


# Inference in tests: small batches, no decode processes, CPU, lossless masks (exact comparisons).
TEST_INFER = dict(batch_size=3, num_workers=0, device="cpu", mask_format="png")


def build_infer_settings(*, output_size: int | None = None, **infer) -> InferSettings:
    """The infer section at its schema defaults, then TEST_INFER, then `infer` (nested sections merge)."""
    config = build_config(infer=deep_update(copy.deepcopy(TEST_INFER), copy.deepcopy(infer)))
    return InferSettings.from_config(config, **({"output_size": output_size} if output_size else {}))


@pytest.fixture(scope="session")
def make_config():
    """make_config(**sections) -> a validated config: the schema defaults with `sections` deep-merged."""
    return build_config


@pytest.fixture(scope="session")
def train_config():
    """train_config(architecture="sa_unet", **overrides) -> a tiny TrainConfig built as the train rule builds it."""
    return build_train_config


@pytest.fixture(scope="session")
def infer_settings():
    """infer_settings(output_size=None, **infer_keys) -> InferSettings built as the infer rule builds them."""
    return build_infer_settings


# =========================================================================== training store and model


def write_store(
    root: Path, counts=(("train", 16), ("validate", 6), ("test", 6)), size: int = 32, seed: int = 0
) -> Path:
    """A training store of bright elliptical 'lungs' on a noisy background, as the augment stage writes it."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in counts:
        images, masks = np.empty((n, size, size), np.uint8), np.zeros((n, size, size), np.uint8)
        for i in range(n):
            for cx in (0.3, 0.7):
                centre = (int(size * cx + rng.integers(-2, 3)), int(size * 0.5 + rng.integers(-2, 3)))
                cv2.ellipse(masks[i], centre, (int(size * 0.12), int(size * 0.3)), 0, 0, 360, 1, -1)
            images[i] = np.clip(60 + masks[i] * 110 + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
        np.save(root / f"{split}_images.npy", images)
        np.save(root / f"{split}_masks.npy", masks)
        pd.DataFrame(
            {
                "dataset": "demo",
                "image_id": [f"{split}-{i}" for i in range(n)],
                "label": "normal",
                "patient_id": [f"p{i}" for i in range(n)],
            }
        ).to_parquet(root / f"{split}_index.parquet")
    return root


@pytest.fixture(scope="session")
def make_store():
    """make_store(root, counts=((split, n), ...), size=32, seed=0) -> root holding {split}_images/masks/index."""
    return write_store


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """One shared store (train 16, validate 6, test 6 images of 32 px); tests must not write into it."""
    return write_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, store):
    """A tiny sa_unet trained for 2 epochs on `store` (shared, read-only): .store, .folder, .checkpoint, .config."""
    folder = tmp_path_factory.mktemp("trained") / "sa_unet"
    cfg = build_train_config("sa_unet", epochs=2)
    described = train_model(store, folder, cfg)
    return types.SimpleNamespace(
        store=store, folder=folder, checkpoint=folder / "checkpoint_best.pt", config=cfg, described=described
    )


# =========================================================================== a tiny MIMIC shard


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


@pytest.fixture
def shard(tmp_path):
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
    return types.SimpleNamespace(root=tmp_path, mimic=mimic, list_path=list_path)


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
        on_flush=on_flush,
        progress=False,
    )
    return types.SimpleNamespace(
        out_root=out_root, manifest=manifest, summary=summary, model=model, settings=settings, predictor=predictor
    )


def fit_toy_qc_model(n: int = 80, seed: int = 0):
    """A predicted-Dice model fitted on synthetic features where true Dice follows soft_dice and flip agreement."""
    from cxlseg.qc.model import QCModel

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
    return QCModel.fit(table, dice, good_dice=0.9), table, dice


def _load_bench(name: str):
    """A benchmark script of tests/bench as a module (they are commands, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_bench():
    """load_bench(name) -> the module of tests/bench/<name>.py."""
    return _load_bench


@pytest.fixture(scope="session")
def qc_model():
    """A predicted-Dice model fitted on synthetic features (true Dice follows soft_dice and flip agreement)."""
    return fit_toy_qc_model()[0]


@pytest.fixture(scope="session")
def toys():
    """Toy models and images for inference tests (DarkIsLung, DarkerThanMean, Mirrored, radiograph_like,
    spec(net_size, in_channels), SUBJECT, SHARD_CASES)."""
    return types.SimpleNamespace(
        DarkIsLung=DarkIsLung,
        DarkerThanMean=DarkerThanMean,
        Mirrored=Mirrored,
        radiograph_like=radiograph_like,
        spec=toy_spec,
        SUBJECT=SUBJECT,
        SHARD_CASES=SHARD_CASES,
    )


@pytest.fixture(scope="session")
def infer_run():
    """infer_run(shard, out="out", *, model=None, spec=None, predictor=None, on_flush=None, **infer_keys)."""
    return run_infer


# =========================================================================== native training-set layouts
# Tiny datasets in the native Shenzhen, Montgomery and V7-labs layouts, bad cases included, built in a
# test's tmp_path so the ingest tests do not depend on the demo generator. Each builder returns what the
# ingest should conclude (accepted ids with labels, rejected ids with a reason fragment).


@pytest.fixture(scope="session")
def layouts():
    """The layout builders and their constants (make_shenzhen, make_montgomery, make_v7_json, make_v7_png,
    lungs, radiograph, write, rect, twelve_bit, HOLED, HOLED_AREA, TWO_LUNGS_AREA)."""
    names = (
        "make_shenzhen",
        "make_montgomery",
        "make_v7_json",
        "make_v7_png",
        "lungs",
        "radiograph",
        "write",
        "write_garbage",
        "rect",
        "twelve_bit",
        "darwin",
        "tag",
        "lung_polygon",
        "HOLED",
        "HOLED_AREA",
        "TWO_LUNGS",
        "TWO_LUNGS_AREA",
    )
    return types.SimpleNamespace(**{name: globals()[name] for name in names})


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


@pytest.fixture(scope="session")
def lung_fields():
    """A 224 px two-lung mask (`mask(size, hole)`) and a confident probability map of a mask (`prob`), for the
    clean-up and QC tests."""
    return types.SimpleNamespace(mask=two_lung_mask, prob=confident_prob)


def lungs(h: int, w: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two elliptical lungs as separate 0/1 masks (left, right)."""
    left, right = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    axes = (max(w // 8, 2), max(h // 3, 2))
    cv2.ellipse(left, (w // 3 + shift, h // 2), axes, 0, 0, 360, 1, -1)
    cv2.ellipse(right, (2 * w // 3 + shift, h // 2), axes, 0, 0, 360, 1, -1)
    return left, right


def radiograph(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """8-bit image whose lungs are dark on a brighter body, plus noise."""
    rng = np.random.default_rng(seed)
    img = 170.0 - 110.0 * mask + rng.normal(0, 6, mask.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, image)
    assert ok, path
    path.write_bytes(buf.tobytes())
    return path


def write_garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image" * 10)
    return path


# --------------------------------------------------------------------------- Shenzhen


def make_shenzhen(root: Path, h: int = 48, w: int = 40) -> dict:
    """Five good images (3 normal, 2 TB) and one of every bad case."""
    accepted, rejected = {}, {}
    for i, suffix in enumerate([0, 1, 0, 1, 0], start=1):
        stem = f"CHNCXR_{i:04d}_{suffix}"
        left, right = lungs(h, w, shift=i % 3)
        write(root / "CXR_png" / f"{stem}.png", radiograph(left | right, i))
        write(root / "mask" / f"{stem}_mask.png", (left | right) * 255)
        (root / "ClinicalReadings").mkdir(parents=True, exist_ok=True)
        (root / "ClinicalReadings" / f"{stem}.txt").write_text("male 35yrs\nnormal\n")
        accepted[stem] = "tuberculosis" if suffix else "normal"
    left, right = lungs(h, w)
    good_mask = (left | right) * 255
    # missing mask
    write(root / "CXR_png" / "CHNCXR_0010_0.png", radiograph(left | right))
    rejected["CHNCXR_0010_0"] = "no mask"
    # size mismatch
    write(root / "CXR_png" / "CHNCXR_0011_1.png", radiograph(left | right))
    write(root / "mask" / "CHNCXR_0011_1_mask.png", cv2.resize(good_mask, (w + 4, h), interpolation=cv2.INTER_NEAREST))
    rejected["CHNCXR_0011_1"] = "size mismatch"
    # empty mask
    write(root / "CXR_png" / "CHNCXR_0012_0.png", radiograph(left | right))
    write(root / "mask" / "CHNCXR_0012_0_mask.png", np.zeros((h, w), np.uint8))
    rejected["CHNCXR_0012_0"] = "empty mask"
    # non-binary mask (a soft-edged probability map)
    write(root / "CXR_png" / "CHNCXR_0013_0.png", radiograph(left | right))
    write(root / "mask" / "CHNCXR_0013_0_mask.png", cv2.GaussianBlur(good_mask, (7, 7), 2))
    rejected["CHNCXR_0013_0"] = "not binary"
    # unreadable image
    write_garbage(root / "CXR_png" / "CHNCXR_0014_1.png")
    write(root / "mask" / "CHNCXR_0014_1_mask.png", good_mask)
    rejected["CHNCXR_0014_1"] = "unreadable"
    # unreadable mask
    write(root / "CXR_png" / "CHNCXR_0015_1.png", radiograph(left | right))
    write_garbage(root / "mask" / "CHNCXR_0015_1_mask.png")
    rejected["CHNCXR_0015_1"] = "unreadable"
    # name outside the convention, orphan mask
    write(root / "CXR_png" / "scan_final.png", radiograph(left | right))
    rejected["scan_final"] = "does not match"
    write(root / "mask" / "CHNCXR_0099_0_mask.png", good_mask)
    rejected["CHNCXR_0099_0_mask"] = "mask without image"
    return {"accepted": accepted, "rejected": rejected, "mask_area": int((left | right).sum())}


# --------------------------------------------------------------------------- Montgomery


def twelve_bit(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """12-bit data (0..4095) in a uint16 array, as Montgomery PNGs hold it."""
    rng = np.random.default_rng(seed)
    img = 2600.0 - 2000.0 * mask + rng.normal(0, 60, mask.shape)
    img[0, 0], img[-1, -1] = 0, 4095  # full 12-bit range
    return np.clip(img, 0, 4095).astype(np.uint16)


def make_montgomery(root: Path, h: int = 56, w: int = 46) -> dict:
    """Good images in both orientations (16-bit and 8-bit) and the bad cases."""
    base = root / "MontgomerySet"
    accepted, rejected, areas = {}, {}, {}
    for i, (suffix, deep, portrait) in enumerate(
        [(0, True, True), (1, True, False), (0, False, True), (1, False, True)], 1
    ):
        stem = f"MCUCXR_{i:04d}_{suffix}"
        hh, ww = (h, w) if portrait else (w, h)
        left, right = lungs(hh, ww, shift=i % 2)
        write(base / "CXR_png" / f"{stem}.png", twelve_bit(left | right, i) if deep else radiograph(left | right, i))
        write(base / "ManualMask" / "leftMask" / f"{stem}.png", left * 255)
        write(base / "ManualMask" / "rightMask" / f"{stem}.png", right * 255)
        (base / "ClinicalReadings").mkdir(parents=True, exist_ok=True)
        (base / "ClinicalReadings" / f"{stem}.txt").write_text("Patient's Sex: F\nPatient's Age: 040Y\nnormal\n")
        accepted[stem] = "tuberculosis" if suffix else "normal"
        areas[stem] = int((left | right).sum())
    left, right = lungs(h, w)
    write(base / "CXR_png" / "MCUCXR_0020_0.png", radiograph(left | right))
    write(base / "ManualMask" / "leftMask" / "MCUCXR_0020_0.png", left * 255)
    rejected["MCUCXR_0020_0"] = "right lung mask missing"
    write(base / "CXR_png" / "MCUCXR_0021_1.png", radiograph(left | right))
    write(base / "ManualMask" / "leftMask" / "MCUCXR_0021_1.png", left * 255)
    write(
        base / "ManualMask" / "rightMask" / "MCUCXR_0021_1.png",
        cv2.resize(right * 255, (w, h + 6), interpolation=cv2.INTER_NEAREST),
    )
    rejected["MCUCXR_0021_1"] = "differ in size"
    return {"accepted": accepted, "rejected": rejected, "areas": areas}


# --------------------------------------------------------------------------- V7-labs


def rect(x0: float, y0: float, x1: float, y1: float) -> list[dict]:
    return [{"x": x0, "y": y0}, {"x": x1, "y": y0}, {"x": x1, "y": y1}, {"x": x0, "y": y1}]


def darwin(name: str, w: int, h: int, annotations: list[dict], **extra) -> dict:
    """A Darwin JSON 1.0 document as V7 exports it."""
    return {
        "dataset": "covid-19-xray-dataset",
        "image": {"filename": name, "original_filename": name, "width": w, "height": h, "url": "", **extra},
        "annotations": annotations,
    }


def tag(name: str) -> dict:
    return {"name": name, "tag": {}}


def lung_polygon(path: list[dict]) -> dict:
    return {"name": "Lung", "polygon": {"path": path}}


# Hand-computed areas (cv2.fillPoly fills boundary pixels): rect(4, 5, 23, 34) spans x 4..23, y 5..34
# -> 20 x 30 = 600 px; rect(40, 5, 51, 34) -> 12 x 30 = 360 px.
TWO_LUNGS = [lung_polygon(rect(4, 5, 23, 34)), lung_polygon(rect(40, 5, 51, 34))]
TWO_LUNGS_AREA = 20 * 30 + 12 * 30
# complex polygon: outer 30x30 (x 10..39, y 10..39) minus a 10x10 hole (x 20..29, y 20..29),
# plus a separate 5x4 island (x 50..54, y 10..13) in the same annotation.
HOLED = {
    "name": "Lung",
    "complex_polygon": {"path": [rect(10, 10, 39, 39), rect(20, 20, 29, 29), rect(50, 10, 54, 13)]},
}
HOLED_AREA = 30 * 30 - 10 * 10 + 5 * 4


def _v7_image(root: Path, name: str, w: int, h: int, suffix: str = ".png", seed: int = 0) -> Path:
    left, right = lungs(h, w)
    return write(root / "images" / f"{name}{suffix}", radiograph(left | right, seed))


def make_v7_json(root: Path, w: int = 64, h: int = 48) -> dict:
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    docs = {
        "covid-a": (
            ".jpg",
            [
                *TWO_LUNGS,
                tag("COVID-19"),
                tag("Viral Pneumonia"),
                tag("PA"),
                {"name": "Ignore", "polygon": {"path": rect(0, 0, 63, 47)}},
            ],
            {"patient_id": "P1"},
        ),
        "covid-b": (".png", [HOLED, tag("COVID-19")], {"patient_id": "P1"}),
        "viral": (".png", [*TWO_LUNGS, tag("Viral Pneumonia")], {}),
        "bacterial": (".jpg", [*TWO_LUNGS, tag("Bacterial Pneumonia")], {}),
        "fungal": (".png", [*TWO_LUNGS, tag("Fungal Pneumonia")], {}),
        "healthy": (".png", [*TWO_LUNGS, tag("No Pneumonia")], {}),
        "side": (".png", [*TWO_LUNGS, tag("Lateral"), tag("COVID-19")], {}),
        "ct-slice": (".png", [tag("CT"), tag("COVID-19")], {}),
        "unannotated": (".png", [tag("COVID-19")], {}),
        "untagged": (".png", [*TWO_LUNGS], {}),
        "wrongsize": (".png", [*TWO_LUNGS, tag("COVID-19")], {}),
    }
    for i, (name, (suffix, doc_annotations, extra)) in enumerate(docs.items()):
        _v7_image(root, name, w, h, suffix, seed=i)
        doc_w = w + 10 if name == "wrongsize" else w
        (ann / f"{name}.json").write_text(json.dumps(darwin(f"{name}{suffix}", doc_w, h, doc_annotations, **extra)))
    _v7_image(root, "noann", w, h)
    write_garbage(root / "images" / "broken.png")
    (ann / "broken.json").write_text(json.dumps(darwin("broken.png", w, h, [*TWO_LUNGS, tag("COVID-19")])))
    (ann / "badjson.json").write_text("{not json")
    _v7_image(root, "badjson", w, h)
    _v7_image(root, "viral", w, h, ".jpg")  # same id as viral.png -> duplicate
    return {
        "accepted": {
            "covid-a": "covid19",
            "covid-b": "covid19",
            "viral": "pneumonia",
            "bacterial": "pneumonia",
            "fungal": "pneumonia",
            "healthy": "normal",
        },
        "rejected": {
            "side": "lateral view",
            "ct-slice": "CT slice",
            "unannotated": "no lung polygons",
            "untagged": "no class tag",
            "wrongsize": "size mismatch",
            "noann": "no mask",
            "broken": "unreadable",
            "badjson": "unreadable annotation JSON",
            "viral": "duplicate image id",
        },
        "areas": {"covid-a": TWO_LUNGS_AREA, "covid-b": HOLED_AREA},
    }


def make_v7_png(root: Path, w: int = 60, h: int = 50) -> dict:
    """images/ + masks/ + index.csv like the torchxrayvision V7 subset, with hostile rows."""
    rows = ["image,mask,patient_id,view,finding,height,width"]

    def add(
        name: str,
        patient: str,
        view: str,
        finding: str,
        mask: np.ndarray | None = None,
        suffix: str = ".jpg",
        subdir: str = "images",
    ) -> None:
        left, right = lungs(h, w)
        write(root / subdir / f"{name}{suffix}", radiograph(left | right))
        m = (left | right) * 255 if mask is None else mask
        write(root / "masks" / f"{name}.png", m)
        rows.append(f'{subdir}/{name}{suffix},masks/{name}.png,{patient},{view},"{finding}",{h},{w}')

    add("c1", "7", "PA", "COVID-19")
    add("c2", "7", "AP Supine", "COVID-19, ARDS")
    add("c3", "9", "AP", "Pneumonia/Viral/COVID-19", suffix=".png")
    add("p1", "10", "PA", "Pneumonia/Bacterial/Streptococcus")
    add("n1", "", "PA", "No Finding")
    add("lat", "11", "L", "COVID-19")
    add("odd", "12", "PA", "Unknown disease")
    add("grey", "13", "PA", "COVID-19", mask=np.tile(np.arange(w, dtype=np.uint8) * 4, (h, 1)))
    add("c1", "14", "PA", "COVID-19", subdir="more")  # same id as images/c1.jpg
    rows.append("../x.jpg,masks/c1.png,15,PA,COVID-19,1,1")
    rows.append("/etc/passwd,masks/c1.png,16,PA,COVID-19,1,1")
    rows.append("images/c1.jpg,../../etc/shadow,17,PA,COVID-19,1,1")
    rows.append("images/nomask.jpg,masks/nomask.png,18,PA,COVID-19,1,1")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return {
        "accepted": {"c1": "covid19", "c2": "covid19", "c3": "covid19", "p1": "pneumonia", "n1": "normal"},
        "patients": {"c1": "7", "c2": "7", "c3": "9", "p1": "10", "n1": "n1"},
        "reject_reasons": [
            "lateral view",
            "unknown finding",
            "mask not binary",
            "duplicate image id",
            "unsafe path",
            "unsafe path",
            "unsafe path",
            "no mask",
        ],
    }


# =========================================================================== the tiny demo, run once


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The whole workflow on the tiny demo (helpers.workflow.TINY), run once per session: its working directory."""
    import yaml
    from helpers.workflow import ROOT, TINY, snakemake

    workdir = tmp_path_factory.mktemp("demo-run")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    snakemake(workdir, "--cores", "2", "--profile", str(ROOT / "profiles" / "local"))
    return workdir
