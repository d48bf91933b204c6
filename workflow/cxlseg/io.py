"""Safe, atomic file I/O shared by every stage.

Every output goes through a temporary file and an atomic rename so a killed job
never leaves a half-written image or table behind, and every path read from a
CSV or JSON goes through :func:`safe_join` so it cannot escape its root.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import logging
import os
import re
import secrets
import sys
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

import cv2
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


class UnsafePathError(ValueError):
    """A path from data tried to leave its configured root."""


class ImageReadError(IOError):
    """An image could not be decoded; carries the file and the reason."""

    def __init__(self, path: os.PathLike | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def safe_join(root: os.PathLike | str, rel: os.PathLike | str) -> Path:
    """Join a data-supplied relative path onto root, refusing absolute paths and '..'."""
    rel_str = str(rel).replace("\\", "/")
    if not rel_str or rel_str.strip() == "":
        raise UnsafePathError(f"empty path under {root}")
    pure = PurePosixPath(rel_str)
    if pure.is_absolute() or rel_str.startswith("~") or (len(rel_str) > 1 and rel_str[1] == ":"):
        raise UnsafePathError(f"absolute path not allowed: {rel_str!r} (root {root})")
    if any(part == ".." for part in pure.parts):
        raise UnsafePathError(f"'..' not allowed in path: {rel_str!r} (root {root})")
    return Path(root) / Path(*pure.parts)


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it over `path` only if the block succeeds.

    The file ends up with the mode a plain ``open(path, "w")`` would give (0644 under umask 022,
    0664 under 002, plus any default ACL of the folder), not mkstemp's 0600: see _create_temp.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temp(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _create_temp(path: Path) -> Path:
    """Create an empty, uniquely named sibling of `path` with mode 0666 filtered by the kernel's umask.

    tempfile.mkstemp always creates 0600, which os.replace then carries over to the dataset: nobody
    else in the lab could read it on a shared file system. Letting open(2) apply the umask (and the
    folder's default ACL) is the only thread-safe way to get a plain open()'s mode: reading the umask
    means setting it (os.umask), which races with every other thread creating files.
    """
    suffix = ".tmp" + "".join(path.suffixes[-1:])
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{12}\.tmp(\.[^./]+)?$")  # what _create_temp names


def remove_stale_temps(targets: Iterable[os.PathLike | str]) -> int:
    """Remove the temporary siblings that `atomic_path` left beside these targets when a job was killed mid-write
    (its `finally` never ran); returns how many. One listing per folder, and only the given targets' temporaries
    go: a job writing other files into a shared folder (a flat archive layout) keeps its own."""
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        target = Path(target)
        by_folder.setdefault(target.parent, set()).add(target.name)
    removed = 0
    for folder, names in by_folder.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:  # no folder yet, or a file in its place: nothing left here (the write itself will say)
            continue
        for entry in entries:
            found = _TEMP_NAME.match(entry.name)
            if found and found["target"] in names and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                except OSError:  # gone meanwhile, or not ours to remove: leftovers never stop a job
                    continue
                removed += 1
    return removed


def write_bytes(path: os.PathLike | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: os.PathLike | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: os.PathLike | str, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: os.PathLike | str):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_image(path: os.PathLike | str, image: np.ndarray, params: list[int] | None = None) -> None:
    """Encode in memory by the file's suffix, then write atomically."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix, image, params or [])
    if not ok:
        raise IOError(f"{path}: OpenCV could not encode a {image.dtype} {image.shape} image")
    write_bytes(path, buf.tobytes())


def write_parquet(df: pd.DataFrame, path: os.PathLike | str) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_csv(df: pd.DataFrame, path: os.PathLike | str, compresslevel: int = 6) -> None:
    """CSV (gzip when the name ends in .gz) written atomically; mtime-free gzip for reproducible bytes."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".gz":
            # No file name and mtime 0 in the gzip header: same table, same bytes.
            with (
                open(tmp, "wb") as raw,
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel) as gz,
            ):
                gz.write(df.to_csv(index=False).encode("utf-8"))
        else:
            df.to_csv(tmp, index=False)


def read_image(path: os.PathLike | str, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Decode an image or raise ImageReadError naming the file and why."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty")
    data = np.fromfile(path, dtype=np.uint8)
    if path.suffix.lower() in {".jpg", ".jpeg"} and not _jpeg_complete(data):
        raise ImageReadError(path, "truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(data, flags)
    if image is None:
        raise ImageReadError(path, "not a decodable image (corrupt or unsupported format)")
    return image


def _jpeg_complete(data: np.ndarray) -> bool:
    """A JPEG must start with SOI and end with EOI (trailing padding allowed)."""
    if data.size < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return False
    tail = data[-64:].tobytes().rstrip(b"\x00\r\n ")
    return tail.endswith(b"\xff\xd9")


def to_gray_uint8(image: np.ndarray, path: os.PathLike | str = "<array>") -> np.ndarray:
    """Any decoded radiograph (8/12/16-bit, gray/RGB/RGBA) to 8-bit gray.

    Deep images are stretched from their own min to max so that 12-bit data
    stored in 16-bit PNGs neither clips nor wraps around.
    """
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif image.shape[2] == 1:
            image = image[:, :, 0]
        else:
            raise ImageReadError(path, f"unsupported channel count {image.shape[2]}")
    if image.dtype == np.uint8:
        return image
    if image.dtype not in (np.uint16, np.int16, np.float32, np.float64):
        raise ImageReadError(path, f"unsupported pixel type {image.dtype}")
    img = image.astype(np.float64)
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros(image.shape, np.uint8)
    return np.clip(np.round((img - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def bit_depth(image: np.ndarray) -> int:
    return int(image.dtype.itemsize * 8)


def read_gray(path: os.PathLike | str) -> np.ndarray:
    return to_gray_uint8(read_image(path), path)


def read_mask(path: os.PathLike | str) -> np.ndarray:
    """A lung mask as 0/1 uint8 (anything above half-scale is lung)."""
    image = read_image(path)
    gray = to_gray_uint8(image, path) if image.dtype != np.uint8 or image.ndim == 3 else image
    return (gray > 127).astype(np.uint8)


@contextlib.contextmanager
def log_to(log_path: os.PathLike | str | None, level: int = logging.INFO) -> Iterator[None]:
    """Send logging (and stray prints) of a rule's script to its Snakemake log file."""
    if not log_path:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        yield
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level)
        with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            try:
                yield
            except BaseException:
                logging.getLogger("cxlseg").exception("rule failed")
                raise
            finally:
                root.removeHandler(handler)
                fh.flush()
        sys.stdout.flush()


@contextlib.contextmanager
def exclusive_lock(path: os.PathLike | str) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing), waiting for any other holder first.

    Two jobs for the same output (a job that outlived its killed controller and the one a restarted controller
    submits) then run one after the other, so the second finds the first's work done instead of redoing it.
    The kernel drops the lock when its holder dies, however it dies; a file system without locks only warns.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s is held by another job on the same output: waiting for it to finish", path)
            fcntl.flock(fh, fcntl.LOCK_EX)
            log.info("%s acquired", path)
        except OSError as exc:  # e.g. ENOLCK on a file system mounted without locks
            log.warning("cannot lock %s (%s): running without it", path, exc)
        yield
