"""The MIMIC-CXR-JPG archive's plan: subjects, studies, views, CheXpert labels, splits and special cases.

Labels are drawn first and the images follow them (see :mod:`.mimic_archive`).
"""

from __future__ import annotations

import numpy as np

from cxlseg.mimic import CHEXPERT_LABELS, FRONTAL_VIEWS, SPLITS
from cxlseg.phantoms.clutter import SUPPORT_DEVICES
from cxlseg.phantoms.spec import DemoSpec, stream

DRAWN_CLASSES = ("Atelectasis", "Lung Lesion", "Pleural Effusion", "Pneumonia")  # labels with visible findings
# true views of the images whose ViewPosition says PA/AP (fodder for a view check before segmentation)
MISLABELLED_VIEWS = ("LATERAL", "LATERAL", "CT", "CT")
MIN_STUDIES = 11  # two without report, one empty report, four mislabelled-view hosts, four special images
# (the two hard films share studies with them: a study holds up to three images)

STUDY_TYPES = (  # (procedure, views, weight)
    ("CHEST (PA AND LAT)", ("PA", "LATERAL"), 0.40),
    ("CHEST (PORTABLE AP)", ("AP",), 0.30),
    ("CHEST (PRE-OP PA & LAT)", ("PA", "LL"), 0.10),
    ("CHEST (SINGLE VIEW)", ("AP",), 0.08),
    ("CHEST (PA AND LAT)", ("PA", "LATERAL", "LL"), 0.07),
    ("CHEST (PORTABLE AP)", ("AP", ""), 0.05),
)


def _dicom_id(rng: np.random.Generator) -> str:
    return "-".join(rng.bytes(4).hex() for _ in range(5))


def _unique(rng: np.random.Generator, seen: set, draw) -> int:
    """Draw until the value is new (subject and study ids are unique across the archive)."""
    while True:
        value = draw(rng)
        if value not in seen:
            seen.add(value)
            return value


def _labels(rng: np.random.Generator, spec: DemoSpec, devices: tuple[str, ...]) -> dict[str, float | None]:
    """One study's CheXpert row (1.0, 0.0, -1.0 or None = blank); the drawn classes decide the image."""
    labels: dict[str, float | None] = {c: None for c in CHEXPERT_LABELS}
    for name in DRAWN_CLASSES:
        if rng.random() < spec.finding_rate:
            labels[name] = -1.0 if rng.random() < spec.uncertain_rate else 1.0
        elif rng.random() < 0.5:
            labels[name] = 0.0  # explicitly negated in the report ("no pleural effusion")
    if labels["Pneumonia"] == 1.0 and rng.random() < 0.5:
        labels["Consolidation"] = 1.0
    if any(labels[c] in (1.0, -1.0) for c in ("Pneumonia", "Atelectasis", "Lung Lesion")):
        labels["Lung Opacity"] = 1.0
    if rng.random() < 0.1:
        labels["Cardiomegaly"] = 1.0
    elif rng.random() < 0.3:
        labels["Cardiomegaly"] = 0.0
    if rng.random() < 0.5:
        labels["Pneumothorax"] = 0.0
    if rng.random() < 0.2:
        labels["Edema"] = 0.0
    if set(devices) & SUPPORT_DEVICES:
        labels["Support Devices"] = 1.0
    if not any(v in (1.0, -1.0) for c, v in labels.items() if c != "No Finding"):
        labels["No Finding"] = 1.0
    return labels


def _subject_splits(rng: np.random.Generator, n: int) -> list[str]:
    """train / validate / test by subject, each present (about 70 / 15 / 15)."""
    train, validate, test = SPLITS
    splits = np.array([train] * n, dtype=object)
    order = rng.permutation(n)
    n_hold = max(1, int(round(0.15 * n)))
    splits[order[:n_hold]] = test
    splits[order[n_hold : 2 * n_hold]] = validate
    return [str(x) for x in splits]


def _new_study(
    rng: np.random.Generator,
    spec: DemoSpec,
    subject: int,
    prefix: int,
    split: str,
    date: int,
    kind: tuple,
    seen_studies: set,
) -> dict:
    """One study: ids, date, procedure and its views, devices, CheXpert labels, and the seed its findings share."""
    procedure, views, _ = kind
    portable = "PORTABLE" in procedure
    devices = tuple(
        d
        for d in ("ett", "central_line", "ng_tube", "pacemaker", "ecg")
        if rng.random() < (0.4 if d == "ecg" else 0.1 + 0.15 * portable)
    )
    return {
        "subject_id": subject,
        "prefix": prefix,
        "split": split,
        "study_id": _unique(rng, seen_studies, lambda r: 50_000_000 + int(r.integers(0, 10_000_000))),
        "procedure": procedure,
        "date": date,
        "time": round(float(rng.integers(0, 24) * 10000 + rng.integers(0, 60) * 100 + rng.uniform(0, 60)), 3),
        "orientation": "Recumbent" if portable and rng.random() < 0.5 else "Erect",
        "devices": devices,
        "labels": _labels(rng, spec, devices),
        "finding_seed": int(rng.integers(0, 2**31)),
        "report": True,
        "empty_report": False,
        "images": [{"dicom_id": _dicom_id(rng), "view": v} for v in views],
    }


def _mark_special(rng: np.random.Generator, studies: list[dict]) -> dict:
    """Two studies lose their report; four frontal images of reported studies go bad (or RGB)."""
    with_frontal = [st for st in studies if any(im["view"] in ("PA", "AP") for im in st["images"])]
    no_report = [with_frontal[int(i)] for i in rng.choice(len(with_frontal), size=2, replace=False)]
    for st in no_report:
        st["report"] = False
    candidates = [im for st in studies if st["report"] for im in st["images"] if im["view"] in ("PA", "AP")]
    special = {}
    for name, i in zip(("corrupt", "truncated", "missing", "rgb"), rng.choice(len(candidates), 4, replace=False)):
        candidates[int(i)]["special"] = name
        special[name] = [candidates[int(i)]["dicom_id"]]
    special["studies_without_report"] = [f"s{st['study_id']}" for st in no_report]
    return special


def _frontal_view(st: dict) -> str:
    return next(im["view"] for im in st["images"] if im["view"] in FRONTAL_VIEWS)


def _mislabel(rng: np.random.Generator, hosts: list[dict], seen: set) -> dict[str, str]:
    """Append to four hosts one lateral or CT render whose ViewPosition copies the host's frontal view, PA and
    AP in turn where the archive has both (each true view then hides behind each label)."""
    roomy = [st for st in hosts if len(st["images"]) < 3]  # MIMIC studies hold 1..3 images
    pool = roomy if len(roomy) >= len(MISLABELLED_VIEWS) else list(hosts)
    mislabelled = {}
    for k, true_view in enumerate(MISLABELLED_VIEWS):
        wanted = [st for st in pool if _frontal_view(st) == ("PA", "AP")[k % 2]] or pool
        st = wanted[int(rng.integers(len(wanted)))]
        pool.remove(st)
        dicom_id = _unique(rng, seen, _dicom_id)
        st["images"].append(
            {"dicom_id": dicom_id, "view": _frontal_view(st), "true_view": true_view, "stream": (7, k + 1)}
        )
        mislabelled[dicom_id] = true_view
    return mislabelled


def _mark_review_cases(rng: np.random.Generator, studies: list[dict]) -> dict:
    """Four images labelled PA/AP are lateral or CT renders (in studies with a report); one study's report has
    no extractable text (CXLSeg dropped such studies).  Drawn from their own stream after everything else, so
    nothing else in the archive changes."""
    seen = {im["dicom_id"] for st in studies for im in st["images"]}
    mislabelled = _mislabel(rng, [st for st in studies if st["report"]], seen)
    free = [st for st in studies if st["report"] and not any("true_view" in im for im in st["images"])]
    clean = [st for st in free if not any("special" in im for im in st["images"])] or free
    empty = clean[int(rng.integers(len(clean)))]
    empty["empty_report"] = True
    return {"studies_with_empty_report": [f"s{empty['study_id']}"], "mislabelled_views": mislabelled}


HARD_FILMS = ("inverted", "border")  # qc.degradations kinds the film check undoes


def _mark_hard_films(rng: np.random.Generator, studies: list[dict]) -> dict[str, str]:
    """Two ordinary frontal films of reported studies are written as an archive's hard films: one inverted
    (MONOCHROME1 shown as MONOCHROME2), one photographed on a light box; their true masks move with them."""
    plain = [
        im
        for st in studies
        if st["report"] and not st["empty_report"]
        for im in st["images"]
        if im["view"] in FRONTAL_VIEWS and "special" not in im and "true_view" not in im
    ]
    chosen = rng.choice(len(plain), size=len(HARD_FILMS), replace=False)
    hard = {}
    for kind, i in zip(HARD_FILMS, chosen):
        plain[int(i)]["hard_film"] = kind
        hard[plain[int(i)]["dicom_id"]] = kind
    return hard


def plan_mimic(spec: DemoSpec) -> tuple[list[dict], dict]:
    """Subjects in a few p1x prefixes, 1..3 studies each, 1..3 images per study; and the special cases."""
    rng = stream(spec, 4, 0)
    n = spec.n_mimic_subjects
    prefixes = sorted(int(p) for p in rng.choice(np.arange(10, 20), size=int(rng.integers(3, 8)), replace=False))[:n]
    splits = _subject_splits(rng, n)
    n_studies = [int(rng.integers(1, spec.max_studies_per_subject + 1)) for _ in range(n)]
    for extra in range(max(0, MIN_STUDIES - sum(n_studies))):
        n_studies[extra % n] += 1
    weights = np.array([t[2] for t in STUDY_TYPES])
    forced = [STUDY_TYPES[0], STUDY_TYPES[2], STUDY_TYPES[5]]  # a LATERAL, an LL and a blank ViewPosition
    seen_subjects: set = set()
    seen_studies: set = set()
    studies: list[dict] = []
    for s in range(n):
        prefix = prefixes[s % len(prefixes)]
        subject = _unique(
            rng, seen_subjects, lambda r, prefix=prefix: prefix * 1_000_000 + int(r.integers(0, 1_000_000))
        )
        year = int(rng.integers(2110, 2200))
        for k in range(n_studies[s]):
            kind = STUDY_TYPES[int(rng.choice(len(STUDY_TYPES), p=weights / weights.sum()))]
            kind = forced[len(studies)] if len(studies) < len(forced) else kind
            date = year * 10000 + (1 + (2 * k) % 12) * 100 + int(rng.integers(1, 29))
            studies.append(_new_study(rng, spec, subject, prefix, splits[s], date, kind, seen_studies))
            year += int(rng.integers(0, 2))
    special = _mark_special(rng, studies)
    for index, im in enumerate((im for st in studies for im in st["images"]), start=1):
        im["stream"] = (4, index)  # one random stream per image
    special.update(_mark_review_cases(stream(spec, 6, 0), studies))
    special["hard_films"] = _mark_hard_films(stream(spec, 8, 0), studies)
    special["prefixes"] = [f"p{p}" for p in prefixes]
    special["absent_prefixes"] = [f"p{p}" for p in range(10, 20) if p not in prefixes]
    return studies, special
