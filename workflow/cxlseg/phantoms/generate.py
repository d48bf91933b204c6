"""The whole demo archive in one call, and its summary (demo.json)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from cxlseg import io
from cxlseg.phantoms.layouts import write_montgomery, write_shenzhen, write_v7
from cxlseg.phantoms.mimic_archive import write_mimic
from cxlseg.phantoms.spec import DemoSpec

log = logging.getLogger(__name__)

OWNED = ("shenzhen", "montgomery", "v7", "mimic-cxr-jpg", "mimic-truth")
LAYOUT_NOTES = [
    "MIMIC reports are kept beside the study folders (files/pXX/pNNNNNNNN/sNNNNNNNN.txt); "
    "the real archive ships them separately as mimic-cxr-reports.",
    "mimic-truth/<dicom_id>.png: true lung mask (0/255, original size) of every PA/AP image, "
    "including the corrupt, truncated, missing and RGB ones, except the mislabelled_views "
    "(lateral or CT renders whose ViewPosition says PA/AP: no lung mask makes sense for them).",
    "studies_with_empty_report: the report file exists but holds header sections only, so no report text "
    "can be extracted; like studies_without_report these studies have no CheXpert row.",
    "Masks cover the aerated lung including the part behind the heart; a pleural effusion's fluid is not lung.",
    "Montgomery leftMask is the patient's left lung (image right).",
    "MIMIC CheXpert 1.0 and -1.0 for Atelectasis, Lung Lesion, Pleural Effusion and Pneumonia are drawn "
    "inside the lungs of the study's frontal images; clutter outside the lungs is independent of them.",
]


def _clear_previous(out: Path) -> None:
    """Replace an earlier demo (a smaller spec must not leave stale images behind); never touch other data."""
    if not out.exists():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OWNED and p.name != "demo.json")
    if foreign and not (out / "demo.json").is_file():
        # Snakemake deletes demo.json before rerunning the rule, so only unknown entries make a folder foreign
        raise FileExistsError(f"{out}: holds {foreign[:3]} and no demo.json; refusing to write a demo archive over it")
    for name in OWNED:
        if (out / name).is_dir():
            shutil.rmtree(out / name)


def generate_demo(out_dir: str | Path, spec: DemoSpec | None = None) -> dict:
    """Write the whole demo archive under out_dir and return (and save as demo.json) its summary."""
    spec = spec or DemoSpec.default()
    spec.validate()
    out = Path(out_dir)
    _clear_previous(out)
    log.info("writing the demo archive to %s (seed %d)", out, spec.seed)
    mimic = write_mimic(out / "mimic-cxr-jpg", out / "mimic-truth", spec)
    summary = {
        "seed": spec.seed,
        "spec": asdict(spec),
        "shenzhen": write_shenzhen(out / "shenzhen", spec),
        "montgomery": write_montgomery(out / "montgomery", spec),
        "v7": write_v7(out / "v7", spec),
        "mimic": mimic,
        # the cases later stages must survive, at the top level: corrupt, truncated, missing, rgb,
        # studies_without_report, studies_with_empty_report, mislabelled_views, prefixes, absent_prefixes
        **mimic.pop("special"),
        "layout_notes": LAYOUT_NOTES,
    }
    io.write_json(out / "demo.json", summary)
    return summary
