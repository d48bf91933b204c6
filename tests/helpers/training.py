"""A tiny training store, as the augment stage writes it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from cxlseg.training.store import store_file


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
        np.save(store_file(root, split, "images"), images)
        np.save(store_file(root, split, "masks"), masks)
        pd.DataFrame(
            {
                "dataset": "demo",
                "image_id": [f"{split}-{i}" for i in range(n)],
                "label": "normal",
                "patient_id": [f"p{i}" for i in range(n)],
            }
        ).to_parquet(store_file(root, split, "index"))
    return root


def model_files(folder: Path):
    """The files the train rule declares for one architecture, in `folder`."""
    from cxlseg.training.checkpoint import ModelFiles

    folder = Path(folder)
    return ModelFiles(
        folder / "checkpoint_best.pt", folder / "history.csv", folder / "model.json", folder / "checkpoint_last.pt"
    )


def evaluation_files(folder: Path, split: str = "test"):
    """The files the evaluate rule declares, in `folder`."""
    from cxlseg.evaluation.evaluate import EvaluationFiles

    return EvaluationFiles(Path(folder) / f"{split}_per_image.csv", Path(folder) / f"{split}_summary.json")


def ingest_files(folder: Path):
    """The files the ingest rule declares for one dataset, in `folder`."""
    from cxlseg.ingest.readers import IngestFiles

    folder = Path(folder)
    return IngestFiles(folder / "manifest.parquet", folder / "rejects.csv", folder / "counts.json", folder / "masks")
