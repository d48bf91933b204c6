"""Where tensors run, how runs are seeded, and the speed-only switches of the forward pass (one definition for
training, inference and classifiers).

`infer.amp_dtype` and `infer.compile` change how fast probabilities come out, never which model or preprocessing
makes them: autocast only runs on CUDA (CPU inference stays float32), and torch.compile traces the same network.
"""

from __future__ import annotations

import logging
import random
from typing import Sequence

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    """cuda when present (device 'auto'), else what was asked for."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; cuDNN picks deterministic kernels so reruns give the same weights."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def amp_dtype(value: str | torch.dtype, device: torch.device) -> torch.dtype:
    """The autocast dtype for a config name or a dtype; bf16 becomes fp16 on a GPU without bfloat16 (V100)."""
    dtype = AMP_DTYPES[value] if isinstance(value, str) else value
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bfloat16; autocast uses float16 instead")
        return torch.float16
    return dtype


def compiled(models: Sequence[nn.Module], enabled: bool) -> list[nn.Module]:
    """The models wrapped in torch.compile when asked (the compile itself happens on the first batch)."""
    if not enabled:
        return list(models)
    return [torch.compile(m) for m in models]
