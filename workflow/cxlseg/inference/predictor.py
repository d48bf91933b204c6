"""One predictor for evaluation, model selection, QC and production inference (nnU-Net's habit).

A `Predictor` is built from checkpoints alone: the network, the preprocessing it was trained with
(network size, CLAHE, channels), test-time flips, and the output size. Evaluation on the test split
and the shard loop that segments 243k images call the same `prepare` and `forward`, so the numbers
in Table IV describe the code that writes the dataset.

Several checkpoints make an ensemble: their probabilities (not logits) are averaged, as are the
flip-TTA passes, so every averaging in the package happens in probability space.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cxlseg import film as films
from cxlseg import preprocess
from cxlseg.device import amp_dtype as resolve_amp_dtype
from cxlseg.device import compiled, resolve_device
from cxlseg.training.checkpoint import load_model


@dataclass(frozen=True)
class InputSpec:
    """The network input a model was trained on; picklable, so decode workers prepare images with it."""

    net_size: int
    in_channels: int
    clahe_clip: float
    clahe_tiles: int
    clahe_space: str = "gray"  # checkpoints written before clahe_space existed used gray
    interpolation: str = "area"  # preprocess.interpolation; checkpoints written before it existed used area
    polarity_template: tuple[float, ...] | None = None  # film.polarity_template of the training films (None: older)

    @classmethod
    def from_train_config(cls, config: dict, polarity_template=None) -> "InputSpec":
        return cls(
            net_size=int(config["size"]),
            in_channels=int(config["in_channels"]),
            clahe_clip=float(config["clahe_clip"]),
            clahe_tiles=int(config["clahe_tiles"]),
            clahe_space=str(config.get("clahe_space", "gray")),
            interpolation=str(config.get("interpolation", "area")),
            polarity_template=tuple(polarity_template) if polarity_template is not None else None,
        )

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """uint8 gray radiograph (any size) -> the network's uint8 input: resize first, then CLAHE, as in training."""
        return preprocess.prepare(
            image,
            self.net_size,
            self.clahe_clip,
            self.clahe_tiles,
            space=self.clahe_space,
            interpolation=self.interpolation,
        )

    def prepare_film(self, image: np.ndarray, settings: films.FilmSettings) -> tuple[np.ndarray, films.FilmCheck]:
        """The network input of the film inside `image` (border cropped, polarity righted, as `settings` say) and
        the check that maps the film's mask back onto `image`."""
        check = films.inspect(image, self.polarity_template, settings)
        return self.prepare(check.film(image)), check

    def film_batch(self, images, settings: films.FilmSettings) -> tuple[torch.Tensor, tuple[films.FilmCheck, ...]]:
        """A batch of whole images -> the network's input tensor of their films, and each image's check."""
        prepared, checks = zip(*(self.prepare_film(np.asarray(image), settings) for image in images))
        return self.to_tensor(np.stack(prepared)), checks

    def to_tensor(self, prepared: np.ndarray) -> torch.Tensor:
        """uint8 (N, h, w) prepared images -> float32 (N, C, h, w) in [0, 1]."""
        return torch.from_numpy(preprocess.to_model_input(np.asarray(prepared), self.in_channels))


@dataclass(frozen=True)
class Prediction:
    """One batch's lung probabilities (N, S, S) and per-image agreement (N,); NaN where it does not apply."""

    prob: np.ndarray
    member_agreement: np.ndarray  # mean Dice of each ensemble member's mask with the ensemble's (NaN: one model)
    member_agreement_min: np.ndarray  # the least agreeing member
    flip_agreement: np.ndarray  # Dice of the plain and the mirrored pass (NaN without tta_flip)
    perturb_agreement: np.ndarray  # Dice with the mask of a blurred, re-exposed input (NaN without perturb)

    def agreement(self, i: int) -> dict:
        """Image i's agreement features, as QC reads them."""
        return {
            "member_agreement": float(self.member_agreement[i]),
            "member_agreement_min": float(self.member_agreement_min[i]),
            "flip_agreement": float(self.flip_agreement[i]),
            "perturb_agreement": float(self.perturb_agreement[i]),
        }


def perturbed(x: torch.Tensor) -> torch.Tensor:
    """A harder look at the same film: blurred, darker mid-tones, flatter contrast. A network that segments a film
    confidently draws nearly the same lungs; one that is guessing (a film unlike its training films) does not."""
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device, dtype=x.dtype)
    kernel = (kernel / kernel.sum()).view(1, 1, 1, 5).repeat(x.shape[1], 1, 1, 1)
    blurred = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kernel, groups=x.shape[1])
    blurred = F.conv2d(F.pad(blurred, (0, 0, 2, 2), mode="replicate"), kernel.transpose(2, 3), groups=x.shape[1])
    return (0.5 + 0.7 * (blurred.clamp(0, 1) ** 1.6 - 0.5)).clamp(0, 1)


def _mask_dice(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Dice of two boolean (N, 1, H, W) masks; 1 when both are empty."""
    inter = (a & b).sum((1, 2, 3)).float()
    total = (a.sum((1, 2, 3)) + b.sum((1, 2, 3))).float()
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))


class Predictor:
    """Lung probabilities from one model or an ensemble; CUDA gets mixed precision and channels_last."""

    def __init__(
        self,
        models: Sequence[nn.Module],
        spec: InputSpec,
        *,
        device: torch.device | str = "cpu",
        tta_flip: bool = False,
        perturb: bool = False,
        model_id: str = "model",
        amp_dtype: torch.dtype | str = torch.float16,
        compile: bool = False,
    ):
        self.device = torch.device(device)
        self.models = [m.to(self.device).eval() for m in models]
        if self.device.type == "cuda":
            self.models = [m.to(memory_format=torch.channels_last) for m in self.models]
        self.spec, self.tta_flip, self.perturb, self.model_id = spec, bool(tta_flip), bool(perturb), model_id
        self.amp_dtype = resolve_amp_dtype(amp_dtype, self.device)
        self.models = compiled(self.models, compile)  # infer.compile: after channels_last, before use

    @classmethod
    def from_checkpoints(
        cls,
        checkpoints: Sequence[Path | str] | Path | str,
        *,
        device: str = "auto",
        tta_flip: bool = False,
        perturb: bool = False,
        **speed,
    ) -> "Predictor":
        """One checkpoint, or several (an ensemble) that must share their input preprocessing; `speed` holds
        the speed-only options (amp_dtype, compile)."""
        paths = [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints)
        if not paths:
            raise ValueError("a predictor needs at least one checkpoint")
        dev = resolve_device(device)
        loaded = [load_model(p, dev) for p in paths]
        specs = {InputSpec.from_train_config(meta["config"], meta.get("polarity_template")) for _, meta in loaded}
        if len(specs) > 1:
            raise ValueError(f"ensemble members differ in input preprocessing: {sorted(map(str, specs))}")
        model_id = "+".join(meta["model_id"] for _, meta in loaded)
        return cls(
            [m for m, _ in loaded],
            specs.pop(),
            device=dev,
            tta_flip=tta_flip,
            perturb=perturb,
            model_id=model_id,
            **speed,
        )

    def _autocast(self):
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def forward(self, x: torch.Tensor, out_size: int | None = None) -> np.ndarray:
        """Probabilities (N, out_size, out_size) float32 for a prepared batch (default: the network's size)."""
        return self.predict_batch(x, out_size).prob

    def predict_batch(
        self, x: torch.Tensor, out_size: int | None = None, threshold: float | None = None
    ) -> "Prediction":
        """Probabilities plus how much the ensemble members and the flip passes agree, per image (agreement needs
        the mask threshold, `infer.threshold`; without one, NaN: probabilities only).

        Agreement is the Dice between thresholded masks at the network's size, computed on the device: a member
        (or the mirrored pass) that draws a different lung is the cheapest sign that the mask is doubtful.
        """
        with torch.inference_mode(), self._autocast():
            x = x.to(self.device, non_blocking=True)
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            flips = (False, True) if self.tta_flip else (False,)
            members, passes = [], [0.0] * len(flips)
            for model in self.models:
                member = 0.0
                for k, flip in enumerate(flips):
                    p = self._probabilities(model, x.flip(-1) if flip else x)
                    p = p.flip(-1) if flip else p
                    member, passes[k] = member + p, passes[k] + p
                members.append(member / len(flips))
            prob = torch.stack(members).mean(0)
            agree = threshold is not None
            member_dice = (
                torch.stack([_mask_dice(m >= threshold, prob >= threshold) for m in members])
                if agree and len(members) > 1
                else None  # one model: nothing to agree with
            )
            agreement = {
                "member_agreement": None if member_dice is None else member_dice.mean(0),
                "member_agreement_min": None if member_dice is None else member_dice.amin(0),
                "flip_agreement": _mask_dice(
                    passes[0] >= threshold * len(self.models), passes[-1] >= threshold * len(self.models)
                )
                if agree and self.tta_flip
                else None,
                "perturb_agreement": self._perturb_agreement(x, prob, threshold) if agree and self.perturb else None,
            }
            if out_size and prob.shape[-1] != out_size:
                prob = F.interpolate(prob, size=(out_size, out_size), mode="bilinear", align_corners=False)
        n = prob.shape[0]
        return Prediction(
            prob=prob[:, 0].float().cpu().numpy(),
            **{
                k: np.full(n, np.nan, np.float32) if v is None else v.float().cpu().numpy()
                for k, v in agreement.items()
            },
        )

    def _perturb_agreement(self, x: torch.Tensor, prob: torch.Tensor, threshold: float) -> torch.Tensor:
        """Dice of the ensemble's mask with its mask of `perturbed(x)` (one more forward pass per member)."""
        harder = perturbed(x)
        other = torch.stack([self._probabilities(model, harder) for model in self.models]).mean(0)
        return _mask_dice(other >= threshold, prob >= threshold)

    @staticmethod
    def _probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        if logits.ndim != 4 or logits.shape[1] != 1 or logits.shape[2:] != x.shape[2:]:
            raise ValueError(f"model returned {tuple(logits.shape)} for input {tuple(x.shape)}; expected (N,1,H,W)")
        return torch.sigmoid(logits.float())

    def predict(
        self,
        images: np.ndarray,
        *,
        out_size: int | None = None,
        batch_size: int = 16,
        progress: bool = False,
        film: films.FilmSettings | None = None,
    ) -> np.ndarray:
        """uint8 (N, H, W) radiographs -> probabilities (N, S, S), S = out_size or the images' own size.

        With `film` settings each image is segmented as inference segments it: the film alone, upright, its
        probabilities mapped back onto the whole image (`films.FilmCheck.restore`)."""
        images = np.asarray(images)
        size = int(out_size or images.shape[-1])
        out = np.empty((len(images), size, size), np.float32)
        for start in tqdm(range(0, len(images), batch_size), desc="predict", disable=not progress, leave=False):
            chunk = [np.asarray(img) for img in images[start : start + batch_size]]
            if film is None:
                x = self.spec.to_tensor(np.stack([self.spec.prepare(img) for img in chunk]))
                out[start : start + len(chunk)] = self.forward(x, size)
                continue
            x, checks = self.spec.film_batch(chunk, film)
            prob = self.forward(x, images.shape[-1])
            for j, check in enumerate(checks):
                restored = check.restore(prob[j])
                out[start + j] = restored if size == restored.shape[-1] else preprocess.resize(restored, size, "linear")
        return out


def ensemble_checkpoints(selected: dict, k: int) -> list[str]:
    """The ensemble inference loads from selected.json (written by rule select_model): the selected model's
    checkpoint, then the next best architectures', k in all (fewer if fewer trained)."""
    chosen = selected["architecture"]
    members = [chosen, *(m for m in selected.get("ranking", [chosen]) if m != chosen)][: max(1, int(k))]
    return [selected["checkpoints"][m] if m != chosen else selected["checkpoint"] for m in members]
