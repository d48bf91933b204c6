"""The benchmark commands of tests/bench, loaded as modules (they are commands, not a package)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd


def load_bench(name: str):
    """A benchmark script of tests/bench as a module (they are commands, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reader2(mask: np.ndarray, i: int) -> np.ndarray:
    """A second reader who stops a third of the image above the first (the human band is well below 1), and who
    outlines nothing on image 5: the model's Dice against reader 2 differs from that against reader 1 even where
    a tiny model outlines nothing at all."""
    out = mask.copy()
    out[2 * mask.shape[0] // 3 :] = 0
    return out * (i != 5)


def write_v7_like(root: Path) -> Path:
    """index.csv + images/ + masks/ + second-reader/ in the v7-real layout: 12 phantom films of 7 patients, one
    unreadable pair (img11); releases 1 (images 0-7) and 2; reader 2 outlined images 0-5 (`reader2`), image 6 with
    an unreadable file."""
    from cxlseg.phantoms.render import render_phantom

    for folder in ("images", "masks", "second-reader"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(3)
    rows = []
    for i in range(12):
        ph = render_phantom(rng, 96, 88)
        cv2.imwrite(str(root / "images" / f"img{i}.jpg"), ph.image)
        cv2.imwrite(str(root / "masks" / f"img{i}.png"), ph.mask * 255)
        if i < 6:
            cv2.imwrite(str(root / "second-reader" / f"img{i}.png"), reader2(ph.mask, i) * 255)
        rows.append(
            {
                "image": f"images/img{i}.jpg",
                "mask": f"masks/img{i}.png",
                "patient_id": i % 7,
                "view": "PA",
                "finding": "COVID-19",
                "release": 1 if i < 8 else 2,
                "second_mask": f"second-reader/img{i}.png" if i < 7 else "",
            }
        )
    (root / "images" / "img11.jpg").write_bytes(b"not an image")
    (root / "second-reader" / "img6.png").write_bytes(b"not a mask")
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return root
