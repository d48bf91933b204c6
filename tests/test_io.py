import numpy as np
import pytest
import cv2

from cxlseg import io


@pytest.mark.parametrize("rel", ["../etc/passwd", "/etc/passwd", "a/../../b", "~/x", "C:/x", ""])
def test_safe_join_rejects_escapes(tmp_path, rel):
    with pytest.raises(io.UnsafePathError):
        io.safe_join(tmp_path, rel)


def test_safe_join_accepts_relative(tmp_path):
    assert io.safe_join(tmp_path, "files/p10/x.jpg") == tmp_path / "files" / "p10" / "x.jpg"


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
