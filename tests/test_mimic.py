"""MIMIC-CXR conventions (cxlseg.mimic): layout, id checks, split names."""

from cxlseg.mimic import (
    CHEXPERT_LABELS,
    SPLITS,
    id_problem,
    image_relpath,
    report_relpath,
    shard_of,
    study_dir,
)
from helpers import TABLE3_LABELS


def test_layout():
    assert study_dir("10000032", "50414267") == "files/p10/p10000032/s50414267"
    assert image_relpath(10000032, 50414267, "02aa804e") == "files/p10/p10000032/s50414267/02aa804e.jpg"
    assert image_relpath(10000032, 50414267, "02aa804e", "-mask.png").endswith("/02aa804e-mask.png")
    assert report_relpath(10000032, 50414267) == "files/p10/p10000032/s50414267.txt"
    assert shard_of("19999999") == shard_of(19999999) == "p19"


def test_unsafe_ids():
    assert id_problem("02aa804e-bde0afdd", "10000032", "50414267") == ""
    for bad in [
        ("../x", "10000032", "1"),
        ("AB-CD", "10000032", "1"),
        ("ab", "1x", "1"),
        ("ab", "10", "1/2"),
        ("ab", "１０", "1"),
        ("", "10", "1"),
        ("ab--cd", "10", "1"),
        ("ab", "1", "1"),
    ]:
        assert id_problem(*bad), bad


def test_vocabulary():
    assert SPLITS == ("train", "validate", "test")
    assert len(CHEXPERT_LABELS) == 14 and set(TABLE3_LABELS) <= set(CHEXPERT_LABELS)
