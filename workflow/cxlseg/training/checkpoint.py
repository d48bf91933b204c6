"""The checkpoint format, owned here: what a model folder's `.pt` files hold and how they are read back, and the
files one training run writes (`ModelFiles`, named by the train rule).

A checkpoint is a plain dict of CPU tensors and JSON-able values, so `torch.load(weights_only=True)` reads
it on any machine (a model trained on a GPU node loads on a CPU-only one). It carries the training
config (nanoGPT's habit), which is all a predictor needs to rebuild the network and repeat the
preprocessing it was trained with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cxlseg import __version__
from cxlseg.io import atomic_path
from cxlseg.training.models import count_parameters, create_model


@dataclass(frozen=True)
class ModelFiles:
    """What one training run writes: the train rule's outputs, and the resume checkpoint (named by the rule but not
    an output: Snakemake deletes a job's outputs before it runs, which would throw the resume state away)."""

    checkpoint: Path
    history: Path
    model: Path
    resume: Path

    def __post_init__(self) -> None:
        for name in ("checkpoint", "history", "model", "resume"):
            object.__setattr__(self, name, Path(getattr(self, name)))


# Keys of a full (resumable) checkpoint that are training state, not the model's description.
STATE_KEYS = ("state_dict", "optimizer", "scheduler", "scaler", "rng", "history")


def build_model(config: dict, pretrained: bool = False) -> nn.Module:
    """The network a training config describes; pretrained=False never downloads (loading a checkpoint)."""
    return create_model(
        config["architecture"],
        in_channels=int(config["in_channels"]),
        classes=1,
        encoder_name=config["encoder_name"],
        encoder_weights=config.get("encoder_weights") if pretrained else None,
        base_channels=config.get("base_channels"),
        encoder_depth=int(config.get("encoder_depth", 5)),
    )


def payload(model: nn.Module, config: dict, *, epoch: int, metrics: dict, **state) -> dict:
    """A checkpoint dict: CPU weights, the training config, the epoch's metrics, and optional training state."""
    return {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "architecture": config["architecture"],
        "config": dict(config),
        "epoch": int(epoch),
        "metrics": dict(metrics),
        "params": count_parameters(model),
        "cxlseg_version": __version__,
        "torch_version": str(torch.__version__),
        **state,
    }


def write_checkpoint(path: Path | str, checkpoint: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def read_checkpoint(path: Path | str) -> dict:
    """A cxlseg checkpoint, read with weights_only=True; a clear error names the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "config" not in checkpoint:
        raise ValueError(f"{path}: not a cxlseg checkpoint (no state_dict/config)")
    return checkpoint


def load_model(path: Path | str, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode on the device, the checkpoint's metadata without tensors)."""
    checkpoint = read_checkpoint(path)
    model = build_model(checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    meta = {k: v for k, v in checkpoint.items() if k not in STATE_KEYS}
    meta["checkpoint"] = str(path)
    meta["model_id"] = f"{checkpoint['config']['architecture']}-{weights_digest(model)}"
    return model.to(device).eval(), meta


def weights_digest(model: nn.Module) -> str:
    """A content hash of the weights, so a model id never depends on a file name or a date."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]
