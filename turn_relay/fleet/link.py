"""The asyncio side of the fleet: this relay's heartbeat, its siblings' state, commands.

Keys (``prefix`` defaults to ``turnkit``)::

    {prefix}:relays                 set of relay ids that have published
    {prefix}:relay:{id}             that relay's RelaySnapshot (JSON), expires after ``ttl``
    {prefix}:relay:{id}:sessions    its sessions (JSON list), every ``sessions_interval``, expiring
    {prefix}:revoked                hash user -> "until" (Unix seconds, or "" for no end)
    {prefix}:commands               pub/sub channel of Command JSON
    {prefix}:report:{id}            a stored check or peer-test report (JSON), expires
    {prefix}:reports                sorted set: report ids by the time they were stored
    {prefix}:report-summaries       hash report id -> its summary (JSON), for listings

Every Redis call runs in this module's own tasks with short socket timeouts; the relay's
allocation and data paths only ever read the cache these tasks keep (`FleetView` facts, the
revocation map). When Redis is unreachable the link says so once (warning), keeps retrying
with backoff, hands the core empty remote counts (quotas fall back to per relay) and, when
Redis is back, publishes its state at once and reads everyone else's (reconcile).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .view import Command, FleetDataError, FleetFacts, RelaySnapshot, merge

logger = logging.getLogger(__name__)

SnapshotSource = Callable[[], RelaySnapshot]
SessionsSource = Callable[[], list[dict[str, Any]]]
FactsSink = Callable[[FleetFacts], None]
CommandSink = Callable[[Command], Awaitable[None] | None]
RevocationSink = Callable[[dict[str, float | None]], None]

_EMPTY = FleetFacts(remote_users={}, siblings=())


@dataclass(frozen=True, slots=True)
class FleetSettings:
    redis_url: str
    relay_id: str
    alternates: tuple[str, ...] = ()  # this relay's "ip:port" for siblings' 300 answers
    prefix: str = "turnkit"
    heartbeat: float = 0.5  # seconds between publishes (and reads of the siblings)
    ttl: float = 3.0  # a relay silent this long drops out of the fleet
    timeout: float = 1.0  # per Redis call
    # the session registry is rebuilt less often than the heartbeat: it costs one record per
    # allocation, where the heartbeat's snapshot costs one number per user
    sessions_interval: float = 5.0
    max_backoff: float = 5.0
    max_reports: int = 10_000  # reports the fleet keeps at most (bodies expire on their own)


@dataclass(slots=True)
class LinkStatus:
    """What /metrics and `turn-relay status` show of the link."""

    connected: bool = False
    outages: int = 0  # times Redis went away
    errors: int = 0  # failed Redis calls
    commands_received: int = 0
    commands_rejected: int = 0
    last_error: str = ""
    down_since: float | None = None  # monotonic
    siblings: int = 0
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FleetHooks:
    """How the link reads this relay and hands it what the fleet says (the shell's views)."""

    snapshot: SnapshotSource
    sessions: SessionsSource
    on_facts: FactsSink
    on_command: CommandSink
    on_revocations: RevocationSink


class FleetLink:
    """Publishes this relay, reads the fleet, carries commands; never blocks its callers."""

    def __init__(self, settings: FleetSettings, hooks: FleetHooks) -> None:
        self.settings = settings
        self._snapshot = hooks.snapshot
        self._sessions = hooks.sessions
        self._on_facts = hooks.on_facts
        self._on_command = hooks.on_command
        self._on_revocations = hooks.on_revocations
        self.status = LinkStatus()
        self._redis = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.timeout,
            socket_connect_timeout=settings.timeout,
            retry_on_timeout=False,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._sessions_due = 0.0  # monotonic time of the next session registry publish
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    # -- keys

    def _key(self, *parts: str) -> str:
        return ":".join((self.settings.prefix, *parts))

    @property
    def commands_channel(self) -> str:
        return self._key("commands")

    # -- lifecycle

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop(), name="fleet-heartbeat"),
            asyncio.create_task(self._command_loop(), name="fleet-commands"),
        ]

    async def stop(self) -> None:
        """Leave the fleet (delete our keys if Redis answers) and close every connection."""
        self._stopping.set()
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            own = self._key("relay", self.settings.relay_id)
            await self._redis.delete(own, own + ":sessions")
            await self._redis.srem(self._key("relays"), self.settings.relay_id)
        await self._redis.aclose()

    def publish_soon(self) -> None:
        """Ask for a heartbeat now (e.g. after an allocation changed a user's count)."""
        self._wake.set()

    # -- the heartbeat: publish ourselves, read the siblings and the revocations

    async def _heartbeat_loop(self) -> None:
        backoff = self.settings.heartbeat
        while not self._stopping.is_set():
            try:
                await self.sync_once()
            except (TimeoutError, RedisError, OSError) as exc:
                self._went_down(exc)
                backoff = min(backoff * 2, self.settings.max_backoff)
            else:
                backoff = self.settings.heartbeat
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)

    async def sync_once(self) -> FleetFacts:
        """One publish-and-read round; raises RedisError/OSError when Redis is unreachable."""
        settings = self.settings
        own = self._snapshot()
        ttl_ms = int(settings.ttl * 1000)
        relays_key = self._key("relays")
        now = time.monotonic()
        publish_sessions = now >= self._sessions_due or not self.status.connected
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key("relay", settings.relay_id), own.to_json(), px=ttl_ms)
            if publish_sessions:
                pipe.set(
                    self._key("relay", settings.relay_id, "sessions"),
                    json.dumps(self._sessions(), separators=(",", ":")),
                    px=int(max(settings.ttl, 3 * settings.sessions_interval) * 1000),
                )
            pipe.sadd(relays_key, settings.relay_id)
            pipe.smembers(relays_key)
            pipe.hgetall(self._key("revoked"))
            results = await pipe.execute()
        if publish_sessions:
            self._sessions_due = now + settings.sessions_interval
            results.pop(1)
        members = sorted(_decode(m) for m in results[2])
        revoked = _revocations(results[3])
        snapshots = await self._read_snapshots(members)
        facts = merge(settings.relay_id, snapshots)
        self._came_up()
        self.status.siblings = len(facts.siblings)
        self._on_facts(facts)
        self._on_revocations(revoked)
        return facts

    async def _read_snapshots(self, members: list[str]) -> list[RelaySnapshot]:
        if not members:
            return []
        values = await self._redis.mget([self._key("relay", m) for m in members])
        gone = [m for m, v in zip(members, values, strict=True) if v is None]
        if gone:  # their heartbeat expired: forget them
            await self._redis.srem(self._key("relays"), *gone)
        snapshots: list[RelaySnapshot] = []
        for member, value in zip(members, values, strict=True):
            if value is None:
                continue
            try:
                snapshots.append(RelaySnapshot.from_json(value))
            except FleetDataError as exc:
                self._count("bad-snapshot")
                logger.warning("fleet: relay %s published a bad snapshot: %s", member, exc)
        return snapshots

    # -- commands over pub/sub

    async def _command_loop(self) -> None:
        backoff = self.settings.heartbeat
        while not self._stopping.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.commands_channel)
                backoff = self.settings.heartbeat
                while not self._stopping.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        await self._handle_message(message.get("data", b""))
            except (TimeoutError, RedisError, OSError) as exc:
                self._went_down(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.max_backoff)
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await pubsub.aclose()

    async def _handle_message(self, data: object) -> None:
        try:
            if not isinstance(data, bytes | str):
                raise FleetDataError("not text")
            command = Command.from_json(data)
        except FleetDataError as exc:
            self.status.commands_rejected += 1
            logger.warning("fleet: ignored a command: %s", exc)
            return
        if not command.applies_to(self.settings.relay_id):
            return
        self.status.commands_received += 1
        result = self._on_command(command)
        if result is not None:
            await result

    async def send_command(self, command: Command) -> int:
        """Publish ``command`` to the fleet (ourselves included); the number of listeners."""
        stamped = Command(
            command.verb, command.target, command.argument, command.until, self.settings.relay_id
        )
        return int(await self._redis.publish(self.commands_channel, stamped.to_json()))

    # -- revocations: the hash is the record, the command makes it immediate

    async def revoke(self, user: str, until: float | None) -> None:
        await self._redis.hset(self._key("revoked"), user, "" if until is None else repr(until))
        await self.send_command(Command("revoke", "*", user, until))

    async def unrevoke(self, user: str) -> None:
        await self._redis.hdel(self._key("revoked"), user)
        await self.send_command(Command("unrevoke", "*", user))

    async def revocations(self) -> dict[str, float | None]:
        return _revocations(await self._redis.hgetall(self._key("revoked")))

    # -- sessions of the whole fleet

    async def fleet_sessions(self) -> list[dict[str, Any]]:
        """Every live relay's published sessions, each tagged with its relay id."""
        members = sorted(_decode(m) for m in await self._redis.smembers(self._key("relays")))
        if not members:
            return []
        values = await self._redis.mget([self._key("relay", m, "sessions") for m in members])
        found: list[dict[str, Any]] = []
        for member, value in zip(members, values, strict=True):
            if value is None:
                continue
            try:
                sessions = json.loads(value)
            except ValueError:
                self._count("bad-sessions")
                continue
            if isinstance(sessions, list):
                found += [dict(s, relay_id=member) for s in sessions if isinstance(s, dict)]
        return found

    # -- reports (check page, peer test): any relay serves any report
    # These are called by the API's handlers (not the link's tasks) and raise what Redis
    # raises; the shell's adapter (`turn_relay.shell.fleet.FleetReports`) turns that into "not
    # there" and counts it.

    async def put_report(
        self, report_id: str, body: str, summary: str, stored_at: float, ttl_seconds: int
    ) -> None:
        """Store one report for the fleet, then forget reports past ``ttl_seconds`` and all
        but the newest ``max_reports``."""
        index, summaries = self._key("reports"), self._key("report-summaries")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key("report", report_id), body, ex=max(ttl_seconds, 1))
            pipe.zadd(index, {report_id: stored_at})
            pipe.hset(summaries, report_id, summary)
            pipe.zrangebyscore(index, "-inf", stored_at - ttl_seconds)
            pipe.zcard(index)
            *_, expired, count = await pipe.execute()
        stale = _names(expired)
        extra = int(count) - self.settings.max_reports
        if extra > 0:
            stale += _names(await self._redis.zrange(index, 0, extra - 1))
        if stale:
            ids = sorted(set(stale))
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(index, *ids)
                pipe.hdel(summaries, *ids)
                pipe.delete(*(self._key("report", ident) for ident in ids))
                await pipe.execute()

    async def get_report(self, report_id: str) -> str | None:
        value = await self._redis.get(self._key("report", report_id))
        return None if value is None else _decode(value)

    async def report_exists(self, report_id: str) -> bool:
        return bool(await self._redis.exists(self._key("report", report_id)))

    async def recent_reports(self, limit: int) -> list[str]:
        """The summaries of the fleet's newest ``limit`` reports, newest first."""
        ids = _names(await self._redis.zrevrange(self._key("reports"), 0, max(limit, 1) - 1))
        if not ids:
            return []
        values = await self._redis.hmget(self._key("report-summaries"), ids)
        return [_decode(value) for value in values if value is not None]

    # -- state changes, logged once each

    def _went_down(self, exc: BaseException) -> None:
        self.status.errors += 1
        self.status.last_error = f"{type(exc).__name__}: {exc}"
        if self.status.down_since is not None:
            return  # already down, and said so
        self.status.connected = False
        self.status.outages += 1
        self.status.down_since = time.monotonic()
        logger.warning(
            "fleet: Redis unreachable (%s); serving on, quotas per relay until it is back",
            self.status.last_error,
        )
        self._on_facts(_EMPTY)

    def _came_up(self) -> None:
        if self.status.connected:
            return
        if self.status.down_since is not None:
            down = time.monotonic() - self.status.down_since
            logger.info("fleet: Redis back after %.1f s; state published again", down)
        else:
            logger.info("fleet: joined as %s", self.settings.relay_id)
        self.status.connected = True
        self.status.down_since = None

    def _count(self, what: str) -> None:
        self.status.counters[what] = self.status.counters.get(what, 0) + 1


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _names(values: Any) -> list[str]:
    """Members of a Redis reply listing names (bytes or text)."""
    return [_decode(value) for value in values]


def _revocations(raw: Mapping[Any, Any]) -> dict[str, float | None]:
    found: dict[str, float | None] = {}
    for user, until in raw.items():
        text = _decode(until)
        try:
            found[_decode(user)] = float(text) if text else None
        except ValueError:
            found[_decode(user)] = None  # unreadable end: keep it revoked
    return found
