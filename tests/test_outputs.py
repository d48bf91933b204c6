"""What inference writes per image (cxlseg.inference.outputs): the segmented image, the mask file and their paths."""

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg import io, preprocess
from cxlseg.inference import postprocess as post
from cxlseg.inference.outputs import finish_image, mask_file, output_paths, segmented_image


def _lungs(size=224):
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (68, 110), (34, 70), 0, 0, 360, 1, -1)
    cv2.ellipse(mask, (158, 115), (30, 64), 0, 0, 360, 1, -1)
    return mask


def test_output_paths_mirror_the_source_folder():
    item = {"subject_id": "10000032", "study_id": "50414267", "dicom_id": "02aa804e-bde0afdd"}
    assert output_paths(item, "jpg") == (
        "files/p10/p10000032/s50414267/02aa804e-bde0afdd.jpg",
        "files/p10/p10000032/s50414267/02aa804e-bde0afdd-mask.jpg",
    )
    assert output_paths(item, "png")[1].endswith("-mask.png")


def test_mask_file_plain_or_separate_lungs():
    mask = _lungs()
    assert set(np.unique(mask_file(mask, False))) == {0, 255}
    labelled = mask_file(mask, True)
    assert labelled[110, 68] == post.LABEL_GRAY[post.RIGHT_LUNG] == 128
    assert labelled[115, 158] == post.LABEL_GRAY[post.LEFT_LUNG] == 255 and labelled[0, 0] == 0


@pytest.mark.parametrize("space", ["gray", "lab"])
def test_segmented_image_is_the_original_and_the_mask(toys, space):
    resized = preprocess.resize(toys.radiograph_like(300, 260), 224)
    mask = _lungs()
    spec = toys.spec()
    spec = type(spec)(224, 1, 2.0, 8, space)
    original = segmented_image(resized, mask, "original", spec)
    assert np.array_equal(original, np.where(mask > 0, resized, 0))
    clahe = segmented_image(resized, mask, "clahe", spec)
    assert np.array_equal(clahe, np.where(mask > 0, preprocess.clahe(resized, 2.0, 8, space), 0))
    assert not np.array_equal(original, clahe)


def test_segmented_image_channels(toys):
    """infer.segmented_channels 3 writes CXLSeg's 3-channel JPEG layout: the same pixels in B, G and R."""
    resized = preprocess.resize(toys.radiograph_like(300, 260), 224)
    gray = segmented_image(resized, _lungs(), "original", toys.spec())
    color = segmented_image(resized, _lungs(), "original", toys.spec(), channels=3)
    assert color.shape == (224, 224, 3) and all(np.array_equal(color[..., c], gray) for c in range(3))
    with pytest.raises(ValueError, match="segmented_channels must be 1 or 3"):
        segmented_image(resized, _lungs(), "original", toys.spec(), channels=2)


def test_finish_image_writes_both_files_and_returns_the_manifest_fields(tmp_path, infer_settings, toys):
    settings = infer_settings()
    resized = preprocess.resize(toys.radiograph_like(300, 260), 224)
    prob = np.where(_lungs() > 0, 0.95, 0.05).astype(np.float32)
    item = {"subject_id": "10000032", "study_id": "50414267", "dicom_id": "0c-01", "orig_hw": (300, 260)}
    fields = finish_image(item, resized, prob, None, None, tmp_path, settings, toys.spec())
    assert fields["image_path"] == "files/p10/p10000032/s50414267/0c-01.jpg"
    assert fields["mask_path"] == "files/p10/p10000032/s50414267/0c-01-mask.png"
    mask = settings.postprocess.clean(prob, settings.threshold)
    assert np.array_equal(io.read_mask(tmp_path / fields["mask_path"]), mask)
    assert fields["qc_flags"] == "" and fields["mask_rle"] is None and fields["n_components_kept"] == 2
    seg = cv2.imread(str(tmp_path / fields["image_path"]), cv2.IMREAD_GRAYSCALE)
    assert np.abs(seg.astype(int) - np.where(mask > 0, resized, 0)).mean() < 2
    assert not fields["film_inverted"] and not fields["film_cropped"]  # no film check: the image as it is


def test_finish_image_writes_an_inverted_film_upright_and_maps_a_cropped_mask_back(tmp_path, infer_settings, toys):
    """The film check's two undoings reach the files: the segmented image is cut from the upright film, and a mask
    predicted on the film inside a border lands inside that border."""
    from cxlseg import film

    settings = infer_settings()
    resized = preprocess.resize(toys.radiograph_like(300, 260), 224)
    prob = np.where(_lungs() > 0, 0.95, 0.05).astype(np.float32)
    item = {"subject_id": "10000032", "study_id": "50414267", "dicom_id": "0c-02", "orig_hw": (300, 260)}
    check = film.FilmCheck(box=(20, 200, 30, 210), shape=(224, 224), inverted=True, polarity_score=0.8)
    fields = finish_image(item, 255 - resized, prob, None, check, tmp_path, settings, toys.spec())
    assert fields["film_inverted"] and fields["film_cropped"] and fields["film_fraction"] == (180 * 180) / 224**2
    mask = io.read_mask(tmp_path / fields["mask_path"])
    assert mask[:20].sum() == 0 and mask[200:].sum() == 0 and mask[:, :30].sum() == 0 and mask.sum() > 0
    seg = cv2.imread(str(tmp_path / fields["image_path"]), cv2.IMREAD_GRAYSCALE)
    assert np.abs(seg.astype(int) - np.where(mask > 0, resized, 0)).mean() < 2  # upright, not the inverted film


def _inside_error(run, shard, reference_of):
    """Mean |written - reference| inside the mask, per ok image, and the mean outside it."""
    manifest = pd.read_parquet(run.manifest)
    inside, outside = {}, {}
    for rec in manifest[manifest.status == "ok"].itertuples():
        seg = cv2.imread(str(run.out_root / rec.image_path), cv2.IMREAD_UNCHANGED)
        mask = io.read_mask(run.out_root / rec.mask_path) > 0
        assert seg.shape == mask.shape == (224, 224)
        reference = reference_of(rec)
        inside[rec.dicom_id] = float(np.abs(seg.astype(int) - reference)[mask].mean())
        outside[rec.dicom_id] = float(seg[~mask].mean())
    return inside, outside


def test_every_segmented_image_is_the_resized_original_and_the_mask(shard, infer_run):
    """CXLSeg's segmented image: AND(original resized to 224 with INTER_AREA, mask), not the CLAHE'd input."""
    run = infer_run(shard)

    def original(rec):  # full decode, INTER_AREA to 224
        return cv2.resize(
            preprocess.decode_for_inference(shard.mimic / rec.source_path, 224)[0],
            (224, 224),
            interpolation=cv2.INTER_AREA,
        )

    def clahe(rec):
        return preprocess.clahe(original(rec))

    inside, outside = _inside_error(run, shard, original)
    assert len(inside) == 5
    assert all(err <= 2 for err in inside.values()), inside  # within JPEG error
    assert all(val < 3 for val in outside.values()), outside
    against_clahe, _ = _inside_error(run, shard, clahe)
    assert all(err > 5 for err in against_clahe.values()), against_clahe  # not the CLAHE variant

    clahe_run = infer_run(shard, out="clahe", segmented_source="clahe")
    inside, outside = _inside_error(clahe_run, shard, clahe)
    assert all(err <= 3 for err in inside.values()), inside
    assert all(val < 3 for val in outside.values()), outside
