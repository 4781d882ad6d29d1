"""Every drop reason the relay counts is explained in docs/operations.md, and nothing else is."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COUNTED = re.compile(r'(?:_drop\(|dropped\[)"([a-z-]+)"')
NAMED = re.compile(r'^[A-Z_]+ = "([a-z-]+)"  # a drop reason$', re.MULTILINE)  # _drop(NAME)
DOCUMENTED = re.compile(r"^\s*\| `([a-z-]+)` \|", re.MULTILINE)


def counted_reasons() -> set[str]:
    found: set[str] = set()
    for source in sorted((REPO / "turn_relay").rglob("*.py")):
        text = source.read_text(encoding="utf-8")
        found.update(COUNTED.findall(text))
        found.update(NAMED.findall(text))
    return found


def documented_reasons() -> list[str]:
    doc = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    start = doc.index("turnkit_relay_dropped_total{reason=...}")
    table = doc[start : doc.index("\n- ", start)]
    return DOCUMENTED.findall(table)


def test_the_drop_reason_table_matches_the_code() -> None:
    documented = documented_reasons()
    assert len(documented) == len(set(documented)), "a reason is documented twice"
    assert set(documented) == counted_reasons()


def test_the_scan_finds_both_kinds_of_counting() -> None:
    reasons = counted_reasons()
    assert {"no-permission", "peer-before-permission", "stream-garbage"} <= reasons
    assert len(reasons) >= 19
