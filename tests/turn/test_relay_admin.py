"""The admin API through the real CLI against a real ``turn-relay serve`` process: sessions,
kick, revoke (also after a restart), status, drain (new Allocates refused while an existing
allocation keeps relaying, /healthz 503, then a clean exit), with ``--workers 1`` and ``2``;
and the JSON log lines of what happened."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from relay_harness import REALM, WireClient, echo_peer, free_port, wait_until_answering

from stun_server.wire import MessageClass, Method
from stun_server.wire import attributes as attrs
from turn_relay.auth.credentials import issue

TURN_RELAY = str(Path(sys.executable).parent / "turn-relay")
SECRET = "admin-test-secret"
API_KEY = "credentials-api-key-0123"
ADMIN_KEY = "admin-api-key-0123456789"
PORTS = "24600-24699"
pytestmark = pytest.mark.asyncio


def credential(user: str, ttl: int = 600) -> tuple[str, str]:
    issued = issue(SECRET, user, ttl, time.time())
    return issued.username, issued.password


def code_of(response: Any) -> int | None:
    error = response.get(attrs.ErrorCode)
    return None if error is None else int(error.code)


@dataclass
class Relay:
    port: int
    api: str
    directory: Path
    process: asyncio.subprocess.Process

    @property
    def log(self) -> list[dict[str, Any]]:
        text = (self.directory / "relay.log").read_text()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    async def cli(self, *args: str, key: str = ADMIN_KEY) -> tuple[int, str]:
        key_file = self.directory / "cli-key"
        key_file.write_text(key + "\n")
        process = await asyncio.create_subprocess_exec(
            TURN_RELAY, *args, "--api", self.api, "--admin-key-file", str(key_file),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 30)
        return process.returncode or 0, output.decode()

    async def sessions(self, *extra: str) -> list[dict[str, Any]]:
        code, output = await self.cli("sessions", "--json", *extra)
        assert code == 0, output
        found: list[dict[str, Any]] = json.loads(output)
        return found


@asynccontextmanager
async def relay_process(directory: Path, *extra: str) -> AsyncIterator[Relay]:
    (directory / "secrets").write_text(SECRET + "\n")
    (directory / "api-key").write_text(API_KEY + "\n")
    (directory / "admin-key").write_text(ADMIN_KEY + "\n")
    port, api_port = free_port(), free_port()
    log = (directory / "relay.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        TURN_RELAY, "serve", "--realm", REALM, "--listen", "127.0.0.1", "--port", str(port),
        "--secret-file", str(directory / "secrets"), "--allowed-peer", "127.0.0.0/8",
        "--port-range", PORTS, "--challenge-burst", "1000", "--max-allocations-per-user", "0",
        "--api-port", str(api_port), "--api-key-file", str(directory / "api-key"),
        "--admin-key-file", str(directory / "admin-key"), "--state-dir", str(directory / "state"),
        "--log-format", "json", *extra,
        stdout=log, stderr=log,
    )  # fmt: skip
    relay = Relay(port, f"http://127.0.0.1:{api_port}", directory, process)
    try:
        await wait_until_answering(port)
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


async def _api_up(api: str) -> None:
    deadline = time.monotonic() + 10
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{api}/healthz") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, "the HTTP API did not come up"
            await asyncio.sleep(0.1)


async def healthz(api: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{api}/healthz") as reply:
        return reply.status, await reply.json()


async def echoing_client(relay: Relay, user: str, peer: Any, index: int = 0) -> WireClient:
    client = await WireClient.over_udp(("127.0.0.1", relay.port), credential(user))
    await client.allocate()
    assert (await client.bind(0x4000, peer)).cls is MessageClass.SUCCESS
    client.channel_data(0x4000, b"ping-%d" % index)
    frame = await client.receive()
    assert frame[4:] == b"echo:ping-%d" % index
    return client


@pytest.mark.parametrize("workers", [1, 2])
async def test_sessions_show_traffic_and_kick_ends_them(tmp_path: Path, workers: int) -> None:
    async with (
        relay_process(tmp_path, "--workers", str(workers)) as relay,
        echo_peer() as (
            peer,
            _,
        ),
    ):
        clients = [await echoing_client(relay, f"user{i}", peer, i) for i in range(6)]
        try:
            found = await relay.sessions()
            assert sorted(s["user"] for s in found) == [f"user{i}" for i in range(6)]
            by_user = {s["user"]: s for s in found}
            first = by_user["user0"]
            assert first["client"] == f"127.0.0.1:{clients[0].local[1]}"
            assert first["transport"] == "udp"
            assert first["permissions"] == ["127.0.0.1"]
            assert first["channels"] == [{"channel": 0x4000, "peer": f"127.0.0.1:{peer[1]}"}]
            assert (first["bytes_to_peer"], first["packets_to_peer"]) == (6, 1)
            assert (first["bytes_to_client"], first["packets_to_client"]) == (11, 1)
            assert first["age"] >= 0 and first["relayed"] == [first["id"]]
            assert [s["user"] for s in await relay.sessions("--user", "user3")] == ["user3"]
            # kick by user and by session id: the client's next Refresh fails with 437
            code, output = await relay.cli("kick", "user0")
            assert code == 0 and "ended 1 session(s) of user0" in output, output
            code, output = await relay.cli("kick", by_user["user1"]["id"])
            assert code == 0, output
            for kicked in clients[:2]:
                assert code_of(await kicked.refresh(600)) == 437
            assert (await clients[2].refresh(600)).cls is MessageClass.SUCCESS
            assert sorted(s["user"] for s in await relay.sessions()) == [
                f"user{i}" for i in range(2, 6)
            ]
            code, output = await relay.cli("kick", "nobody")
            assert code == 1 and "404" in output
            code, output = await relay.cli("status", "--json")
            status = json.loads(output)
            assert (status["sessions"], status["workers"], status["offload"]) == (4, workers, "off")
            assert status["workers_answering"] == workers
            assert status["sessions_by_transport"] == {"udp": 4}
        finally:
            for client in clients:
                await client.close()
    deleted = [line for line in relay.log if line["msg"] == "allocation-deleted"]
    kicked_users = sorted(line["user"] for line in deleted if line["reason"] == "kicked")
    assert kicked_users == ["user0", "user1"]
    assert {line["bytes_to_peer"] for line in deleted if line["reason"] == "kicked"} == {6}


async def test_the_admin_key_is_its_own(tmp_path: Path) -> None:
    async with relay_process(tmp_path) as relay:
        code, output = await relay.cli("sessions", key=API_KEY)  # the credentials key: no
        assert code == 1 and "401" in output and "admin key" in output
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{relay.api}/credentials?user=a", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as reply,
        ):
            assert reply.status == 401  # and the admin key issues no credentials


async def test_revoke_refuses_a_valid_credential_also_after_a_restart(tmp_path: Path) -> None:
    async with relay_process(tmp_path) as relay:
        victim = await WireClient.over_udp(("127.0.0.1", relay.port), credential("mallory"))
        await victim.allocate()
        code, output = await relay.cli("revoke", "mallory", "--until", "2h")
        assert code == 0 and "ended 1 session(s)" in output, output
        assert code_of(await victim.refresh(600)) == 401  # revoked: refused before 437
        fresh = await WireClient.over_udp(("127.0.0.1", relay.port), credential("mallory"))
        assert code_of(await fresh.request(Method.ALLOCATE, attrs.RequestedTransport(17))) == 401
        other = await WireClient.over_udp(("127.0.0.1", relay.port), credential("alice"))
        await other.allocate()
        for client in (victim, fresh, other):
            await client.close()
    async with relay_process(tmp_path) as relay:  # the same state directory
        again = await WireClient.over_udp(("127.0.0.1", relay.port), credential("mallory"))
        assert code_of(await again.request(Method.ALLOCATE, attrs.RequestedTransport(17))) == 401
        code, output = await relay.cli("unrevoke", "mallory")
        assert code == 0, output
        await again.allocate()
        await again.close()
    refused = [line for line in relay.log if line["msg"] == "refused"]
    assert [(r["reason"], r["code"], r["method"]) for r in refused][:1] == [
        ("revoked", 401, "refresh")
    ]
    assert {r["reason"] for r in refused} == {"revoked"}
    assert all(r["username"].endswith(":mallory") for r in refused)


async def test_drain_refuses_new_allocations_while_an_old_one_relays_then_exits(
    tmp_path: Path,
) -> None:
    async with relay_process(tmp_path) as relay, echo_peer() as (peer, _):
        old = await echoing_client(relay, "old", peer)
        code, output = await relay.cli("drain", "--seconds", "30")
        assert code == 0 and "draining: 1 session(s) left" in output, output
        assert await healthz(relay.api) == (503, {"status": "draining"})
        new = await WireClient.over_udp(("127.0.0.1", relay.port), credential("new"))
        assert code_of(await new.request(Method.ALLOCATE, attrs.RequestedTransport(17))) == 403
        old.channel_data(0x4000, b"still")
        assert (await old.receive())[4:] == b"echo:still"
        assert (await old.refresh(0)).cls is MessageClass.SUCCESS  # the last one ends...
        assert await asyncio.wait_for(relay.process.wait(), 10) == 0  # ...and the relay exits
        await old.close()
        await new.close()
    assert any(line["msg"].startswith("drained") for line in relay.log)


async def test_sigterm_drains_with_drain_seconds_and_300_names_the_alternate(
    tmp_path: Path,
) -> None:
    extra = ("--drain-seconds", "30", "--alternate-server", "198.51.100.7:3478")
    async with relay_process(tmp_path, *extra) as relay:
        old = await WireClient.over_udp(("127.0.0.1", relay.port), credential("old"))
        await old.allocate()
        relay.process.terminate()
        await asyncio.sleep(0.3)
        assert relay.process.returncode is None
        new = await WireClient.over_udp(("127.0.0.1", relay.port), credential("new"))
        response = await new.request(Method.ALLOCATE, attrs.RequestedTransport(17))
        assert code_of(response) == 300
        assert response.get(attrs.AlternateServer) == attrs.AlternateServer("198.51.100.7", 3478)
        relay.process.terminate()  # a second SIGTERM stops at once
        assert await asyncio.wait_for(relay.process.wait(), 10) == 0
        await old.close()
        await new.close()
