"""``turn-relay serve --workers 2``: SO_REUSEPORT listeners, one relay port block per worker,
shared nonce key and secrets, SIGHUP and SIGTERM forwarded, /metrics summed by the parent."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from relay_harness import (
    REALM,
    WireClient,
    echo_peer,
    free_port,
    port_is_free,
    wait_until_answering,
)

from stun_server.wire import MessageClass, Method
from stun_server.wire import attributes as attrs
from turn_relay.auth.credentials import issue
from turn_relay.shell.workers import split_ports

TURN_RELAY = str(Path(sys.executable).parent / "turn-relay")
PORTS = (24400, 24499)
BLOCKS = split_ports(*PORTS, 2)  # what each worker allocates from
MAX_CLIENTS = 40  # all on one worker by chance: probability 2 * 2**-40


def credential(secret: str) -> tuple[str, str]:
    issued = issue(secret, "workers", 600, time.time())
    return issued.username, issued.password


def block_of(port: int) -> int:
    return next(i for i, (low, high) in enumerate(BLOCKS) if low <= port <= high)


def test_split_ports_is_disjoint_and_complete() -> None:
    assert split_ports(10, 19, 3) == [(10, 13), (14, 16), (17, 19)]
    assert split_ports(5, 5, 1) == [(5, 5)]
    with pytest.raises(ValueError):
        split_ports(5, 6, 3)


@pytest.mark.asyncio
async def test_workers_share_listeners_own_port_blocks_and_stop_cleanly(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("first-secret\n")
    api_key = tmp_path / "api-key"
    api_key.write_text("workers-test-api-key-0123\n")
    port, api_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        TURN_RELAY, "serve", "--workers", "2", "--realm", REALM,
        "--listen", "127.0.0.1", "--port", str(port), "--secret-file", str(secrets),
        "--allowed-peer", "127.0.0.0/8", "--port-range", f"{PORTS[0]}-{PORTS[1]}",
        "--challenge-burst", "1000", "--max-allocations-per-user", "0",
        "--api-port", str(api_port), "--api-key-file", str(api_key),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    clients: list[WireClient] = []
    try:
        await wait_until_answering(port)
        async with echo_peer() as (peer, _):
            # UDP clients on fresh source ports until both workers hold allocations
            seen: dict[int, list[WireClient]] = {0: [], 1: []}
            while not (seen[0] and seen[1]):
                assert len(clients) < MAX_CLIENTS, "every client landed on one worker"
                client = await WireClient.over_udp(("127.0.0.1", port), credential("first-secret"))
                clients.append(client)
                relayed = await client.allocate()
                seen[block_of(relayed[1])].append(client)
            for index, client in enumerate(clients):
                assert (await client.bind(0x4000, peer)).cls is MessageClass.SUCCESS
                client.channel_data(0x4000, b"w%d" % index)
                expected = b"echo:w%d" % index
                assert await client.receive() == b"\x40\x00" + bytes([0, len(expected)]) + expected
            # TCP lands on a worker too, and relays
            tcp = await WireClient.over_stream(("127.0.0.1", port))
            tcp.username, tcp.password = credential("first-secret")
            clients.append(tcp)
            relayed = await tcp.allocate()
            assert PORTS[0] <= relayed[1] <= PORTS[1]
            await tcp.bind(0x4001, peer)
            tcp.channel_data(0x4001, b"tcp", pad=True)
            assert await tcp.receive() == b"\x40\x01\x00\x08echo:tcp"

            # the parent's /metrics sums the workers
            metrics_url = f"http://127.0.0.1:{api_port}/metrics"
            async with aiohttp.ClientSession() as session, session.get(metrics_url) as reply:
                text = await reply.text()
            assert f"\nturnkit_relay_allocations_active {len(clients)}.0\n" in text
            assert "# HELP turnkit_relay_allocations_active " in text

            # SIGHUP reaches every worker: the new secret works on both
            secrets.write_text("second-secret\n")
            process.send_signal(signal.SIGHUP)
            reloaded: set[int] = set()
            deadline = time.monotonic() + 10
            while reloaded != {0, 1}:
                assert time.monotonic() < deadline, f"SIGHUP reached workers {reloaded} only"
                client = await WireClient.over_udp(("127.0.0.1", port), credential("second-secret"))
                clients.append(client)
                response = await client.request(Method.ALLOCATE, attrs.RequestedTransport(17))
                if response.cls is MessageClass.SUCCESS:
                    relayed_address = response.get(attrs.XorRelayedAddress)
                    assert relayed_address is not None
                    reloaded.add(block_of(relayed_address.port))
                else:
                    await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert port_is_free(port)
        assert all(port_is_free(p) for p in range(PORTS[0], PORTS[1] + 1))
        assert process.stderr is not None
        log = (await process.stderr.read()).decode()
        assert "2 worker processes share the listeners" in log
        assert log.count("relay listening on") == 1  # worker 0 speaks for all
        assert "Traceback" not in log
    finally:
        for client in clients:
            await client.close()
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.asyncio
async def test_a_worker_that_cannot_start_stops_the_relay(tmp_path: Path) -> None:
    """A listener port already taken (without SO_REUSEPORT) fails before any fork."""
    import socket

    secrets = tmp_path / "secrets"
    secrets.write_text("s\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            TURN_RELAY, "serve", "--workers", "2", "--listen", "127.0.0.1", "--port", str(port),
            "--secret-file", str(secrets), "--port-range", f"{PORTS[0]}-{PORTS[1]}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 1
    assert b"cannot start the relay" in output
