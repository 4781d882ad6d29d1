"""Runs ``turn-relay serve`` as a process on loopback for the interop tests (coturn tools,
aioice, aiortc), with a REST secret, UDP + TCP + TLS listeners and loopback peers allowed."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnkit_testing import free_port_pair, self_signed_certificate

SECRET = "interop-secret"
REALM = "interop.test"
TURN_RELAY = str(Path(sys.executable).parent / "turn-relay")
RELAY_PORTS = "25000-25999"  # below the ephemeral range: never taken by client sockets


_BINDING_REQUEST = bytes.fromhex("000100002112a442") + b"interop-wait"


def wait_until_answering(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            sock.sendto(_BINDING_REQUEST, ("127.0.0.1", port))
            with suppress(TimeoutError):
                if sock.recv(2048)[:2] == b"\x01\x01":
                    return
    raise RuntimeError(f"turn-relay did not answer on UDP {port}")


@dataclass(frozen=True)
class Relay:
    port: int  # UDP and TCP
    tls_port: int
    secret_file: Path
    process: subprocess.Popen[bytes]

    def credentials(self, user: str, ttl: int = 3600) -> dict[str, Any]:
        """``turn-relay credentials`` JSON (the RTCIceServer shape) for this relay."""
        import json

        output = subprocess.run(
            [
                TURN_RELAY, "credentials", "--user", user, "--ttl", str(ttl),
                "--secret-file", str(self.secret_file),
                "--url", f"turn:127.0.0.1:{self.port}?transport=udp",
                "--url", f"turn:127.0.0.1:{self.port}?transport=tcp",
            ],
            check=True, capture_output=True, timeout=30,
        ).stdout  # fmt: skip
        found: dict[str, Any] = json.loads(output)
        return found


@contextmanager
def relay_process(directory: Path, *extra: str) -> Iterator[Relay]:
    secret_file = directory / "rest-secrets"
    secret_file.write_text(SECRET + "\n")
    cert, key = self_signed_certificate(directory, stem="relay-")
    port, tls_port = free_port_pair(), free_port_pair()
    log = (directory / "turn-relay.log").open("wb")
    process = subprocess.Popen(
        [
            TURN_RELAY, "serve", "--realm", REALM, "--listen", "127.0.0.1",
            "--port", str(port), "--tls-port", str(tls_port),
            "--tls-cert", str(cert), "--tls-key", str(key),
            "--secret-file", str(secret_file), "--allowed-peer", "127.0.0.0/8",
            "--port-range", RELAY_PORTS, "--max-allocations-per-user", "0", *extra,
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until_answering(port)
        yield Relay(port, tls_port, secret_file, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass(frozen=True)
class UclientResult:
    sent: int
    received: int
    lost: int
    output: str


_TOTALS = re.compile(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", re.MULTILINE)
_LOST = re.compile(r"Total lost packets (\d+)")


def parse_uclient(output: str) -> UclientResult:
    """The final totals of ``turnutils_uclient`` (it exits 0 even at 100% loss)."""
    totals = _TOTALS.findall(output)
    lost = _LOST.findall(output)
    if not totals or not lost:
        raise AssertionError(f"no totals in uclient output:\n{output[-2000:]}")
    sent, received = totals[-1]
    return UclientResult(int(sent), int(received), int(lost[-1]), output)
