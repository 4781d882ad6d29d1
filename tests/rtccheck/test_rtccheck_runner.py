"""Running families: order, progress events, crashes and overruns become failed results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from rtccheck.checks import FAMILIES, by_name
from rtccheck.checks.base import CheckContext, Family, PendingCheck, pending
from rtccheck.results import CheckResult, Status
from rtccheck.runner import NoProgress, run_families


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    def started(self, family: str) -> None:
        self.events.append(("started", family, 0))

    def finished(self, family: str, results: Sequence[CheckResult]) -> None:
        self.events.append(("finished", family, len(results)))


class Fixed:
    """A check answering after ``delay`` seconds with one result."""

    def __init__(self, name: str, delay: float = 0.0) -> None:
        self.name, self.delay = name, delay

    async def run(self, ctx: CheckContext) -> list[CheckResult]:
        await asyncio.sleep(self.delay)
        return [CheckResult(f"{self.name}.x", "-", Status.PASS, "ok")]


class Broken:
    """Raises inside run."""

    async def run(self, ctx: CheckContext) -> list[CheckResult]:
        raise RuntimeError("boom")


CTX = CheckContext(targets=(), timeout=0.01)


@pytest.mark.asyncio
async def test_results_keep_registry_order_whatever_finishes_first() -> None:
    families = [Family("slow", Fixed("slow", 0.05)), Family("fast", Fixed("fast"))]
    recorder = Recorder()
    runs = await run_families(families, CTX, recorder)
    assert [r.check for run in runs for r in run.results] == ["slow.x", "fast.x"]
    assert [run.name for run in runs] == ["slow", "fast"]
    assert recorder.events[:2] == [("started", "slow", 0), ("started", "fast", 0)]
    assert recorder.events[2:] == [("finished", "fast", 1), ("finished", "slow", 1)]


@pytest.mark.asyncio
async def test_a_crash_is_a_failed_result_and_others_still_report() -> None:
    families = [Family("broken", Broken()), Family("fine", Fixed("fine"))]
    ((crashed,), (fine,)) = [run.results for run in await run_families(families, CTX, NoProgress())]
    assert crashed.status is Status.FAIL and crashed.check == "broken"
    assert crashed.summary == "the check crashed: RuntimeError: boom"
    assert crashed.cause is not None and "not a finding about the servers" in crashed.cause
    assert fine.status is Status.PASS


@pytest.mark.asyncio
async def test_a_family_past_its_deadline_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rtccheck.runner.DEADLINE_MARGIN_S", 0.05)
    (run,) = await run_families([Family("hang", Fixed("hang", 10))], CTX, NoProgress())
    (result,) = run.results
    assert result.status is Status.FAIL
    assert result.summary.startswith("did not finish within")


@pytest.mark.asyncio
async def test_each_family_run_has_its_wall_time_by_the_contexts_clock() -> None:
    ticks = iter([10.0, 12.5])
    ctx = CheckContext(targets=(), timeout=0.01, monotonic=lambda: next(ticks))
    (run,) = await run_families([Family("timed", Fixed("timed"))], ctx, NoProgress())
    assert run.duration_s == 2.5


@pytest.mark.asyncio
async def test_pending_check_says_it_is_not_available() -> None:
    (result,) = await PendingCheck("nat").run(CTX)
    assert result.status is Status.SKIP and result.check == "nat.pending"


def test_registry() -> None:
    names = [family.name for family in FAMILIES]
    assert names == ["credentials", "dns", "stun", "turn", "tls", "gather", "data", "nat", "policy"]
    assert all(family.available for family in FAMILIES)
    assert (
        by_name("dns").summary
        == "Resolve each server's host name (A/AAAA) and discover SRV records"
    )
    assert "Examples:" in by_name("dns").help
    with pytest.raises(KeyError):
        by_name("nope")


def test_pending_family_help() -> None:
    family = pending("nat", "NAT behaviour")
    assert not family.available
    assert family.summary == "NAT behaviour"
    assert family.help.endswith("Not available in this version yet.")
