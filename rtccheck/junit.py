"""JUnit XML for CI: one test suite per check family, one test case per result.

The format is the Ant/Jenkins one that CI systems read (GitLab, Jenkins, GitHub reporters,
Azure): ``<testsuites>`` of ``<testsuite>`` of ``<testcase>``. A failed result becomes a
``<failure>`` carrying its cause and fix, a skipped one ``<skipped>``, a warning a passing case
with the warning in ``<system-out>``. Each ``--require`` becomes a case in the "requirements"
suite, failed when not met. docs/rtccheck-json.md lists every element and attribute written.

A test case's name is the check id and one target (the first, for a credentials result that
names several URIs), so a case keeps its identity when other URLs are added or removed. The
checks of a family run concurrently, so rtccheck cannot tell how long each case took: a
suite's ``time`` is the family's wall time, and each of its cases gets an equal share of it.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rtccheck.results import CheckResult, Report, RequirementOutcome, Status

REQUIREMENTS_SUITE = "requirements"


def junit_xml(report: Report, hostname: str | None = None) -> str:
    host = hostname or socket.gethostname() or "localhost"
    timestamp = ant_timestamp(report.started_at)
    root = ET.Element("testsuites", name="rtccheck", time=_seconds(report.duration_s))
    root.set("timestamp", timestamp)
    families = list(dict.fromkeys(result.family for result in report.results))
    for index, family in enumerate(families):
        results = [r for r in report.results if r.family == family]
        time_s = report.durations_s.get(family, 0.0)
        suite = _suite(family, index, timestamp, host, time_s)
        _add_cases(suite, results, time_s)
        root.append(suite)
    if report.requirements:
        suite = _suite(REQUIREMENTS_SUITE, len(families), timestamp, host, 0.0)
        for outcome in report.requirements:
            suite.append(_requirement_case(outcome))
        _count(suite)
        root.append(suite)
    _count(root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(report: Report, path: Path) -> None:
    path.write_text(junit_xml(report), encoding="utf-8")


def ant_timestamp(started_at: str) -> str:
    """UTC without an offset (``2023-11-14T22:13:20``): the form Ant's schema demands."""
    return datetime.fromisoformat(started_at).replace(tzinfo=None).isoformat(timespec="seconds")


def case_name(result: CheckResult) -> str:
    first_target = result.target.split(", ")[0]
    return f"{result.check} [{first_target}]"


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def _suite(name: str, index: int, timestamp: str, host: str, time_s: float) -> ET.Element:
    suite = ET.Element("testsuite", name=name, id=str(index), package="rtccheck")
    suite.set("timestamp", timestamp)
    suite.set("hostname", host)
    suite.set("time", _seconds(time_s))
    return suite


def _add_cases(suite: ET.Element, results: Sequence[CheckResult], time_s: float) -> None:
    share = time_s / len(results) if results else 0.0
    seen: dict[str, int] = {}
    for result in results:
        name = case_name(result)
        seen[name] = seen.get(name, 0) + 1
        suite.append(_case(result, name if seen[name] == 1 else f"{name} #{seen[name]}", share))
    _count(suite)


def _case(result: CheckResult, name: str, time_s: float) -> ET.Element:
    case = ET.Element("testcase", name=name, classname=f"rtccheck.{result.family}")
    case.set("time", _seconds(time_s))
    explanation = _explanation(result)
    if result.status is Status.FAIL:
        failure = ET.SubElement(case, "failure", message=result.summary)
        failure.set("type", result.cause_id or "fail")
        failure.text = explanation
    elif result.status is Status.SKIP:
        ET.SubElement(case, "skipped", message=result.summary)
    else:
        output = ET.SubElement(case, "system-out")
        output.text = f"{result.status.value}: {result.summary}" + (
            f"\n{explanation}" if explanation else ""
        )
    return case


def _explanation(result: CheckResult) -> str:
    parts = [
        f"targets: {result.target}" if ", " in result.target else "",
        f"cause_id: {result.cause_id}" if result.cause_id else "",
        f"cause: {result.cause}" if result.cause else "",
        f"fix: {result.fix}" if result.fix else "",
    ]
    return "\n".join(part for part in parts if part)


def _requirement_case(outcome: RequirementOutcome) -> ET.Element:
    case = ET.Element("testcase", name=f"require {outcome.name}")
    case.set("classname", f"rtccheck.{REQUIREMENTS_SUITE}")
    case.set("time", _seconds(0.0))
    if not outcome.met:
        failure = ET.SubElement(case, "failure", message=f"{outcome.name} not shown")
        failure.set("type", "requirement-unmet")
        failure.text = _unmet_text(outcome)
    return case


def _unmet_text(outcome: RequirementOutcome) -> str:
    if outcome.failed_by:
        return f"{outcome.description}; failed: {', '.join(outcome.failed_by)}"
    return f"{outcome.description}; not shown: {outcome.missing or 'no check run showed it'}"


def _count(element: ET.Element) -> None:
    cases = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(case.find("failure") is not None for case in cases)))
    element.set("errors", "0")
    element.set("skipped", str(sum(case.find("skipped") is not None for case in cases)))
