"""Balance the training classes by augmentation and write the training store.

The paper's Table II balances the training split to fixed per-class counts
(tuberculosis 3940, COVID-19 3619, pneumonia 3987, normal 3850) with flips,
rotation, random crop, zoom and Gaussian noise.  Originals are always kept;
only the train split gets augmented copies, so validation and test measure the
model on real radiographs only.  Image and mask go through the same
albumentations call, so geometry is applied to both (the mask with nearest-
neighbour interpolation) and noise only to the image.

Why a compact ``.npy`` store rather than thousands of PNGs: one file per split
and array (``{split}_images.npy``, ``{split}_masks.npy``, uint8, N x S x S) is
written once, opened with ``np.load(mmap_mode="r")`` by every DataLoader worker
without copying, and gives O(1) random access with no per-sample decode; the
whole 15k x 224 x 224 set is ~750 MB per array and is written through
``np.lib.format.open_memmap`` so it never has to sit in memory twice.  Images
are stored resized but not CLAHE'd, so the training loop applies the exact
``preprocess.clahe`` that inference uses.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from cxlseg import io, preprocess
from cxlseg.ingest.labels import LABELS
from cxlseg.mimic import SPLITS
from cxlseg.training.balance import check_targets, plan_balance
from cxlseg.training.montage import montage_from_store
from cxlseg.training.settings import AugmentSettings
from cxlseg.training.store import TrainingStore, store_file

log = logging.getLogger(__name__)

OP_NAMES = {
    "HorizontalFlip": "hflip",
    "VerticalFlip": "vflip",
    "Rotate": "rotate",
    "Affine": "zoom",
    "RandomResizedCrop": "crop",
    "GaussNoise": "noise",
}
INDEX_COLUMNS = ["row", "split", "dataset", "image_id", "patient_id", "label", "augmented", "source_image_id", "op"]
REQUIRED_COLUMNS = {"dataset", "image_id", "patient_id", "label", "image_path", "mask_path", "split"}
MAX_DRAWS = 32  # re-draws when a random pipeline happened to apply no op at all


# --------------------------------------------------------------------------- settings


# --------------------------------------------------------------------------- pipeline


def build_pipeline(size: int, settings: AugmentSettings) -> A.Compose:
    """The paper's operations, each drawn independently with its own probability.

    Borders are filled with 0 (air) in the image and background in the mask;
    masks use nearest-neighbour so they stay binary.
    """
    s = settings
    nearest, zero = cv2.INTER_NEAREST, cv2.BORDER_CONSTANT
    return A.Compose(
        [
            A.HorizontalFlip(p=s.hflip_p),
            A.VerticalFlip(p=s.vflip_p),
            A.Rotate(
                limit=s.rotate_limit, border_mode=zero, fill=0, fill_mask=0, mask_interpolation=nearest, p=s.rotate_p
            ),
            A.Affine(
                scale=(1.0 - s.scale_limit, 1.0 + s.scale_limit),
                border_mode=zero,
                fill=0,
                fill_mask=0,
                mask_interpolation=nearest,
                p=s.scale_p,
            ),
            A.RandomResizedCrop(
                size=(size, size), scale=tuple(s.crop_scale), ratio=(0.85, 1.15), mask_interpolation=nearest, p=s.crop_p
            ),
            A.GaussNoise(std_range=tuple(s.noise_std), p=s.noise_p),
        ],
        save_applied_params=True,
        seed=0,
    )


def sample_seed(seed: int, label: str, k: int) -> int:
    """Independent, order-free seed for the k-th augmented copy of a class."""
    return int(np.random.SeedSequence([seed, LABELS.index(label) if label in LABELS else 99, k]).generate_state(1)[0])


def augment_pair(
    pipeline: A.Compose, image: np.ndarray, mask: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Apply the pipeline with a fixed seed; re-draw until at least one op changed the pair.

    One shared generator is handed to every transform (`set_random_state`):
    albumentations' `set_random_seed` gives each transform its own generator
    with the same seed, so ops of equal probability would always fire together.
    """
    for attempt in range(MAX_DRAWS):
        pipeline.set_random_state(np.random.default_rng([seed, attempt]), random.Random(seed * MAX_DRAWS + attempt))
        out = pipeline(image=image, mask=mask)
        ops = [OP_NAMES.get(name, name) for name, _ in out["applied_transforms"]]
        if ops:
            return out["image"], out["mask"], "+".join(ops)
    return image[:, ::-1].copy(), mask[:, ::-1].copy(), "hflip"


# --------------------------------------------------------------------------- loading


def load_pair(
    row, roots: dict, ingest_dirs: dict, size: int, interpolation: str = "area"
) -> tuple[np.ndarray, np.ndarray]:
    """One manifest row -> (image, mask) resized to size x size (preprocess.interpolation); raises with the file
    and reason."""
    image_file = io.safe_join(roots[row.dataset], row.image_path)
    mask_file = io.safe_join(ingest_dirs[row.dataset], row.mask_path)
    image, mask = io.read_gray(image_file), io.read_mask(mask_file)
    if image.shape != mask.shape:
        raise ValueError(
            f"{mask_file}: mask {mask.shape[1]}x{mask.shape[0]} does not match image {image.shape[1]}x{image.shape[0]}"
        )
    image, mask = preprocess.resize(image, size, interpolation), preprocess.resize_mask(mask, size, interpolation)
    if not mask.any():
        raise ValueError(f"{mask_file}: mask is empty at {size}x{size}")
    return image, mask


def _load_originals(
    rows: pd.DataFrame,
    roots: dict,
    ingest_dirs: dict,
    size: int,
    images: np.ndarray,
    masks: np.ndarray,
    skipped: list[dict],
    split: str,
    interpolation: str = "area",
) -> pd.DataFrame:
    """Fill the scratch arrays; bad images become `skipped` rows, never an exception."""
    kept = []
    for row in tqdm(rows.itertuples(index=False), total=len(rows), desc=f"load {split}", unit="img"):
        try:
            images[len(kept)], masks[len(kept)] = load_pair(row, roots, ingest_dirs, size, interpolation)
        except (OSError, ValueError, cv2.error) as err:
            log.warning("skipped %s/%s: %s", row.dataset, row.image_id, err)
            skipped.append(
                {
                    "split": split,
                    "dataset": row.dataset,
                    "image_id": row.image_id,
                    "file": getattr(err, "path", row.image_path),
                    "reason": str(err),
                }
            )
            continue
        kept.append(row._asdict())
    return pd.DataFrame(kept, columns=rows.columns).reset_index(drop=True)


# --------------------------------------------------------------------------- writing


def _write_split(
    split: str,
    rows: pd.DataFrame,
    store: TrainingStore | Path,
    *,
    size: int,
    roots: dict,
    ingest_dirs: dict,
    targets: dict[str, int] | None,
    multipliers: dict[str, dict[str, float]] | None,
    seed: int,
    pipeline: A.Compose,
    skipped: list[dict],
    interpolation: str = "area",
) -> pd.DataFrame:
    """Write the split's images, masks and index files of the store; return the index."""
    scratch = store_file(store, split, "images").parent
    scratch_images, scratch_masks = scratch / f".scratch_{split}_images.npy", scratch / f".scratch_{split}_masks.npy"
    shape = (len(rows), size, size)
    try:
        src_images = np.lib.format.open_memmap(scratch_images, mode="w+", dtype=np.uint8, shape=shape)
        src_masks = np.lib.format.open_memmap(scratch_masks, mode="w+", dtype=np.uint8, shape=shape)
        kept = _load_originals(rows, roots, ingest_dirs, size, src_images, src_masks, skipped, split, interpolation)
        plan = plan_balance(kept, targets, multipliers, seed) if split == "train" else []
        index = _store_rows(split, kept, plan, store, size, src_images, src_masks, pipeline, seed)
        del src_images, src_masks
    finally:
        for path in (scratch_images, scratch_masks):
            path.unlink(missing_ok=True)
    io.write_parquet(index, store_file(store, split, "index"))
    return index


def _store_rows(split, kept, plan, store, size, src_images, src_masks, pipeline, seed) -> pd.DataFrame:
    n = len(kept) + len(plan)
    records = [(split, r.dataset, r.image_id, r.patient_id, r.label, False, r.image_id, "") for r in kept.itertuples()]
    with (
        io.atomic_path(store_file(store, split, "images")) as tmp_img,
        io.atomic_path(store_file(store, split, "masks")) as tmp_mask,
    ):
        images = np.lib.format.open_memmap(tmp_img, mode="w+", dtype=np.uint8, shape=(n, size, size))
        masks = np.lib.format.open_memmap(tmp_mask, mode="w+", dtype=np.uint8, shape=(n, size, size))
        for start in range(0, len(kept), 512):  # chunked so the copy never holds a whole split in memory
            stop = min(start + 512, len(kept))
            images[start:stop] = src_images[start:stop]
            masks[start:stop] = src_masks[start:stop]
        for i, (label, pos, k) in enumerate(tqdm(plan, desc=f"augment {split}", unit="img"), start=len(kept)):
            images[i], masks[i], op = augment_pair(
                pipeline, np.array(src_images[pos]), np.array(src_masks[pos]), sample_seed(seed, label, k)
            )
            src = kept.iloc[pos]
            records.append(
                (split, src.dataset, f"{src.image_id}_aug{k:05d}", src.patient_id, label, True, src.image_id, op)
            )
        images.flush()
        masks.flush()
        del images, masks
    index = pd.DataFrame(records, columns=INDEX_COLUMNS[1:])
    index.insert(0, "row", np.arange(len(index), dtype=np.int64))
    return index


def count_table(indexes: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """counts.csv: originals, augmented and total per split and class."""
    rows = []
    for split in SPLITS:
        index = indexes.get(split)
        if index is None or index.empty:
            continue
        for label, part in index.groupby("label", sort=True):
            aug = int(part["augmented"].sum())
            rows.append(
                {"split": split, "label": label, "originals": len(part) - aug, "augmented": aug, "total": len(part)}
            )
    return pd.DataFrame(rows, columns=["split", "label", "originals", "augmented", "total"])


def build_training_store(
    dataset_parquet: os.PathLike | str,
    roots: dict[str, os.PathLike | str],
    ingest_dirs: dict[str, os.PathLike | str],
    store: TrainingStore | os.PathLike | str,
    settings: AugmentSettings,
    *,
    size: int,
    seed: int,
    interpolation: str = "area",
    montage_path: os.PathLike | str | None = None,
    counts_path: os.PathLike | str | None = None,
    skipped_path: os.PathLike | str | None = None,
) -> dict[str, dict[str, dict[str, int]]]:
    """Write the training store for the split dataset table; return counts[split][label].

    With ``settings.enabled`` false every split holds its originals only. `interpolation` is
    preprocess.interpolation (area | linear), how originals and masks are resized into the store. `store` is the
    rule's store files (`TrainingStore`) or a folder; the montage, counts and skipped tables default to its folder.
    """
    out_dir = store.folder if isinstance(store, TrainingStore) else Path(store)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = pd.read_parquet(dataset_parquet)
    missing = REQUIRED_COLUMNS - set(df.columns)
    if missing:
        raise ValueError(f"{dataset_parquet}: missing column(s) {sorted(missing)}")
    for name, mapping in (("roots", roots), ("ingest_dirs", ingest_dirs)):
        absent = sorted(set(df["dataset"]) - set(mapping))
        if absent:
            raise ValueError(f"{name} has no entry for dataset(s) {absent}")
    targets, multipliers = settings.active_targets, settings.active_multipliers
    check_targets(df[df["split"] == "train"], targets)  # fail before the slow part
    pipeline = build_pipeline(size, settings)
    skipped: list[dict] = []
    indexes = {}
    for split in SPLITS:
        rows = df[df["split"] == split].sort_values(["dataset", "image_id"], kind="stable").reset_index(drop=True)
        indexes[split] = _write_split(
            split,
            rows,
            store,
            size=size,
            roots=roots,
            ingest_dirs=ingest_dirs,
            targets=targets,
            multipliers=multipliers,
            seed=seed,
            pipeline=pipeline,
            skipped=skipped,
            interpolation=interpolation,
        )
    counts = count_table(indexes)
    io.write_csv(
        pd.DataFrame(skipped, columns=["split", "dataset", "image_id", "file", "reason"]),
        Path(skipped_path or out_dir / "skipped.csv"),
    )
    montage_from_store(
        store, indexes["train"], Path(montage_path or out_dir / "augment_montage.jpg"), settings.montage_samples
    )
    io.write_csv(counts, Path(counts_path or out_dir / "counts.csv"))
    for row in counts.itertuples():
        log.info(
            "%s %s: %d originals + %d augmented = %d", row.split, row.label, row.originals, row.augmented, row.total
        )
    if skipped:
        log.warning("%d image(s) skipped while building the store (see skipped.csv)", len(skipped))
    result: dict[str, dict[str, dict[str, int]]] = {}
    for row in counts.itertuples():
        result.setdefault(row.split, {})[row.label] = {
            "originals": int(row.originals),
            "augmented": int(row.augmented),
            "total": int(row.total),
        }
    return result
