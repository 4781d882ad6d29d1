"""``turn-relay serve`` on 127.0.0.1 for the browser group-call tests, with its DEFAULT challenge
budget and every other default except what a loopback test needs (loopback peers allowed, a
relay port block, the API for /metrics). TLS uses a certificate for ``127.0.0.1`` signed by a
throwaway CA (`turnkit_testing.tls`). Each participant gets its own REST credential, minted with
the relay's own scheme, as an app backend would hand out."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from turn_interop_kit import TURN_RELAY, wait_until_answering
from turnkit_testing import free_port
from turnkit_testing.browsers import Browser, end_process_group
from turnkit_testing.mesh import MeshOutcome, close_pages, open_pages, peer_names, run_mesh
from turnkit_testing.tls import CertFiles, make_certificate

from turn_relay.auth.credentials import issue

REALM = "mesh.test"
SECRET = "browser-mesh-secret"
API_KEY = "browser-mesh-api-key"
RELAY_PORTS = (27000, 27999)  # below the ephemeral range, apart from the other interop tests
TRANSPORTS = ("udp", "tcp", "tls")


@dataclass(frozen=True)
class MeshRelay:
    port: int  # UDP and TCP
    tls_port: int
    api_port: int
    certs: CertFiles
    log: Path

    def url(self, transport: str, tls_host: str = "127.0.0.1") -> str:
        return {
            "udp": f"turn:127.0.0.1:{self.port}?transport=udp",
            "tcp": f"turn:127.0.0.1:{self.port}?transport=tcp",
            "tls": f"turns:{tls_host}:{self.tls_port}?transport=tcp",
        }[transport]

    def ice_servers(
        self, user: str, transport: str, tls_host: str = "127.0.0.1"
    ) -> list[dict[str, Any]]:
        credential = issue(SECRET, user, ttl=600, now=time.time())
        return [{"urls": [self.url(transport, tls_host)], "username": credential.username,
                 "credential": credential.password}]  # fmt: skip

    def spki_sha256(self) -> str:
        """base64 SHA-256 of the leaf key, for Chromium's --ignore-certificate-errors-spki-list."""
        leaf = x509.load_pem_x509_certificate(self.certs.cert.read_bytes())
        spki = leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()

    async def metrics(self) -> dict[str, float]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.api_port}/metrics") as response,
        ):
            assert response.status == 200
            text = await response.text()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def log_tail(self, size: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-size:]


def relay_certificate(directory: Path) -> CertFiles:
    """A certificate for 127.0.0.1 and localhost (the turns: URL hosts) signed by a fresh test
    CA. Firefox gathers nothing (and reports no error) for ``turns:`` with an IP address; with
    ``turns:localhost`` it checks the chain against the profile's CA and the name."""
    return make_certificate(directory, ("127.0.0.1", "localhost"), stem="relay-")


def challenge_counters(metrics: dict[str, float]) -> dict[str, float]:
    """The counters that tell a challenge-budget failure: challenges, rate-limited, 401s,
    allocations made."""
    wanted = ("auth_challenges", "rate_limited", 'code="401"', "allocations_created", 'code="438"')
    return {name: value for name, value in metrics.items() if any(w in name for w in wanted)}


def wait_accepting(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def mesh_relay(directory: Path, certs: CertFiles) -> Iterator[MeshRelay]:
    """A fresh relay for one mesh (a shared budget would leak between meshes)."""
    directory.mkdir(parents=True, exist_ok=True)
    secret_file = directory / "rest-secrets"
    secret_file.write_text(SECRET + "\n")
    api_key = directory / "api-key"
    api_key.write_text(API_KEY + "\n")
    relay = MeshRelay(
        port=free_port(),
        tls_port=free_port(),
        api_port=free_port(),
        certs=certs,
        log=directory / "turn-relay.log",
    )
    with relay.log.open("wb") as log:
        process = subprocess.Popen(
            [
                TURN_RELAY, "serve", "--realm", REALM, "--listen", "127.0.0.1",
                "--port", str(relay.port), "--tls-port", str(relay.tls_port),
                "--tls-cert", str(relay.certs.cert), "--tls-key", str(relay.certs.key),
                "--port-range", "{}-{}".format(*RELAY_PORTS),
                "--secret-file", str(secret_file), "--allowed-peer", "127.0.0.0/8",
                "--api-port", str(relay.api_port), "--api-key-file", str(api_key),
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_until_answering(relay.port)
            wait_accepting(relay.api_port)
            yield relay
        finally:
            end_process_group(process)


@dataclass
class GroupCall:
    outcome: MeshOutcome
    transport: str
    before: dict[str, float]
    after: dict[str, float]

    def grew(self, name: str) -> float:
        return self.after.get(name, 0.0) - self.before.get(name, 0.0)

    def problems(self) -> list[str]:
        return self.outcome.problems(self.transport, RELAY_PORTS)

    def grown(self) -> dict[str, float]:
        """Every relay counter the call moved, by how much."""
        return {name: self.grew(name) for name in sorted(self.after) if self.grew(name)}

    def explain(self, relay: MeshRelay, limit: int = 12) -> str:
        problems = self.problems()
        times = self.outcome.connect_times()
        return "\n".join([
            f"{len(problems)} problems in a mesh of {len(self.outcome.peers)} over "
            f"{self.transport} (waited {self.outcome.waited:.1f} s):",
            *problems[:limit],
            f"pair connect times (ms): {times}",
            f"relay counters after: {challenge_counters(self.after)}",
            f"relay counters that grew: {self.grown()}",
            *self.outcome.link_states(),
            f"relay log tail:\n{relay.log_tail()}",
        ])  # fmt: skip


async def group_call(
    browsers: list[Browser],
    signaling_url: str,
    relay: MeshRelay,
    size: int,
    transport: str,
    *,
    room: str,
    deadline: float = 30.0,
    tls_host: str = "127.0.0.1",
) -> GroupCall:
    """A relay-only mesh of ``size`` pages through ``relay`` over ``transport``."""
    before = await relay.metrics()
    servers = {
        peer: relay.ice_servers(f"{room}-{peer}", transport, tls_host) for peer in peer_names(size)
    }
    pages = await open_pages(browsers, signaling_url, size)
    try:
        outcome = await run_mesh(pages, servers, room=room, deadline=deadline)
    finally:
        await close_pages(pages)
    return GroupCall(outcome, transport, before, await relay.metrics())


def loopback_only() -> bool:
    """True in a network namespace whose only interface is ``lo``."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def require(reason: str | None) -> None:
    """Skip with ``reason`` (a missing tool), except under CI, where bootstrap installs it."""
    if reason is None:
        return
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs it: scripts/bootstrap.sh)")
    pytest.skip(reason)
