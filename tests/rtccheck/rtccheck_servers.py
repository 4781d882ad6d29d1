"""Servers for rtccheck's end-to-end tests: our stun-server and turn-relay, and coturn.

Each runs as a subprocess on 127.0.0.1 (127.0.0.2 for RFC 5780) on free ports, logs to a file
in the test's temporary directory, and is stopped by PID (SIGTERM, then SIGKILL). Also makes
throwaway TLS certificates (a CA and a leaf for chosen names) for turns:/stuns: tests.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from rtccheck_schema_validator import report_errors
from turnkit_testing.tls import CertFiles, make_certificate

SECRET = "rtccheck-test-secret"
COTURN_REALM = "coturn.test"
START_TIMEOUT_S = 15.0


def venv_script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def coturn_available() -> bool:
    return shutil.which("turnserver") is not None


# ---------------------------------------------------------------- ports


def _free_on(host: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int = 1, hosts: Sequence[str] = ("127.0.0.1",)) -> int:
    """A port P such that P .. P+count-1 are free for UDP and TCP on every host."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000)
        ports = range(base, base + count)
        kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM)
        if all(_free_on(h, p, k) for h in hosts for p in ports for k in kinds):
            return base
    raise RuntimeError("no free ports found")


# ---------------------------------------------------------------- processes


@dataclass
class Running:
    """A started server: its process, main port and log."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    tls_port: int | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start(
    argv: Sequence[str], log: Path, ready_port: int, ready_host: str = "127.0.0.1"
) -> Running:
    """Start ``argv`` and wait until it accepts TCP connections on ready_host:ready_port."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    running = Running(proc, ready_port, log)
    try:
        _wait_accepting(running, ready_host, ready_port)
    except BaseException:
        stop(running)
        raise
    return running


def _wait_accepting(running: Running, host: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{running.log_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            time.sleep(0.1)  # UDP listeners come up with the TCP one; give them a moment
            return
        time.sleep(0.05)
    raise RuntimeError(f"server not listening on TCP {port}:\n{running.log_text()[-3000:]}")


def stop(running: Running) -> None:
    """SIGTERM the process group we created, SIGKILL after 5 s."""
    proc = running.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


@contextlib.contextmanager
def running(
    argv: Sequence[str], log: Path, ready_port: int, ready_host: str = "127.0.0.1"
) -> Iterator[Running]:
    server = start(argv, log, ready_port, ready_host)
    try:
        yield server
    finally:
        stop(server)


# ---------------------------------------------------------------- certificates


Certs = CertFiles


def make_certs(directory: Path, names: Sequence[str], stem: str = "leaf") -> Certs:
    """A throwaway CA and a leaf certificate for ``names`` (DNS names or IP addresses)."""
    return make_certificate(directory, names, stem=f"{stem}-", valid_days=2)


# ---------------------------------------------------------------- our servers


def stun_server_argv(
    port: int, *, alternate: bool = True, certs: Certs | None = None, tls_port: int | None = None
) -> list[str]:
    argv = [venv_script("stun-server"), "--listen", f"127.0.0.1:{port}", "--rate-limit", "0"]
    if alternate:
        argv += ["--alternate", "127.0.0.2"]
    if certs is not None and tls_port is not None:
        argv += ["--tls-cert", str(certs.cert), "--tls-key", str(certs.key)]
        argv += ["--tls-port", str(tls_port)]
    return argv


@dataclass(frozen=True)
class RelayOptions:
    udp: bool = True
    tls: Certs | None = None
    allowed_peers: tuple[str, ...] = ()
    external: str | None = None
    port_range: tuple[int, int] = (40000, 40999)
    max_allocations_per_user: int = 0


def turn_relay_config(directory: Path, port: int, tls_port: int, options: RelayOptions) -> Path:
    """A TOML config: loopback, REST secret, a generous 401 rate limit for tests."""
    secrets = directory / "relay-secrets"
    secrets.write_text(SECRET + "\n")
    lines = [
        "[server]",
        'realm = "turnkit.test"',
        "[listen]",
        'addresses = ["127.0.0.1"]',
        f"udp_port = {port if options.udp else 0}",
        f"tcp_port = {port}",
    ]
    if options.tls is not None:
        lines += [
            f"tls_port = {tls_port}",
            f'tls_cert_file = "{options.tls.cert}"',
            f'tls_key_file = "{options.tls.key}"',
        ]
    low, high = options.port_range
    lines += [
        "[relay]",
        'addresses = ["127.0.0.1"]',
        f"port_range = {{ min = {low}, max = {high} }}",
    ]
    if options.external is not None:
        lines += ["[relay.external]", f'"127.0.0.1" = "{options.external}"']
    peers = ", ".join(f'"{net}"' for net in options.allowed_peers)
    lines += [
        "[quotas]",
        f"max_allocations_per_user = {options.max_allocations_per_user}",
    ]
    lines += [
        "[auth]",
        f'rest_secrets_file = "{secrets}"',
        "[auth.unauthorized_limit]",
        "per_second = 1000.0",
        "burst = 1000",
        "[peer_policy]",
        f"allowed_peers = [{peers}]",
    ]
    path = directory / f"relay-{port}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_turn_relay(directory: Path, options: RelayOptions) -> Running:
    port = free_ports(2)
    tls_port = port + 1
    config = turn_relay_config(directory, port, tls_port, options)
    argv = [venv_script("turn-relay"), "serve", "--config", str(config)]
    server = start(argv, directory / f"turn-relay-{port}.log", port)
    server.tls_port = tls_port if options.tls is not None else None
    return server


# ---------------------------------------------------------------- coturn


@dataclass(frozen=True)
class CoturnOptions:
    rfc5780: bool = False
    udp: bool = True
    allow_loopback_peers: bool = True
    external: str | None = None
    tls: Certs | None = None


def coturn_argv(directory: Path, port: int, tls_port: int, options: CoturnOptions) -> list[str]:
    argv = [
        "turnserver",
        "-n",
        "--no-dtls",
        "--no-cli",
        "--log-file",
        "stdout",
        "--simple-log",
        "--use-auth-secret",
        f"--static-auth-secret={SECRET}",
        f"--realm={COTURN_REALM}",
        f"--listening-port={port}",
        f"--pidfile={directory / f'coturn-{port}.pid'}",
        f"--userdb={directory / f'coturn-{port}.db'}",
        "--min-port=41000",
        "--max-port=41999",
        "-L",
        "127.0.0.1",
    ]
    if options.rfc5780:
        argv += ["-L", "127.0.0.2"]
    argv += _coturn_optional(tls_port, options)
    return argv


def _coturn_optional(tls_port: int, options: CoturnOptions) -> list[str]:
    extra: list[str] = []
    if options.allow_loopback_peers:
        extra.append("--allow-loopback-peers")
    if not options.udp:
        extra.append("--no-udp")
    if options.external is not None:
        extra += ["-X", options.external]
    if options.tls is None:
        extra.append("--no-tls")
    else:
        extra += [f"--cert={options.tls.cert}", f"--pkey={options.tls.key}"]
        extra.append(f"--tls-listening-port={tls_port}")
    return extra


def start_coturn(directory: Path, options: CoturnOptions) -> Running:
    hosts = ("127.0.0.1", "127.0.0.2") if options.rfc5780 else ("127.0.0.1",)
    port = free_ports(3, hosts)  # port, port + 1 (RFC 5780 alternate), port + 2 (TLS)
    tls_port = port + 2
    argv = coturn_argv(directory, port, tls_port, options)
    server = start(argv, directory / f"coturn-{port}.log", port)
    server.tls_port = tls_port if options.tls is not None else None
    return server


# ---------------------------------------------------------------- the CLI, in process


def run_cli(
    *args: str, now: float | None = None, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """Run ``rtccheck ARGS --json`` in this process; (exit code, JSON document or {})."""
    from rtccheck.cli import Runtime, main

    runtime = Runtime() if now is None else Runtime(now=lambda: now)
    result = CliRunner().invoke(main, [*args, "--json"], obj=runtime, env=env)
    document: dict[str, Any] = json.loads(result.stdout) if result.stdout.strip() else {}
    if document:
        assert report_errors(document) == []
    return result.exit_code, document


def results_of(document: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [r for r in document["results"] if r["check"] == check]


def only(document: dict[str, Any], check: str, target: str | None = None) -> dict[str, Any]:
    found = [r for r in results_of(document, check) if target is None or r["target"] == target]
    assert len(found) == 1, (check, target, document["results"])
    return found[0]
