"""Servers and certificates for the gather, data and tls tests: coturn's turnserver and our
turn-relay/stun-server on loopback, on free ports, started as subprocesses and stopped by PID;
throwaway TLS certificates made with ``cryptography``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from turnkit_testing.tls import CertFiles, make_certificate

HOST = "127.0.0.1"
SECRET = "S"
REALM = "turnkit"
VENV_BIN = Path(sys.executable).parent
#: turn-relay's relay ports: below the ephemeral range that free_port() draws listen ports from
RELAY_PORTS = "20000-29999"
LENIENT_CONFIG = """
[server]
realm = "turnkit"

[relay]
addresses = ["127.0.0.1"]

[quotas]
max_allocations_per_user = 100

[auth.unauthorized_limit]
per_second = 100.0
burst = 100
"""
BINDING_REQUEST = bytes.fromhex("000100002112a442") + os.urandom(12)


def coturn_missing() -> bool:
    return shutil.which("turnserver") is None


def free_port() -> int:
    """A port free for both UDP and TCP on HOST."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


# --- certificates ---------------------------------------------------------------------------


def make_certs(
    directory: Path,
    *,
    names: tuple[str, ...] = (HOST,),
    self_signed: bool = False,
    valid_days: float = 90,
    expired: bool = False,
) -> CertFiles:
    """A leaf certificate for ``names`` signed by a fresh CA (or by itself)."""
    return make_certificate(
        directory, names, self_signed=self_signed, valid_days=valid_days, expired=expired
    )


# --- processes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    port: int
    tls_port: int | None
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _udp_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        try:
            sock.sendto(BINDING_REQUEST, (HOST, port))
            sock.recvfrom(2048)
        except OSError:
            return False
    return True


def _tcp_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.1):
            return True
    except OSError:
        return False


def _wait_ready(server: Server, deadline_s: float = 10.0) -> None:
    ports_ok = False
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited {server.process.returncode}:\n{server.log_text()}")
        ports_ok = _udp_answers(server.port) and _tcp_accepts(server.port)
        if ports_ok and (server.tls_port is None or _tcp_accepts(server.tls_port)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server not ready within {deadline_s} s:\n{server.log_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a server this module started, by its PID."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextmanager
def _running(argv: list[str], workdir: Path, port: int, tls_port: int | None) -> Iterator[Server]:
    log = workdir / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server(process, port, tls_port, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        stop(process)


@contextmanager
def coturn(
    workdir: Path,
    *,
    certs: CertFiles | None = None,
    allow_loopback_peers: bool = True,
    secret: str = SECRET,
) -> Iterator[Server]:
    """coturn's turnserver on HOST with REST credentials (``--static-auth-secret``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        "turnserver", "-n", "--no-dtls", "--no-cli", "--log-file", "stdout", "--simple-log",
        "-L", HOST, "-p", str(port), "--use-auth-secret", "--static-auth-secret", secret,
        "--realm", REALM, "--pidfile", str(workdir / "turnserver.pid"),
        "--userdb", str(workdir / "turndb"),
    ]  # fmt: skip
    if allow_loopback_peers:
        argv.append("--allow-loopback-peers")
    tls_port = None
    if certs is None:
        argv.append("--no-tls")
    else:
        tls_port = free_port()
        argv += ["--tls-listening-port", str(tls_port), "--cert", str(certs.cert)]
        argv += ["--pkey", str(certs.key)]
    with _running(argv, workdir, port, tls_port) as server:
        yield server


def relay_serve_help() -> str:
    done = subprocess.run(
        [str(VENV_BIN / "turn-relay"), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout


@contextmanager
def turn_relay(
    workdir: Path,
    *,
    certs: CertFiles | None = None,
    allowed_peers: tuple[str, ...] = ("127.0.0.0/8",),
    secret: str = SECRET,
    lenient: bool = False,
) -> Iterator[Server]:
    """Our turn-relay on HOST with a REST secret file and loopback peers allowed.

    ``lenient`` raises the 401 rate limit and the per-user allocation quota (defaults: 10 each),
    which a full rtccheck run from one address with one minted user goes beyond."""
    workdir.mkdir(parents=True, exist_ok=True)
    secret_file = workdir / "secret"
    secret_file.write_text(secret + "\n")
    port = free_port()
    argv = [
        str(VENV_BIN / "turn-relay"), "serve", "--listen", HOST, "--port", str(port),
        "--secret-file", str(secret_file), "--workers", "1", "--port-range", RELAY_PORTS,
    ]  # fmt: skip
    if lenient:
        config = workdir / "relay.toml"
        config.write_text(LENIENT_CONFIG)
        argv += ["--config", str(config)]
    for network in allowed_peers:
        argv += ["--allowed-peer", network]
    tls_port = None
    if certs is not None:
        tls_port = free_port()
        argv += ["--tls-port", str(tls_port), "--tls-cert", str(certs.cert)]
        argv += ["--tls-key", str(certs.key)]
    with _running(argv, workdir, port, tls_port) as server:
        yield server


@contextmanager
def stun_server(workdir: Path, *, certs: CertFiles | None = None) -> Iterator[Server]:
    """Our stun-server on HOST (UDP and TCP, and TLS with ``certs``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [str(VENV_BIN / "stun-server"), "--listen", f"{HOST}:{port}"]
    tls_port = None
    if certs is not None:
        tls_port = free_port()
        argv += ["--tls-cert", str(certs.cert), "--tls-key", str(certs.key)]
        argv += ["--tls-port", str(tls_port)]
    with _running(argv, workdir, port, tls_port) as server:
        yield server


# --- both relays with TLS, for parametrised fixtures -----------------------------------------


def _coturn_with(workdir: Path, certs: CertFiles) -> AbstractContextManager[Server]:
    return coturn(workdir, certs=certs)


def _turn_relay_with(workdir: Path, certs: CertFiles) -> AbstractContextManager[Server]:
    return turn_relay(workdir, certs=certs)


ServerFactory = Callable[[Path, CertFiles], AbstractContextManager[Server]]

#: fixture params: coturn (interop tier, skipped without turnserver) and turn-relay
TLS_SERVERS = [
    pytest.param(
        _coturn_with,
        id="coturn",
        marks=[
            pytest.mark.interop,
            pytest.mark.skipif(coturn_missing(), reason="coturn's turnserver is not installed"),
        ],
    ),
    pytest.param(_turn_relay_with, id="turn-relay"),
]


def serve_with_certs(factory: ServerFactory, tmp_path: Path) -> Iterator[tuple[Server, CertFiles]]:
    """The body of a ``tls_server`` fixture over `TLS_SERVERS`: fresh certificates, the server."""
    certs = make_certs(tmp_path / "certs")
    with factory(tmp_path / "server", certs) as server:
        yield server, certs
