"""Results, requirements, exit codes, the verdict line, the JSON schema and the JUnit writer."""

from __future__ import annotations

import ast
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import fields
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from rtccheck_schema_validator import validate

import rtccheck
from rtccheck.causes import CAUSE_IDS, CauseId
from rtccheck.junit import junit_xml, write_junit
from rtccheck.requirements import CAPABILITIES, UnknownRequirementError, parse_requirements
from rtccheck.results import (
    CheckResult,
    ExitCode,
    Report,
    RequirementOutcome,
    Status,
    TargetInfo,
    build_report,
    evaluate_requirement,
    exit_code_for,
    overall_status,
    report_to_dict,
    report_to_json,
    verdict_line,
)
from rtccheck.schema import load_report_schema


def result(
    status: Status,
    check: str = "turn.allocate",
    target: str = "turn:192.0.2.1",
    capabilities: tuple[str, ...] = (),
    **extra: object,
) -> CheckResult:
    return CheckResult(
        check=check,
        target=target,
        status=status,
        summary=f"it went {status.value}",
        capabilities=capabilities,
        **extra,  # type: ignore[arg-type]
    )


TARGET = TargetInfo(
    uri="turn:192.0.2.1",
    scheme="turn",
    host="192.0.2.1",
    port=3478,
    transport="udp",
    secure=False,
    username="1700003600:alice",
    has_credential=True,
    source="argument",
)


def report(results: list[CheckResult], required: tuple[str, ...] = ()) -> Report:
    return build_report(
        results=results,
        targets=[TARGET],
        required=required,
        started_at=1_700_000_000.25,
        duration_s=1.23456,
        checks_run=["turn"],
        tool_version="0.1.0",
    )


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], Status.SKIP),
        ([Status.SKIP], Status.SKIP),
        ([Status.PASS, Status.SKIP], Status.PASS),
        ([Status.PASS, Status.WARN], Status.WARN),
        ([Status.WARN, Status.FAIL, Status.PASS], Status.FAIL),
    ],
)
def test_overall_status(statuses: list[Status], expected: Status) -> None:
    assert overall_status([result(s) for s in statuses]) is expected


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([Status.PASS], ExitCode.OK),
        ([Status.PASS, Status.WARN], ExitCode.OK),
        ([Status.SKIP], ExitCode.OK),
        ([], ExitCode.OK),
        ([Status.PASS, Status.FAIL], ExitCode.FAILED),
    ],
)
def test_exit_codes(statuses: list[Status], code: ExitCode) -> None:
    assert exit_code_for([result(s) for s in statuses], []) is code


def test_requirements_need_a_pass_and_no_failure() -> None:
    udp_ok = result(Status.PASS, capabilities=("relay-udp",))
    udp_warn = result(Status.WARN, target="turn:b", capabilities=("relay-udp",))
    udp_bad = result(Status.FAIL, target="turn:c", capabilities=("relay-udp",))
    assert evaluate_requirement("relay-udp", [udp_ok]).met
    assert evaluate_requirement("relay-udp", [udp_warn]).met
    mixed = evaluate_requirement("relay-udp", [udp_ok, udp_bad])
    assert not mixed.met
    assert mixed.shown_by == ("turn.allocate (turn:192.0.2.1)",)
    assert mixed.failed_by == ("turn.allocate (turn:c)",)
    untested = evaluate_requirement("relay-tls", [udp_ok])
    assert not untested.met and untested.shown_by == () and untested.failed_by == ()
    assert untested.description == CAPABILITIES["relay-tls"]


def test_unmet_requirement_fails_the_run() -> None:
    passing = [result(Status.PASS, capabilities=("relay-udp",))]
    assert report(passing, ("relay-udp",)).exit_code == 0
    unmet = report(passing, ("relay-udp", "relay-tls"))
    assert unmet.exit_code == 1 and unmet.status is Status.PASS
    assert unmet.verdict == "FAIL (1 pass); required but not shown: relay-tls"
    (_, tls) = unmet.requirements
    assert tls.missing == (
        "no turns: URI was given (as an argument, in --ice-config or from --credentials-url)"
    )


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        ([Status.PASS, Status.PASS], "PASS (2 pass)"),
        ([Status.PASS, Status.WARN, Status.SKIP], "PASS with warnings (1 pass, 1 warn, 1 skip)"),
        ([Status.SKIP], "NOTHING CHECKED (1 skip)"),
        ([], "NOTHING CHECKED (no results)"),
        (
            [Status.FAIL, Status.PASS],
            "FAIL (1 pass, 1 fail); failed: turn.allocate (turn:192.0.2.1)",
        ),
    ],
)
def test_verdict_line(statuses: list[Status], verdict: str) -> None:
    assert verdict_line([result(s) for s in statuses], []) == verdict


def test_verdict_names_the_first_three_failures() -> None:
    failures = [result(Status.FAIL, target=f"turn:{n}") for n in range(5)]
    assert verdict_line(failures, []).endswith("turn.allocate (turn:2) and 2 more")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("relay-udp,relay-tls",), ("relay-udp", "relay-tls")),
        (("relay-udp", "stun, RELAY-UDP"), ("relay-udp", "stun")),
        ((",,",), ()),
        ((), ()),
    ],
)
def test_parse_requirements(values: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert parse_requirements(values) == expected


def test_unknown_requirement_lists_the_known_ones() -> None:
    with pytest.raises(UnknownRequirementError) as raised:
        parse_requirements(("relay-udp,relay-sctp",))
    assert "unknown requirement 'relay-sctp'; known: dns, credentials, stun" in str(raised.value)


# --- JSON ------------------------------------------------------------------------------------


def full_report() -> Report:
    results = [
        result(Status.PASS, capabilities=("relay-udp",), metrics={"rtt_ms": 12.5, "port": 50000}),
        result(
            Status.FAIL,
            check="credentials.expiry",
            cause="expired",
            fix="mint a new one",
            metrics={"seconds_left": -5.0, "user": "alice", "nothing": None},
            details={"nested": {"list": [1, "two", None, True]}},
        ),
        result(Status.SKIP, check="dns.srv", target="example.test"),
    ]
    return report(results, ("relay-udp", "relay-tls"))


def test_json_document_has_the_documented_shape() -> None:
    document = report_to_dict(full_report())
    assert document["schema_version"] == 1
    assert document["tool"] == "rtccheck"
    assert document["started_at"] == "2023-11-14T22:13:20+00:00"
    assert document["duration_s"] == 1.235
    assert document["status"] == "fail" and document["exit_code"] == 1
    assert isinstance(document["results"], list)
    first = document["results"][0]
    assert isinstance(first, dict) and first["status"] == "pass"
    assert first["capabilities"] == ["relay-udp"]


def test_json_validates_against_the_shipped_schema() -> None:
    errors = validate(report_to_dict(full_report()), load_report_schema())
    assert errors == []


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d.pop("verdict"), "missing 'verdict'"),
        (lambda d: d.update(extra=1), "unexpected property 'extra'"),
        (lambda d: d.update(schema_version=2), "is not 1"),
        (lambda d: d["results"][0].update(status="ok"), "is not one of"),
        (lambda d: d["results"][0]["metrics"].update(bad=[1]), "is not of type"),
        (lambda d: d["results"][0].update(check="Bad Name"), "does not match"),
        (lambda d: d["targets"][0].update(port=0), "is below 1"),
        (lambda d: d["requirements"][0].update(name="relay-sctp"), "is not one of"),
        (lambda d: d.update(started_at="yesterday"), "does not match"),
        (lambda d: d["results"][1].update(cause_id="Credential Expired"), "does not match"),
        (lambda d: d["results"][1].pop("cause_id"), "missing 'cause_id'"),
    ],
)
def test_schema_catches_broken_documents(mutate: object, problem: str) -> None:
    document = json.loads(report_to_json(full_report()))
    mutate(document)  # type: ignore[operator]
    errors = validate(document, load_report_schema())
    assert any(problem in error for error in errors), errors


def test_non_finite_figures_become_null() -> None:
    odd = report([result(Status.PASS, metrics={"loss": math.nan, "rate": math.inf})])
    document = json.loads(report_to_json(odd))
    assert document["results"][0]["metrics"] == {"loss": None, "rate": None}


def test_json_round_trips_through_asdict_field_names() -> None:
    document = report_to_dict(full_report())
    assert list(document) == [
        "schema_version",
        "tool",
        "tool_version",
        "started_at",
        "duration_s",
        "status",
        "exit_code",
        "verdict",
        "checks_run",
        "durations_s",
        "targets",
        "requirements",
        "results",
    ]


# --- JUnit -----------------------------------------------------------------------------------


def test_junit_has_a_case_per_result_and_requirement(tmp_path: Path) -> None:
    path = tmp_path / "rtccheck.xml"
    write_junit(full_report(), path)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("5", "2", "1")
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert list(suites) == ["turn", "credentials", "dns", "requirements"]
    failure = suites["credentials"].find("testcase/failure")
    assert failure is not None
    assert failure.get("message") == "it went fail"
    assert failure.text == "cause: expired\nfix: mint a new one"
    case = suites["turn"].find("testcase")
    assert case is not None
    assert case.get("name") == "turn.allocate [turn:192.0.2.1]"
    assert case.get("classname") == "rtccheck.turn"
    skipped = suites["dns"].find("testcase/skipped")
    assert skipped is not None and skipped.get("message") == "it went skip"
    requirement_cases = suites["requirements"].findall("testcase")
    assert [c.get("name") for c in requirement_cases] == ["require relay-udp", "require relay-tls"]
    assert requirement_cases[0].find("failure") is None
    unmet = requirement_cases[1].find("failure")
    assert unmet is not None and unmet.text is not None and "no turns: URI was given" in unmet.text
    assert unmet.get("type") == "requirement-unmet"


def test_junit_warning_is_a_passing_case_with_output() -> None:
    xml = junit_xml(report([result(Status.WARN, cause="slow", fix="faster")]))
    root = ET.fromstring(xml)
    case = root.find("testsuite/testcase")
    assert case is not None and case.find("failure") is None
    output = case.find("system-out")
    assert output is not None and output.text == "warn: it went warn\ncause: slow\nfix: faster"
    assert xml.startswith("<?xml version='1.0' encoding='utf-8'?>")


# --- the schema, the dataclasses and the documentation agree ---------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "rtccheck-json.md"
#: top-level fields only stored reports have (the check page's, a peer test's): optional
STORED_REPORT_FIELDS = ("source", "client", "relay_observed")


@pytest.mark.parametrize(
    ("dataclass_type", "schema_path"),
    [
        (Report, ()),
        (CheckResult, ("$defs", "result")),
        (TargetInfo, ("$defs", "target")),
        (RequirementOutcome, ("$defs", "requirement")),
    ],
)
def test_schema_lists_exactly_the_dataclass_fields(
    dataclass_type: type, schema_path: tuple[str, ...]
) -> None:
    schema: Any = load_report_schema()
    for key in schema_path:
        schema = schema[key]
    names = [field.name for field in fields(dataclass_type)]
    optional = list(STORED_REPORT_FIELDS) if dataclass_type is Report else []
    assert list(schema["properties"]) == names + optional
    assert schema["required"] == names
    doc = DOC.read_text(encoding="utf-8")
    missing = [name for name in names if f"| `{name}` |" not in doc]
    assert missing == [], f"docs/rtccheck-json.md does not describe {missing}"


def test_schema_knows_every_capability() -> None:
    schema = load_report_schema()
    assert schema["$defs"]["requirement"]["properties"]["name"]["enum"] == list(CAPABILITIES)
    doc = DOC.read_text(encoding="utf-8")
    assert all(f"`{name}`" in doc for name in CAPABILITIES)


# --- cause ids: one catalogue, in code and in the documentation ------------------------------

PACKAGE = Path(rtccheck.__file__).resolve().parent


def documented_cause_ids() -> list[str]:
    """The first column of every table under "## cause_id catalogue" in the doc."""
    doc = DOC.read_text(encoding="utf-8")
    section = doc[doc.index("\n## cause_id catalogue") + 1 :]
    following = section.find("\n## ")
    section = section if following < 0 else section[:following]
    return re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)


def test_the_catalogue_documents_every_cause_id_once() -> None:
    documented = documented_cause_ids()
    assert sorted(documented) == sorted(set(documented)), "an id is documented twice"
    assert set(documented) - CAUSE_IDS == set(), "documented but not in rtccheck.causes"
    assert CAUSE_IDS - set(documented) == set(), "in rtccheck.causes but not documented"


def test_cause_ids_are_kebab_case() -> None:
    pattern = load_report_schema()["$defs"]["result"]["properties"]["cause_id"]["pattern"]
    assert [c for c in CAUSE_IDS if not re.fullmatch(pattern, c)] == []


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in PACKAGE.rglob("*.py")]


def _literal(node: ast.expr) -> bool:
    """Whether a string is written out anywhere in ``node`` (a conditional expression too)."""
    return any(
        isinstance(part, ast.JoinedStr)
        or (isinstance(part, ast.Constant) and isinstance(part.value, str))
        for part in ast.walk(node)
    )


def test_cause_ids_are_never_written_as_strings() -> None:
    """Checks name causes with CauseId members (so mypy rejects an id outside the catalogue),
    never with a string that could drift from it."""
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "cause_id" and _literal(node.value):
                found.append(f"{path.name}:{node.value.lineno}")
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "Diagnosis"
                and node.args
                and _literal(node.args[0])
            ):
                found.append(f"{path.name}:{node.lineno}")
    assert found == []


def page_cause_ids() -> set[str]:
    """The ids in the check page's ``CAUSE`` table (the page reports in this vocabulary too)."""
    script = files("turn_relay.api").joinpath("static", "check", "check.js").read_text("utf-8")
    block = script.split("const CAUSE = Object.freeze({", 1)[1].split("});", 1)[0]
    return set(re.findall(r'"([a-z0-9-]+)"', block))


def test_every_catalogued_cause_id_is_reported_somewhere() -> None:
    """By rtccheck's checks, or (websocket-blocked) by the relay's check page."""
    page_only = {CauseId(cause).name for cause in page_cause_ids()}
    used = page_only | {
        node.attr
        for path, tree in _sources()
        if path.name != "causes.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "CauseId"
    }
    assert {cause.name for cause in CauseId} - used == set()
