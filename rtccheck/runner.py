"""Run check families concurrently, report progress, and turn crashes into failed results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckContext, Family
from rtccheck.results import CheckResult, Status

#: a family gets this many --timeout periods (plus a margin) before it is cut off
DEADLINE_TIMEOUTS = 6
DEADLINE_MARGIN_S = 5.0


class ProgressSink(Protocol):
    def started(self, family: str) -> None: ...

    def finished(self, family: str, results: Sequence[CheckResult]) -> None: ...


class NoProgress:
    def started(self, family: str) -> None:
        return None

    def finished(self, family: str, results: Sequence[CheckResult]) -> None:
        return None


@dataclass(frozen=True)
class FamilyRun:
    """What one family found, and how long it took (wall time, seconds)."""

    name: str
    results: list[CheckResult]
    duration_s: float


async def run_families(
    families: Sequence[Family], ctx: CheckContext, progress: ProgressSink
) -> list[FamilyRun]:
    """Every family's results, in registry order."""
    return list(await asyncio.gather(*(run_family(f, ctx, progress) for f in families)))


async def run_family(
    family: Family,
    ctx: CheckContext,
    progress: ProgressSink,
) -> FamilyRun:
    started = ctx.monotonic()
    results = await _results_of(family, ctx, progress)
    return FamilyRun(family.name, results, ctx.monotonic() - started)


async def _results_of(
    family: Family, ctx: CheckContext, progress: ProgressSink
) -> list[CheckResult]:
    progress.started(family.name)
    deadline = ctx.timeout * DEADLINE_TIMEOUTS + DEADLINE_MARGIN_S
    try:
        async with asyncio.timeout(deadline):
            results = await family.check.run(ctx)
    except TimeoutError:
        results = [_overran(family.name, deadline)]
    except Exception as error:  # a bug in a check must not hide the other checks' results
        results = [_crashed(family.name, error)]
    progress.finished(family.name, results)
    return results


def _overran(name: str, deadline: float) -> CheckResult:
    return CheckResult(
        check=name,
        target="-",
        status=Status.FAIL,
        summary=f"did not finish within {deadline:g} s",
        cause_id=CauseId.CHECK_TIMEOUT,
        cause="The check kept waiting past its deadline (every probe has its own timeout).",
        fix="Lower --timeout, or report this as a bug in rtccheck with the command line used.",
    )


def _crashed(name: str, error: Exception) -> CheckResult:
    return CheckResult(
        check=name,
        target="-",
        status=Status.FAIL,
        summary=f"the check crashed: {type(error).__name__}: {error}",
        cause_id=CauseId.CHECK_CRASHED,
        cause="An error inside rtccheck, not a finding about the servers.",
        fix="Report it as a bug in rtccheck with the command line used.",
    )
