"""The demo archive has every native layout, the awkward cases real archives have, and the same bytes each time."""

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg import io
from cxlseg.config import ConfigError, default_config, section_defaults, validate_config
from cxlseg.mimic import CHEXPERT_LABELS as CHEXPERT_COLUMNS
from cxlseg.mimic import image_relpath, report_relpath
from cxlseg.mimic.radiology_text import extract_report
from cxlseg.phantoms.generate import generate_demo
from cxlseg.phantoms.layouts import V7_INDEX_COLUMNS, paths_to_mask
from cxlseg.phantoms.mimic_archive import METADATA_COLUMNS, SPLIT_COLUMNS
from cxlseg.phantoms.spec import DemoArchiveSpec, DemoSpec

TINY = dict(
    n_shenzhen=4,
    n_montgomery=3,
    n_v7=7,
    n_mimic_subjects=5,
    shenzhen_side=(120, 160),
    montgomery_long_side=(120, 170),
    v7_side=(110, 150),
    mimic_long_side=(120, 220),
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    summary = generate_demo(root, DemoSpec.default(seed=3, **TINY))
    return root, summary


def decode(path: Path) -> np.ndarray:
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)


def assert_binary_mask(path: Path, shape) -> np.ndarray:
    mask = decode(path)
    assert mask is not None, path
    assert mask.dtype == np.uint8 and mask.ndim == 2 and mask.shape == shape[:2], path
    assert set(np.unique(mask)) <= {0, 255}, path
    return mask


# --------------------------------------------------------------------------- Shenzhen / Montgomery


def test_shenzhen_layout(demo):
    root, summary = demo
    images = sorted((root / "shenzhen" / "CXR_png").glob("*.png"))
    assert len(images) == TINY["n_shenzhen"]
    assert all(re.fullmatch(r"CHNCXR_\d{4}_[01]\.png", p.name) for p in images)
    assert {p.stem[-1] for p in images} == {"0", "1"}
    missing = []
    for image in images:
        pixels = decode(image)
        mask_path = root / "shenzhen" / "mask" / f"{image.stem}_mask.png"
        if not mask_path.exists():
            missing.append(image.stem)
            continue
        assert assert_binary_mask(mask_path, pixels.shape).any()
        reading = (root / "shenzhen" / "ClinicalReadings" / f"{image.stem}.txt").read_text()
        assert re.match(r"(male|female) \d+yrs\n", reading)
        assert ("normal" in reading) == image.stem.endswith("_0")
    assert missing == summary["shenzhen"]["without_mask"] and len(missing) == 1


def test_montgomery_masks_and_depths(demo):
    root, summary = demo
    base = root / "montgomery" / "MontgomerySet"
    images = sorted((base / "CXR_png").glob("*.png"))
    assert len(images) == TINY["n_montgomery"]
    deep, orientations = 0, set()
    for image in images:
        assert re.fullmatch(r"MCUCXR_\d{4}_[01]\.png", image.name)
        pixels = decode(image)
        orientations.add("portrait" if pixels.shape[0] > pixels.shape[1] else "landscape")
        if pixels.dtype == np.uint16:
            deep += 1
            assert 255 < pixels.max() <= 4095 and np.unique(pixels).size > 256  # really 12-bit data
        left = assert_binary_mask(base / "ManualMask" / "leftMask" / image.name, pixels.shape)
        right = assert_binary_mask(base / "ManualMask" / "rightMask" / image.name, pixels.shape)
        assert left.any() and right.any() and not (left & right).any()
        # the patient's left lung is on the image right
        assert np.nonzero(left)[1].mean() > np.nonzero(right)[1].mean()
        reading = (base / "ClinicalReadings" / f"{image.stem}.txt").read_text()
        assert re.match(r"Patient's Sex: [MF]\nPatient's Age: \d{3}Y\n", reading)
    assert deep == len(summary["montgomery"]["16bit"]) >= 1
    assert orientations == {"portrait", "landscape"}


# --------------------------------------------------------------------------- V7


def test_v7_darwin_json_variants(demo):
    root, summary = demo
    v7 = root / "v7"
    index = pd.read_csv(v7 / "index.csv", dtype=str, keep_default_na=False)
    assert list(index.columns) == V7_INDEX_COLUMNS and len(index) == TINY["n_v7"]
    assert index["patient_id"].value_counts().max() >= 2  # several images of one patient
    kinds = {"polygon_pairs": 0, "complex": 0, "hole": 0, "ignore": 0}
    tags_seen = set()
    for row in index.itertuples():
        image = decode(v7 / row.image)
        assert image is not None and image.ndim == 2
        doc = json.loads((v7 / "annotations" / f"{Path(row.image).stem}.json").read_text())
        assert (doc["image"]["height"], doc["image"]["width"]) == image.shape
        assert doc["image"]["filename"] == Path(row.image).name
        tags = {a["name"] for a in doc["annotations"] if "tag" in a}
        tags_seen |= tags
        assert row.finding in tags and row.view in tags
        lungs = [a for a in doc["annotations"] if a["name"] == "Lung"]
        if row.view == "CT":
            assert not lungs and row.mask == ""
            continue
        polygons = [a for a in lungs if "polygon" in a]
        complex_ = [a for a in lungs if "complex_polygon" in a]
        kinds["polygon_pairs"] += len(polygons) == 2
        kinds["ignore"] += any(a["name"] == "Ignore" for a in doc["annotations"])
        rendered = np.zeros(image.shape, np.uint8)
        for a in polygons:
            rendered |= paths_to_mask([a["polygon"]["path"]], image.shape)
        for a in complex_:
            paths = a["complex_polygon"]["path"]
            assert len(paths) >= 2 and all(len(p) >= 3 for p in paths)
            kinds["complex"] += 1
            union = np.zeros(image.shape, np.uint8)
            for p in paths:
                union |= paths_to_mask([p], image.shape)
            even_odd = paths_to_mask(paths, image.shape)
            kinds["hole"] += int(even_odd.sum() < union.sum())
            rendered |= even_odd
        mask = assert_binary_mask(v7 / row.mask, image.shape)
        assert np.array_equal(mask > 0, rendered > 0)  # PNG masks and JSON polygons agree
    assert all(kinds.values()), kinds
    assert {"COVID-19", "No Pneumonia", "Bacterial Pneumonia", "Viral Pneumonia", "Lateral", "CT"} <= tags_seen
    assert len(summary["v7"]["lateral"]) == 2 and len(summary["v7"]["ct"]) == 1


# --------------------------------------------------------------------------- MIMIC


@pytest.fixture(scope="module")
def mimic(demo):
    root, summary = demo
    base = root / "mimic-cxr-jpg"
    read = lambda name: pd.read_csv(base / name, dtype=str, keep_default_na=False)  # noqa: E731
    return (
        base,
        summary,
        read("mimic-cxr-2.0.0-metadata.csv.gz"),
        read("mimic-cxr-2.0.0-chexpert.csv.gz"),
        read("mimic-cxr-2.0.0-split.csv.gz"),
    )


def test_mimic_tables_have_exact_columns(mimic):
    _, _, meta, chexpert, split = mimic
    assert list(meta.columns) == METADATA_COLUMNS
    assert list(chexpert.columns) == ["subject_id", "study_id", *CHEXPERT_COLUMNS]
    assert list(split.columns) == SPLIT_COLUMNS
    assert set(split["split"]) == {"train", "validate", "test"}
    assert set(split["dicom_id"]) == set(meta["dicom_id"])
    assert set(meta["ViewPosition"]) >= {"PA", "AP", "LL", "LATERAL", ""}
    assert set(meta["PatientOrientationCodeSequence_CodeMeaning"]) <= {"Erect", "Recumbent", ""}
    assert all(re.fullmatch(r"2[12]\d{2}(0[1-9]|1[0-2])\d{2}", d) for d in meta["StudyDate"])
    assert all(re.fullmatch(r"\d{1,6}\.\d{1,3}", t) for t in meta["StudyTime"])
    values = set(chexpert[list(CHEXPERT_COLUMNS)].to_numpy().ravel())
    assert values <= {"1.0", "0.0", "-1.0", ""} and {"1.0", "0.0", ""} <= values


def test_mimic_ids_and_layout(mimic):
    base, summary, meta, _, _ = mimic
    prefixes = {f"p{s[:2]}" for s in meta["subject_id"]}
    assert len(prefixes) >= 3 and prefixes == set(summary["prefixes"])
    assert summary["absent_prefixes"] and not prefixes & set(summary["absent_prefixes"])
    assert not any((base / "files" / p).exists() for p in summary["absent_prefixes"])
    for row in meta.itertuples():
        assert re.fullmatch(r"1\d{7}", row.subject_id) and re.fullmatch(r"5\d{7}", row.study_id)
        assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}", row.dicom_id)
    assert meta.groupby("study_id").size().between(1, 3).all()


def test_mimic_images_match_metadata_and_special_cases(mimic):
    base, summary, meta, _, _ = mimic
    special = {d: k for k in ("corrupt", "truncated", "missing", "rgb") for d in summary[k]}
    assert len(special) == 4
    for row in meta.itertuples():
        study = base / "files" / f"p{row.subject_id[:2]}" / f"p{row.subject_id}" / f"s{row.study_id}"
        path = study / f"{row.dicom_id}.jpg"
        kind = special.get(row.dicom_id)
        if kind == "missing":
            assert not path.exists()
            continue
        if kind in ("corrupt", "truncated"):
            assert decode(path) is None, f"{kind} JPEG decoded"
            with pytest.raises(io.ImageReadError):
                io.read_image(path)
            continue
        pixels = decode(path)
        assert pixels.shape[:2] == (int(row.Rows), int(row.Columns))
        assert pixels.ndim == (3 if kind == "rgb" else 2)
        assert row.ViewPosition not in ("PA", "AP") or kind or pixels.std() > 20
    truncated = base.rglob(f"{summary['truncated'][0]}.jpg").__next__().read_bytes()
    assert truncated[:2] == b"\xff\xd8" and not truncated.rstrip(b"\0").endswith(b"\xff\xd9")


def test_mimic_reports_and_labels(mimic):
    base, summary, meta, chexpert, _ = mimic
    studies = meta.drop_duplicates("study_id")
    reported = set()
    for row in studies.itertuples():
        report = base / "files" / f"p{row.subject_id[:2]}" / f"p{row.subject_id}" / f"s{row.study_id}.txt"
        if f"s{row.study_id}" in summary["studies_without_report"]:
            assert not report.exists()
            continue
        text = report.read_text()
        if f"s{row.study_id}" in summary["studies_with_empty_report"]:
            assert extract_report(text) == ("", "none")
            continue
        reported.add(row.study_id)
        assert extract_report(text)[0], text
        assert "FINAL REPORT" in text.splitlines()[0] or text.startswith(" WET READ")
        headers = re.findall(r"^ ([A-Z][A-Z ]+):", text, flags=re.M)
        assert "EXAMINATION" in headers
        assert all(line == "" or line.startswith(" ") for line in text.splitlines())
        labels = chexpert.loc[chexpert["study_id"] == row.study_id].iloc[0]
        lower = text.lower()
        for column, word in (
            ("Pneumonia", "pneumonia"),
            ("Pleural Effusion", "effusion"),
            ("Lung Lesion", "nodul"),
            ("Atelectasis", "atelectasis"),
        ):
            if labels[column] in ("1.0", "-1.0"):
                assert word in lower, (column, text)
    assert len(summary["studies_without_report"]) >= 2
    assert set(chexpert["study_id"]) == reported  # no labels where no report text exists


def test_empty_report_study(mimic):
    """A report file with header sections only: nothing to extract, so the pipeline must drop the study."""
    base, summary, meta, chexpert, _ = mimic
    assert len(summary["studies_with_empty_report"]) == 1
    assert not set(summary["studies_with_empty_report"]) & set(summary["studies_without_report"])
    study_id = summary["studies_with_empty_report"][0].removeprefix("s")
    rows = meta[meta["study_id"] == study_id]
    text = (base / report_relpath(rows["subject_id"].iloc[0], study_id)).read_text()
    assert extract_report(text) == ("", "none")
    assert re.findall(r"^ ([A-Z][A-Z ]+):", text, flags=re.M) == ["EXAMINATION", "INDICATION", "TECHNIQUE"]
    assert rows["ViewPosition"].isin(["PA", "AP"]).any()  # it has frontal images the selection would pick
    assert not set(rows["dicom_id"]) & set(summary["mislabelled_views"])
    assert study_id not in set(chexpert["study_id"])


def test_mislabelled_views(demo, mimic):
    """Lateral and CT renders whose ViewPosition says PA/AP, in studies with a real report: selected for
    segmentation unless a view check catches them; no ground-truth lung mask."""
    root, _ = demo
    base, summary, meta, chexpert, _ = mimic
    mislabelled = summary["mislabelled_views"]
    assert sorted(mislabelled.values()) == ["CT", "CT", "LATERAL", "LATERAL"]
    rows = meta[meta["dicom_id"].isin(mislabelled)]
    assert len(rows) == 4 and set(rows["ViewPosition"]) <= {"PA", "AP"}
    dropped = set(summary["studies_without_report"]) | set(summary["studies_with_empty_report"])
    special = {d for k in ("corrupt", "truncated", "missing", "rgb") for d in summary[k]}
    for row in rows.itertuples():
        assert f"s{row.study_id}" not in dropped and row.dicom_id not in special
        assert row.study_id in set(chexpert["study_id"])
        assert extract_report((base / report_relpath(row.subject_id, row.study_id)).read_text())[0]
        pixels = decode(base / image_relpath(row.subject_id, row.study_id, row.dicom_id))
        assert pixels.shape == (int(row.Rows), int(row.Columns)) and pixels.std() > 20
        if mislabelled[row.dicom_id] == "CT":  # axial or coronal: air around the body, dark top corners
            assert pixels[:4, :4].mean() < 40 and pixels[:4, -4:].mean() < 40
        assert not (root / "mimic-truth" / f"{row.dicom_id}.png").exists()


def test_report_variants_across_seeds():
    from cxlseg.phantoms.mimic_report import mimic_report

    study = {
        "procedure": "CHEST (PA AND LAT)",
        "images": [{"view": "PA"}, {"view": "LATERAL"}],
        "labels": {c: None for c in CHEXPERT_COLUMNS} | {"Pleural Effusion": 1.0, "Pneumonia": 0.0},
    }
    texts = [mimic_report(np.random.default_rng(s), study, {"Pleural Effusion": "left"}) for s in range(60)]
    joined = "\n".join(texts)
    for header in (
        " FINDINGS:",
        " IMPRESSION:",
        " FINDINGS AND IMPRESSION:",
        " CONCLUSION:",
        " IMPRESSON:",
        " ADDENDUM:",
        " WET READ:",
    ):
        assert header in joined, header
    assert any(" FINDINGS:" not in t and " IMPRESSION:" in t for t in texts)  # impression only
    assert all("left pleural effusion" in t for t in texts)


def test_truth_masks_for_every_frontal_image(demo, mimic):
    """Every true PA/AP film has its mask, the broken ones included; the mislabelled lateral/CT renders none."""
    (
        root,
        _,
    ) = demo
    _, summary, meta, _, _ = mimic
    truth = root / "mimic-truth"
    frontal = meta[meta["ViewPosition"].isin(["PA", "AP"]) & ~meta["dicom_id"].isin(summary["mislabelled_views"])]
    assert {p.stem for p in truth.glob("*.png")} == set(frontal["dicom_id"])
    for row in frontal.itertuples():
        assert assert_binary_mask(truth / f"{row.dicom_id}.png", (int(row.Rows), int(row.Columns))).any()


def test_summary_file(demo):
    root, summary = demo
    saved = json.loads((root / "demo.json").read_text())
    assert saved["seed"] == 3 and saved["spec"]["n_v7"] == TINY["n_v7"]
    assert saved["corrupt"] == summary["corrupt"] and len(saved["corrupt"]) == len(saved["truncated"]) == 1
    assert saved["mimic"]["images"] == len(pd.read_csv(root / "mimic-cxr-jpg" / "mimic-cxr-2.0.0-metadata.csv.gz"))
    chexpert = pd.read_csv(root / "mimic-cxr-jpg" / "mimic-cxr-2.0.0-chexpert.csv.gz")
    assert saved["mimic"]["reports"] == {"with_text": len(chexpert), "empty": 1, "absent": 2}
    assert saved["mimic"]["truth_masks"] == len(list((root / "mimic-truth").glob("*.png")))
    assert saved["studies_with_empty_report"] == summary["studies_with_empty_report"]
    assert saved["mislabelled_views"] == summary["mislabelled_views"]
    assert str(root) not in (root / "demo.json").read_text()  # no absolute paths: bytes stay reproducible


# --------------------------------------------------------------------------- determinism and spec


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_spec_same_bytes(tmp_path):
    spec = dict(TINY, n_shenzhen=3, n_montgomery=2, n_v7=6, n_mimic_subjects=4)
    generate_demo(tmp_path / "a", DemoSpec.default(seed=5, **spec))
    generate_demo(tmp_path / "b", DemoSpec.default(seed=5, **spec))
    a, b = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert a == b and len(a) > 40
    generate_demo(tmp_path / "c", DemoSpec.default(seed=6, **spec))
    assert tree_digest(tmp_path / "c") != a


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"n_shenzhen": 2}, "n_shenzhen"),
        ({"n_mimic_subjects": 3}, "n_mimic_subjects"),
        ({"mimic_long_side": (900, 600)}, "mimic_long_side"),
        ({"finding_rate": 1.5}, "finding_rate"),
    ],
)
def test_bad_spec_is_named(bad, message):
    with pytest.raises(ValueError, match=message):
        DemoSpec.default(**bad)


def test_spec_from_config_section():
    section = section_defaults("demo") | {"seed": 9, "mimic_long_side": [700, 900], "n_v7": 8}
    spec = DemoSpec.from_config({"demo": section})
    assert spec.seed == 9 and spec.mimic_long_side == (700, 900) and spec.n_v7 == 8
    with pytest.raises(ConfigError, match="n_imgs"):
        validate_config({"demo": {"n_imgs": 3}})


def test_every_spec_field_is_a_schema_key_with_its_default():
    """Defaults live in the schema only: DemoSpec (the MIMIC-shaped demo) and DemoArchiveSpec (the synthetic archive
    of another kind, #34) have none of their own, and the schema has no `demo` key that neither of them holds."""
    section = section_defaults("demo")
    spec = DemoSpec.default()
    archive = DemoArchiveSpec.from_config(default_config())
    archive_keys = set(archive.__dataclass_fields__) - {"kind", "seed"}  # kind is archive.kind; seed is shared
    assert set(section) - {"enabled", "out"} == set(spec.__dataclass_fields__) | archive_keys
    assert not archive_keys & set(spec.__dataclass_fields__)
    expected = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items() if k not in ("enabled", "out")}
    assert {k: getattr(spec, k) for k in spec.__dataclass_fields__} == {
        k: expected[k] for k in spec.__dataclass_fields__
    }
    assert {k: getattr(archive, k) for k in archive_keys} == {k: expected[k] for k in archive_keys}
    assert archive.seed == spec.seed
    with pytest.raises(TypeError):
        DemoSpec()  # no hidden defaults
    with pytest.raises(TypeError):
        DemoArchiveSpec()


def test_regenerating_replaces_the_old_demo_but_not_foreign_data(tmp_path):
    small = dict(TINY, n_shenzhen=3, n_montgomery=2, n_v7=6, n_mimic_subjects=4)
    generate_demo(tmp_path / "demo", DemoSpec.default(seed=1, **dict(small, n_shenzhen=5)))
    generate_demo(tmp_path / "demo", DemoSpec.default(seed=1, **small))
    assert len(list((tmp_path / "demo" / "shenzhen" / "CXR_png").glob("*.png"))) == 3
    (tmp_path / "demo" / "demo.json").unlink()  # what Snakemake does to a rule's outputs before a rerun
    generate_demo(tmp_path / "demo", DemoSpec.default(seed=1, **small))
    foreign = tmp_path / "data"
    (foreign / "keep").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="no demo.json"):
        generate_demo(foreign, DemoSpec.default(**small))
    assert (foreign / "keep").is_dir()


def test_hard_films(demo, mimic):
    """One inverted film and one on a light box, in reported studies, each with a true mask moved to match: the
    film check must undo them for the demo's truth Dice to stay high."""
    root, _ = demo
    base, summary, meta, chexpert, _ = mimic
    hard = summary["hard_films"]
    assert sorted(hard.values()) == ["border", "inverted"]
    rows = meta[meta["dicom_id"].isin(hard)].set_index("dicom_id")
    assert set(rows["ViewPosition"]) <= {"PA", "AP"} and rows["study_id"].isin(chexpert["study_id"]).all()
    for dicom_id, kind in hard.items():
        row = rows.loc[dicom_id]
        image = cv2.imread(str(base / image_relpath(row.subject_id, row.study_id, dicom_id)), cv2.IMREAD_GRAYSCALE)
        truth = cv2.imread(str(root / "mimic-truth" / f"{dicom_id}.png"), cv2.IMREAD_GRAYSCALE) > 0
        assert image.shape == truth.shape and truth.any()
        if kind == "inverted":
            assert image[truth].mean() > image[~truth].mean()  # bright lungs
        else:
            assert image[:3].min() > 200 and not truth[:3].any()  # glass above the film, no lung on it
