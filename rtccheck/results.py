"""Check results, the report that collects them, its JSON form and the process exit code.

Everything here is a frozen dataclass; the JSON document is ``dataclasses.asdict(report)``, whose
schema is documented in docs/rtccheck-json.md and turn_relay/reports/report.schema.json.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum

from rtccheck.requirements import CAPABILITIES, SOURCES

SCHEMA_VERSION = 1
TOOL_NAME = "rtccheck"

Metric = float | int | str | None
Metrics = dict[str, Metric]
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2


@dataclass(frozen=True)
class CheckResult:
    """One finding: what was checked against which target, how it went, and why.

    A failure or warning names its cause twice: ``cause_id`` for machines (one of
    `rtccheck.causes.CauseId`, stable across versions) and ``cause``/``fix`` for people.
    """

    check: str
    target: str
    status: Status
    summary: str
    metrics: Metrics = field(default_factory=dict)
    cause_id: str | None = None
    cause: str | None = None
    fix: str | None = None
    details: dict[str, JsonValue] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    #: ``check (target)`` of an earlier result that failed for the same cause, whose cause and
    #: fix this one does not repeat
    see: str | None = None

    @property
    def family(self) -> str:
        return self.check.partition(".")[0]


@dataclass(frozen=True)
class TargetInfo:
    """A server as the report shows it; the credential itself is never included."""

    uri: str
    scheme: str
    host: str
    port: int
    transport: str
    secure: bool
    username: str | None
    has_credential: bool
    source: str


@dataclass(frozen=True)
class RequirementOutcome:
    name: str
    description: str
    met: bool
    shown_by: tuple[str, ...]
    failed_by: tuple[str, ...]
    #: when not met and nothing testing it failed: what is missing and what would show it
    missing: str | None = None


@dataclass(frozen=True)
class Report:
    schema_version: int
    tool: str
    tool_version: str
    started_at: str
    duration_s: float
    status: Status
    exit_code: int
    verdict: str
    checks_run: tuple[str, ...]
    durations_s: dict[str, float]
    targets: tuple[TargetInfo, ...]
    requirements: tuple[RequirementOutcome, ...]
    results: tuple[CheckResult, ...]


def overall_status(results: Sequence[CheckResult]) -> Status:
    """fail beats warn beats pass; only skips (or nothing) gives skip."""
    statuses = {result.status for result in results}
    for status in (Status.FAIL, Status.WARN, Status.PASS):
        if status in statuses:
            return status
    return Status.SKIP


def evaluate_requirement(
    name: str,
    results: Sequence[CheckResult],
    checks_run: Sequence[str] = (),
    targets: Sequence[TargetInfo] = (),
) -> RequirementOutcome:
    testing = [result for result in results if name in result.capabilities]
    shown = tuple(_where(r) for r in testing if r.status in (Status.PASS, Status.WARN))
    failed = tuple(_where(r) for r in testing if r.status is Status.FAIL)
    met = bool(shown) and not failed
    missing = None if met or failed else why_not_shown(name, results, checks_run, targets)
    return RequirementOutcome(name, CAPABILITIES[name], met, shown, failed, missing)


def why_not_shown(
    name: str,
    results: Sequence[CheckResult],
    checks_run: Sequence[str],
    targets: Sequence[TargetInfo],
) -> str:
    """What kept a capability from being shown, and which option or URI would show it."""
    source = SOURCES[name]
    reasons: list[str] = []
    if source.family not in checks_run:
        ran = ", ".join(checks_run) or "no"
        reasons.append(
            f"the {ran} check famil{'y runs' if len(checks_run) == 1 else 'ies run'} no "
            f"{source.family} check ({name} is shown by {', '.join(source.checks)}): run "
            f"`rtccheck {source.family}`, or `rtccheck all` without --skip/--only leaving "
            f"{source.family} out"
        )
    if not any(source.fits(target) for target in targets):
        reasons.append(
            f"no {source.needs} was given (as an argument, in --ice-config or from "
            "--credentials-url)"
        )
    reasons += [
        f"{_where(r)} was skipped: {r.summary}"
        for r in results
        if r.check in source.checks and r.status is Status.SKIP
    ]
    return "; ".join(reasons) or "no check run showed it"


def _where(result: CheckResult) -> str:
    return f"{result.check} ({result.target})"


def exit_code_for(
    results: Sequence[CheckResult], requirements: Sequence[RequirementOutcome]
) -> ExitCode:
    failed = any(result.status is Status.FAIL for result in results)
    unmet = any(not outcome.met for outcome in requirements)
    return ExitCode.FAILED if failed or unmet else ExitCode.OK


def verdict_line(results: Sequence[CheckResult], requirements: Sequence[RequirementOutcome]) -> str:
    """One plain line a person or a CI log can read: the outcome and what to look at first."""
    counts = {status: sum(r.status is status for r in results) for status in Status}
    tally = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    unmet = [outcome.name for outcome in requirements if not outcome.met]
    failed = [_where(r) for r in results if r.status is Status.FAIL]
    if failed or unmet:
        reasons = []
        if failed:
            reasons.append("failed: " + _first_few(failed))
        if unmet:
            reasons.append("required but not shown: " + ", ".join(unmet))
        return f"FAIL ({tally or 'no results'}); " + "; ".join(reasons)
    status = overall_status(results)
    if status is Status.SKIP:
        return f"NOTHING CHECKED ({tally or 'no results'})"
    word = "PASS with warnings" if status is Status.WARN else "PASS"
    return f"{word} ({tally})"


def _first_few(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def build_report(
    *,
    results: Sequence[CheckResult],
    targets: Sequence[TargetInfo],
    required: Sequence[str],
    started_at: float,
    duration_s: float,
    checks_run: Sequence[str],
    tool_version: str,
    durations_s: dict[str, float] | None = None,
) -> Report:
    requirements = tuple(
        evaluate_requirement(name, results, checks_run, targets) for name in required
    )
    return Report(
        schema_version=SCHEMA_VERSION,
        tool=TOOL_NAME,
        tool_version=tool_version,
        started_at=datetime.fromtimestamp(started_at, UTC).isoformat(timespec="seconds"),
        duration_s=round(duration_s, 3),
        status=overall_status(results),
        exit_code=int(exit_code_for(results, requirements)),
        verdict=verdict_line(results, requirements),
        checks_run=tuple(checks_run),
        durations_s={name: round(s, 3) for name, s in (durations_s or {}).items()},
        targets=tuple(targets),
        requirements=requirements,
        results=tuple(results),
    )


def report_to_dict(report: Report) -> dict[str, JsonValue]:
    document: dict[str, JsonValue] = json.loads(report_to_json(report))
    return document


def report_to_json(report: Report) -> str:
    return json.dumps(_finite(asdict(report)), indent=2, ensure_ascii=False, allow_nan=False)


def _finite(value: object) -> object:
    """JSON has no NaN or infinity: a figure that is not finite is reported as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
