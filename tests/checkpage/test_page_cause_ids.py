"""The check page reports causes from rtccheck's one vocabulary (a stored report has the schema
of ``rtccheck --json``): every id its JavaScript can emit is a `CauseId` and is catalogued in
docs/rtccheck-json.md, and the page names causes only through its two tables."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from rtccheck.causes import CAUSE_IDS

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "rtccheck-json.md"
CAUSE_TABLE = re.compile(r"const CAUSE = Object\.freeze\(\{(?P<body>.*?)\}\);", re.S)
CODE_TABLE = re.compile(r"const CAUSE_OF_ERROR_CODE = Object\.freeze\(\{(?P<body>.*?)\}\);", re.S)
ENTRY = re.compile(r'^\s*(?P<key>[A-Za-z0-9_]+): "(?P<id>[^"]*)",?\s*$', re.M)


def page_scripts() -> dict[str, str]:
    folder = resources.files("turn_relay.api").joinpath("static")
    return {
        f"{sub}/{entry.name}": entry.read_text(encoding="utf-8")
        for sub in ("check", "peer")
        for entry in folder.joinpath(sub).iterdir()
        if entry.name.endswith(".js")
    }


def check_js() -> str:
    return page_scripts()["check/check.js"]


def table(pattern: re.Pattern[str], source: str) -> dict[str, str]:
    found = pattern.search(source)
    assert found is not None, f"check.js lost its table {pattern.pattern[:30]}..."
    entries = {m["key"]: m["id"] for m in ENTRY.finditer(found["body"])}
    lines = [line for line in found["body"].splitlines() if line.strip()]
    assert len(entries) == len(lines), "a table line the test cannot read"
    return entries


def emitted_cause_ids() -> set[str]:
    source = check_js()
    return set(table(CAUSE_TABLE, source).values()) | set(table(CODE_TABLE, source).values())


def documented_cause_ids() -> set[str]:
    doc = DOC.read_text(encoding="utf-8")
    section = doc[doc.index("\n## cause_id catalogue") + 1 :]
    following = section.find("\n## ")
    section = section if following < 0 else section[:following]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE))


def test_the_page_emits_only_catalogued_cause_ids() -> None:
    emitted = emitted_cause_ids()
    assert len(emitted) >= 10
    assert emitted - CAUSE_IDS == set(), "not members of rtccheck.causes.CauseId"
    assert emitted - documented_cause_ids() == set(), "not in docs/rtccheck-json.md"


def test_the_page_names_causes_only_through_its_tables() -> None:
    """No result's cause_id is written as a string outside the tables, and every table entry
    the code refers to exists (``CAUSE.typo`` would be undefined, reported as no cause)."""
    for name, source in page_scripts().items():
        assert re.findall(r"cause_id:\s*[\"'`]", source) == [], name
    source = check_js()
    names = set(table(CAUSE_TABLE, source))
    used = set(re.findall(r"\bCAUSE\.([A-Za-z0-9_]+)", source))
    assert used - names == set()
    assert names - used == set(), "an entry no result uses"


def test_every_turn_error_the_page_explains_has_a_cause_id() -> None:
    source = check_js()
    explained = set(re.findall(r"^\s+(\d{3}): \"", source.split("const ICE_ERRORS", 1)[1], re.M))
    codes = set(table(CODE_TABLE, source))
    assert explained - {"701"} <= codes
