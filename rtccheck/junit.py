"""JUnit XML for CI: one test suite per check family, one test case per result.

A failed result becomes a <failure> carrying its cause and fix, a skipped one <skipped>, a
warning a passing case with the warning in <system-out>. Each unmet --require becomes a failed
case in the "requirements" suite.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from rtccheck.results import CheckResult, Report, RequirementOutcome, Status


def junit_xml(report: Report) -> str:
    root = ET.Element("testsuites", name="rtccheck", time=f"{report.duration_s:.3f}")
    families = list(dict.fromkeys(result.family for result in report.results))
    for family in families:
        results = [r for r in report.results if r.family == family]
        root.append(_suite(family, results, report.started_at))
    if report.requirements:
        root.append(_requirements_suite(report.requirements, report.started_at))
    _count(root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(report: Report, path: Path) -> None:
    path.write_text(junit_xml(report), encoding="utf-8")


def _suite(family: str, results: Sequence[CheckResult], timestamp: str) -> ET.Element:
    suite = ET.Element("testsuite", name=family, timestamp=timestamp)
    for result in results:
        suite.append(_case(result))
    _count(suite)
    return suite


def _case(result: CheckResult) -> ET.Element:
    case = ET.Element("testcase", name=f"{result.check} [{result.target}]")
    case.set("classname", f"rtccheck.{result.family}")
    explanation = _explanation(result)
    if result.status is Status.FAIL:
        failure = ET.SubElement(case, "failure", message=result.summary, type=result.check)
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
        f"cause: {result.cause}" if result.cause else "",
        f"fix: {result.fix}" if result.fix else "",
    ]
    return "\n".join(part for part in parts if part)


def _requirements_suite(requirements: Sequence[RequirementOutcome], timestamp: str) -> ET.Element:
    suite = ET.Element("testsuite", name="requirements", timestamp=timestamp)
    for outcome in requirements:
        case = ET.SubElement(suite, "testcase", name=f"require {outcome.name}")
        case.set("classname", "rtccheck.requirements")
        if not outcome.met:
            failure = ET.SubElement(case, "failure", message=f"{outcome.name} not shown")
            failure.text = _unmet_text(outcome)
    _count(suite)
    return suite


def _unmet_text(outcome: RequirementOutcome) -> str:
    if outcome.failed_by:
        return f"{outcome.description}; failed: {', '.join(outcome.failed_by)}"
    return f"{outcome.description}; no check run showed it"


def _count(element: ET.Element) -> None:
    cases = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(case.find("failure") is not None for case in cases)))
    element.set("skipped", str(sum(case.find("skipped") is not None for case in cases)))
    element.set("errors", "0")
