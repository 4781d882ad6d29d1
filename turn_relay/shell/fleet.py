"""This relay as one of a fleet: the glue between `turn_relay.fleet.link` and the shell.

The link reads this relay through the hooks below (a snapshot of its load and per-user counts,
its sessions) and hands back what the fleet says: the siblings' per-user counts and the sibling
a full or draining relay sends new clients to go into the core as one event
(`RelayCore.fleet_changed`); revocations and commands (kick, revoke, unrevoke, drain, reload)
are applied through the same `RelayOperations` the admin API uses. `FleetAdmin` is the admin
view of a fleet member: sessions come from every relay's published registry, and a kick or a
revocation is applied here and published for the others. Redis away: the relay serves on with
its own view and quotas per relay (`turnkit_relay_fleet_*` metrics, one warning line).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import asdict
from typing import Any

from redis.exceptions import RedisError

from turn_relay.api.admin import Record
from turn_relay.config import Secrets, TurnConfig
from turn_relay.fleet.link import FleetHooks, FleetLink, FleetSettings
from turn_relay.fleet.view import Command, FleetFacts, RelaySnapshot
from turn_relay.reports.store import ReportSummary, StoredReport

from .admin_view import LocalAdmin
from .operations import RelayOperations

logger = logging.getLogger(__name__)

_REPORT_WARNING_S = 10.0
_UNREACHABLE = (RedisError, OSError, TimeoutError)


def link_settings(config: TurnConfig, secrets: Secrets) -> FleetSettings:
    fleet = config.fleet
    assert fleet.redis_url is not None and fleet.relay_id is not None
    url = fleet.redis_url
    if secrets.redis_password:
        scheme, _, rest = url.partition("://")
        url = f"{scheme}://:{_quote(secrets.redis_password)}@{rest}"
    return FleetSettings(
        redis_url=url,
        relay_id=fleet.relay_id,
        alternates=tuple(_address_text(host, port) for host, port in fleet.advertise),
        prefix=fleet.prefix,
        heartbeat=fleet.heartbeat,
        ttl=fleet.ttl,
        sessions_interval=fleet.sessions_interval,
    )


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _address_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _until(value: float | None) -> float:
    return math.inf if value is None else value


class RelayFleet:
    """One relay's membership: the link, and how its facts and commands reach the core."""

    def __init__(self, operations: RelayOperations, config: TurnConfig, secrets: Secrets) -> None:
        self.operations = operations
        self.server = operations.server
        self.config = config
        self.relay_id = config.fleet.relay_id or ""
        self.facts = FleetFacts(remote_users={}, siblings=())
        hooks = FleetHooks(
            snapshot=self.snapshot,
            sessions=self.operations.sessions,
            on_facts=self.on_facts,
            on_command=self.on_command,
            on_revocations=self.on_revocations,
        )
        self.link = FleetLink(link_settings(config, secrets), hooks)
        self.reports = FleetReports(self.link)
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.link.start()

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await self.link.stop()

    # -- hooks the link calls

    def snapshot(self) -> RelaySnapshot:
        core = self.server.core
        return RelaySnapshot(
            relay_id=self.relay_id,
            allocations=len(core.table),
            capacity=core.table.max_total,
            draining=core.draining,
            alternates=self.link.settings.alternates,
            users=dict(core.table.per_user),
            published_at=time.time(),
        )

    def on_facts(self, facts: FleetFacts) -> None:
        self.facts = facts
        alternate = facts.least_loaded_alternate()
        self.server.core.fleet_changed(
            facts.remote_users, None if alternate is None else _address(alternate)
        )

    def on_command(self, command: Command) -> None:
        if command.origin == self.relay_id and command.verb != "drain":
            return  # applied here before it was published
        ops = self.operations
        if command.verb == "kick":
            ended = ops.kick(command.argument)
            logger.info("fleet: kick %s from %s ended %d session(s)", command.argument,
                        command.origin, ended)  # fmt: skip
        elif command.verb == "revoke":
            ops.revoke(command.argument, _until(command.until))
        elif command.verb == "unrevoke":
            ops.unrevoke(command.argument)
        elif command.verb == "drain":
            seconds = command.until or float(self.config.server.drain_seconds or 0)
            ops.drain(seconds or float(self.config.allocation.max_lifetime))
        elif command.verb == "reload":
            self.server.reload()

    def on_revocations(self, revoked: dict[str, float | None]) -> None:
        """The fleet's revocation list: apply what this relay lacks (a relay that joins, or
        one that was cut off when a revocation was made), publish what only it has."""
        local = self.operations.revocations()
        wall = time.time()
        for user, until in revoked.items():
            end = _until(until)
            if end > wall and user not in local:
                self.operations.revoke(user, end)
        missing = {u: t for u, t in local.items() if u not in revoked and t > wall}
        if missing:
            self._spawn(self._publish_revocations(missing))

    async def _publish_revocations(self, revocations: dict[str, float]) -> None:
        for user, until in revocations.items():
            await self.link.revoke(user, None if math.isinf(until) else until)

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("fleet: publishing failed: %s", task.exception())

    def metrics(self) -> dict[str, float]:
        status = self.link.status
        return {
            "turnkit_relay_fleet_connected": 1.0 if status.connected else 0.0,
            "turnkit_relay_fleet_outages_total": float(status.outages),
            "turnkit_relay_fleet_errors_total": float(status.errors),
            "turnkit_relay_fleet_siblings": float(status.siblings),
            "turnkit_relay_fleet_commands_total": float(status.commands_received),
        }


class FleetReports:
    """The fleet's reports for the API (`turn_relay.api.shared_reports.ReportShare`): what
    this relay stored is published in Redis, what a sibling stored is read from there. Redis
    away: nothing is found there, the call is counted as a fleet error, and a warning says so
    at most every ``_REPORT_WARNING_S``."""

    def __init__(self, link: FleetLink) -> None:
        self.link = link
        self._warned_at = -math.inf

    async def publish(self, report: StoredReport, ttl_seconds: int) -> None:
        summary = asdict(report.summary)
        body = json.dumps({"summary": summary, "report": report.document}, ensure_ascii=False)
        try:
            await self.link.put_report(
                report.summary.id, body, json.dumps(summary), report.summary.stored_at, ttl_seconds
            )
        except _UNREACHABLE as exc:
            self._failed("publishing report " + report.summary.id, exc)

    async def fetch(self, result_id: str) -> StoredReport | None:
        try:
            body = await self.link.get_report(result_id)
        except _UNREACHABLE as exc:
            self._failed("reading report " + result_id, exc)
            return None
        return None if body is None else _stored_report(body)

    async def exists(self, result_id: str) -> bool:
        try:
            return await self.link.report_exists(result_id)
        except _UNREACHABLE as exc:
            self._failed("looking up report " + result_id, exc)
            return False

    async def recent(self, limit: int) -> list[ReportSummary]:
        try:
            texts = await self.link.recent_reports(limit)
        except _UNREACHABLE as exc:
            self._failed("listing reports", exc)
            return []
        found = [_summary(_json(text)) for text in texts]
        return [summary for summary in found if summary is not None]

    def _failed(self, what: str, exc: BaseException) -> None:
        self.link.status.errors += 1
        now = time.monotonic()
        if now - self._warned_at >= _REPORT_WARNING_S:
            self._warned_at = now
            logger.warning("fleet: %s failed, this relay's reports only (Redis: %s)", what, exc)


def _json(text: str) -> object:
    try:
        found: object = json.loads(text)
    except ValueError:
        return None
    return found


def _summary(data: object) -> ReportSummary | None:
    """A summary as published by a sibling, if it is one (nothing else is trusted)."""
    if not isinstance(data, dict):
        return None
    try:
        summary = ReportSummary(**data)
    except TypeError:
        return None
    numbers_ok = isinstance(summary.stored_at, (int, float)) and isinstance(summary.size, int)
    text_ok = all(isinstance(v, str) for v in (summary.id, summary.source, summary.status))
    return summary if numbers_ok and text_ok and isinstance(summary.verdict, str) else None


def _stored_report(body: str) -> StoredReport | None:
    data = _json(body)
    if not isinstance(data, dict) or not isinstance(data.get("report"), dict):
        return None
    summary = _summary(data.get("summary"))
    return None if summary is None else StoredReport(summary, data["report"])


class FleetAdmin(LocalAdmin):
    """The admin view of a fleet member: the verbs act on the whole fleet."""

    def __init__(self, config: TurnConfig, fleet: RelayFleet) -> None:
        super().__init__(config, fleet.operations)
        self.fleet = fleet

    async def sessions(self, user: str | None) -> list[Record]:
        try:
            found = await self.fleet.link.fleet_sessions()
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("fleet: sessions from this relay only (Redis: %s)", exc)
            found = [dict(s, relay_id=self.fleet.relay_id) for s in await super().sessions(None)]
        return [s for s in found if user is None or s.get("user") == user]

    async def kick(self, target: str) -> int:
        ended = await super().kick(target)
        await self._publish(Command("kick", "*", target))
        return ended

    async def revoke(self, user: str, until: float) -> int:
        ended = await super().revoke(user, until)
        try:
            await self.fleet.link.revoke(user, None if math.isinf(until) else until)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("fleet: revocation of %s kept here only until Redis is back: %s",
                           user, exc)  # fmt: skip
        return ended

    async def unrevoke(self, user: str) -> bool:
        lifted = await super().unrevoke(user)
        try:
            await self.fleet.link.unrevoke(user)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("fleet: unrevoke of %s not published: %s", user, exc)
        return lifted

    async def status(self) -> Record:
        found = await super().status()
        status = self.fleet.link.status
        found["fleet"] = {
            "relay_id": self.fleet.relay_id,
            "connected": status.connected,
            "siblings": [s.relay_id for s in self.fleet.facts.siblings],
            "outages": status.outages,
            "last_error": status.last_error,
        }
        return found

    async def _publish(self, command: Command) -> None:
        try:
            await self.fleet.link.send_command(command)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("fleet: %s not sent to the other relays: %s", command.verb, exc)
