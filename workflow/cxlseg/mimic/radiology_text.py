"""MIMIC-CXR report section parsing and CXLSeg report extraction.

The rules follow the section parser that MIT-LCP ships with MIMIC-CXR
(``txt/section_parser.py``), re-implemented here:

* a section header is an upper-case word followed by more upper-case words
  (and ``( ) / , -``) and a colon at the start of a line, after optional
  leading whitespace; the text before the first header is the ``preamble``;
  a report without any header is one section, ``full report``;
* header names are lower-cased and normalised: exact aliases and known
  misspellings first (``comparisons`` -> comparison, ``conclusion`` ->
  impression, ``impresson`` -> impression, ...), then any name containing a
  main section word (impression, findings, history, comparison, addendum),
  then view descriptions (``PA AND LATERAL``, ``CHEST, TWO VIEWS``, ...) which
  radiologists use as a findings header;
* empty sections are dropped (MIMIC often has a ``CHEST, PA LATERAL:`` title
  or an empty duplicate FINDINGS header);
* when neither findings nor impression exists, the last section is split at
  its first blank line and everything after it becomes ``last_paragraph``:
  short reports are often a single header followed by a few paragraphs.

Two deliberate departures from MIT-LCP: a header may sit on the very first
line and need not be preceded by exactly one space, and a header directly on
the line after another header is still a header (MIT-LCP skips one line after
each header, which swallows IMPRESSION after an empty FINDINGS).

CXLSeg's report is findings then impression (whitespace-normalised, joined by
one space). Without either:

1. the comparison section, when it is the report's last section (radiologists
   often write the whole report there); its paragraphs cut off by the
   last-paragraph split are joined back;
2. else the last paragraph, MIT-LCP's fallback, which it ranks above
   comparison: when a later section (technique, indication...) ends in a
   free paragraph, that paragraph is the report and the comparison is
   usually just "None." or a date;
3. else a comparison section elsewhere in the report;
4. else nothing (rule "none").

MIT-LCP maps the misspelling "ndication" to impression; here it is indication.

The order above (comparison-as-last-section before the last paragraph) and the fallbacks 1-3 beyond
"comparison when neither exists" are this project's choices; `mimic.report_text: paper` keeps only the
paper's rule (findings + impression, else comparison, else nothing; no per-study rules).

Per-study rules: MIT-LCP's ``custom_mimic_cxr_rules`` fixes 54 badly formatted
reports by hand, and they take precedence over everything above (rule
``study_rule``; ``study_rule_none`` for the 8 reports MIT-LCP marks as having
no text at all). They are a data table, ``data/report_rules.csv``:

* ``section``: the report is that section (the last one of that name, as
  MIT-LCP's ``list_rindex``); if our parser finds no such section the normal
  rules above apply instead of MIT-LCP's crash;
* ``span``: the report is ``text[start:end]`` of the raw report text (MIT-LCP
  applies the offsets before any sectioning, to the file as read in text
  mode); ``[0, 0]`` means no text.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

STUDY_RULE = "study_rule"
STUDY_RULE_NONE = "study_rule_none"
RULES = (
    "findings+impression",
    "findings",
    "impression",
    "comparison",
    "last_paragraph",
    "none",
    STUDY_RULE,
    STUDY_RULE_NONE,
)
STUDY_RULES_CSV = Path(__file__).parent.parent / "data" / "report_rules.csv"
# Why a study has no report text before any rule runs: its file is absent, or is there but cannot be read.
# One vocabulary for the tables' ReportRule column and the selection summary's drop counts.
NO_REPORT_FILE = "no_file"
UNREADABLE_REPORT = "unreadable_file"
REPORT_FILE_PROBLEMS = {NO_REPORT_FILE: "no report file", UNREADABLE_REPORT: "report file unreadable"}

log = logging.getLogger(__name__)

# starting with a letter keeps the scan linear (10x faster than MIT-LCP's class on MIMIC text)
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z ()/,-]*):(?=\s|\Z)", re.MULTILINE)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")

_ALIASES = {
    "preamble": "preamble",
    "full report": "full report",
    "impression": "impression",
    "comparison": "comparison",
    "indication": "indication",
    "findings": "findings",
    "examination": "examination",
    "technique": "technique",
    "history": "history",
    "comparisons": "comparison",
    "clinical history": "history",
    "reason for examination": "indication",
    "notification": "notification",
    "reason for exam": "indication",
    "clinical information": "history",
    "exam": "examination",
    "clinical indication": "indication",
    "conclusion": "impression",
    "chest, two views": "findings",
    "recommendation(s)": "recommendations",
    "recommendation": "recommendations",
    "recommendations": "recommendations",
    "type of examination": "examination",
    "reference exam": "comparison",
    "patient history": "history",
    "addendum": "addendum",
    "comparison exam": "comparison",
    "comparison film": "comparison",
    "date": "date",
    "comment": "comment",
    "findings and impression": "impression",
    "findings/impression": "impression",
    "findings/ impression": "impression",
    "wet read": "wet read",
    "wetread": "wet read",
    "pfi": "history",
    # misspellings seen in MIMIC-CXR
    "impresson": "impression",
    "imprression": "impression",
    "imoression": "impression",
    "impressoin": "impression",
    "imprssion": "impression",
    "impresion": "impression",
    "imperssion": "impression",
    "mpression": "impression",
    "impession": "impression",
    "finding": "findings",
    "findins": "findings",
    "findindgs": "findings",
    "findgings": "findings",
    "findngs": "findings",
    "findnings": "findings",
    "finidngs": "findings",
    "reference findings": "findings",
    "idication": "indication",
    "ndication": "indication",
    "comparision": "comparison",
    "comparsion": "comparison",
    "comparrison": "comparison",
    "comparisions": "comparison",
}
_MAIN_SECTIONS = ("impression", "findings", "history", "comparison", "addendum")
_VIEW_AS_FINDINGS = re.compile(
    "|".join(
        re.escape(v)
        for v in (
            "chest",
            "portable",
            "pa and lateral",
            "lateral and pa",
            "ap and lateral",
            "lateral and ap",
            "frontal and",
            "two views",
            "frontal view",
            "pa view",
            "ap view",
            "one view",
            "lateral view",
            "bone window",
            "frontal upright",
            "frontal semi-upright",
            "ribs",
            "pa and lat",
        )
    )
)


@functools.lru_cache(maxsize=8192)
def normalize_section_name(raw: str) -> str:
    """Map a header as written to the canonical section name (cached: MIMIC repeats a few hundred headers)."""
    name = " ".join(raw.lower().split())
    if name in _ALIASES:
        return _ALIASES[name]
    for main in _MAIN_SECTIONS:
        if main in name:
            return main
    if _VIEW_AS_FINDINGS.search(name):
        return "findings"
    return name


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


def split_sections(text: str) -> list[tuple[str, str]]:
    """Ordered (canonical name, stripped body) pairs; empty sections dropped, last paragraph split off."""
    headers = list(_HEADER.finditer(text))
    if not headers:
        raw = [("full report", text)]
    else:
        raw = [("preamble", text[: headers[0].start()])]
        for i, match in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            raw.append((match.group(1), text[match.end() : end]))
    sections = [(normalize_section_name(name), body.strip()) for name, body in raw]
    sections = [(name, body) for name, body in sections if body]
    names = {name for name, _ in sections}
    if sections and "findings" not in names and "impression" not in names:
        name, body = sections[-1]
        parts = _BLANK_LINE.split(body, maxsplit=1)
        if len(parts) == 2 and parts[1].strip():
            sections[-1] = (name, parts[0].strip())
            sections.append(("last_paragraph", parts[1].strip()))
    return sections


REPORT_TEXT_MODES = ("project", "paper")


def extract_report(text: str, study_id: int | str | None = None, fallbacks: str = "project") -> tuple[str, str]:
    """The CXLSeg report text and the rule (one of RULES) that produced it.

    With `study_id` (50798377 or 's50798377'), MIT-LCP's per-study rule for that report wins. `fallbacks`
    ("project" | "paper", config mimic.report_text): "paper" keeps only what the CXLSeg paper states, findings
    and impression, else the comparison section, else nothing: no per-study rules, no last paragraph.
    """
    if fallbacks not in REPORT_TEXT_MODES:
        raise ValueError(f"report text mode must be one of {', '.join(REPORT_TEXT_MODES)}, got {fallbacks!r}")
    if study_id is not None and fallbacks == "project":
        rule = study_rules().get(study_key(study_id))
        if rule is not None:
            forced = _apply_study_rule(rule, text)
            if forced is not None:
                return forced
    sections = split_sections(text)
    by_name = {name: body for name, body in sections}
    findings = normalize_whitespace(by_name.get("findings", ""))
    impression = normalize_whitespace(by_name.get("impression", ""))
    if findings and impression:
        return f"{findings} {impression}", "findings+impression"
    if findings:
        return findings, "findings"
    if impression:
        return impression, "impression"
    names = [name for name, _ in sections]
    comparison = _last_index(names, "comparison")
    if comparison is not None and names[comparison + 1 :] in ([], ["last_paragraph"]):
        return normalize_whitespace(" ".join(body for _, body in sections[comparison:])), "comparison"
    if "last_paragraph" in by_name and fallbacks == "project":
        return normalize_whitespace(by_name["last_paragraph"]), "last_paragraph"
    if comparison is not None:
        return normalize_whitespace(sections[comparison][1]), "comparison"
    return "", "none"


# --------------------------------------------------------------------------- per-study rules


@dataclass(frozen=True)
class StudyRule:
    """One row of data/report_rules.csv: a forced section name, or a [start, end) span of the raw text."""

    study_id: str
    rule: str  # "section" or "span"
    section: str = ""
    start: int = 0
    end: int = 0


def study_key(study_id: int | str) -> str:
    """MIT-LCP's key for a study: 's' + the number (MIMIC tables carry the bare integer)."""
    if isinstance(study_id, float) and study_id.is_integer():
        study_id = int(study_id)
    key = str(study_id).strip()
    return key if key.startswith("s") else f"s{key}"


@functools.lru_cache(maxsize=1)
def study_rules(path: os.PathLike | str = STUDY_RULES_CSV) -> dict[str, StudyRule]:
    """The per-study table, read once per process (a few dozen rows) and checked as it is read."""
    rules: dict[str, StudyRule] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            key = study_key(row["study_id"])
            if key in rules:
                raise ValueError(f"{path}:{line}: study {key} has two rules")
            if row["rule"] == "section" and row["section"]:
                rules[key] = StudyRule(key, "section", section=row["section"])
            elif row["rule"] == "span" and 0 <= int(row["start"]) <= int(row["end"]):
                rules[key] = StudyRule(key, "span", start=int(row["start"]), end=int(row["end"]))
            else:
                raise ValueError(f"{path}:{line}: bad rule {dict(row)}")
    return rules


def _apply_study_rule(rule: StudyRule, text: str) -> tuple[str, str] | None:
    """The forced report, or None when the forced section is not in this text (normal rules then apply)."""
    if rule.rule == "span":
        report = normalize_whitespace(text[rule.start : rule.end])
        return (report, STUDY_RULE) if report else ("", STUDY_RULE_NONE)
    bodies = [body for name, body in split_sections(text) if name == rule.section]
    return (normalize_whitespace(bodies[-1]), STUDY_RULE) if bodies else None


def _last_index(names: list[str], name: str) -> int | None:
    return len(names) - 1 - names[::-1].index(name) if name in names else None


def read_report(path: os.PathLike | str) -> str:
    """A report file as text; undecodable bytes are replaced so one odd file never stops a merge."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def study_report(path: os.PathLike | str, study_id: int | str, fallbacks: str = "project") -> tuple[str, str]:
    """(report text, rule) of one study's file; ("", NO_REPORT_FILE or UNREADABLE_REPORT) when it cannot be read."""
    try:
        text = read_report(path)
    except FileNotFoundError:
        return "", NO_REPORT_FILE
    except OSError as exc:
        log.warning("%s: report not readable (%s)", path, exc)
        return "", UNREADABLE_REPORT
    return extract_report(text, study_id=f"s{study_id}", fallbacks=fallbacks)
