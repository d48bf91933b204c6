"""Classifier comparison on original vs lung-segmented images (the paper's Table III).

Four torchvision CNNs learn the multi-label CheXpert classes once from the
original radiographs and once from the CXLSeg segmented images, on the CXLSeg
patient split; per-class thresholds come from the validate split by Youden's J
(as the authors' evaluation does) and accuracy, sensitivity, specificity and
AUC are measured on the test split.

Fairness of the comparison: both inputs get the *same* preprocessing, so the
only difference is the lung AND. A segmented image is ``CLAHE(resize(x, 224))``
masked to the lungs; an original therefore gets ``CLAHE(resize(x, 224))`` too
(``original_clahe=True``), and both are then area-resized to ``input_size``.
Blank CheXpert labels mean "not mentioned" and count as negative (0), the
CheXpert convention; uncertain (-1) labels follow the ``uncertain`` policy.

One (model, input) pair is one :func:`train_and_evaluate` call writing its own
run folder, so Snakemake can run the pairs in parallel; :func:`summarise`
gathers the run folders into the table, the ROC figure and the skipped list.
"""

from __future__ import annotations

import logging
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchvision
from matplotlib.figure import Figure
from scipy.stats import rankdata
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .device import resolve_device
from .io import (ImageReadError, UnsafePathError, atomic_path, read_gray, read_json, safe_join, write_bytes, write_csv,
                 write_json, write_text)
from .preprocess import prepare, resize

log = logging.getLogger(__name__)

CHEXPERT_CLASSES = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
    "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
    "Pneumothorax", "Support Devices",
)
DEFAULT_CLASSES = ("Lung Lesion", "Pneumonia", "Atelectasis", "Pleural Effusion")
DEFAULT_MODELS = ("resnet50", "mobilenet_v2", "densenet121", "inception_v3")
INPUT_KINDS = ("original", "segmented")
UNCERTAIN_POLICIES = ("ones", "zeros", "ignore")
SPLITS = ("train", "validate", "test")
METRICS = ("accuracy", "sensitivity", "specificity", "AUC")
FALLBACK_THRESHOLD = 0.5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SKIPPED_COLUMNS = ["dicom_id", "split", "input", "file", "reason"]


# ---------------------------------------------------------------------------
# classifiers


@dataclass(frozen=True)
class ClassifierSpec:
    """Where a torchvision model keeps its stem conv and its head, so both can be swapped."""

    stem: str
    head: str
    min_size: int = 0
    kwargs: dict = field(default_factory=dict)


CLASSIFIERS: dict[str, ClassifierSpec] = {
    "resnet50": ClassifierSpec(stem="conv1", head="fc"),
    "mobilenet_v2": ClassifierSpec(stem="features.0.0", head="classifier.1"),
    "densenet121": ClassifierSpec(stem="features.conv0", head="classifier"),
    # InceptionV3's stem and reductions need >= 75 px; the auxiliary head is dropped
    # so training and evaluation see one output.
    "inception_v3": ClassifierSpec(stem="Conv2d_1a_3x3.conv", head="fc", min_size=75, kwargs={"aux_logits": False}),
}


class Classifier(nn.Module):
    """A backbone fed [0, 1] images of any size.

    Normalises with ImageNet statistics (what pretrained weights expect; harmless
    from scratch) and, for backbones with a minimum input size (InceptionV3,
    75 px), upsamples smaller inputs bilinearly so the small-input demo option
    works for every architecture.
    """

    def __init__(self, backbone: nn.Module, in_channels: int, min_size: int = 0):
        super().__init__()
        self.backbone = backbone
        self.min_size = int(min_size)
        mean = IMAGENET_MEAN if in_channels == 3 else (float(np.mean(IMAGENET_MEAN)),) * in_channels
        std = IMAGENET_STD if in_channels == 3 else (float(np.mean(IMAGENET_STD)),) * in_channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        height, width = x.shape[-2:]
        if self.min_size and min(height, width) < self.min_size:
            size = (max(height, self.min_size), max(width, self.min_size))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.backbone(x)


def classifier_weights(name: str, pretrained: bool):
    """torchvision's default ImageNet weights enum for `name`, or None (from scratch)."""
    _check_name(name)
    return torchvision.models.get_model_weights(name).DEFAULT if pretrained else None


def create_classifier(name: str, num_classes: int, in_channels: int = 3, pretrained: bool = False) -> Classifier:
    """A torchvision classifier with a `num_classes` logit head and an `in_channels` stem."""
    spec = CLASSIFIERS[_check_name(name)]
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    kwargs = dict(spec.kwargs)
    if name == "inception_v3":
        if not pretrained:
            kwargs["init_weights"] = True  # explicit, silences torchvision's FutureWarning
        if in_channels != 3:
            kwargs["transform_input"] = False  # its re-normalisation assumes RGB
    weights = classifier_weights(name, pretrained)
    try:
        backbone = torchvision.models.get_model(name, weights=weights, **kwargs)
    except (OSError, RuntimeError) as err:  # URLError is an OSError: offline node without cached weights
        if weights is None:
            raise
        raise RuntimeError(f"{name}: could not load torchvision weights {weights} ({err}); with no network, put the "
                           f"file {Path(weights.url).name} into $TORCH_HOME/hub/checkpoints first") from err
    _set_submodule(backbone, spec.stem, _adapt_stem(backbone.get_submodule(spec.stem), in_channels, pretrained))
    head = backbone.get_submodule(spec.head)
    _set_submodule(backbone, spec.head, nn.Linear(head.in_features, num_classes))
    return Classifier(backbone, in_channels, spec.min_size)


def _check_name(name: str) -> str:
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; valid: {', '.join(CLASSIFIERS)}")
    return name


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _adapt_stem(conv: nn.Conv2d, in_channels: int, pretrained: bool) -> nn.Conv2d:
    """A stem for `in_channels`; pretrained RGB filters are averaged so a gray input keeps its activation scale."""
    if conv.in_channels == in_channels:
        return conv
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None)
    with torch.no_grad():
        if pretrained:
            gray = conv.weight.mean(dim=1, keepdim=True) * (conv.in_channels / in_channels)
            new.weight.copy_(gray.expand(-1, in_channels, -1, -1))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        else:
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    return new


# ---------------------------------------------------------------------------
# labels and cohort


@dataclass
class Labels:
    """One row per image: identifiers (+ split once attached), 0/1 targets, and 1/0 mask of entries that count."""

    frame: pd.DataFrame
    targets: np.ndarray
    mask: np.ndarray
    classes: tuple[str, ...]


def encode_labels(values: np.ndarray, uncertain: str = "ones") -> tuple[np.ndarray, np.ndarray]:
    """CheXpert values (1, 0, -1, NaN) -> (targets, mask); blank = not mentioned = 0."""
    if uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(f"unknown uncertain-label policy {uncertain!r}; valid: {', '.join(UNCERTAIN_POLICIES)}")
    values = np.asarray(values, dtype=np.float64)
    targets = (values == 1.0).astype(np.float32)
    mask = np.ones(values.shape, np.float32)
    uncertain_entries = values == -1.0
    if uncertain == "ones":
        targets[uncertain_entries] = 1.0
    elif uncertain == "ignore":
        mask[uncertain_entries] = 0.0
    return targets, mask


def load_labels(segmented_csv: os.PathLike | str, classes: Sequence[str] = DEFAULT_CLASSES,
                uncertain: str = "ones") -> Labels:
    """Targets and mask for `classes` from CXLSeg-segmented.csv.gz."""
    classes = tuple(classes)
    if not classes:
        raise ValueError("classes must name at least one CheXpert class")
    unknown = [c for c in classes if c not in CHEXPERT_CLASSES]
    if unknown:
        raise ValueError(f"unknown CheXpert class(es) {unknown}; valid: {', '.join(CHEXPERT_CLASSES)}")
    frame = _read_table(segmented_csv, ["dicom_id", "subject_id", "study_id", "DicomPath", *classes])
    values = frame[list(classes)].apply(pd.to_numeric, errors="coerce")
    unparsable = values.isna() & frame[list(classes)].notna()
    bad = (values.notna() & ~values.isin([1.0, 0.0, -1.0])) | unparsable
    if bad.any().any():
        column = bad.any().idxmax()
        example = frame.loc[bad[column], column].iloc[0]
        raise ValueError(f"{segmented_csv}: column {column!r} holds '{example}'; "
                         "CheXpert labels must be 1, 0, -1 or blank")
    targets, mask = encode_labels(values.to_numpy(), uncertain)
    ids = frame[["dicom_id", "subject_id", "study_id", "DicomPath"]].reset_index(drop=True)
    return Labels(ids, targets, mask, classes)


def load_cohort(cxlseg_dir: os.PathLike | str, classes: Sequence[str] = DEFAULT_CLASSES,
                uncertain: str = "ones") -> Labels:
    """Labels of CXLSeg-segmented.csv.gz with the split of CXLSeg-split.csv.gz attached (one row per image)."""
    cxlseg_dir = Path(cxlseg_dir)
    labels = load_labels(cxlseg_dir / "CXLSeg-segmented.csv.gz", classes, uncertain)
    split_csv = cxlseg_dir / "CXLSeg-split.csv.gz"
    split = _read_table(split_csv, ["dicom_id", "subject_id", "study_id", "split"])
    odd = sorted(set(split["split"].astype(str)) - set(SPLITS))
    if odd:
        raise ValueError(f"{split_csv}: split values {odd} not in {list(SPLITS)}")
    if split["dicom_id"].duplicated().any():
        twice = split.loc[split["dicom_id"].duplicated(), "dicom_id"].iloc[0]
        raise ValueError(f"{split_csv}: dicom_id {twice} listed twice")
    frame = labels.frame.merge(split[["dicom_id", "subject_id", "study_id", "split"]],
                               on=["dicom_id", "subject_id", "study_id"], how="left", validate="one_to_one")
    keep = frame["split"].notna().to_numpy()
    if not keep.all():
        log.warning("%d image(s) of CXLSeg-segmented have no split row in %s and are left out",
                    int((~keep).sum()), split_csv)
    frame = frame[keep].reset_index(drop=True)
    return Labels(frame, labels.targets[keep], labels.mask[keep], labels.classes)


def _read_table(path: os.PathLike | str, columns: Sequence[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: table not found")
    frame = pd.read_csv(path, dtype={"dicom_id": str, "DicomPath": str, "split": str})
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    for column in ("subject_id", "study_id"):
        ids = pd.to_numeric(frame[column], errors="coerce")
        if ids.isna().any():
            raise ValueError(f"{path}: column {column!r} has a blank or non-numeric value")
        frame[column] = ids.astype(np.int64)
    return frame


def original_relpath(subject_id: int, study_id: int, dicom_id: str) -> str:
    """MIMIC-CXR-JPG path of an image: files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg."""
    subject = str(int(subject_id))
    return f"files/p{subject[:2]}/p{subject}/s{int(study_id)}/{dicom_id}.jpg"


# ---------------------------------------------------------------------------
# metrics


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic (ties count one half); NaN when a class is absent."""
    y, score = _as_binary(y, score)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, highest first, predicting positive when score >= threshold.

    The first point is (0, 0) at threshold +inf. Raises ValueError when a class is absent.
    """
    y, score = _as_binary(y, score)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC needs both positive and negative examples")
    order = np.argsort(-score, kind="mergesort")
    score, y = score[order], y[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(score)), y.size - 1]
    tp = np.cumsum(y)[last_of_value]
    fp = (last_of_value + 1) - tp
    return (np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], np.r_[np.inf, score[last_of_value]])


def youden_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """Score threshold maximising sensitivity + specificity - 1 (the highest on ties); NaN when a class is absent."""
    try:
        fpr, tpr, thresholds = roc_curve(y, score)
    except ValueError:
        return float("nan")
    best = int(np.argmax((tpr - fpr)[1:])) + 1  # skip the +inf point: it predicts nothing positive
    return float(thresholds[best])


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, sensitivity and specificity of `score >= threshold`; NaN where the denominator is empty."""
    y, score = _as_binary(y, score)
    if y.size == 0 or not np.isfinite(threshold):
        return {"accuracy": float("nan"), "sensitivity": float("nan"), "specificity": float("nan")}
    pred = score >= threshold
    pos, neg = y == 1, y == 0
    return {
        "accuracy": float((pred == pos).mean()),
        "sensitivity": float(pred[pos].mean()) if pos.any() else float("nan"),
        "specificity": float((~pred[neg]).mean()) if neg.any() else float("nan"),
    }


def _as_binary(y, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != score.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {score.size}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(score).all():
        raise ValueError("scores must be finite")
    return y.astype(np.int64), score


# ---------------------------------------------------------------------------
# images


@dataclass(frozen=True)
class ImageSource:
    """How one input kind is located and preprocessed (picklable, so DataLoader workers can use it)."""

    input_kind: str
    cxlseg_root: str
    mimic_root: str
    input_size: int = 224
    image_size: int = 224
    original_clahe: bool = True
    clahe_clip: float = 2.0
    clahe_tiles: int = 8

    def path(self, subject_id: int, study_id: int, dicom_id: str, dicom_path: str) -> Path:
        if self.input_kind == "segmented":
            return safe_join(self.cxlseg_root, dicom_path)
        return safe_join(self.mimic_root, original_relpath(subject_id, study_id, dicom_id))

    def load(self, path: Path) -> np.ndarray:
        """uint8 input_size x input_size; originals get the segmented images' geometry and CLAHE."""
        gray = read_gray(path)
        if self.input_kind == "original":
            gray = prepare(gray, self.image_size, self.clahe_clip, self.clahe_tiles) if self.original_clahe \
                else resize(gray, self.image_size)
        else:
            gray = resize(gray, self.image_size)
        return resize(gray, self.input_size)


class ImageDataset(Dataset):
    """Images of one split; a file that fails to load comes back flagged (ok=False) instead of raising,
    so one bad image never stops a worker or the epoch."""

    def __init__(self, frame: pd.DataFrame, targets: np.ndarray, mask: np.ndarray, source: ImageSource,
                 channels: int = 3):
        self.rows = list(frame[["subject_id", "study_id", "dicom_id", "DicomPath"]].itertuples(index=False, name=None))
        self.targets = torch.from_numpy(np.ascontiguousarray(targets, np.float32))
        self.mask = torch.from_numpy(np.ascontiguousarray(mask, np.float32))
        self.source = source
        self.channels = channels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        subject_id, study_id, dicom_id, dicom_path = self.rows[index]
        size = self.source.input_size
        file, reason = "", ""
        try:
            path = self.source.path(subject_id, study_id, dicom_id, dicom_path)
            file = str(path)
            image = torch.from_numpy(self.source.load(path)).float().div_(255.0)
        except (ImageReadError, UnsafePathError, OSError, ValueError, cv2.error) as err:
            reason = getattr(err, "reason", None) or str(err)
            image = torch.zeros(size, size)
        return {"x": image.expand(self.channels, size, size).contiguous(), "y": self.targets[index],
                "m": self.mask[index], "index": index, "ok": not reason, "file": file, "reason": reason}


# ---------------------------------------------------------------------------
# training and prediction


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the label entries that count (mask 1), so 'ignore'd uncertain labels give no gradient."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


class _SkipLog:
    """Images that failed to load, once each, with the split, file and reason."""

    def __init__(self, input_kind: str):
        self.input_kind = input_kind
        self.rows: dict[str, dict] = {}

    def add(self, batch: dict, dataset: ImageDataset, split: str) -> torch.Tensor:
        ok = batch["ok"]
        for i in torch.nonzero(~ok).flatten().tolist():
            dicom_id = dataset.rows[int(batch["index"][i])][2]
            if dicom_id not in self.rows:
                log.warning("skipping %s image %s (%s): %s", self.input_kind, dicom_id, batch["file"][i],
                            batch["reason"][i])
                self.rows[dicom_id] = {"dicom_id": dicom_id, "split": split, "input": self.input_kind,
                                       "file": batch["file"][i], "reason": batch["reason"][i]}
        return ok

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows.values()), columns=SKIPPED_COLUMNS)


def _loader(dataset: ImageDataset, batch_size: int, shuffle: bool, seed: int, num_workers: int,
            device: torch.device) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda",
                      persistent_workers=False)


def train_epoch(net: Classifier, loader: DataLoader, optimiser: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                device: torch.device, use_amp: bool, skips: _SkipLog, max_batches: int | None = None,
                desc: str = "train") -> tuple[float, int]:
    """One pass over the train split; returns (mean loss, batches used).

    Batches left with fewer than two loadable images are skipped: BatchNorm
    cannot normalise a single sample once small inputs shrink to 1x1 maps.
    """
    net.train()
    total, used = torch.zeros((), device=device), 0
    for batch in tqdm(loader, desc=desc, leave=False, total=_cap(len(loader), max_batches)):
        if max_batches is not None and used >= max_batches:
            break
        ok = skips.add(batch, loader.dataset, "train")
        if int(ok.sum()) < 2:
            continue
        x, y, m = (batch[k][ok].to(device, non_blocking=True) for k in ("x", "y", "m"))
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            loss = masked_bce(net(x), y, m)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        total += loss.detach()  # summed on the device: no host sync per step
        used += 1
    return (float(total) / used if used else float("nan")), used


@torch.no_grad()
def recalibrate_batchnorm(net: Classifier, loader: DataLoader, device: torch.device, use_amp: bool, skips: _SkipLog,
                          max_batches: int | None = None) -> int:
    """Recompute BatchNorm running statistics for the final weights in one no-grad pass over the train split.

    After few optimisation steps (the demo) the running statistics (momentum 0.1)
    still describe the initial weights, and eval-mode outputs collapse to a
    constant (MobileNetV2's features shrink to ~1e-10 at initialisation). A
    cumulative average over the train split, as torch.optim.swa_utils.update_bn
    does, fixes that; after long training it only refreshes the statistics.
    Returns the number of batches used.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    net.train()
    used = 0
    try:
        for batch in tqdm(loader, desc="batchnorm statistics", leave=False, total=_cap(len(loader), max_batches)):
            if max_batches is not None and used >= max_batches:
                break
            ok = skips.add(batch, loader.dataset, "train")
            if int(ok.sum()) < 2:
                continue
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                net(batch["x"][ok].to(device, non_blocking=True))
            used += 1
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        net.eval()
    return used


@torch.inference_mode()
def predict(net: Classifier, loader: DataLoader, device: torch.device, use_amp: bool, skips: _SkipLog,
            split: str) -> np.ndarray:
    """Sigmoid scores (N, C); rows of images that failed to load stay NaN."""
    net.eval()
    dataset: ImageDataset = loader.dataset
    scores = np.full((len(dataset), dataset.targets.shape[1]), np.nan, np.float64)
    for batch in tqdm(loader, desc=f"predict {split}", leave=False):
        ok = skips.add(batch, dataset, split)
        if not ok.any():
            continue
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = net(batch["x"][ok].to(device, non_blocking=True))
        scores[batch["index"][ok].numpy()] = torch.sigmoid(logits.float()).cpu().numpy()
    return scores


def _cap(n: int, cap: int | None) -> int:
    return n if cap is None else min(n, cap)


# ---------------------------------------------------------------------------
# one (model, input) run


def run_name(model: str, input_kind: str) -> str:
    """Folder name of one run, shared with the Snakemake rules."""
    return f"{model}_{input_kind}"


def evaluate_classes(classes: Sequence[str], val: tuple[np.ndarray, np.ndarray, np.ndarray],
                     test: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, dict]:
    """Per class: Youden threshold on validate (0.5 if validate lacks a class), then test metrics.

    Each tuple is (targets, mask, scores); entries with mask 0 or a NaN score are left out.
    """
    out = {}
    for c, name in enumerate(classes):
        y_val, s_val = _counted(val, c)
        y_test, s_test = _counted(test, c)
        threshold = youden_threshold(y_val, s_val)
        rule = "youden"
        if not np.isfinite(threshold):
            threshold, rule = FALLBACK_THRESHOLD, "fallback_0.5"
            log.warning("%s: validate split has %d positive(s) of %d; threshold falls back to %.1f",
                        name, int(y_val.sum()), y_val.size, FALLBACK_THRESHOLD)
        metrics = binary_metrics(y_test, s_test, threshold)
        metrics["AUC"] = auc(y_test, s_test)
        out[name] = {"threshold": threshold, "threshold_rule": rule, **metrics,
                     "n_test": int(y_test.size), "n_test_positive": int(y_test.sum()),
                     "n_validate": int(y_val.size), "n_validate_positive": int(y_val.sum())}
    return out


def _counted(part: tuple[np.ndarray, np.ndarray, np.ndarray], c: int) -> tuple[np.ndarray, np.ndarray]:
    targets, mask, scores = part
    keep = (mask[:, c] > 0) & np.isfinite(scores[:, c])
    return targets[keep, c], scores[keep, c]


def mean_metrics(per_class: dict[str, dict]) -> dict[str, float]:
    """Average over the classes where a metric exists (NaN classes are left out, never counted as 0)."""
    out = {}
    for metric in METRICS:
        values = [v[metric] for v in per_class.values() if v[metric] is not None and np.isfinite(v[metric])]
        out[metric] = float(np.mean(values)) if values else float("nan")
    return out


def _check_settings(model: str, input_kind: str, input_size: int, batch_size: int, epochs: int) -> None:
    _check_name(model)
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"unknown input {input_kind!r}; valid: {', '.join(INPUT_KINDS)}")
    if input_size < 32:
        raise ValueError(f"input_size must be >= 32, got {input_size}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (BatchNorm needs two samples), got {batch_size}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")


def fit(net: Classifier, train_loader: DataLoader, device: torch.device, use_amp: bool, skips: _SkipLog, *,
        epochs: int, lr: float, max_train_batches: int | None, recalibrate_bn: bool, desc: str) -> list[dict]:
    """Adam on the masked BCE for `epochs`, then fresh BatchNorm statistics; returns the per-epoch history."""
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    history = []
    for epoch in tqdm(range(1, epochs + 1), desc=desc):
        loss, used = train_epoch(net, train_loader, optimiser, scaler, device, use_amp, skips, max_train_batches,
                                 desc=f"epoch {epoch}")
        history.append({"epoch": epoch, "train_loss": loss, "batches": used})
        log.info("%s epoch %d: train loss %.4f over %d batch(es)", desc, epoch, loss, used)
    if recalibrate_bn:
        recalibrate_batchnorm(net, train_loader, device, use_amp, skips, max_train_batches)
    return history


def train_and_evaluate(model: str, input_kind: str, *, cxlseg_dir: os.PathLike | str,
                       cxlseg_root: os.PathLike | str, mimic_root: os.PathLike | str, out_dir: os.PathLike | str,
                       classes: Sequence[str] = DEFAULT_CLASSES, uncertain: str = "ones", input_size: int = 224,
                       image_size: int = 224, original_clahe: bool = True, clahe_clip: float = 2.0,
                       clahe_tiles: int = 8, epochs: int = 1, batch_size: int = 16, lr: float = 1e-3,
                       pretrained: bool = False, num_workers: int = 0, device: str = "auto", amp: bool = True,
                       seed: int = 42, max_train_batches: int | None = None, recalibrate_bn: bool = True) -> dict:
    """Train `model` on `input_kind` images of the train split, threshold on validate, evaluate on test.

    Writes out_dir/{model}_{input_kind}/metrics.json, predictions.csv (validate and
    test rows: label, NaN when ignored, and score per class) and skipped.csv.
    The same seed gives both inputs the same initial weights and batch order.
    """
    _check_settings(model, input_kind, input_size, batch_size, epochs)
    cohort = load_cohort(cxlseg_dir, classes, uncertain)
    run_dir = Path(out_dir) / run_name(model, input_kind)
    dev = resolve_device(device)
    use_amp = bool(amp) and dev.type == "cuda"
    source = ImageSource(input_kind, str(cxlseg_root), str(mimic_root), input_size, image_size,
                         original_clahe, clahe_clip, clahe_tiles)
    parts = {s: _split_dataset(cohort, s, source) for s in SPLITS}
    if len(parts["train"]) < 2:
        raise ValueError(f"{cxlseg_dir}: the train split has {len(parts['train'])} image(s); need at least 2")
    log.info("%s on %s images: %s; device %s%s", model, input_kind,
             ", ".join(f"{s} {len(parts[s])}" for s in SPLITS), dev, " (AMP)" if use_amp else "")

    seed_everything(seed)
    net = create_classifier(model, len(cohort.classes), pretrained=pretrained).to(dev)
    skips = _SkipLog(input_kind)
    train_loader = _loader(parts["train"], batch_size, True, seed, num_workers, dev)
    history = fit(net, train_loader, dev, use_amp, skips, epochs=epochs, lr=lr, max_train_batches=max_train_batches,
                  recalibrate_bn=recalibrate_bn, desc=run_name(model, input_kind))
    scores = {s: predict(net, _loader(parts[s], batch_size, False, seed, num_workers, dev), dev, use_amp, skips, s)
              for s in ("validate", "test")}
    per_class = evaluate_classes(cohort.classes, _arrays(cohort, "validate", scores["validate"]),
                                 _arrays(cohort, "test", scores["test"]))
    metrics = {
        "model": model, "input": input_kind, "classes": list(cohort.classes), "uncertain": uncertain,
        "device": dev.type, "amp": use_amp,
        "settings": {"input_size": input_size, "image_size": image_size, "original_clahe": original_clahe,
                     "clahe_clip": clahe_clip, "clahe_tiles": clahe_tiles, "epochs": epochs,
                     "batch_size": batch_size, "lr": lr, "pretrained": pretrained, "seed": seed,
                     "max_train_batches": max_train_batches, "recalibrate_bn": recalibrate_bn},
        "counts": {s: len(parts[s]) for s in SPLITS} | {"skipped": len(skips.rows)},
        "history": history, "per_class": per_class, "mean": mean_metrics(per_class),
    }
    write_csv(_predictions(cohort, scores), run_dir / "predictions.csv")
    write_csv(skips.frame(), run_dir / "skipped.csv")
    write_json(run_dir / "metrics.json", _nan_to_none(metrics))
    return metrics


def _split_dataset(cohort: Labels, split: str, source: ImageSource) -> ImageDataset:
    rows = (cohort.frame["split"] == split).to_numpy()
    return ImageDataset(cohort.frame[rows], cohort.targets[rows], cohort.mask[rows], source)


def _arrays(cohort: Labels, split: str, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = (cohort.frame["split"] == split).to_numpy()
    return cohort.targets[rows], cohort.mask[rows], scores


def _predictions(cohort: Labels, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    parts = []
    for split, split_scores in scores.items():
        rows = (cohort.frame["split"] == split).to_numpy()
        part = cohort.frame.loc[rows, ["dicom_id", "subject_id", "study_id", "split"]].reset_index(drop=True)
        labels = np.where(cohort.mask[rows] > 0, cohort.targets[rows], np.nan)
        for c, name in enumerate(cohort.classes):
            part[f"{name}_label"] = labels[:, c]
            part[f"{name}_score"] = split_scores[:, c]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _nan_to_none(obj):
    """Strict JSON has no NaN; missing metrics become null."""
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------
# the table and the figure


def summarise(run_dirs: Iterable[os.PathLike | str], out_dir: os.PathLike | str) -> pd.DataFrame:
    """Gather run folders into table3.csv, table3.md, roc.png, skipped.csv and predictions_{model}_{input}.csv."""
    out_dir = Path(out_dir)
    runs = read_runs(run_dirs)
    table = table3(m for _, m in runs)
    write_csv(table, out_dir / "table3.csv")
    write_text(out_dir / "table3.md", table3_markdown(table, [m for _, m in runs]))
    write_csv(_merged_skipped([d for d, _ in runs]), out_dir / "skipped.csv")
    predictions = {}
    for run_dir, metrics in runs:
        data = (run_dir / "predictions.csv").read_bytes()
        write_bytes(out_dir / f"predictions_{run_name(metrics['model'], metrics['input'])}.csv", data)
        predictions[(metrics["model"], metrics["input"])] = pd.read_csv(run_dir / "predictions.csv",
                                                                       dtype={"dicom_id": str})
    plot_roc(predictions, runs[0][1]["classes"], out_dir / "roc.png")
    return table


def read_runs(run_dirs: Iterable[os.PathLike | str]) -> list[tuple[Path, dict]]:
    """(run folder, metrics.json) pairs; every run must describe the same classes."""
    runs = []
    for run_dir in map(Path, run_dirs):
        metrics_path = run_dir / "metrics.json"
        if not metrics_path.is_file():
            raise FileNotFoundError(f"{metrics_path}: run metrics not found")
        runs.append((run_dir, read_json(metrics_path)))
    if not runs:
        raise ValueError("summarise needs at least one run folder")
    for run_dir, metrics in runs[1:]:
        if metrics["classes"] != runs[0][1]["classes"]:
            raise ValueError(f"{run_dir}: classes {metrics['classes']} differ from "
                             f"{runs[0][0]}'s {runs[0][1]['classes']}")
    return runs


def _merged_skipped(run_dirs: Sequence[Path]) -> pd.DataFrame:
    frames = [pd.read_csv(d / "skipped.csv", dtype=str) for d in run_dirs if (d / "skipped.csv").is_file()]
    if not frames:
        return pd.DataFrame(columns=SKIPPED_COLUMNS)
    return pd.concat(frames, ignore_index=True).drop_duplicates().reset_index(drop=True)


def table3(runs: Iterable[dict]) -> pd.DataFrame:
    """One row per (model, input): per-class accuracy, sensitivity, specificity, AUC, then their class means."""
    rows = []
    for metrics in runs:
        row = {"model": metrics["model"], "input": metrics["input"], "n_test": metrics["counts"]["test"]}
        for name in metrics["classes"]:
            for metric in METRICS:
                row[f"{name} {metric}"] = _float(metrics["per_class"][name][metric])
        for metric in METRICS:
            row[f"mean {metric}"] = _float(metrics["mean"][metric])
        rows.append(row)
    return pd.DataFrame(rows)


def table3_markdown(table: pd.DataFrame, runs: Sequence[dict]) -> str:
    """Table III as one markdown table per class plus one for the class means, with what makes a cell n/a."""
    first = runs[0]
    settings, classes = first["settings"], first["classes"]
    support = ", ".join(f"{c} {first['per_class'][c]['n_test_positive']}/{first['per_class'][c]['n_test']}"
                        for c in classes)
    fallbacks = sorted({c for r in runs for c, v in r["per_class"].items() if v["threshold_rule"] != "youden"})
    lines = [
        "# Table III: classifiers on original vs segmented images", "",
        f"Test split; thresholds by Youden's J on the validate split. Input {settings['input_size']} px, "
        f"{settings['epochs']} epoch(s), batch {settings['batch_size']}, lr {settings['lr']}, "
        f"{'ImageNet-pretrained' if settings['pretrained'] else 'from scratch'}, uncertain labels -> "
        f"{first['uncertain']}, originals {'with' if settings['original_clahe'] else 'without'} CLAHE.", "",
        f"Test positives / labelled images: {support}. "
        "n/a: not computable (no positives or no negatives in the split). "
        "Means average the classes where the metric exists.", "",
    ]
    if fallbacks:
        lines += [f"Threshold 0.5 instead of Youden's J (validate split lacks positives or negatives): "
                  f"{', '.join(fallbacks)}.", ""]
    for title, prefix in [(c, f"{c} ") for c in classes] + [("Mean over classes", "mean ")]:
        lines += [f"## {title}", "", "| model | input | " + " | ".join(METRICS) + " |",
                  "|---|---|" + "---:|" * len(METRICS)]
        for _, row in table.iterrows():
            cells = " | ".join(_fmt(row[prefix + m]) for m in METRICS)
            lines.append(f"| {row['model']} | {row['input']} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def plot_roc(predictions: dict[tuple[str, str], pd.DataFrame], classes: Sequence[str], path: os.PathLike | str) -> None:
    """ROC curves on the test split: one panel per (model, class), original vs segmented overlaid."""
    models = list(dict.fromkeys(m for m, _ in predictions))
    fig = Figure(figsize=(3.0 * len(classes), 3.0 * len(models)))
    axes = fig.subplots(len(models), len(classes), squeeze=False)
    for r, model in enumerate(models):
        for c, name in enumerate(classes):
            ax = axes[r][c]
            ax.plot([0, 1], [0, 1], color="0.8", lw=0.8, ls="--")
            for input_kind in INPUT_KINDS:
                frame = predictions.get((model, input_kind))
                if frame is None:
                    continue
                _plot_one_roc(ax, frame, name, input_kind)
            ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))  # curves on the frame stay visible
            ax.set_title(f"{model}: {name}", fontsize=8)
            if r == len(models) - 1:
                ax.set_xlabel("1 - specificity")
            if c == 0:
                ax.set_ylabel("sensitivity")
            ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _plot_one_roc(ax, frame: pd.DataFrame, name: str, input_kind: str) -> None:
    test = frame[frame["split"] == "test"]
    keep = test[f"{name}_label"].notna() & test[f"{name}_score"].notna()
    y, score = test.loc[keep, f"{name}_label"].to_numpy(), test.loc[keep, f"{name}_score"].to_numpy()
    color = {"original": "tab:blue", "segmented": "tab:red"}[input_kind]
    if y.size == 0 or y.min() == y.max():
        ax.plot([], [], color=color, label=f"{input_kind}: n/a (one class only)")
        return
    fpr, tpr, _ = roc_curve(y, score)
    ax.plot(fpr, tpr, color=color, lw=1.2, label=f"{input_kind}: AUC {auc(y, score):.3f}")


def _float(value) -> float:
    return float("nan") if value is None else float(value)


def _fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


# ---------------------------------------------------------------------------
# the whole comparison in one process


def run_comparison(cxlseg_dir: os.PathLike | str, cxlseg_root: os.PathLike | str, mimic_root: os.PathLike | str,
                   out_dir: os.PathLike | str, *, models: Sequence[str] = DEFAULT_MODELS,
                   inputs: Sequence[str] = INPUT_KINDS, classes: Sequence[str] = DEFAULT_CLASSES,
                   uncertain: str = "ones", input_size: int = 224, image_size: int = 224,
                   original_clahe: bool = True, clahe_clip: float = 2.0, clahe_tiles: int = 8, epochs: int = 1,
                   batch_size: int = 16, lr: float = 1e-3, pretrained: bool = False, num_workers: int = 0,
                   device: str = "auto", amp: bool = True, seed: int = 42,
                   max_train_batches: int | None = None, recalibrate_bn: bool = True) -> pd.DataFrame:
    """Every model on every input, then the table; Snakemake runs the pairs itself via train_and_evaluate."""
    for name in models:
        _check_name(name)
    run_dirs = []
    for model in models:
        for input_kind in inputs:
            train_and_evaluate(model, input_kind, cxlseg_dir=cxlseg_dir, cxlseg_root=cxlseg_root,
                               mimic_root=mimic_root, out_dir=out_dir, classes=classes, uncertain=uncertain,
                               input_size=input_size, image_size=image_size, original_clahe=original_clahe,
                               clahe_clip=clahe_clip, clahe_tiles=clahe_tiles, epochs=epochs,
                               batch_size=batch_size, lr=lr, pretrained=pretrained, num_workers=num_workers,
                               device=device, amp=amp, seed=seed, max_train_batches=max_train_batches,
                               recalibrate_bn=recalibrate_bn)
            run_dirs.append(Path(out_dir) / run_name(model, input_kind))
    return summarise(run_dirs, out_dir)
