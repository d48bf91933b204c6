"""Every pixel format at full depth: 16-bit PNG never cut to 8 bit, DICOM MONOCHROME1 inverted, VOI LUT applied,
RLE and JPEG 2000 decoded, an unreliable BitsStored not masked, and unreadable files named with the reason."""

import cv2
import numpy as np
import pytest
from cxlseg import io
from cxlseg.archives.pixels import PERCENTILE_WINDOW, PixelReadError, Pixels, read_pixels, read_uint8, to_uint8
from cxlseg.io import ImageReadError
from cxlseg.phantoms.archive_dicom import TOP12, dicom_dataset, save, twelve_bit, voi_lut
from cxlseg.phantoms.archives import write_archive
from pydicom.uid import JPEG2000Lossless, RLELossless

SIDE = (64, 80)


@pytest.fixture(scope="module")
def values():
    return twelve_bit(3, (1,), SIDE)


def test_a_16_bit_png_is_read_at_full_depth(tmp_path):
    data = (np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) * 13 % 65536).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), data)
    pixels = read_pixels(tmp_path / "deep.png")
    assert pixels.data.dtype == np.uint16 and pixels.bits == 16 and pixels.source == "png16"
    np.testing.assert_array_equal(pixels.data, data)


def test_padchest_phantoms_use_the_16_bit_range_and_keep_it(tmp_path):
    expected = write_archive("padchest", tmp_path, 2, 3, SIDE)
    pixels = read_pixels(tmp_path / next(iter(expected["kept"].values())))
    assert pixels.data.max() > 50000 and len(np.unique(pixels.data)) > 1024


def test_deep_images_are_windowed_between_percentiles_and_8_bit_passes_unchanged():
    ramp = np.arange(10000, dtype=np.uint16).reshape(100, 100)
    ramp[0, 0] = 65535  # burned-in text at full white must not squeeze the rest
    out = to_uint8(Pixels(ramp, 16, False, "png16"))
    lo, hi = np.percentile(ramp.astype(float), PERCENTILE_WINDOW)
    assert out[50, 50] == round((ramp[50, 50] - lo) * 255 / (hi - lo))
    assert out.min() == 0 and out.max() == 255
    eight = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert to_uint8(Pixels(eight, 8, False, "png8")) is eight


def test_monochrome1_is_inverted(tmp_path, values):
    save(dicom_dataset(TOP12 - values, "m1", "MONOCHROME1"), tmp_path / "m1.dcm")
    data = read_pixels(tmp_path / "m1.dcm").data
    stored = (TOP12 - values).astype(np.float64)
    np.testing.assert_array_equal(data, stored.max() + stored.min() - stored)
    assert np.corrcoef(data.ravel(), values.ravel())[0, 1] > 0.999


def test_the_voi_lut_is_applied_before_the_inversion(tmp_path, values):
    from pydicom.dataset import Dataset

    ds = dicom_dataset(TOP12 - values, "voi", "MONOCHROME1")
    item = Dataset()
    item.LUTDescriptor = [TOP12 + 1, 0, 16]
    item.add_new(0x00283006, "OW", voi_lut().astype("<u2").tobytes())
    ds.VOILUTSequence = [item]
    save(ds, tmp_path / "voi.dcm")
    pixels = read_pixels(tmp_path / "voi.dcm")
    looked_up = voi_lut()[TOP12 - values].astype(np.float64)
    np.testing.assert_array_equal(pixels.data, looked_up.max() + looked_up.min() - looked_up)
    assert pixels.windowed


def test_window_center_and_width_are_applied(tmp_path, values):
    save(dicom_dataset(values, "win", WindowCenter=2048, WindowWidth=1024), tmp_path / "win.dcm")
    data = read_pixels(tmp_path / "win.dcm").data
    assert data[values <= 1536].max() == data.min() and data[values >= 2560].min() == data.max()


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "jpeg2000"])
def test_compressed_transfer_syntaxes_are_decoded(tmp_path, values, syntax):
    save(dicom_dataset(values, f"c{syntax}"), tmp_path / "c.dcm", syntax)
    pixels = read_pixels(tmp_path / "c.dcm")
    assert pixels.source == f"dicom:{syntax.name}"
    np.testing.assert_array_equal(pixels.data, values)


def test_an_unreliable_bits_stored_does_not_mask_the_high_bits(tmp_path, values):
    deep = values.astype(np.uint16) * 16  # 16-bit data; the header still says BitsStored 12
    save(dicom_dataset(deep, "bits"), tmp_path / "bits.dcm")
    pixels = read_pixels(tmp_path / "bits.dcm")
    np.testing.assert_array_equal(pixels.data, deep)
    assert pixels.bits == 16


def test_a_file_without_transfer_syntax_is_read_in_the_syntax_it_was_parsed_in(tmp_path):
    expected = write_archive("vindr", tmp_path, 4, 3, SIDE)
    bare = [p for p in expected["kept"].values() if read_pixels(tmp_path / p).source.startswith("dicom:Implicit")]
    assert len(bare) == 1


def test_unsupported_transfer_syntax_names_the_syntax(tmp_path, values):
    from pydicom.encaps import encapsulate

    ds = dicom_dataset(values, "mpeg")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile / Main Level
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    with io.atomic_path(tmp_path / "mpeg.dcm") as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    with pytest.raises(PixelReadError, match="MPEG2.*has no decoder in pydicom") as info:
        read_pixels(tmp_path / "mpeg.dcm")
    assert "mpeg.dcm" in str(info.value)


def test_unreadable_files_fail_with_the_file_and_the_reason(tmp_path, values):
    cases = {
        "garbage.png": (b"\x89PNG not really", "not a decodable image"),
        "empty.jpg": (b"", "file is empty"),
        "notes.txt": (b"hello", "unsupported file type .txt"),
        "bad.dcm": (b"\x00" * 128 + b"DICM" + b"\x02\x00\x10", "no PixelData"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageReadError, match=reason) as info:
            read_uint8(tmp_path / name)
        assert info.value.path.endswith(name) and reason in info.value.reason
    with pytest.raises(PixelReadError, match="file not found"):
        read_pixels(tmp_path / "absent.png")


def test_a_truncated_16_bit_png_fails_rather_than_reading_half(tmp_path, values):
    ok, buf = cv2.imencode(".png", values.astype(np.uint16) * 16)
    (tmp_path / "cut.png").write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(PixelReadError, match="cut.png"):
        read_pixels(tmp_path / "cut.png")


def test_every_kept_film_of_every_synthetic_archive_reads_to_8_bit(tmp_path):
    for kind in ("chexpert", "chestxray14", "padchest", "vindr", "folder"):
        expected = write_archive(kind, tmp_path / kind, 6, 3, SIDE)
        paths = expected["kept"] if kind == "folder" else expected["kept"].values()
        for rel in paths:
            image = read_uint8(tmp_path / kind / rel)
            assert image.dtype == np.uint8 and image.ndim == 2 and image.std() > 10, (kind, rel)
