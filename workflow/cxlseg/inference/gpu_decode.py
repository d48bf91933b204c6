"""GPU JPEG decoding for the shard loop (`infer.decode_device: gpu`).

On a GPU node the CPU decode is the bound: a 3056x2544 MIMIC JPEG costs a core ~10-20 ms even with reduced-DCT
decoding, so a GPU that segments thousands of images per second needs dozens of cores to keep fed. Here the
DataLoader workers only read bytes; the batch is decoded by nvJPEG (`torchvision.io.decode_jpeg` on the
inference device), resized to the output size on the device as the model was trained (area, or bilinear for
`preprocess.interpolation: linear`), and only the small output-size images come back to the CPU for the
network's usual `InputSpec.prepare` (resize + CLAHE), so the model sees the same kind of input as with CPU
decoding (full decode + area resize, the reference the reduced-DCT path approximates; or full decode + linear).

Anything the batch decoder cannot take (a corrupt or non-JPEG file, an unsafe id, a CMYK JPEG nvJPEG refuses)
goes through the CPU path of the same shard dataset, so failures and their reasons are the CPU path's.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from cxlseg import io
from cxlseg.mimic import id_problem

log = logging.getLogger(__name__)


def resolve_decode_device(requested: str, device: torch.device) -> str:
    """'gpu' only where it can run (a CUDA predictor and a torchvision with decode_jpeg); else 'cpu', warned."""
    if requested != "gpu":
        return "cpu"
    if torch.device(device).type != "cuda":
        log.warning("infer.decode_device gpu needs a CUDA device, inference runs on %s: decoding on the CPU", device)
        return "cpu"
    if _decode_jpeg() is None:
        log.warning("infer.decode_device gpu needs torchvision.io.decode_jpeg: decoding on the CPU")
        return "cpu"
    return "gpu"


def _decode_jpeg():
    try:
        from torchvision.io import decode_jpeg
    except ImportError:
        return None
    return decode_jpeg


class RawReader(torch.utils.data.Dataset):
    """The bytes of each listed JPEG (workers do I/O only); None where the CPU path must decide."""

    def __init__(self, shard):
        self.shard = shard

    def __len__(self) -> int:
        return len(self.shard.items)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None]:
        item = self.shard.items[index]
        try:
            if id_problem(item["dicom_id"], item["subject_id"], item["study_id"]):
                return index, None
            data = np.fromfile(io.safe_join(self.shard.root, item["image_path"]), dtype=np.uint8)
        except Exception:  # noqa: BLE001 - the CPU path names the reason
            return index, None
        return index, (data if io._jpeg_complete(data) else None)  # a truncated file fails as on the CPU


def _as_list(raw: list) -> list:
    return raw


class BatchDecoder:
    """A read batch -> the samples `ShardDataset` would give, decoded on `device` (the shard's own CPU path
    for what nvJPEG cannot decode)."""

    def __init__(self, shard, device: torch.device | str):
        self.shard, self.device = shard, torch.device(device)
        self.size = int(shard.output_size)

    def __call__(self, raw: list[tuple[int, np.ndarray | None]]) -> list[dict]:
        jpegs = [(i, data) for i, data in raw if data is not None]
        decoded = dict(zip([i for i, _ in jpegs], self._decode([d for _, d in jpegs])))
        return [self._sample(i, decoded.get(i)) for i, _ in raw]

    def _decode(self, blobs: list[np.ndarray]) -> list[torch.Tensor | None]:
        """(1, H, W) uint8 tensors on the device; one bad file retries the rest one by one."""
        if not blobs:
            return []
        decode_jpeg = _decode_jpeg()
        from torchvision.io import ImageReadMode

        tensors = [torch.from_numpy(b) for b in blobs]
        try:
            return list(decode_jpeg(tensors, mode=ImageReadMode.GRAY, device=self.device))
        except Exception:  # noqa: BLE001 - find the culprit below
            pass
        out = []
        for t in tensors:
            try:
                out.append(decode_jpeg(t, mode=ImageReadMode.GRAY, device=self.device))
            except Exception:  # noqa: BLE001 - this image goes to the CPU path
                out.append(None)
        return out

    def _sample(self, index: int, image: torch.Tensor | None) -> dict:
        if image is None:
            return self.shard[index]
        height, width = int(image.shape[-2]), int(image.shape[-1])
        resized = device_resize(image, self.size, self.shard.spec.interpolation)
        return self.shard.decoded(index, resized, (height, width), 1, "")


def area_resize(image: torch.Tensor, size: int) -> np.ndarray:
    """(1, H, W) uint8 on any device -> (size, size) uint8 numpy, pixel-area averaged like cv2.INTER_AREA."""
    return device_resize(image, size, "area")


def device_resize(image: torch.Tensor, size: int, interpolation: str = "area") -> np.ndarray:
    """(1, H, W) uint8 on any device -> (size, size) uint8 numpy: area averages pixels like cv2.INTER_AREA;
    linear samples bilinearly at pixel centres without antialiasing, like cv2.INTER_LINEAR (within 1 level)."""
    x = image.reshape(1, 1, *image.shape[-2:]).float()
    if interpolation == "linear":
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    elif interpolation == "area":
        y = F.interpolate(x, size=(size, size), mode="area")
    else:
        raise ValueError(f"interpolation must be area or linear, got {interpolation!r}")
    return y.round_().clamp_(0, 255).to(torch.uint8)[0, 0].cpu().numpy()


def batches(shard, batch_size: int, num_workers: int, device: torch.device, collate: Callable) -> Iterator[dict]:
    """Collated batches of `shard` (a ShardDataset), the files read by `num_workers` processes and decoded
    on `device`; `collate` is the shard loop's own, so the loop cannot tell the two decoders apart."""
    loader = torch.utils.data.DataLoader(
        RawReader(shard),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_list,
        prefetch_factor=4 if num_workers else None,
    )
    decode = BatchDecoder(shard, device)
    for raw in loader:
        yield collate(decode(raw))
