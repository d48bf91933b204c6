"""Hard films through the shard loop: an inverted film is segmented upright and written upright, a film on a light
box is segmented alone and its mask put back in place; both are recorded in the manifest and the shard summary."""

import dataclasses

import cv2
import numpy as np
import pandas as pd
from cxlseg import film, io
from cxlseg.mimic import image_relpath
from cxlseg.qc.degradations import degrade
from helpers.shards import SUBJECT, Shard, radiograph_like, run_infer, toy_spec

CASES = {"0c-01": "upright", "0c-02": "inverted", "0c-03": "border"}


def _archive(root):
    """Three films of one patient, written losslessly: as taken, inverted, and on a light box."""
    mimic, rows = root / "mimic", []
    upright = radiograph_like(320, 280, seed=4)
    lungs = (upright < 100).astype(np.uint8)
    for dicom_id, kind in CASES.items():
        image = upright if kind == "upright" else degrade(upright, lungs, kind, 0.8, seed=2)[0]
        path = mimic / image_relpath(SUBJECT, "50000020", dicom_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cv2.imencode(".png", image)[1].tobytes())
        rows.append(
            {
                "dicom_id": dicom_id,
                "subject_id": SUBJECT,
                "study_id": "50000020",
                "rows": None,
                "columns": None,
                "image_path": image_relpath(SUBJECT, "50000020", dicom_id),
            }
        )
    list_path = root / "lists" / "p10.parquet"
    io.write_parquet(pd.DataFrame(rows).astype({"rows": "Int64", "columns": "Int64"}), list_path)
    return Shard(root=root, mimic=mimic, list_path=list_path)


def _spec():
    """The toy network's input with a polarity template of upright films, as a trained checkpoint carries."""
    films = [cv2.resize(radiograph_like(300 + 9 * i, 260, seed=10 + i), (224, 224)) for i in range(6)]
    return dataclasses.replace(toy_spec(), polarity_template=film.polarity_template(films))


def _read(run, manifest, dicom_id, column):
    return cv2.imread(str(run.out_root / manifest.loc[dicom_id, column]), cv2.IMREAD_GRAYSCALE)


def test_inverted_and_light_box_films_are_undone_and_recorded(tmp_path):
    run = run_infer(_archive(tmp_path), spec=_spec(), tta_flip=False)
    manifest = pd.read_parquet(run.manifest).set_index("dicom_id")
    assert (manifest.status == "ok").all()
    assert manifest.film_inverted.to_dict() == {"0c-01": False, "0c-02": True, "0c-03": False}
    assert manifest.film_cropped.to_dict() == {"0c-01": False, "0c-02": False, "0c-03": True}
    assert manifest.loc["0c-03", "film_fraction"] < 0.8 and manifest.polarity_score.gt(0.3).all()
    assert run.summary["films_inverted"] == 1 and run.summary["films_cropped"] == 1

    upright, inverted, on_glass = ((_read(run, manifest, d, "mask_path") > 127).astype(np.uint8) for d in CASES)
    assert upright.mean() > 0.05
    assert (upright != inverted).mean() < 0.01  # turned upright: the same lungs
    segmented = _read(run, manifest, "0c-02", "image_path")
    assert segmented[inverted > 0].mean() < 110  # written upright: dark lungs, not the inverted film's bright ones
    # on the light box the lungs sit inside the film: nothing on the glass, and about the film's share of lung
    source = cv2.imread(str(tmp_path / "mimic" / manifest.loc["0c-03", "source_path"]), cv2.IMREAD_GRAYSCALE)
    top, bottom, left, right = film.film_box(cv2.resize(source, (224, 224), interpolation=cv2.INTER_AREA))
    outside = on_glass.copy()
    outside[top:bottom, left:right] = 0
    assert (top, left) > (0, 0) and outside.sum() == 0
    assert 0.2 * upright.sum() < on_glass.sum() < 0.9 * upright.sum()


def test_with_the_film_check_off_nothing_is_undone(tmp_path):
    run = run_infer(_archive(tmp_path), spec=_spec(), tta_flip=False, film={"crop_border": False, "polarity": False})
    manifest = pd.read_parquet(run.manifest)
    assert not manifest.film_inverted.any() and not manifest.film_cropped.any()
    assert manifest.film_fraction.eq(1.0).all()
