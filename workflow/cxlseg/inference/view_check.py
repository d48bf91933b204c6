"""The view check: is an image labelled PA/AP really a frontal chest film? (QC flag `not_frontal`).

MIMIC metadata sometimes calls a lateral film, a CT slice or an abdomen film frontal; segmenting those gives
garbage masks that pass shape rules by chance. A small CNN (about 50k weights) on a 64x64 gray thumbnail
decides from the global layout (two lung fields either side of the spine) rather than texture:

* negatives: phantom lateral and CT renders, and lung-free crops of phantom frontals (abdomen-like films);
* positives: phantom frontals AND the training store's train split (real Shenzhen/Montgomery/V7 films on a
  cluster), so "phantom vs real" is no shortcut; strong augmentation (exposure, blur, noise, affine, crops)
  hides the rest of the texture;
* real archive films (rule view_samples, `cxlseg.view_check.samples`): MIMIC side views (LATERAL/LL) as
  negatives and as many PA/AP films as positives, so the flag learns what a REAL lateral looks like; their
  subjects are split so the validation numbers are on people never trained on.

This module is the network, its input and the checker inference runs; `cxlseg.view_check.training`
trains and validates it. `ViewChecker.from_checkpoint(path).p_not_frontal(images)` scores uint8 gray images of
any size (cxlseg checkpoint format, loads with weights_only=True).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from cxlseg.preprocess import clahe
from cxlseg.training.checkpoint import read_checkpoint, weights_digest

ARCHITECTURE = "view_cnn"


# --------------------------------------------------------------------------- network and input


class ViewNet(nn.Module):
    """Four conv blocks to a 4x4 map, then a linear layer on the flattened map: where things are (one lung
    field or two, spine central or at the side) matters, so no global average pooling."""

    def __init__(self, width: int = 16):
        super().__init__()
        chans = (1, width, 2 * width, 3 * width, 4 * width)
        blocks = []
        for cin, cout in zip(chans, chans[1:]):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            blocks.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(4), nn.Conv2d(chans[-1], 16, 1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(16 * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def _check_images(images) -> list[np.ndarray]:
    """uint8 gray images as a list of 2D arrays; a clear error for anything else."""
    if isinstance(images, np.ndarray):
        if images.ndim != 3:
            raise ValueError(f"expected gray images as uint8 (N, H, W), got shape {images.shape}")
        images = list(images)
    if len(images) == 0:
        raise ValueError("no images given")
    for i, im in enumerate(images):
        if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 2:
            what = f"{im.dtype} {im.shape}" if isinstance(im, np.ndarray) else type(im).__name__
            raise ValueError(f"image {i}: expected a uint8 gray (H, W) array, got {what}")
        if min(im.shape) < 8:
            raise ValueError(f"image {i}: too small ({im.shape[1]}x{im.shape[0]})")
    return images


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """The network input of one image: area-resized to size x size, CLAHE (as the segmenter), then
    standardised per image so exposure and detector range do not matter."""
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) if image.shape != (size, size) else image
    x = clahe(small, 2.0, 8).astype(np.float32)
    return (x - x.mean()) / (x.std() + 1.0)


def to_batch(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([thumbnail(im, size) for im in images])[:, None])


# --------------------------------------------------------------------------- training data


# --------------------------------------------------------------------------- inference


class ViewChecker:
    """A trained view check: P(not a frontal chest film) for uint8 gray images of any size."""

    def __init__(self, model: nn.Module, config: dict, device: torch.device | str = "cpu", model_id: str = ""):
        self.model, self.config, self.device = model.eval(), dict(config), torch.device(device)
        self.size, self.threshold = int(config["size"]), float(config["threshold"])
        self.model_id = model_id or f"{ARCHITECTURE}-{weights_digest(model)}"

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: torch.device | str = "cpu") -> "ViewChecker":
        checkpoint = read_checkpoint(path)
        if checkpoint["config"].get("architecture") != ARCHITECTURE:
            raise ValueError(
                f"{path}: not a view-check checkpoint (architecture {checkpoint['config'].get('architecture')!r})"
            )
        model = ViewNet()
        model.load_state_dict(checkpoint["state_dict"])
        return cls(model.to(device), checkpoint["config"], device)

    @torch.inference_mode()
    def p_not_frontal(self, images: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """float32 (N,) in [0, 1]; `images` is uint8 (N, H, W) or a list of uint8 (H, W) of differing sizes."""
        images = _check_images(images)
        out = []
        for start in range(0, len(images), batch_size):
            x = to_batch(images[start : start + batch_size], self.size).to(self.device)
            out.append(torch.sigmoid(self.model(x)).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def flag(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """bool (N,): the `not_frontal` QC flag at the checkpoint's threshold."""
        return self.p_not_frontal(images) >= self.threshold
