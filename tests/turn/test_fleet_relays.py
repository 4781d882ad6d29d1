"""Three `turn-relay serve` processes (127.0.0.1, .2, .3) and one redis-server as one fleet:
a user's quota across relays, kick and revoke through any relay, drain sending new clients to a
sibling, a check-page report stored on one relay and served by all, and a Redis outage in the
middle (served through, seen in metrics, reconciled)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from relay_harness import REALM, WireClient, echo_peer, free_port, wait_until_answering
from test_relay_admin import ADMIN_KEY, API_KEY, SECRET, TURN_RELAY, Relay, _api_up
from turnkit_testing.redis_server import RedisServer, running_redis
from turnkit_testing.report_documents import report

from stun_server.wire import MessageClass, Method
from stun_server.wire import attributes as attrs
from turn_relay.auth.credentials import issue

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
HOSTS = {"A": "127.0.0.1", "B": "127.0.0.2", "C": "127.0.0.3"}
PORT_RANGES = {"A": "25100-25199", "B": "25200-25299", "C": "25300-25399"}
LINK_SECRET = "fleet-check-link-secret-0123456789"  # the same on every relay, like the REST one


def credential(user: str) -> tuple[str, str]:
    issued = issue(SECRET, user, 600, time.time())
    return issued.username, issued.password


def code_of(response: Any) -> int | None:
    error = response.get(attrs.ErrorCode)
    return None if error is None else int(error.code)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


def write_config(directory: Path, name: str, port: int, api_port: int, redis: RedisServer) -> Path:
    host = HOSTS[name]
    files = (("secrets", SECRET), ("api-key", API_KEY), ("admin-key", ADMIN_KEY))
    for file, text in (*files, ("link-secrets", LINK_SECRET)):
        (directory / file).write_text(text + "\n")
        (directory / file).chmod(0o600)
    low, high = PORT_RANGES[name].split("-")
    config = directory / "relay.toml"
    config.write_text(
        f'[server]\nrealm = "{REALM}"\nstate_dir = "{directory / "state"}"\n'
        f'[listen]\naddresses = ["{host}"]\nudp_port = {port}\ntcp_port = {port}\n'
        f"[relay]\nport_range = {{ min = {low}, max = {high} }}\n"
        "[quotas]\nmax_allocations_per_user = 3\n"
        f'[auth]\nrest_secrets_file = "{directory / "secrets"}"\n'
        f'[peer_policy]\nallowed_peers = ["127.0.0.0/8"]\n'
        f'[api]\nenabled = true\nlisten = "{host}"\nport = {api_port}\n'
        f'api_key_file = "{directory / "api-key"}"\nadmin_key_file = "{directory / "admin-key"}"\n'
        f'[fleet]\nredis_url = "{redis.url}"\nrelay_id = "{name}"\n'
        f'advertise = ["{host}:{port}"]\nheartbeat = 0.2\nttl = 1.0\n'
        "sessions_interval = 0.5\n"
        f'[check]\nlink_secrets_file = "{directory / "link-secrets"}"\n'
        f'public_url = "http://{host}:{api_port}"\n'
    )
    return config


@asynccontextmanager
async def fleet_relay(directory: Path, name: str, redis: RedisServer) -> AsyncIterator[Relay]:
    directory.mkdir(parents=True, exist_ok=True)
    port, api_port = free_port(HOSTS[name]), free_port(HOSTS[name])
    config = write_config(directory, name, port, api_port, redis)
    log = (directory / "relay.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        TURN_RELAY, "serve", "--config", str(config), "--log-format", "json",
        stdout=log, stderr=log,
    )  # fmt: skip
    relay = Relay(port, f"http://{HOSTS[name]}:{api_port}", directory, process)
    try:
        try:  # three relays and a browser tier may share two cores: allow a slow start
            await wait_until_answering(port, timeout=30.0, host=HOSTS[name])
        except AssertionError:
            log.flush()
            tail = (directory / "relay.log").read_text()[-2000:]
            raise AssertionError(f"relay {name} did not start; its log ends:\n{tail}") from None
        await _api_up(relay.api)
        yield relay
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


@pytest_asyncio.fixture
async def fleet(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[dict[str, Relay]]:
    async with AsyncExitStack() as stack:
        relays = {
            name: await stack.enter_async_context(fleet_relay(tmp_path / name, name, redis_server))
            for name in HOSTS
        }
        await until_status(relays, lambda s: len(s["fleet"]["siblings"]) == 2)
        yield relays


async def status_of(relay: Relay) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{relay.api}/admin/status", headers=headers) as reply,
    ):
        assert reply.status == 200
        found: dict[str, Any] = await reply.json()
        return found


async def until_status(relays: dict[str, Relay], ok: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        statuses = [await status_of(r) for r in relays.values()]
        if all(ok(s) for s in statuses):
            return
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.1)


async def client_of(relay: Relay, user: str, name: str) -> WireClient:
    return await WireClient.over_udp((HOSTS[name], relay.port), credential(user))


async def allocate(relay: Relay, user: str, name: str) -> tuple[WireClient, Any]:
    client = await client_of(relay, user, name)
    response = await client.request(Method.ALLOCATE, attrs.RequestedTransport(17))
    return client, response


async def metrics_of(relay: Relay) -> str:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{relay.api}/metrics", headers=headers) as reply,
    ):
        return await reply.text()


async def mint_check_link(relay: Relay) -> str:
    """A check-page token minted from the relay's config (`turn-relay link`)."""
    config = relay.directory / "relay.toml"
    process = await asyncio.create_subprocess_exec(
        TURN_RELAY, "link", "--config", str(config), "--json", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    url: str = json.loads(out)["url"]
    return url.rpartition("/")[2]


async def upload(relay: Relay, token: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps(report(source="browser")).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{relay.api}/check/{token}/report", data=body) as reply,
    ):
        return reply.status, await reply.json()


async def reports_api(relay: Relay, path: str) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{relay.api}/reports{path}", headers=headers) as reply,
    ):
        return reply.status, await reply.json()


async def test_a_report_stored_on_one_relay_is_served_by_every_relay(
    fleet: dict[str, Relay],
) -> None:
    token = await mint_check_link(fleet["A"])
    status, stored = await upload(fleet["A"], token)
    assert status == 200, stored
    ident = stored["id"]
    status, on_a = await reports_api(fleet["A"], f"/{ident}")
    assert status == 200 and on_a["report"]["relay_observed"]["test_id"] == ident
    deadline = time.monotonic() + 5  # published in the background, after the upload's answer
    for name in ("B", "C"):
        while (found := await reports_api(fleet[name], f"/{ident}")) != (200, on_a):
            assert time.monotonic() < deadline, (name, found)
            await asyncio.sleep(0.1)
    status, listing = await reports_api(fleet["C"], "?limit=5")
    assert status == 200
    assert [r["id"] for r in listing["reports"]] == [ident]
    assert listing["reports"][0] == {k: v for k, v in on_a.items() if k != "report"}
    status, refused = await upload(fleet["B"], token)  # the link's report is in, fleet-wide
    assert status == 403, refused
    assert "already in" in refused["error"]
    assert (await reports_api(fleet["B"], "?limit=5"))[1] == listing


async def test_a_users_quota_holds_across_the_fleet(fleet: dict[str, Relay]) -> None:
    clients = []
    try:
        for name in ("A", "B", "C"):  # three allocations of alice, one on each relay
            client, response = await allocate(fleet[name], "alice", name)
            clients.append(client)
            assert response.cls is MessageClass.SUCCESS, response
        await asyncio.sleep(0.8)  # a few heartbeats
        for name in ("A", "B", "C"):  # a fourth anywhere is over the quota of 3
            client, response = await allocate(fleet[name], "alice", name)
            clients.append(client)
            assert code_of(response) == 486, (name, response)
        client, response = await allocate(fleet["B"], "bob", "B")  # others are not affected
        clients.append(client)
        assert response.cls is MessageClass.SUCCESS
        assert (await clients[0].refresh(0)).cls is MessageClass.SUCCESS  # one of hers ends
        await asyncio.sleep(0.8)
        client, response = await allocate(fleet["C"], "alice", "C")
        clients.append(client)
        assert response.cls is MessageClass.SUCCESS
    finally:
        for client in clients:
            await client.close()


async def test_kick_sent_to_one_relay_ends_a_session_on_another(fleet: dict[str, Relay]) -> None:
    async with echo_peer() as (peer, _):
        client, response = await allocate(fleet["C"], "carol", "C")
        try:
            assert response.cls is MessageClass.SUCCESS
            assert (await client.bind(0x4000, peer)).cls is MessageClass.SUCCESS
            await until_status({"A": fleet["A"]}, lambda s: True)
            deadline = time.monotonic() + 5
            while not [s for s in await fleet["A"].sessions() if s["user"] == "carol"]:
                assert time.monotonic() < deadline, "A never listed carol's session on C"
                await asyncio.sleep(0.1)
            found = [s for s in await fleet["A"].sessions() if s["user"] == "carol"]
            assert [s["relay_id"] for s in found] == ["C"]
            code, output = await fleet["A"].cli("kick", "carol")
            assert code in (0, 1), output  # A itself held none of hers
            deadline = time.monotonic() + 2
            while True:
                answer = await client.refresh(600)
                if code_of(answer) == 437:
                    break
                assert time.monotonic() < deadline, "C's session survived the kick"
                await asyncio.sleep(0.1)
        finally:
            await client.close()


async def test_a_revoke_reaches_every_relay_within_a_second(fleet: dict[str, Relay]) -> None:
    code, output = await fleet["B"].cli("revoke", "mallory")
    assert code == 0, output
    started = time.monotonic()
    for name in ("A", "C", "B"):
        while True:
            client, response = await allocate(fleet[name], "mallory", name)
            await client.close()
            if code_of(response) == 401:
                break
            assert time.monotonic() - started < 1.0, f"{name} still let mallory in"
            await asyncio.sleep(0.05)
    assert time.monotonic() - started < 1.0


async def test_draining_b_sends_new_clients_to_a_sibling_while_its_calls_go_on(
    fleet: dict[str, Relay],
) -> None:
    async with echo_peer() as (peer, _):
        client, response = await allocate(fleet["B"], "dave", "B")
        try:
            assert response.cls is MessageClass.SUCCESS
            assert (await client.bind(0x4000, peer)).cls is MessageClass.SUCCESS
            code, output = await fleet["B"].cli("drain", "--seconds", "60")
            assert code == 0, output
            newcomer, answer = await allocate(fleet["B"], "erin", "B")
            await newcomer.close()
            assert code_of(answer) == 300
            alternate = answer.get(attrs.AlternateServer)
            assert alternate is not None
            assert (alternate.ip, alternate.port) in {
                (HOSTS["A"], fleet["A"].port),
                (HOSTS["C"], fleet["C"].port),
            }
            client.channel_data(0x4000, b"still here")  # B's call goes on
            assert (await client.receive())[4:] == b"echo:still here"
        finally:
            await client.close()


async def test_a_redis_outage_is_served_through_and_reconciled(
    fleet: dict[str, Relay], redis_server: RedisServer
) -> None:
    async with echo_peer() as (peer, _):
        before, response = await allocate(fleet["A"], "frank", "A")
        clients = [before]
        try:
            assert response.cls is MessageClass.SUCCESS
            assert (await before.bind(0x4000, peer)).cls is MessageClass.SUCCESS
            redis_server.stop()
            await until_status(fleet, lambda s: not s["fleet"]["connected"])
            text = await metrics_of(fleet["A"])
            assert "turnkit_relay_fleet_connected 0.0" in text
            assert "turnkit_relay_fleet_outages_total 1.0" in text
            before.channel_data(0x4000, b"during")  # existing allocations keep relaying
            assert (await before.receive())[4:] == b"echo:during"
            for name in ("A", "B", "C"):  # new ones are made, with quotas per relay
                client, response = await allocate(fleet[name], "grace", name)
                clients.append(client)
                assert response.cls is MessageClass.SUCCESS, (name, response)
            status, stored = await upload(fleet["A"], await mint_check_link(fleet["A"]))
            assert status == 200, stored  # a report is still taken, and kept on A
            assert (await reports_api(fleet["A"], f"/{stored['id']}"))[0] == 200
            assert (await reports_api(fleet["B"], f"/{stored['id']}"))[0] == 404
            redis_server.start()
            await until_status(
                fleet, lambda s: s["fleet"]["connected"] and len(s["fleet"]["siblings"]) == 2, 15
            )
            deadline = time.monotonic() + 5
            while sorted(s["relay_id"] for s in await fleet["B"].sessions("--user", "grace")) != [
                "A", "B", "C"
            ]:  # fmt: skip
                assert time.monotonic() < deadline, "the registry did not come back"
                await asyncio.sleep(0.1)
            assert "turnkit_relay_fleet_connected 1.0" in await metrics_of(fleet["A"])
        finally:
            for client in clients:
                await client.close()
