"""The reports the API serves: this relay's store, and in a fleet its siblings' reports too.

A report is always stored here first (SQLite, `turn_relay.reports.store`); with a fleet the
stored report is then published (in the background: an upload never waits on the fleet) and a
report this relay lacks is looked up there, so `rtccheck report ID --api` may ask any relay.
A check-page token's report is refused when a sibling already holds it. When the fleet is
away, every answer is this relay's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from turn_relay.reports.result_id import parse_result_id
from turn_relay.reports.store import ReportStore, ReportSummary, StoredReport

_SETTLE_S = 2.0  # at shutdown, seconds left for publishes still under way


class ReportShare(Protocol):
    """Where a fleet member publishes its reports and finds its siblings'. Each method answers
    with what it can reach: nothing (None, False, []) when the fleet is away."""

    async def publish(self, report: StoredReport, ttl_seconds: int) -> None: ...
    async def fetch(self, result_id: str) -> StoredReport | None: ...
    async def exists(self, result_id: str) -> bool: ...
    async def recent(self, limit: int) -> list[ReportSummary]: ...


class Reports:
    """This relay's report store, and with a ``share`` the fleet's reports beside it."""

    def __init__(
        self,
        store: ReportStore,
        share: ReportShare | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._share = share
        self._clock = clock
        self._publishing: set[asyncio.Task[None]] = set()

    def stored(self, result_id: str) -> None:
        """Report ``result_id`` was just stored here: publish it for the fleet."""
        if self._share is None:
            return
        task = asyncio.create_task(self._publish(self._share, result_id))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, share: ReportShare, result_id: str) -> None:
        now = self._clock()
        found = await asyncio.to_thread(self.store.get, result_id, now)
        if found is None:
            return  # evicted at once (a full store)
        left = found.summary.stored_at + self.store.limits.max_age_s - now
        await share.publish(found, int(left))

    async def get(self, result_id: str) -> StoredReport | None:
        """The report, from here or else the fleet. Raises ResultIdError for a bad id."""
        found = await asyncio.to_thread(self.store.get, result_id, self._clock())
        if found is not None or self._share is None:
            return found
        return await self._share.fetch(parse_result_id(result_id))

    async def newest(self, limit: int) -> list[ReportSummary]:
        """The newest ``limit`` reports here and in the fleet, newest first, each once."""
        own = await asyncio.to_thread(self.store.list, limit, self._clock())
        if self._share is None:
            return own
        merged = {summary.id: summary for summary in await self._share.recent(limit)}
        merged.update((summary.id, summary) for summary in own)
        newest = sorted(merged.values(), key=lambda s: s.stored_at, reverse=True)
        return newest[:limit]

    async def held_elsewhere(self, result_id: str) -> bool:
        """Whether a sibling already stored the report of check-page test ``result_id``."""
        return self._share is not None and await self._share.exists(result_id)

    async def settle(self) -> None:
        """Let publishes under way finish (a little while at most), then cancel the rest."""
        if not self._publishing:
            return
        _, late = await asyncio.wait(set(self._publishing), timeout=_SETTLE_S)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task


#: the application's `Reports` (set by `create_app` when the check page is on)
REPORTS_KEY: web.AppKey[Reports] = web.AppKey("reports")
