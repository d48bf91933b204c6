import os
import stat
import threading
import time

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg import io


@pytest.mark.parametrize("rel", ["../etc/passwd", "/etc/passwd", "a/../../b", "~/x", "C:/x", ""])
def test_safe_join_rejects_escapes(tmp_path, rel):
    with pytest.raises(io.UnsafePathError):
        io.safe_join(tmp_path, rel)


def test_safe_join_accepts_relative(tmp_path):
    assert io.safe_join(tmp_path, "files/p10/x.jpg") == tmp_path / "files" / "p10" / "x.jpg"


def test_remove_stale_temps_removes_only_the_given_targets_leftovers(tmp_path):
    """What a SIGKILL mid-write leaves (the name atomic_path's temporaries really get) is removed for the given
    targets only; another target's temporary in the same folder, a dotfile and a missing folder are left alone."""
    target, other = tmp_path / "a" / "x.jpg", tmp_path / "a" / "y.jpg"
    target.parent.mkdir()
    with pytest.raises(KeyboardInterrupt):  # the nearest a test gets to a kill: the temporary is created...
        with io.atomic_path(target) as tmp:
            os.link(tmp, tmp_path / "kept-link")  # ...and survives here, as a killed job's would in place
            raise KeyboardInterrupt
    os.link(tmp_path / "kept-link", tmp)
    theirs = io._create_temp(other)
    dotfile = tmp_path / "a" / ".x.jpg.notes"
    dotfile.write_text("mine")
    assert io.remove_stale_temps([target, tmp_path / "gone" / "z.jpg"]) == 1
    assert not tmp.exists() and theirs.exists() and dotfile.exists()
    assert io.remove_stale_temps([target]) == 0


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_read_image_reasons(tmp_path):
    good = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", good)
    data = buf.tobytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8" + b"garbage" * 50 + b"\xff\xd9")
    (tmp_path / "empty.png").write_bytes(b"")
    cases = {"trunc.jpg": "truncated", "junk.jpg": "not a decodable", "empty.png": "empty", "missing.png": "not found"}
    for name, reason in cases.items():
        with pytest.raises(io.ImageReadError, match=reason) as err:
            io.read_image(tmp_path / name)
        assert name in str(err.value)


def test_twelve_bit_png_stretches_without_wrap(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 256).astype(np.uint16), (8, 1))
    io.write_image(tmp_path / "deep.png", ramp)
    gray = io.read_gray(tmp_path / "deep.png")
    assert gray.dtype == np.uint8
    assert gray.min() == 0 and gray.max() == 255
    assert np.all(np.diff(gray[0].astype(int)) >= 0), "monotone ramp must stay monotone (no wrap-around)"


def test_rgb_becomes_gray():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., :] = 100
    assert io.to_gray_uint8(rgb).shape == (4, 4)


def test_csv_gz_is_reproducible(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"a": [1, 2]})
    io.write_csv(df, tmp_path / "a.csv.gz")
    first = (tmp_path / "a.csv.gz").read_bytes()
    io.write_csv(df, tmp_path / "a.csv.gz")
    assert (tmp_path / "a.csv.gz").read_bytes() == first


# --------------------------------------------------------------------------- file modes


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    """Run the test under this umask; the process umask is restored afterwards."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _plain_open_mode(folder) -> int:
    ref = folder / "plain-open-reference"
    with open(ref, "w"):
        pass
    mode = stat.S_IMODE(ref.stat().st_mode)
    ref.unlink()
    return mode


def _write_checkpoint(path):
    torch = pytest.importorskip("torch")
    with io.atomic_path(path) as tmp:
        torch.save({"weights": torch.zeros(2)}, tmp)


WRITERS = {
    "bytes.bin": lambda p: io.write_bytes(p, b"x"),
    "text.txt": lambda p: io.write_text(p, "x"),
    "image.jpg": lambda p: io.write_image(p, np.zeros((8, 8), np.uint8)),
    "table.csv.gz": lambda p: io.write_csv(pd.DataFrame({"a": [1]}), p),
    "table.csv": lambda p: io.write_csv(pd.DataFrame({"a": [1]}), p),
    "table.parquet": lambda p: io.write_parquet(pd.DataFrame({"a": [1]}), p),
    "summary.json": lambda p: io.write_json(p, {"a": 1}),
    "model.pt": _write_checkpoint,
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_outputs_get_the_mode_of_a_plain_open(tmp_path, umask, name):
    """mkstemp's 0600 would make the dataset unreadable to the rest of the lab on a shared file system."""
    path = tmp_path / "sub" / name
    WRITERS[name](path)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == _plain_open_mode(path.parent)
    assert mode == 0o666 & ~umask  # 0644 under 022, 0664 under 002 (no default ACL on tmp_path)
    assert sorted(p.name for p in path.parent.iterdir()) == [name]


def test_overwrite_gets_the_current_umask_too(tmp_path):
    path = tmp_path / "x.bin"
    old = os.umask(0o077)
    try:
        io.write_bytes(path, b"1")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        os.umask(0o022)
        io.write_bytes(path, b"2")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_bytes() == b"2"
    finally:
        os.umask(old)


def test_temporary_names_are_unique_and_hidden(tmp_path):
    names = set()
    for _ in range(50):
        with io.atomic_path(tmp_path / "a.csv.gz") as tmp:
            names.add(tmp.name)
            assert tmp.name.startswith(".a.csv.gz.") and tmp.name.endswith(".tmp.gz") and tmp.exists()
    assert len(names) == 50


def _blocked_on(path) -> bool:
    """Whether the kernel lists a process waiting for a lock on `path` (a '->' line of /proc/locks)."""
    st = os.stat(path)
    file_id = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any("->" in line and file_id in line.split() for line in open("/proc/locks").read().splitlines())


def test_exclusive_lock_makes_a_second_holder_wait(tmp_path):
    """Two holders of one lock (two jobs of one shard) run one after the other, never together: the first lets go
    only once the kernel shows the second blocked on the lock, so no timing decides the order."""
    lock, events = tmp_path / "locks" / "p10.lock", []

    def second():
        with io.exclusive_lock(lock):
            events.append("second in")

    with io.exclusive_lock(lock):
        waiter = threading.Thread(target=second)
        waiter.start()
        deadline = time.monotonic() + 10
        while not _blocked_on(lock):
            assert time.monotonic() < deadline and waiter.is_alive(), f"the second holder never waited: {events}"
            time.sleep(0.01)
        events.append("first out")
    waiter.join(10)
    assert not waiter.is_alive() and events == ["first out", "second in"]
    with io.exclusive_lock(lock):  # released by both: free again
        pass
