"""The fleet's Redis side against a real redis-server: heartbeats, counts, outages."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from turnkit_testing.redis_server import RedisServer, running_redis

from turn_relay.fleet.link import FleetHooks, FleetLink, FleetSettings
from turn_relay.fleet.view import Command, FleetFacts, RelaySnapshot

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


@dataclass
class FakeRelay:
    """Stands in for a relay's shell: what it publishes and what the link hands it."""

    relay_id: str
    users: dict[str, int] = field(default_factory=dict)
    draining: bool = False
    facts: FleetFacts | None = None
    commands: list[Command] = field(default_factory=list)
    revoked: dict[str, float | None] = field(default_factory=dict)
    facts_seen: int = 0

    def snapshot(self) -> RelaySnapshot:
        return RelaySnapshot(
            self.relay_id, sum(self.users.values()), 10, self.draining,
            (f"{self.relay_id}:3478",), dict(self.users),
        )  # fmt: skip

    def sessions(self) -> list[dict[str, Any]]:
        return [{"user": u, "id": f"{self.relay_id}-{u}"} for u in self.users]

    def on_facts(self, facts: FleetFacts) -> None:
        self.facts = facts
        self.facts_seen += 1

    def on_command(self, command: Command) -> None:
        self.commands.append(command)

    def on_revocations(self, revoked: dict[str, float | None]) -> None:
        self.revoked = revoked


def link_for(relay: FakeRelay, url: str) -> FleetLink:
    settings = FleetSettings(
        url,
        relay.relay_id,
        (f"{relay.relay_id}:3478",),
        heartbeat=0.1,
        ttl=1.0,
        sessions_interval=0.2,
    )
    hooks = FleetHooks(
        relay.snapshot, relay.sessions, relay.on_facts, relay.on_command, relay.on_revocations
    )
    return FleetLink(settings, hooks)


async def until(condition: Any, timeout: float = 5.0) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@pytest_asyncio.fixture
async def fleet(
    redis_server: RedisServer,
) -> AsyncIterator[tuple[list[FakeRelay], list[FleetLink]]]:
    relays = [FakeRelay("a"), FakeRelay("b"), FakeRelay("c")]
    links = [link_for(r, redis_server.url) for r in relays]
    for link in links:
        await link.start()
    try:
        yield relays, links
    finally:
        for link in links:
            await link.stop()


@pytest.mark.asyncio
async def test_each_relay_sees_the_others_counts(
    fleet: tuple[list[FakeRelay], list[FleetLink]],
) -> None:
    (a, b, c), _ = fleet
    a.users["alice"] = 2
    c.users.update(alice=1, bob=1)
    await until(lambda: b.facts is not None and b.facts.remote_users == {"alice": 3, "bob": 1})
    await until(lambda: a.facts is not None and a.facts.remote_users == {"alice": 1, "bob": 1})
    assert a.facts is not None
    assert [s.relay_id for s in a.facts.siblings] == ["b", "c"]


@pytest.mark.asyncio
async def test_a_revoke_reaches_every_relay_within_a_second(
    fleet: tuple[list[FakeRelay], list[FleetLink]],
) -> None:
    relays, links = fleet
    await until(lambda: all(link.status.connected for link in links))
    await asyncio.sleep(0.3)  # every pub/sub subscription is up
    started = time.monotonic()
    await links[0].revoke("mallory", None)
    await until(lambda: all(any(c.argument == "mallory" for c in r.commands) for r in relays), 1.0)
    assert time.monotonic() - started < 1.0
    assert [c.verb for c in relays[2].commands] == ["revoke"]
    assert relays[2].commands[0].origin == "a"
    await until(lambda: all(r.revoked == {"mallory": None} for r in relays), 1.0)
    await links[1].unrevoke("mallory")
    await until(lambda: all(r.revoked == {} for r in relays), 1.0)


@pytest.mark.asyncio
async def test_a_command_for_one_relay_reaches_only_it(
    fleet: tuple[list[FakeRelay], list[FleetLink]],
) -> None:
    (a, b, c), links = fleet
    await until(lambda: all(link.status.connected for link in links))
    await asyncio.sleep(0.3)
    await links[0].send_command(Command("kick", "c", "alice"))
    await until(lambda: len(c.commands) == 1)
    await asyncio.sleep(0.2)
    assert a.commands == [] and b.commands == []


@pytest.mark.asyncio
async def test_sessions_of_the_whole_fleet(fleet: tuple[list[FakeRelay], list[FleetLink]]) -> None:
    (a, _b, c), links = fleet
    a.users["alice"] = 1
    c.users["carol"] = 1

    async def ids() -> list[str]:
        return sorted(s["id"] for s in await links[1].fleet_sessions())

    deadline = time.monotonic() + 5
    while await ids() != ["a-alice", "c-carol"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    sessions = await links[1].fleet_sessions()
    assert {s["relay_id"] for s in sessions} == {"a", "c"}


@pytest.mark.asyncio
async def test_a_relay_that_stops_leaves_the_fleet(
    fleet: tuple[list[FakeRelay], list[FleetLink]],
) -> None:
    (a, _b, c), links = fleet
    c.users["carol"] = 1
    await until(lambda: a.facts is not None and a.facts.remote_users == {"carol": 1})
    await links[2].stop()
    links.pop()
    await until(lambda: a.facts is not None and a.facts.remote_users == {})
    assert a.facts is not None
    assert [s.relay_id for s in a.facts.siblings] == ["b"]


@pytest.mark.asyncio
async def test_a_redis_outage_is_seen_served_through_and_reconciled(
    redis_server: RedisServer,
) -> None:
    a, b = FakeRelay("a", {"alice": 1}), FakeRelay("b", {"alice": 2})
    links = [link_for(a, redis_server.url), link_for(b, redis_server.url)]
    for link in links:
        await link.start()
    try:
        await until(lambda: a.facts is not None and a.facts.remote_users == {"alice": 2})
        redis_server.stop()
        await until(lambda: not links[0].status.connected)
        assert links[0].status.outages == 1
        assert a.facts is not None and a.facts.remote_users == {}  # per-relay quota fallback
        b.users["alice"] = 3  # changes while Redis is away
        await asyncio.sleep(0.5)
        assert links[0].status.outages == 1  # one outage, however many failed calls
        redis_server.start()  # empty: nothing survived
        await until(lambda: links[0].status.connected and links[1].status.connected, 10.0)
        await until(lambda: a.facts is not None and a.facts.remote_users == {"alice": 3}, 10.0)
        await until(lambda: b.facts is not None and b.facts.remote_users == {"alice": 1}, 10.0)
        tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("fleet-")]
        assert len(tasks) == 4  # two per link, none leaked by the reconnects
    finally:
        for link in links:
            await link.stop()
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("fleet-")] == []


@pytest.mark.asyncio
async def test_reports_are_shared_and_expire(redis_server: RedisServer) -> None:
    a, b = FakeRelay("a"), FakeRelay("b")
    links = [link_for(a, redis_server.url), link_for(b, redis_server.url)]
    try:
        await links[0].put_report("R1", '{"verdict": "ok"}', '{"id": "R1"}', 100.0, 1)
        assert await links[1].get_report("R1") == '{"verdict": "ok"}'
        assert await links[1].report_exists("R1")
        assert await links[1].recent_reports(5) == ['{"id": "R1"}']
        await asyncio.sleep(1.2)
        assert await links[1].get_report("R1") is None
        assert not await links[1].report_exists("R1")
    finally:
        for link in links:
            await link.stop()


@pytest.mark.asyncio
async def test_the_fleet_keeps_its_newest_reports_and_forgets_the_stale(
    redis_server: RedisServer,
) -> None:
    relay = FakeRelay("a")
    link = link_for(relay, redis_server.url)
    link.settings = dataclasses.replace(link.settings, max_reports=3)
    try:
        for number in range(5):  # stored at 1000..1004, kept 3600 s
            ident = f"R{number}"
            await link.put_report(ident, "{}", f'"{ident}"', 1000.0 + number, 3600)
        assert await link.recent_reports(10) == ['"R4"', '"R3"', '"R2"']
        assert not await link.report_exists("R1")
        # stored an hour later: the older ones are past their time and go from the listing
        await link.put_report("R9", "{}", '"R9"', 1000.0 + 3603, 3600)
        assert await link.recent_reports(10) == ['"R9"', '"R4"']
    finally:
        await link.stop()


@pytest.mark.asyncio
async def test_what_a_sibling_published_is_trusted_only_when_it_is_a_report(
    redis_server: RedisServer,
) -> None:
    from turn_relay.shell.fleet import FleetReports

    link = link_for(FakeRelay("a"), redis_server.url)
    reports = FleetReports(link)
    summary = {"id": "R1", "stored_at": 5.0, "source": "cli", "status": "ok", "verdict": "ok"}
    good = json.dumps(summary | {"size": 9})
    try:
        await link.put_report("R1", '{"summary": ' + good + ', "report": {"a": 1}}', good, 5.0, 60)
        await link.put_report("R2", "not json", "not json", 6.0, 60)
        await link.put_report("R3", '{"summary": {"id": 3}, "report": {}}', '{"id": 3}', 7.0, 60)
        await link.put_report("R4", '{"summary": [], "report": {}}', "[]", 8.0, 60)
        found = await reports.fetch("R1")
        assert found is not None and found.document == {"a": 1} and found.summary.size == 9
        assert [await reports.fetch(ident) for ident in ("R2", "R3", "R4")] == [None] * 3
        assert [s.id for s in await reports.recent(10)] == ["R1"]
    finally:
        await link.stop()
