"""A diagnosed failure: a stable code for machines, and a summary, cause and fix for people.

The ICE-agent and TLS checks report why something failed as a Problem; its ``code`` lands in a
result's ``details["problem"]`` (kebab-case, stable across versions) so CI can match on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtccheck.results import CheckResult, JsonValue, Metrics, Status


@dataclass(frozen=True)
class Problem:
    code: str
    summary: str
    cause: str
    fix: str

    def prefixed(self, text: str) -> Problem:
        """The same problem with ``text`` put in front of its summary."""
        return Problem(self.code, f"{text}: {self.summary}", self.cause, self.fix)


def problem_result(
    check: str,
    target: str,
    problem: Problem,
    *,
    status: Status = Status.FAIL,
    metrics: Metrics | None = None,
    details: dict[str, JsonValue] | None = None,
    capabilities: tuple[str, ...] = (),
) -> CheckResult:
    """A result that reports ``problem``: its code goes to ``details["problem"]``."""
    return CheckResult(
        check=check,
        target=target,
        status=status,
        summary=problem.summary,
        metrics=metrics or {},
        cause=problem.cause,
        fix=problem.fix,
        details={"problem": problem.code, **(details or {})},
        capabilities=capabilities,
    )
