"""Terminal rendering: tables, causes and fixes, verdict, progress; rich stays in render.py."""

from __future__ import annotations

import io
import re
from pathlib import Path

import rtccheck
from rtccheck.render import (
    PlainProgress,
    format_metrics,
    make_console,
    progress_display,
    render_report,
    tally,
)
from rtccheck.results import CheckResult, Report, Status, build_report


def sample_report() -> Report:
    results = [
        CheckResult("dns.resolve", "turn.example.test", Status.PASS, "resolves", {"rtt_ms": 1.5}),
        CheckResult(
            "credentials.expiry",
            "turn:turn.example.test",
            Status.FAIL,
            "expired 2 h ago",
            cause="The credential expired.",
            fix="Mint a fresh one.",
        ),
    ]
    return build_report(
        results=results,
        targets=[],
        required=("relay-udp",),
        started_at=0.0,
        duration_s=0.1,
        checks_run=["credentials", "dns"],
        tool_version="test",
    )


def rendered(width: int = 120) -> str:
    stream = io.StringIO()
    render_report(sample_report(), make_console(file=stream, width=width))
    return stream.getvalue()


def test_report_has_a_table_per_family_in_run_order() -> None:
    text = rendered()
    lines = [line.strip() for line in text.splitlines()]
    assert lines.index("credentials") < lines.index("dns")
    assert "│ resolve " in text and "│ expiry " in text  # the family prefix is the table title
    assert "✘ fail" in text and "✔ pass" in text
    assert "rtt_ms=1.5" in text


def test_failures_show_cause_and_fix_then_requirements_and_verdict() -> None:
    text = rendered()
    assert "cause: The credential expired." in text
    assert "fix:   Mint a fresh one." in text or "fix: Mint a fresh one." in text
    assert "requirements" in text and "no turn: URI over UDP" in text
    last_line = text.strip().splitlines()[-1]
    assert last_line.startswith("FAIL (1 pass, 1 fail)")


def test_plain_output_has_no_escape_codes() -> None:
    assert "\x1b[" not in rendered()


def test_metrics_formatting_skips_missing_values() -> None:
    assert format_metrics({"a": 1, "b": None, "c": 0.25, "d": "x"}) == "a=1 c=0.25 d=x"


def test_plain_progress_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with progress_display(json_output=False, stream=stream) as progress:
        assert isinstance(progress, PlainProgress)
        progress.started("dns")
        progress.finished("dns", [CheckResult("dns.x", "-", Status.PASS, "ok")])
    assert stream.getvalue() == "rtccheck: dns: 1 pass\n"


def test_json_mode_never_uses_the_live_display() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with progress_display(json_output=True, stream=Terminal()) as progress:
        assert isinstance(progress, PlainProgress)
    with progress_display(json_output=False, stream=Terminal()) as progress:
        assert not isinstance(progress, PlainProgress)
        progress.started("dns")
        progress.finished("dns", [])


def test_tally() -> None:
    assert tally([]) == "no results"


def test_only_render_imports_rich() -> None:
    package = Path(rtccheck.__file__).parent
    importers = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if re.search(r"^\s*(from|import)\s+rich\b", path.read_text(encoding="utf-8"), re.M)
    ]
    assert importers == ["render.py"]
