"""Each archive adapter on its synthetic archive: frontal films kept (every frontal view), non-frontal dropped,
known-bad files skipped with the reason, ids stable and unique, a patient in one shard, paths inside the root."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from cxlseg.archives import chexpert, padchest
from cxlseg.archives.records import ID_PATTERN, shard_of
from cxlseg.archives.registry import kinds, list_archive
from cxlseg.io import UnsafePathError
from cxlseg.phantoms.archives import write_archive

KINDS = ("chexpert", "chestxray14", "padchest", "vindr", "folder")
SIDE = (64, 96)


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    base = tmp_path_factory.mktemp("archives")
    return {kind: (base / kind, write_archive(kind, base / kind, 11, 4, SIDE)) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_keeps_the_frontal_films_drops_the_rest_and_skips_bad_files_with_a_reason(archives, kind):
    root, expected = archives[kind]
    listing = list_archive(kind, root, 4)
    kept = listing.frame()
    key = "path" if kind == "folder" else "image_id"
    assert set(kept[key]) == set(expected["kept"])
    assert sum(listing.not_frontal.values()) == expected["dropped"]
    reasons = dict(listing.skipped)
    assert set(reasons) == set(expected["skipped"])
    for path, word in expected["skipped"].items():
        assert word in reasons[path], (path, reasons[path])


@pytest.mark.parametrize("kind", KINDS)
def test_ids_are_stable_unique_file_safe_and_paths_stay_in_the_root(archives, kind):
    root, _ = archives[kind]
    first, again = list_archive(kind, root, 4).frame(), list_archive(kind, root, 4).frame()
    pd.testing.assert_frame_equal(first, again)
    assert first.image_id.is_unique and len(first) > 0
    assert all(ID_PATTERN.fullmatch(i) for i in first.image_id)
    for rel in first.path:
        assert (root / rel).resolve().is_relative_to(root.resolve()) and (root / rel).is_file()


@pytest.mark.parametrize("kind", KINDS)
def test_a_patient_is_in_one_shard_and_shards_follow_the_patient_hash(archives, kind):
    root, _ = archives[kind]
    for n in (1, 3, 7):
        frame = list_archive(kind, root, n).frame()
        assert (frame.groupby("patient_id").shard.nunique() == 1).all()
        assert all(s == shard_of(p, n) for p, s in zip(frame.patient_id, frame.shard))


def test_the_shard_hash_is_sha256_of_the_patient_not_pythons_salted_hash():
    digest = hashlib.sha256(b"patient00001").digest()
    assert shard_of("patient00001", 10) == f"p{int.from_bytes(digest[:8], 'big') % 10:02d}"
    with pytest.raises(ValueError, match="shards"):
        shard_of("x", 0)


def test_chexpert_keeps_view2_frontal_and_strips_the_release_prefix(archives):
    root, _ = archives["chexpert"]
    frame = list_archive("chexpert", root, 2).frame().set_index("image_id")
    row = frame.loc["patient00001_study2_view2_frontal"]
    assert row.path == row.source_id == "train/patient00001/study2/view2_frontal.jpg"
    assert (row["patient_id"], row["study_id"], row["view"]) == ("patient00001", "patient00001_study2", "AP")
    assert "patient64544_study1_view1_frontal" in frame.index  # valid.csv is read too


def test_chexpert_refuses_a_row_outside_its_layout(tmp_path):
    (tmp_path / "train/patient00001/study1").mkdir(parents=True)
    (tmp_path / "train/patient00001/study1/view1_frontal.jpg").write_bytes(b"x")
    rows = [
        "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Frontal,PA",
        "CheXpert-v1.0-small/train/../../etc/passwd,Frontal,PA",
    ]
    (tmp_path / "train.csv").write_text("Path,Frontal/Lateral,AP/PA\n" + "\n".join(rows) + "\n")
    listing = chexpert.list_images(tmp_path, 2)
    assert [r.path for r in listing.records] == ["train/patient00001/study1/view1_frontal.jpg"]
    assert "layout" in dict(listing.skipped)["CheXpert-v1.0-small/train/../../etc/passwd"]


def test_padchest_refuses_an_image_dir_that_leaves_the_root(tmp_path):
    header = ",".join(padchest.COLUMNS)
    (tmp_path / padchest.METADATA).write_text(f"{header}\nx.png,../../etc,1,2,PA\n")
    with pytest.raises(UnsafePathError, match=padchest.METADATA):
        padchest.list_images(tmp_path, 2)


def test_padchest_reads_16_bit_pngs_in_their_image_dir(archives):
    root, _ = archives["padchest"]
    frame = list_archive("padchest", root, 2).frame()
    assert set(frame.view) <= {"PA", "AP", "AP_horizontal"}
    assert all(p.split("/")[0].isdigit() and p.endswith(".png") for p in frame.path)
    assert (frame.source_id.str[:-4] == frame.image_id).all()


def test_chestxray14_patient_must_match_the_file_name(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("00000001_000.png", "00000002_000.png"):
        (tmp_path / "images" / name).write_bytes(b"x")
    header = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    header += "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
    rows = ["00000001_000.png,No Finding,0,1,50,M,PA,2500,2048,0.14,0.14", "00000002_000.png,,0,7,50,M,AP,1,1,1,1"]
    (tmp_path / "Data_Entry_2017_v2020.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    listing = list_archive("chestxray14", tmp_path, 2)
    assert [(r.image_id, r.patient_id, r.path) for r in listing.records] == [
        ("00000001_000", "00000001", "images/00000001_000.png")
    ]
    assert "differs from the file name" in dict(listing.skipped)["00000002_000.png"]


def test_vindr_each_image_is_its_own_patient_and_study(archives):
    root, _ = archives["vindr"]
    frame = list_archive("vindr", root, 3).frame()
    assert (frame.patient_id == frame.image_id).all() and (frame.study_id == frame.image_id).all()
    assert set(frame.view) == {"PA"}
    assert frame.image_id.is_unique  # three radiologists' rows per train image give one record


def test_folder_views_come_from_the_csv_then_dicom_tags_and_blank_is_unknown(archives):
    root, expected = archives["folder"]
    walked = list_archive("folder", root, 3).frame().set_index("path")
    assert walked.view.to_dict() == expected["kept"]
    named = list_archive("folder", root, 3, root / "images.csv")
    frame = named.frame().set_index("path")
    assert frame.loc["loose.png", ["patient_id", "study_id", "view"]].tolist() == ["PAT900", "S1", "PA"]
    assert frame.loc["PAT000/STUDY1/IM0001.dcm", "patient_id"] == "PAT000"  # blank in the CSV: the DICOM tag
    assert named.not_frontal == {"lateral": 1}


def test_folder_csv_path_that_leaves_the_root_is_refused(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "list.csv").write_text("path\n../secret.png\n")
    with pytest.raises(UnsafePathError, match="list.csv"):
        list_archive("folder", tmp_path / "export", 2, tmp_path / "list.csv")


def test_registry_names_every_kind_and_refuses_the_rest(tmp_path):
    assert kinds() == ("mimic", *KINDS)
    with pytest.raises(ValueError, match="unknown archive kind 'nih'"):
        list_archive("nih", tmp_path, 2)
    with pytest.raises(ValueError, match="MIMIC selection"):
        list_archive("mimic", tmp_path, 2)
    with pytest.raises(ValueError, match="folder"):
        list_archive("vindr", tmp_path, 2, tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError, match="image_labels_train.csv"):
        list_archive("vindr", tmp_path, 2)


def test_synthetic_archives_are_the_same_bytes_for_the_same_seed(tmp_path):
    for name in ("a", "b"):
        write_archive("padchest", tmp_path / name, 5, 3, SIDE)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files and all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)


def test_paths_are_posix_and_relative(archives):
    for kind in KINDS:
        root, _ = archives[kind]
        assert all(not Path(p).is_absolute() and "\\" not in p for p in list_archive(kind, root, 2).frame().path)
