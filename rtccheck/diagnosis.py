"""A diagnosed failure: a stable cause id for machines, and a summary, cause and fix for people.

Every check says why something failed (or is at risk) with a Diagnosis. ``diagnosed`` makes it
a CheckResult: the id goes to ``CheckResult.cause_id``, the texts to ``summary``, ``cause`` and
``fix``. The ids come from one catalogue, `rtccheck.causes.CauseId`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rtccheck.causes import CauseId
from rtccheck.results import CheckResult, JsonValue, Metrics, Status


@dataclass(frozen=True)
class Diagnosis:
    cause_id: CauseId
    summary: str
    cause: str
    fix: str

    def prefixed(self, text: str) -> Diagnosis:
        """The same diagnosis with ``text`` put in front of its summary."""
        return replace(self, summary=f"{text}: {self.summary}")


def diagnosed(
    check: str,
    target: str,
    diagnosis: Diagnosis,
    *,
    status: Status = Status.FAIL,
    metrics: Metrics | None = None,
    details: dict[str, JsonValue] | None = None,
    capabilities: tuple[str, ...] = (),
) -> CheckResult:
    """A result that reports ``diagnosis``."""
    return CheckResult(
        check=check,
        target=target,
        status=status,
        summary=diagnosis.summary,
        metrics=metrics or {},
        cause_id=diagnosis.cause_id,
        cause=diagnosis.cause,
        fix=diagnosis.fix,
        details=details or {},
        capabilities=capabilities,
    )
