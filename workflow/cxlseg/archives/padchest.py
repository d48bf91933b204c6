"""PadChest: `PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv` (or `.csv.gz`), 16-bit PNGs at
`<ImageDir>/<ImageID>` (or `Images/<ImageID>`, the flattened copy CheXmask read).

Kept: `Projection` PA, AP or AP_horizontal (supine); `L` (lateral) and the rest are dropped.  Id = the
ImageID's stem, patient = `PatientID`, study = `StudyID`; `source_id` is `ImageID`, CheXmask's key.  The 21
files torchxrayvision found missing, broken or truncated are skipped with that reason without being opened.
"""

from __future__ import annotations

from pathlib import Path

from cxlseg.archives.records import ImageRecord, Listing, file_problem, read_table, relative_path, safe_id, shard_of

KIND = "padchest"
METADATA = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
COLUMNS = ["ImageID", "ImageDir", "StudyID", "PatientID", "Projection"]
FRONTAL = ("PA", "AP", "AP_horizontal")
FLAT_FOLDER = "Images"
_MISSING = "missing from the published archive (torchxrayvision's list)"
_BROKEN = "broken PNG file, chunk b'\\x00\\x00\\x00\\x00' (torchxrayvision's list)"
_TRUNCATED = "image file is truncated (torchxrayvision's list)"
KNOWN_BAD = {
    **dict.fromkeys(
        [
            "216840111366964012819207061112010307142602253_04-014-084.png",
            "216840111366964012989926673512011074122523403_00-163-058.png",
            "216840111366964012959786098432011033083840143_00-176-115.png",
            "216840111366964012558082906712009327122220177_00-102-064.png",
            "216840111366964012339356563862009072111404053_00-043-192.png",
            "216840111366964013076187734852011291090445391_00-196-188.png",
            "216840111366964012373310883942009117084022290_00-064-025.png",
            "216840111366964012283393834152009033102258826_00-059-087.png",
            "216840111366964012373310883942009170084120009_00-097-074.png",
            "216840111366964012819207061112010315104455352_04-024-184.png",
            "216840111366964012819207061112010306085429121_04-020-102.png",
        ],
        _MISSING,
    ),
    "216840111366964012989926673512011083134050913_00-168-009.png": _BROKEN,
    "216840111366964012989926673512011151082430686_00-157-045.png": _BROKEN,
    **dict.fromkeys(
        [
            "216840111366964012373310883942009152114636712_00-102-045.png",
            "216840111366964012819207061112010281134410801_00-129-131.png",
            "216840111366964012487858717522009280135853083_00-075-001.png",
            "216840111366964013686042548532013208193054515_02-026-007.png",
            "216840111366964013590140476722013058110301622_02-056-111.png",
            "216840111366964013590140476722013043111952381_02-065-198.png",
            "216840111366964013829543166512013353113303615_02-092-190.png",
            "216840111366964013962490064942014134093945580_01-178-104.png",
        ],
        _TRUNCATED,
    ),
}


def list_images(root: Path, n_shards: int) -> Listing:
    root = Path(root)
    metadata = next((p for p in (root / METADATA, root / f"{METADATA}.gz") if p.is_file()), None)
    if metadata is None:
        raise FileNotFoundError(f"{root}: no PadChest metadata file ({METADATA} or {METADATA}.gz)")
    table = read_table(metadata, COLUMNS)
    listing = Listing(KIND)
    for row in table[COLUMNS].itertuples(index=False, name=None):
        _row(root, metadata.name, listing, *(v.strip() for v in row), n_shards)
    return listing.check()


def _row(root, source, listing, image, folder, study, patient, projection, n_shards) -> None:
    if projection not in FRONTAL:
        listing.drop_view(projection)
        return
    if image in KNOWN_BAD:
        listing.skip(f"{folder}/{image}", KNOWN_BAD[image])
        return
    if not (image and folder and study and patient):
        listing.skip(f"{folder}/{image}", f"{source}: ImageID, ImageDir, StudyID or PatientID is blank")
        return
    rel = relative_path(root, f"{folder}/{image}", source)
    flat = relative_path(root, f"{FLAT_FOLDER}/{image}", source)
    if not (root / rel).is_file() and (root / flat).is_file():
        rel = flat
    if problem := file_problem(root, rel):
        listing.skip(rel, problem)
        return
    stem = image.rsplit(".", 1)[0]
    listing.add(ImageRecord(safe_id(stem), patient, study, projection, rel, shard_of(patient, n_shards), image))
