"""Free-text reports in MIMIC-CXR's format that say what a study's CheXpert labels say."""

from __future__ import annotations

import textwrap

import numpy as np

Sentences = tuple[list[str], list[str]]  # findings, impression


def _wrap(text: str) -> list[str]:
    """Report body lines: wrapped at 76 and indented one space, as MIMIC's text files are."""
    return [" " + line for line in textwrap.wrap(text, 76)] or [" "]


def _pneumonia(value, site: str | None) -> Sentences:
    if value == 1.0:
        return (
            [f"Patchy opacity in the {site or 'right lower'} lung zone is concerning for pneumonia."],
            [f"{(site or 'Right lower').capitalize()} pneumonia."],
        )
    if value == -1.0:
        return (
            [
                f"Hazy opacity in the {site or 'left lower'} lung could represent early pneumonia in the "
                f"appropriate clinical setting."
            ],
            ["Possible early pneumonia."],
        )
    if value == 0.0:
        return ["No focal consolidation to suggest pneumonia."], []
    return [], []


def _atelectasis(rng: np.random.Generator, value, site: str | None) -> Sentences:
    if value == 1.0:
        return (
            [
                f"Linear opacity at the {(site or 'left basilar').split()[0]} base is most consistent with "
                f"subsegmental atelectasis."
            ],
            ["Bibasilar atelectasis." if rng.random() < 0.2 else "Basilar atelectasis."],
        )
    if value == -1.0:
        return ["Bandlike opacity at the lung base may reflect atelectasis."], ["Possible minimal atelectasis."]
    return [], []


def _lesion(rng: np.random.Generator, value, site: str | None) -> Sentences:
    if value == 1.0:
        return (
            [f"A {rng.uniform(0.8, 2.5):.1f} cm nodule projects over the {site or 'right upper'} lung."],
            ["Pulmonary nodule; recommend chest CT for further characterization."],
        )
    if value == -1.0:
        return (
            [f"Possible nodular opacity in the {site or 'left mid'} lung."],
            ["Possible pulmonary nodule, can be further assessed with CT."],
        )
    return [], []


def _effusion(value, site: str | None, pneumothorax) -> Sentences:
    side = site or "right"
    side_text = "bilateral pleural effusions" if side == "bilateral" else f"{side} pleural effusion"
    findings, impression = [], []
    if value == 1.0:
        findings.append(f"Small {side_text} with blunting of the costophrenic angle.")
        impression.append(f"Small {side_text}.")
    elif value == -1.0:
        findings.append(
            f"Blunting of the {side if side != 'bilateral' else 'left'} costophrenic angle may reflect "
            f"a trace effusion."
        )
        impression.append("Possible trace pleural effusion.")
    elif value == 0.0:
        findings.append("No pleural effusion" + (" or pneumothorax." if pneumothorax == 0.0 else "."))
    if pneumothorax == 0.0 and value != 0.0:
        findings.append("No pneumothorax.")
    return findings, impression


def _heart_and_rest(rng: np.random.Generator, labels: dict) -> Sentences:
    """Heart size, edema, support devices and the normal-study impression."""
    findings, impression = [], []
    if labels["Cardiomegaly"] == 1.0:
        findings.append("The heart size is mildly enlarged.")
        impression.append("Mild cardiomegaly.")
    elif labels["Cardiomegaly"] == 0.0:
        findings.append("Heart size is normal.")
    else:
        findings.append("The cardiomediastinal and hilar contours are within normal limits.")
    if labels["Edema"] == 0.0:
        findings.append("No pulmonary edema.")
    if labels["Support Devices"] == 1.0:
        findings.append("Support lines and tubes are in standard position.")
    if labels["No Finding"] == 1.0:
        impression.append(
            str(
                rng.choice(
                    [
                        "No acute cardiopulmonary process.",
                        "No acute intrathoracic abnormality.",
                        "Normal chest radiograph.",
                    ]
                )
            )
        )
    return findings, impression


def _sentences(rng: np.random.Generator, labels: dict, sites: dict[str, str]) -> Sentences:
    """Findings and impression sentences that say what the labels say, where the images show it."""
    parts = [
        _pneumonia(labels["Pneumonia"], sites.get("Pneumonia")),
        _atelectasis(rng, labels["Atelectasis"], sites.get("Atelectasis")),
        _lesion(rng, labels["Lung Lesion"], sites.get("Lung Lesion")),
        _effusion(labels["Pleural Effusion"], sites.get("Pleural Effusion"), labels["Pneumothorax"]),
        _heart_and_rest(rng, labels),
    ]
    return [f for part in parts for f in part[0]], [i for part in parts for i in part[1]]


def _header(rng: np.random.Generator, study: dict) -> list[str]:
    """FINAL REPORT, EXAMINATION and INDICATION: what every report starts with."""
    lines = ["                                 FINAL REPORT", f" EXAMINATION:  {study['procedure']}", " "]
    reason = str(
        rng.choice(
            ["cough", "fever", "shortness of breath", "chest pain", "evaluate for pneumonia", "line placement", "preop"]
        )
    )
    return lines + [f" INDICATION:  ___{'MF'[int(rng.integers(2))]} with {reason}  // eval", " "]


def _technique(study: dict) -> list[str]:
    technique = {"AP": "Single portable AP view of the chest.", "PA": "Chest PA and lateral"}
    frontal = next((im["view"] for im in study["images"] if im["view"] in ("PA", "AP")), "PA")
    return [f" TECHNIQUE:  {technique[frontal]}", " "]


def empty_report(rng: np.random.Generator, study: dict) -> str:
    """A report with header sections only (no findings, impression, comparison or closing paragraph): nothing
    for CXLSeg's report rules to extract, so the study is dropped like one without a report file."""
    return "\n".join(_header(rng, study) + _technique(study)) + "\n"


def mimic_report(rng: np.random.Generator, study: dict, sites: dict[str, str]) -> str:
    """A report in MIMIC-CXR's free-text format, with the section variants real reports have."""
    findings, impression = _sentences(rng, study["labels"], sites)
    variant = str(
        rng.choice(
            [
                "full",
                "full",
                "full",
                "impression_only",
                "combined",
                "conclusion",
                "misspelled",
                "addendum",
                "comparison_only",
                "wet_read",
            ]
        )
    )
    lines: list[str] = []
    if variant == "wet_read":
        lines += [
            f" WET READ: ___ ___ {int(rng.integers(1, 12))}:{int(rng.integers(10, 59))} PM",
            "  " + (impression[0] if impression else "No acute process."),
            " ",
            " ",
        ]
    lines += _header(rng, study)
    if variant != "impression_only":
        lines += _technique(study)
    comparison = str(rng.choice(["None.", "___", "Chest radiograph from ___."]))
    if variant == "comparison_only":
        lines += [f" COMPARISON:  {comparison}", " "]
        lines += _wrap(" ".join(findings + impression))
        return "\n".join(lines) + "\n"
    lines += [f" COMPARISON:  {comparison}", " "]
    if variant == "combined":
        lines += [" FINDINGS AND IMPRESSION:", " "] + _wrap(" ".join(findings + impression)) + [" "]
        return "\n".join(lines) + "\n"
    if variant != "impression_only":
        lines += [" FINDINGS:", " "] + _wrap(" ".join(findings)) + [" "]
    header = {"conclusion": "CONCLUSION:", "misspelled": "IMPRESSON:"}.get(variant, "IMPRESSION:")
    lines += [f" {header}", " "] + _wrap(" ".join(impression or ["No acute cardiopulmonary process."]))
    if variant == "addendum":
        lines += [" ", " ADDENDUM:", " "] + _wrap(
            "Findings were discussed with the referring clinician by telephone at the time of dictation."
        )
    return "\n".join(lines) + "\n"
