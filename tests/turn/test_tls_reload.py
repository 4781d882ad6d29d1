"""SIGHUP swaps the TLS certificate of a running `turn-relay serve` without dropping anything:
`rtccheck tls` (run as the real command) sees the new certificate, while an aioice TURN
allocation over UDP, and one over a TLS connection made before the swap, keep relaying. A bad
new pair keeps the old certificate, with a warning in the log."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aioice.turn import create_turn_endpoint
from relay_harness import free_port, wait_until_answering
from turnkit_testing.tls import CertFiles, make_certificate, write_unrelated_key

from turn_relay.auth.credentials import issue

pytestmark = [pytest.mark.asyncio, pytest.mark.interop]

BIN = Path(sys.executable).parent
RELAY_PORTS = (24400, 24499)


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(data)


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.sources: set[tuple[str, int]] = set()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.sources.add((addr[0], addr[1]))
        self.transport.sendto(b"echo:" + data, addr)


async def rtccheck_tls(port: int, ca_bundle: Path) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "rtccheck"), "tls", f"turns:127.0.0.1:{port}?transport=tcp",
        "--ca-file", str(ca_bundle), "--timeout", "3", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    (result,) = json.loads(output)["results"]
    assert result["status"] == "pass", result
    certificate: dict[str, Any] = result["details"]["certificate"]
    return certificate


async def seen_subject(port: int, ca_bundle: Path, expected: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (await rtccheck_tls(port, ca_bundle))["subject"] != expected:
        assert time.monotonic() < deadline, f"rtccheck tls never saw {expected}"
        await asyncio.sleep(0.2)


def install(files: CertFiles, live: CertFiles) -> None:
    """Put a new pair at the paths the relay reads, as a renewal hook would."""
    for source, target in ((files.cert, live.cert), (files.key, live.key)):
        staged = target.with_suffix(".new")
        shutil.copyfile(source, staged)
        staged.chmod(0o600)
        staged.replace(target)


async def log_shows(log: Path, text: str, times: int, timeout: float = 10) -> None:
    """Until ``text`` is in ``times`` lines of the log (one per worker)."""
    deadline = time.monotonic() + timeout
    while log.read_text().count(text) < times:
        assert time.monotonic() < deadline, f"not {times} {text!r} in the log:\n{log.read_text()}"
        await asyncio.sleep(0.1)
    assert log.read_text().count(text) == times


@asynccontextmanager
async def relay(
    tmp_path: Path, live: CertFiles, workers: int
) -> AsyncIterator[tuple[int, int, Path, Any]]:
    """A turn-relay process: (udp port, tls port, its log file, the process)."""
    secrets = tmp_path / "rest-secrets"
    secrets.write_text("reload-secret\n")
    secrets.chmod(0o600)
    port, tls_port, log = free_port(), free_port(), tmp_path / "relay.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "turn-relay"), "serve", "--listen", "127.0.0.1", "--port", str(port),
            "--tls-port", str(tls_port), "--tls-cert", str(live.cert), "--tls-key", str(live.key),
            "--secret-file", str(secrets), "--allowed-peer", "127.0.0.0/8",
            "--port-range", "{}-{}".format(*RELAY_PORTS), "--workers", str(workers),
            stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        await wait_until_answering(port)
        yield port, tls_port, log, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def allocate(port: int, transport: str, tls: ssl.SSLContext | None = None) -> Any:
    issued = issue("reload-secret", "reload", 600, time.time())
    return await create_turn_endpoint(
        Inbox, server_addr=("127.0.0.1", port), username=issued.username,
        password=issued.password, transport=transport, ssl=tls,
    )  # fmt: skip


async def relays(turn: Any, inbox: Inbox, peer: tuple[str, int], text: bytes) -> None:
    turn.sendto(text, peer)
    assert await asyncio.wait_for(inbox.queue.get(), 5) == b"echo:" + text


@pytest.mark.parametrize("workers", [1, 2])
async def test_sighup_swaps_the_certificate_while_allocations_keep_relaying(
    tmp_path: Path, workers: int
) -> None:
    """With --workers 2 each worker reloads its own listeners (one log line each)."""
    first = make_certificate(
        tmp_path / "first", common_name="relay-first", valid_days=90, ca_name="first CA"
    )
    second = make_certificate(
        tmp_path / "second", common_name="relay-second", valid_days=30, ca_name="second CA"
    )
    live = make_certificate(tmp_path / "live")  # paths only: overwritten with the first pair
    install(first, live)
    ca_bundle = tmp_path / "cas.pem"
    ca_bundle.write_bytes(first.ca.read_bytes() + second.ca.read_bytes())
    client_tls = ssl.create_default_context(cafile=str(ca_bundle))
    loop = asyncio.get_running_loop()
    echo_transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    peer = echo_transport.get_extra_info("sockname")[:2]
    async with relay(tmp_path, live, workers) as (port, tls_port, log, process):
        before = await rtccheck_tls(tls_port, ca_bundle)
        assert before["subject"] == "CN=relay-first"
        assert 89 < before["days_left"] <= 90
        udp_turn, udp_inbox = await allocate(port, "udp")
        tls_turn, tls_inbox = await allocate(tls_port, "tcp", client_tls)
        try:
            udp_relayed = udp_turn.get_extra_info("sockname")
            await relays(udp_turn, udp_inbox, peer, b"udp before")
            await relays(tls_turn, tls_inbox, peer, b"tls before")

            install(second, live)
            process.send_signal(signal.SIGHUP)
            await seen_subject(tls_port, ca_bundle, "CN=relay-second")
            after = await rtccheck_tls(tls_port, ca_bundle)
            assert 29 < after["days_left"] <= 30
            await log_shows(log, "reloaded TLS certificate", workers)
            await relays(udp_turn, udp_inbox, peer, b"udp after")
            await relays(tls_turn, tls_inbox, peer, b"tls after")
            assert udp_turn.get_extra_info("sockname") == udp_relayed  # the same allocation

            # a bad renewal: the key of another certificate, then garbage; the second stays
            write_unrelated_key(live.key)
            process.send_signal(signal.SIGHUP)
            await log_shows(log, "does not match the certificate", workers)
            live.cert.write_text("garbage\n")
            process.send_signal(signal.SIGHUP)
            await log_shows(log, "not a PEM certificate", workers)
            assert (await rtccheck_tls(tls_port, ca_bundle))["subject"] == "CN=relay-second"
            await relays(udp_turn, udp_inbox, peer, b"udp still")
            await relays(tls_turn, tls_inbox, peer, b"tls still")
        finally:
            udp_turn.close()
            tls_turn.close()
            echo_transport.close()
    text = log.read_text()
    failures = [line for line in text.splitlines() if "TLS reload failed" in line]
    assert len(failures) == 2 * workers
    assert all(
        " WARNING " in line and "keeping the previous certificate" in line for line in failures
    )
    assert process.returncode == 0
    assert len(echo.sources) == 2  # one relayed address per allocation, throughout
