"""The four segmentation architectures of the paper, and the CXLSeg authors' plain U-Net, behind one registry.

Every model maps (N, C, H, W) images to (N, classes, H, W) logits. U-Net and
U-Net++ come from segmentation-models-pytorch (an ImageNet encoder is optional:
``encoder_weights=None`` keeps everything offline). Attention U-Net (Oktay et
al. 2018) and SA-UNet (Guo et al. 2020) are written here as an encoder, a
decoder and a 1x1 head built from the same small blocks, so the two papers'
differences (attention gates on the skips; DropBlock and a spatial attention
module at the bottleneck) are the only code that differs. ``plain_unet`` is the
U-Net of the CXLSeg authors' training code (segmentation/train.py + utils.py):
the same encoder/decoder with element-wise dropout 0.1 after each BN, widths
64 -> 1024 over 5 levels. ``plain_unetplusplus`` is the paper's U-Net++ as Zhou et
al. (2018) built it, without a pretrained-style encoder: nested, dense skip
pathways over the same conv blocks, deep supervision off (their default).
"""

from __future__ import annotations

from typing import Callable, Sequence

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DropBlock2d, drop_block2d

# --------------------------------------------------------------------------- blocks


class DropBlock(DropBlock2d):
    """DropBlock whose block never exceeds the feature map, so small inputs still work."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = min(self.block_size, x.shape[-2], x.shape[-1])
        size -= 1 - size % 2  # torchvision needs an odd block
        return drop_block2d(x, self.p, size, self.inplace, self.eps, self.training)


def conv_unit(
    c_in: int, c_out: int, drop_prob: float = 0.0, block_size: int = 7, dropout: float = 0.0
) -> nn.Sequential:
    """3x3 conv -> [DropBlock] -> BN -> [Dropout] -> ReLU.

    DropBlock before BN is SA-UNet's order; dropout between BN and ReLU is the CXLSeg authors' U-Net
    (Keras Conv2D -> BatchNormalization -> Dropout(0.1) -> relu); with neither, the U-Net unit.
    """
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if drop_prob > 0:
        layers.append(DropBlock(drop_prob, block_size))
    layers.append(nn.BatchNorm2d(c_out))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv_block(
    c_in: int, c_out: int, drop_prob: float = 0.0, block_size: int = 7, dropout: float = 0.0
) -> nn.Sequential:
    return nn.Sequential(
        conv_unit(c_in, c_out, drop_prob, block_size, dropout), conv_unit(c_out, c_out, drop_prob, block_size, dropout)
    )


class SpatialAttention(nn.Module):
    """CBAM-style spatial attention (SA-UNet): channel-wise mean and max -> 7x7 conv -> sigmoid weights."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): the coarser gating signal decides which skip pixels pass.

    The skip ``x`` is brought to the gate's grid by a strided 2x2 conv (theta),
    the gating signal by a 1x1 conv (phi); relu(theta + phi) -> 1x1 conv (psi)
    -> sigmoid gives one coefficient per pixel, resampled to ``x`` and applied
    before a 1x1 conv + BN output transform.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = inter_channels or max(skip_channels // 2, 1)
        self.theta = nn.Conv2d(skip_channels, inter, 2, stride=2, bias=False)
        self.phi = nn.Conv2d(gate_channels, inter, 1)
        self.psi = nn.Conv2d(inter, 1, 1)
        self.out = nn.Sequential(nn.Conv2d(skip_channels, skip_channels, 1), nn.BatchNorm2d(skip_channels))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        theta = self.theta(x)
        phi = F.interpolate(self.phi(g), size=theta.shape[-2:], mode="bilinear", align_corners=False)
        alpha = torch.sigmoid(self.psi(F.relu(theta + phi)))
        alpha = F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(alpha * x)


# --------------------------------------------------------------------------- encoder / decoder / net


class Encoder(nn.Module):
    """Blocks separated by 2x2 max-pooling; returns every level's features, finest first."""

    def __init__(self, blocks: Sequence[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for level, block in enumerate(self.blocks):
            x = block(self.pool(x) if level else x)
            features.append(x)
        return features


class DecoderStage(nn.Module):
    """Up-convolve the coarser map, (optionally gate the skip), concatenate, convolve."""

    def __init__(self, c_below: int, c_skip: int, block: nn.Module, gate: AttentionGate | None = None):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_below, c_skip, 2, stride=2)
        self.gate = gate
        self.block = block

    def forward(self, below: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            skip = self.gate(skip, below)
        up = self.up(below)
        if up.shape[-2:] != skip.shape[-2:]:  # odd input sizes: pooling floored, so match the skip
            up = F.interpolate(up, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([skip, up], dim=1))


class Decoder(nn.Module):
    def __init__(self, stages: Sequence[DecoderStage]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for stage, skip in zip(self.stages, reversed(features[:-1])):
            x = stage(x, skip)
        return x


class SegmentationNet(nn.Module):
    """encoder -> decoder -> 1x1 head producing logits."""

    def __init__(self, encoder: Encoder, decoder: Decoder, head: nn.Module):
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x)))


def _widths(base_channels: int, levels: int) -> list[int]:
    return [base_channels * 2**i for i in range(levels)]


# --------------------------------------------------------------------------- builders


def build_attention_unet(
    in_channels: int = 1, classes: int = 1, base_channels: int = 32, levels: int = 5
) -> SegmentationNet:
    """Attention U-Net: plain U-Net conv blocks, attention gates on every skip, gated by the level below."""
    widths = _widths(base_channels, levels)
    encoder = Encoder([conv_block(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths)])
    stages = [
        DecoderStage(c_below, c_skip, conv_block(2 * c_skip, c_skip), AttentionGate(c_skip, c_below))
        for c_below, c_skip in zip(widths[:0:-1], widths[-2::-1])
    ]
    return SegmentationNet(encoder, Decoder(stages), nn.Conv2d(widths[0], classes, 1))


def build_plain_unet(
    in_channels: int = 1, classes: int = 1, base_channels: int = 64, levels: int = 5, dropout: float = 0.1
) -> SegmentationNet:
    """The CXLSeg authors' U-Net: two 3x3 conv + BN + dropout + ReLU per level, 64 -> 1024 at the defaults,
    2x2 max-pooling down, 2x2 transposed convs up, skip concatenation, a 1x1 head giving logits (their
    sigmoid lives in the loss and in inference here, as for every registered model)."""
    widths = _widths(base_channels, levels)

    def block(c_in: int, c_out: int) -> nn.Sequential:
        return conv_block(c_in, c_out, dropout=dropout)

    encoder = Encoder([block(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths)])
    stages = [
        DecoderStage(c_below, c_skip, block(2 * c_skip, c_skip))
        for c_below, c_skip in zip(widths[:0:-1], widths[-2::-1])
    ]
    return SegmentationNet(encoder, Decoder(stages), nn.Conv2d(widths[0], classes, 1))


def build_sa_unet(
    in_channels: int = 1,
    classes: int = 1,
    base_channels: int = 16,
    levels: int = 4,
    drop_prob: float = 0.1,
    block_size: int = 7,
) -> SegmentationNet:
    """SA-UNet: DropBlock+BN+ReLU conv blocks; the bottleneck is conv unit -> spatial attention -> conv unit."""
    widths = _widths(base_channels, levels)

    def block(c_in: int, c_out: int) -> nn.Sequential:
        return conv_block(c_in, c_out, drop_prob, block_size)

    bottleneck = nn.Sequential(
        conv_unit(widths[-2], widths[-1], drop_prob, block_size),
        SpatialAttention(),
        conv_unit(widths[-1], widths[-1], drop_prob, block_size),
    )
    encoder = Encoder(
        [*(block(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-2]], widths[:-1])), bottleneck]
    )
    stages = [
        DecoderStage(c_below, c_skip, block(2 * c_skip, c_skip))
        for c_below, c_skip in zip(widths[:0:-1], widths[-2::-1])
    ]
    return SegmentationNet(encoder, Decoder(stages), nn.Conv2d(widths[0], classes, 1))


class NestedUNet(nn.Module):
    """U-Net++ (Zhou et al. 2018): node X[i][j] (level i, column j) convolves the level's earlier nodes
    X[i][0..j-1] concatenated with the up-convolved X[i+1][j-1], so every skip is a dense, nested pathway;
    X[i][0] is the encoder. Deep supervision is off, as in Zhou et al.'s default: one 1x1 head on X[0][levels-1]."""

    def __init__(self, in_channels: int = 1, classes: int = 1, base_channels: int = 32, levels: int = 5):
        super().__init__()
        self.levels = levels
        widths = _widths(base_channels, levels)
        self.encoder = Encoder([conv_block(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths)])
        self.ups, self.nodes = nn.ModuleDict(), nn.ModuleDict()
        for j in range(1, levels):
            for i in range(levels - j):
                self.ups[f"{i}_{j}"] = nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                self.nodes[f"{i}_{j}"] = conv_block((j + 1) * widths[i], widths[i])
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = [[f] for f in self.encoder(x)]
        for j in range(1, self.levels):
            for i in range(self.levels - j):
                up = self.ups[f"{i}_{j}"](grid[i + 1][j - 1])
                if up.shape[-2:] != grid[i][0].shape[-2:]:  # odd sizes: pooling floored
                    up = F.interpolate(up, size=grid[i][0].shape[-2:], mode="bilinear", align_corners=False)
                grid[i].append(self.nodes[f"{i}_{j}"](torch.cat([*grid[i], up], dim=1)))
        return self.head(grid[0][-1])


def build_plain_unetplusplus(
    in_channels: int = 1, classes: int = 1, base_channels: int = 32, levels: int = 5
) -> NestedUNet:
    """Vanilla U-Net++ with Zhou et al.'s widths (32 -> 512 over 5 levels at the defaults)."""
    return NestedUNet(in_channels, classes, base_channels, levels)


def _smp_builder(cls: type[nn.Module]) -> Callable[..., nn.Module]:
    def build(
        in_channels: int = 1,
        classes: int = 1,
        base_channels: int = 16,
        encoder_name: str = "resnet34",
        encoder_weights: str | None = None,
        encoder_depth: int = 5,
        **kw: object,
    ) -> nn.Module:
        """decoder widths base*2^(depth-1) ... base; base 16 at depth 5 is smp's default (256..16)."""
        decoder_channels = tuple(reversed(_widths(base_channels, encoder_depth)))
        return cls(
            encoder_name=encoder_name,
            encoder_weights=encoder_weights,
            encoder_depth=encoder_depth,
            decoder_channels=decoder_channels,
            in_channels=in_channels,
            classes=classes,
            **kw,
        )

    build.__name__ = f"build_{cls.__name__.lower()}"
    return build


MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": _smp_builder(smp.Unet),
    "unetplusplus": _smp_builder(smp.UnetPlusPlus),
    "attention_unet": build_attention_unet,
    "sa_unet": build_sa_unet,
    "plain_unet": build_plain_unet,
    "plain_unetplusplus": build_plain_unetplusplus,
}

SMP_MODELS = frozenset({"unet", "unetplusplus"})


def create_model(
    name: str,
    *,
    in_channels: int = 1,
    classes: int = 1,
    encoder_name: str = "resnet34",
    encoder_weights: str | None = None,
    base_channels: int | None = None,
    **kw: object,
) -> nn.Module:
    """Build a registered architecture; ``base_channels=None`` keeps each architecture's own default.

    Encoder options only reach the smp models; the own models ignore them.
    """
    if name not in MODELS:
        raise ValueError(f"unknown architecture {name!r}; valid names: {', '.join(sorted(MODELS))}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    kwargs: dict[str, object] = dict(kw, in_channels=in_channels, classes=classes)
    if base_channels is not None:
        kwargs["base_channels"] = int(base_channels)
    if name in SMP_MODELS:
        kwargs.update(encoder_name=encoder_name, encoder_weights=encoder_weights)
    else:
        kwargs.pop("encoder_depth", None)
    return MODELS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
