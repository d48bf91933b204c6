"""The classifier registry: torchvision backbones with a stem for the input channels and a CheXpert head.

The authors' network is ``backbone(include_top=False) -> global average pool -> Dense(1024, relu) ->
Dense(14, sigmoid)`` trained from scratch on gray images; :func:`create_classifier` builds that for each
backbone (``hidden`` units, 0 for a plain linear head) and returns logits: the sigmoid lives in the loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


NORMALISATIONS = ("imagenet", "none")


class Classifier(nn.Module):
    """A backbone fed [0, 1] images of any size.

    Normalises with ImageNet statistics (`normalise="imagenet"`: what pretrained weights expect, a fixed
    affine map from scratch) or not at all (`"none"`: the [0, 1] pixels the CXLSeg authors fed their
    from-scratch Keras networks) and, for backbones with a minimum input size (InceptionV3, 75 px),
    upsamples smaller inputs bilinearly so the small-input demo works for every architecture.
    """

    def __init__(self, backbone: nn.Module, in_channels: int, min_size: int = 0, normalise: str = "imagenet"):
        super().__init__()
        self.backbone = backbone
        self.min_size = int(min_size)
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}")
        mean = IMAGENET_MEAN if in_channels == 3 else (float(np.mean(IMAGENET_MEAN)),) * in_channels
        std = IMAGENET_STD if in_channels == 3 else (float(np.mean(IMAGENET_STD)),) * in_channels
        if normalise == "none":
            mean, std = (0.0,) * in_channels, (1.0,) * in_channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        height, width = x.shape[-2:]
        if self.min_size and min(height, width) < self.min_size:
            size = (max(height, self.min_size), max(width, self.min_size))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.backbone(x)


def check_name(name: str) -> str:
    """`name` if it is a registered classifier; the error lists the valid ones."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; valid: {', '.join(CLASSIFIERS)}")
    return name


def classifier_weights(name: str, pretrained: bool):
    """torchvision's default ImageNet weights enum for `name`, or None (from scratch)."""
    check_name(name)
    return torchvision.models.get_model_weights(name).DEFAULT if pretrained else None


def create_classifier(
    name: str, num_classes: int, *, in_channels: int, pretrained: bool, hidden: int, normalise: str
) -> Classifier:
    """A torchvision classifier with an `in_channels` stem and a `num_classes` logit head.

    `hidden` > 0 puts a ReLU layer of that many units before the outputs (the authors' head).
    """
    spec = CLASSIFIERS[check_name(name)]
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    backbone = _load_backbone(name, spec, in_channels, pretrained)
    _set_submodule(backbone, spec.stem, _adapt_stem(backbone.get_submodule(spec.stem), in_channels, pretrained))
    features = backbone.get_submodule(spec.head).in_features
    _set_submodule(backbone, spec.head, _head(features, num_classes, hidden))
    return Classifier(backbone, in_channels, spec.min_size, normalise)


def _load_backbone(name: str, spec: ClassifierSpec, in_channels: int, pretrained: bool) -> nn.Module:
    kwargs = dict(spec.kwargs)
    if name == "inception_v3":
        if not pretrained:
            kwargs["init_weights"] = True  # explicit, silences torchvision's FutureWarning
        if in_channels != 3:
            kwargs["transform_input"] = False  # its re-normalisation assumes RGB
    weights = classifier_weights(name, pretrained)
    try:
        return torchvision.models.get_model(name, weights=weights, **kwargs)
    except (OSError, RuntimeError) as err:  # URLError is an OSError: offline node without cached weights
        if weights is None:
            raise
        raise RuntimeError(
            f"{name}: could not load torchvision weights {weights} ({err}); with no network, put the "
            f"file {Path(weights.url).name} into $TORCH_HOME/hub/checkpoints first"
        ) from err


def _head(features: int, num_classes: int, hidden: int) -> nn.Module:
    if hidden < 0:
        raise ValueError(f"hidden must be >= 0, got {hidden}")
    if hidden == 0:
        return nn.Linear(features, num_classes)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _adapt_stem(conv: nn.Conv2d, in_channels: int, pretrained: bool) -> nn.Conv2d:
    """A stem for `in_channels`; pretrained RGB filters are averaged so a gray input keeps its activation scale."""
    if conv.in_channels == in_channels:
        return conv
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
    )
    with torch.no_grad():
        if pretrained:
            gray = conv.weight.mean(dim=1, keepdim=True) * (conv.in_channels / in_channels)
            new.weight.copy_(gray.expand(-1, in_channels, -1, -1))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        else:
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    return new
