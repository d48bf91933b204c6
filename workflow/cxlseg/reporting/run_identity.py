"""The run report's "Which run" section: what the tables were built from, and a warning when the disk no longer
matches (a rerun cut off after the tables were written).

Why: a report that silently describes masks an unfinished run already replaced is worse than none; the same
check as `cxlseg check-run` (tables.provenance) runs when the report is written.
"""

from __future__ import annotations

import html

import pandas as pd

from cxlseg.tables.provenance import FIX


def _table(rows: list[tuple], columns: list[str]) -> str:
    frame = pd.DataFrame(rows, columns=columns)
    return frame.to_html(index=False, border=0, escape=True) if rows else "<p class='note'>(none)</p>"


def mismatch_banner(check) -> str:
    """HTML: a warning banner listing every mismatch between the tables and the disk (`check_tables`'s); empty when
    all match (the top of the summary page, so nobody reads numbers that no longer describe the files)."""
    parts = []
    if not check.ok:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in check.problems)
        parts.append(
            "<div class='banner'>The tables do not describe the files on disk:"
            f"<ul>{items}</ul>{html.escape(FIX)} <code>cxlseg check-run</code> repeats this check.</div>"
        )
    return "".join(parts)


def identity_section(check, *, banner: bool = True) -> str:
    """HTML: the warning banner (unless shown elsewhere), then the config hash, code and manifest hashes, from a
    `check_tables` already made (it stats every image file, so the summary page runs it once)."""
    parts = [mismatch_banner(check)] if banner else []
    record = check.identity
    if not record:
        return "".join(parts)
    code = record.get("code", {})
    commit = code.get("git_commit") or "not a git checkout"
    dirty = " (uncommitted changes)" if code.get("git_dirty") else ""
    manifests = [
        (name, count.get("rows"), str(count.get("sha256", ""))[:16])
        for name, count in sorted(record.get("manifests", {}).items())
    ]
    parts += [
        "<h2 id='run'>Which run the tables describe</h2>",
        f"<p>config hash <code>{html.escape(str(record.get('config_hash')))}</code> · cxlseg "
        f"{html.escape(str(code.get('version')))} · commit <code>{html.escape(commit + dirty)}</code> · sources "
        f"<code>{html.escape(str(code.get('fingerprint')))}</code></p>",
        _table(manifests, ["shard manifest", "rows", "sha256 (first 16)"]),
        f"<p class='note'>{'All' if check.ok else 'Not all'} shard manifests, tables and "
        f"{check.images_checked:,} image files on disk match this record.</p>",
    ]
    return "".join(parts)
