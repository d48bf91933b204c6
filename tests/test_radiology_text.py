"""Report section parsing and CXLSeg report extraction on realistic MIMIC-CXR report texts."""

from __future__ import annotations

import pytest
from cxlseg.mimic.radiology_text import (
    RULES,
    STUDY_RULE,
    STUDY_RULE_NONE,
    extract_report,
    normalize_section_name,
    normalize_whitespace,
    read_report,
    split_sections,
    study_rules,
)

PREAMBLE = "                                 FINAL REPORT\n"

STANDARD = (
    PREAMBLE + " EXAMINATION:  CHEST (PA AND LAT)\n \n"
    " INDICATION:  ___F with new onset ascites  // eval for infection\n \n"
    " TECHNIQUE:  Chest PA and lateral\n \n"
    " COMPARISON:  None.\n \n"
    " FINDINGS: \n \n"
    " There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral\n"
    " nodular opacities that most likely represent nipple shadows.\n \n"
    " IMPRESSION: \n \n"
    " No acute cardiopulmonary process.\n"
)


def parse_sections(text: str) -> tuple[dict[str, str], list[str]]:
    """Sections by canonical name (the last one wins, as in MIT-LCP) and all names in report order."""
    sections = split_sections(text)
    return dict(sections), [name for name, _ in sections]


def test_standard_report_sections_and_order():
    sections, names = parse_sections(STANDARD)
    assert names == ["preamble", "examination", "indication", "technique", "comparison", "findings", "impression"]
    assert sections["preamble"] == "FINAL REPORT"
    assert sections["comparison"] == "None."
    assert sections["impression"] == "No acute cardiopulmonary process."
    assert sections["findings"].startswith("There is no focal consolidation")


def test_standard_report_is_findings_then_impression_whitespace_normalised():
    report, rule = extract_report(STANDARD)
    assert rule == "findings+impression"
    assert report == (
        "There is no focal consolidation, pleural effusion or pneumothorax. Bilateral nodular opacities "
        "that most likely represent nipple shadows. No acute cardiopulmonary process."
    )


@pytest.mark.parametrize(
    "header, canonical",
    [
        ("IMPRESSION", "impression"),
        ("CONCLUSION", "impression"),
        ("FINDINGS AND IMPRESSION", "impression"),
        ("FINDINGS/IMPRESSION", "impression"),
        ("FINDINGS/ IMPRESSION", "impression"),
        ("IMPRESSION AND RECOMMENDATION", "impression"),
        ("IMPRESSON", "impression"),
        ("IMPRESION", "impression"),
        ("IMPESSION", "impression"),
        ("IMPERSSION", "impression"),
        ("FINDINGS", "findings"),
        ("FINDING", "findings"),
        ("FINDNGS", "findings"),
        ("FINIDNGS", "findings"),
        ("FINDINS", "findings"),
        ("REFERENCE FINDINGS", "findings"),
        ("PA AND LATERAL VIEWS OF THE CHEST", "findings"),
        ("CHEST, TWO VIEWS", "findings"),
        ("PORTABLE AP UPRIGHT", "findings"),
        ("COMPARISON", "comparison"),
        ("COMPARISONS", "comparison"),
        ("COMPARISON FILM", "comparison"),
        ("COMPARISON EXAM", "comparison"),
        ("REFERENCE EXAM", "comparison"),
        ("COMPARISION", "comparison"),
        ("COMPARSION", "comparison"),
        ("COMPARRISON", "comparison"),
        ("INDICATION", "indication"),
        ("REASON FOR EXAMINATION", "indication"),
        ("REASON FOR EXAM", "indication"),
        ("CLINICAL INDICATION", "indication"),
        ("IDICATION", "indication"),
        ("CLINICAL HISTORY", "history"),
        ("PATIENT HISTORY", "history"),
        ("CLINICAL INFORMATION", "history"),
        ("PFI", "history"),
        ("EXAM", "examination"),
        ("TYPE OF EXAMINATION", "examination"),
        ("RECOMMENDATION(S)", "recommendations"),
        ("RECOMMENDATION", "recommendations"),
        ("WETREAD", "wet read"),
        ("WET READ", "wet read"),
        ("ADDENDUM", "addendum"),
        ("NOTIFICATION", "notification"),
        ("TECHNIQUE", "technique"),
        ("  Impression  ", "impression"),
        ("SOMETHING ELSE", "something else"),
    ],
)
def test_header_variants_normalise(header, canonical):
    assert normalize_section_name(header) == canonical


@pytest.mark.parametrize(
    "header, rule",
    [
        ("FINDINGS AND IMPRESSION", "impression"),
        ("CONCLUSION", "impression"),
        ("IMPRESSON", "impression"),
        ("FINDNGS", "findings"),
        ("PA AND LATERAL CHEST RADIOGRAPH", "findings"),
        ("COMPARISONS", "comparison"),
        ("COMPARISON FILM", "comparison"),
        ("COMPARISION", "comparison"),
    ],
)
def test_header_variant_inside_a_report_selects_the_rule(header, rule):
    text = PREAMBLE + f" INDICATION:  Cough.\n \n {header}:  Lungs are clear.\n"
    assert extract_report(text) == ("Lungs are clear.", rule)


def test_missing_findings_uses_impression_only():
    text = PREAMBLE + " INDICATION:  Fever.\n \n COMPARISON:  ___.\n \n IMPRESSION:  No pneumonia.\n"
    assert extract_report(text) == ("No pneumonia.", "impression")


def test_missing_impression_uses_findings_only():
    text = PREAMBLE + " INDICATION:  Fever.\n \n FINDINGS:  Heart size is normal.\n Lungs are clear.\n"
    assert extract_report(text) == ("Heart size is normal. Lungs are clear.", "findings")


def test_empty_findings_directly_followed_by_impression():
    """MIT-LCP would swallow IMPRESSION here (it skips a line after each header); we keep it."""
    text = PREAMBLE + " FINDINGS:\n IMPRESSION:  Stable appearance of the chest.\n"
    sections, names = parse_sections(text)
    assert "findings" not in sections
    assert names == ["preamble", "impression"]
    assert extract_report(text) == ("Stable appearance of the chest.", "impression")


def test_empty_duplicate_findings_header_is_dropped_and_title_header_ignored():
    text = (
        " CHEST, PA LATERAL:\n \n INDICATION:  Dyspnea.\n \n FINDINGS:\n \n"
        " FINDINGS:  Mild cardiomegaly.\n \n IMPRESSION:  Cardiomegaly without edema.\n"
    )
    sections, names = parse_sections(text)
    assert names == ["indication", "findings", "impression"]
    assert extract_report(text) == ("Mild cardiomegaly. Cardiomegaly without edema.", "findings+impression")


def test_repeated_section_last_one_wins():
    text = PREAMBLE + " IMPRESSION:  First draft.\n \n IMPRESSION:  Final impression.\n"
    sections, names = parse_sections(text)
    assert names.count("impression") == 2
    assert sections["impression"] == "Final impression."


def test_addendum_is_its_own_section_and_not_part_of_the_report():
    text = (
        "                                 FINAL ADDENDUM\n"
        " ADDENDUM:  Findings were discussed with Dr. ___ at 10:30 on ___.\n \n"
        "                                 FINAL REPORT\n"
        " INDICATION:  Chest pain.\n \n"
        " FINDINGS:  No pneumothorax.\n \n"
        " IMPRESSION:  Normal chest.\n"
    )
    sections, names = parse_sections(text)
    assert names == ["preamble", "addendum", "indication", "findings", "impression"]
    assert "discussed with Dr." in sections["addendum"]
    assert extract_report(text) == ("No pneumothorax. Normal chest.", "findings+impression")


def test_wet_read_with_time_is_a_section():
    text = " WET READ: ___ ___ 9:15 PM\n  No acute process.\n \n FINDINGS:  Clear lungs.\n"
    sections, names = parse_sections(text)
    assert names == ["wet read", "findings"]
    assert extract_report(text) == ("Clear lungs.", "findings")


def test_comparison_only_report_uses_whole_comparison_section():
    text = (
        PREAMBLE + " INDICATION:  Line placement.\n \n"
        " COMPARISON:  Chest radiograph from ___.\n \n"
        " The right internal jugular line ends in the mid SVC.  No pneumothorax.\n"
    )
    sections, names = parse_sections(text)
    # the MIT-LCP last-paragraph split still happens (no findings or impression) ...
    assert names == ["preamble", "indication", "comparison", "last_paragraph"]
    assert sections["comparison"] == "Chest radiograph from ___."
    # ... but CXLSeg prefers comparison, re-joined with the paragraphs the split cut off
    report, rule = extract_report(text)
    assert rule == "comparison"
    assert report == "Chest radiograph from ___. The right internal jugular line ends in the mid SVC. No pneumothorax."


def test_comparison_single_paragraph():
    text = PREAMBLE + " COMPARISON:  Unchanged since ___, no pneumothorax.\n"
    assert extract_report(text) == ("Unchanged since ___, no pneumothorax.", "comparison")


def test_last_paragraph_fallback_without_findings_impression_or_comparison():
    text = (
        PREAMBLE + " EXAMINATION:  CHEST (PORTABLE AP)\n \n"
        " INDICATION:  Intubated.\n \n"
        " TECHNIQUE:  Single portable view.\n \n"
        " Endotracheal tube terminates 4 cm above the carina.\n"
        " Lungs are clear.\n"
    )
    sections, names = parse_sections(text)
    assert names[-1] == "last_paragraph"
    assert sections["technique"] == "Single portable view."
    assert extract_report(text) == (
        "Endotracheal tube terminates 4 cm above the carina. Lungs are clear.",
        "last_paragraph",
    )


def test_no_headers_at_all_last_paragraph():
    text = PREAMBLE + " \n Portable chest radiograph shows clear lungs.\n \n Heart size normal.\n"
    sections, names = parse_sections(text)
    assert names == ["full report", "last_paragraph"]
    assert extract_report(text) == ("Portable chest radiograph shows clear lungs. Heart size normal.", "last_paragraph")


def test_no_headers_single_paragraph_gives_none():
    text = PREAMBLE + " Study was cancelled.\n"
    sections, names = parse_sections(text)
    assert names == ["full report"]
    assert extract_report(text) == ("", "none")


def test_only_empty_sections_gives_none():
    text = PREAMBLE + " INDICATION:\n \n FINDINGS:\n \n IMPRESSION:\n"
    sections, names = parse_sections(text)
    assert names == ["preamble"]
    assert extract_report(text) == ("", "none")


@pytest.mark.parametrize("text", ["", "   \n \n  "])
def test_empty_text(text):
    assert parse_sections(text) == ({}, [])
    assert extract_report(text) == ("", "none")


def test_header_on_first_line_without_leading_space():
    text = "FINDINGS: Lungs clear.\nIMPRESSION: Normal."
    assert extract_report(text) == ("Lungs clear. Normal.", "findings+impression")


def test_lower_case_or_mid_line_colons_are_not_headers():
    text = PREAMBLE + " FINDINGS:  Tube tip at T2: appropriate.  Note: small effusion.\n Impression: see above.\n"
    sections, names = parse_sections(text)
    assert names == ["preamble", "findings"]
    assert extract_report(text)[0] == "Tube tip at T2: appropriate. Note: small effusion. Impression: see above."


def test_rules_are_declared():
    assert set(RULES) == {
        "findings+impression",
        "findings",
        "impression",
        "comparison",
        "last_paragraph",
        "none",
        "study_rule",
        "study_rule_none",
    }


def test_read_report_tolerates_bad_bytes(tmp_path):
    path = tmp_path / "s1.txt"
    path.write_bytes(b" FINDINGS:  Clear \xff lungs.\n")
    text = read_report(path)
    assert extract_report(text) == ("Clear \ufffd lungs.", "findings")


def test_last_paragraph_of_a_later_section_beats_an_early_comparison():
    text = (
        PREAMBLE + " COMPARISON:  None.\n \n TECHNIQUE:  Single portable view.\n \n Feeding tube ends in the stomach.\n"
    )
    assert extract_report(text) == ("Feeding tube ends in the stomach.", "last_paragraph")


def test_early_comparison_used_when_nothing_else():
    text = PREAMBLE + " COMPARISON:  Improved since ___.\n \n TECHNIQUE:  Single view.\n"
    assert extract_report(text) == ("Improved since ___.", "comparison")


# --------------------------------------------------------------------------- MIT-LCP per-study rules


def test_study_rule_table_has_mit_lcp_counts():
    """custom_mimic_cxr_rules: 23 forced section names, 31 spans of which 8 are 'no text' ([0, 0])."""
    rules = study_rules()
    sections = [r for r in rules.values() if r.rule == "section"]
    spans = [r for r in rules.values() if r.rule == "span"]
    assert len(rules) == 54 and len(sections) == 23 and len(spans) == 31
    assert sum(r.start == r.end == 0 for r in spans) == 8
    assert all(k.startswith("s") and k[1:].isdigit() and len(k) == 9 for k in rules)
    assert {r.section for r in sections} == {
        "recommendations",
        "examination",
        "technique",
        "indication",
        "note",
        "history",
    }
    assert rules["s50913680"].section == "recommendations" and rules["s51491012"].section == "history"
    assert (rules["s50525523"].start, rules["s50525523"].end) == (201, 349)
    assert (rules["s50798377"].start, rules["s50798377"].end) == (0, 0)


FORCED = (
    PREAMBLE + " INDICATION:  Follow-up.\n \n"
    " FINDINGS:  See below.\n \n"
    " IMPRESSION:  Please see recommendations.\n \n"
    " RECOMMENDATION(S):  Right upper lobe nodule,\n  CT chest advised in 3 months.\n"
)


@pytest.mark.parametrize("study_id", ["s50913680", 50913680, "50913680"])
def test_forced_section_study_picks_that_section(study_id):
    """s50913680 is 'recommendations' in MIT-LCP's table: its findings/impression are not the report."""
    assert extract_report(FORCED) == ("See below. Please see recommendations.", "findings+impression")
    assert extract_report(FORCED, study_id) == ("Right upper lobe nodule, CT chest advised in 3 months.", STUDY_RULE)


def test_forced_section_takes_the_last_section_of_that_name():
    text = FORCED + " RECOMMENDATION:  Second, final advice.\n"
    assert extract_report(text, "s50913680") == ("Second, final advice.", STUDY_RULE)


def test_forced_section_missing_from_the_text_falls_back_to_the_normal_rules():
    text = PREAMBLE + " FINDINGS:  Clear.\n"
    assert extract_report(text, "s50913680") == ("Clear.", "findings")


def test_span_study_returns_exactly_that_span():
    """s50196495 is [59, 399]: offsets into the raw text (before any sectioning), whitespace-normalised."""
    text = "".join(f"line {i:03d}: word{i} and more text\n \n" for i in range(20))
    assert len(text) > 399
    report, rule = extract_report(text, 50196495)
    assert rule == STUDY_RULE
    assert report == normalize_whitespace(text[59:399])
    assert report.startswith(text[59:399].split()[0]) and report.endswith(text[59:399].split()[-1])


@pytest.mark.parametrize("study_id", ["s50798377", 52035334])
def test_no_text_study_returns_empty(study_id):
    """MIT-LCP: 'no findings at all in the entire report', even when a section parser would find some."""
    assert extract_report(STANDARD, study_id) == ("", STUDY_RULE_NONE)


def test_other_studies_keep_the_normal_rules():
    assert extract_report(STANDARD, 50000001) == extract_report(STANDARD) == extract_report(STANDARD, None)


def test_read_report_then_span_uses_text_mode_offsets(tmp_path):
    """Reports are read in text mode (CRLF -> LF) like MIT-LCP, so the offsets mean the same characters."""
    body = "".join(f"row {i:02d} xxxxxxxxxxxxxxxx\n" for i in range(30))
    path = tmp_path / "s50196495.txt"
    path.write_bytes(body.replace("\n", "\r\n").encode())
    assert extract_report(read_report(path), "s50196495")[0] == normalize_whitespace(body[59:399])


# --------------------------------------------------------------------------- mimic.report_text: paper


def test_paper_mode_keeps_only_findings_impression_then_comparison():
    """The paper's rule: no MIT-LCP last paragraph, no per-study fixes; comparison anywhere when nothing else."""
    last_paragraph = (
        PREAMBLE + " INDICATION:  Intubated.\n \n TECHNIQUE:  Single portable view.\n \n Lungs are clear.\n"
    )
    assert extract_report(last_paragraph)[1] == "last_paragraph"
    assert extract_report(last_paragraph, fallbacks="paper") == ("", "none")
    comparison_then_paragraph = (
        PREAMBLE + " COMPARISON:  Prior of ___.\n \n TECHNIQUE:  AP view.\n \n Tube in place, lungs clear.\n"
    )
    assert extract_report(comparison_then_paragraph) == ("Tube in place, lungs clear.", "last_paragraph")
    assert extract_report(comparison_then_paragraph, fallbacks="paper") == ("Prior of ___.", "comparison")
    assert extract_report(STANDARD, "s50798377", fallbacks="paper") == extract_report(STANDARD)  # no study rule
    assert extract_report(STANDARD, fallbacks="paper") == extract_report(STANDARD)
    with pytest.raises(ValueError, match="report text mode must be one of project, paper"):
        extract_report(STANDARD, fallbacks="authors")
