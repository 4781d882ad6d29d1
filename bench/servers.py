"""Servers under test: how to start each one on loopback, wait until it answers, and stop it.

A *product* (coturn, turnkit) has a command for the STUN role (Binding only) and one for the TURN
role. Both get the same `ServerConfig`: loopback addresses, free ports, a relay port block, the
static user and the REST secret, a TLS certificate. turnkit's command lines are the two
functions `turnkit_stun_command` and `turnkit_relay_command` below: keep them in step with the
servers' flags.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench import procs
from bench.stunmsg import probe_tcp_connect, probe_udp

Role = Literal["stun", "turn"]
Auth = Literal["static", "rest"]

STATIC_USER = "bench"
STATIC_PASSWORD = "bench"
REALM = "turnkit"
REST_SECRET = "bench-rest-secret"  # loopback benchmark only


@dataclass(frozen=True)
class ServerConfig:
    workdir: Path  # a private temporary directory (pid file, database, logs, certificate)
    host: str = "127.0.0.1"
    port: int = 3478  # UDP and TCP listener
    tls_port: int | None = None  # TLS listener (TURN role), needs cert and key
    cert: Path | None = None
    key: Path | None = None
    relay_min_port: int = 49152
    relay_max_port: int = 65535
    auth: Auth = "static"
    user: str = STATIC_USER
    password: str = STATIC_PASSWORD
    realm: str = REALM
    rest_secret: str = REST_SECRET
    workers: int | None = None  # turnkit: processes (0 = one per core); None = its default
    #: True: turn-relay keeps its default 401 budget (the group call, a real client mix);
    #: False: the lifted limit the single-source load generators need
    default_challenge_limit: bool = False


CommandFn = Callable[[ServerConfig], list[str]]


@dataclass(frozen=True)
class Product:
    name: str
    stun: CommandFn
    turn: CommandFn
    available: Callable[[Role], str | None]  # None when usable, else why not


# --------------------------------------------------------------------------- coturn


def _turnserver() -> str:
    return shutil.which("turnserver") or "turnserver"


def _coturn_common(cfg: ServerConfig) -> list[str]:
    return [
        _turnserver(),
        "-n",  # no configuration file
        "--no-cli",
        "--no-dtls",
        "--log-file",
        "stdout",
        "--simple-log",
        "--listening-ip",
        cfg.host,
        "--listening-port",
        str(cfg.port),
        "--pidfile",
        str(cfg.workdir / "turnserver.pid"),
        "--userdb",
        str(cfg.workdir / "turndb"),
    ]


def coturn_stun_command(cfg: ServerConfig) -> list[str]:
    """coturn as a plain STUN server: Binding over UDP/TCP, every TURN request ignored."""
    return [*_coturn_common(cfg), "--no-tls", "--stun-only"]


def coturn_turn_command(cfg: ServerConfig) -> list[str]:
    """coturn as a TURN relay with the settings turn-relay gets: loopback listener and relay
    address, loopback peers allowed, one static user (or the REST secret), STUN kept on."""
    argv = [
        *_coturn_common(cfg),
        "--relay-ip",
        cfg.host,
        "--min-port",
        str(cfg.relay_min_port),
        "--max-port",
        str(cfg.relay_max_port),
        "--allow-loopback-peers",
        "--realm",
        cfg.realm,
    ]
    if cfg.tls_port is not None and cfg.cert is not None and cfg.key is not None:
        argv += ["--tls-listening-port", str(cfg.tls_port), "--cert", str(cfg.cert)]
        argv += ["--pkey", str(cfg.key)]
    else:
        argv += ["--no-tls"]
    if cfg.auth == "rest":
        argv += ["--use-auth-secret", "--static-auth-secret", cfg.rest_secret]
    else:
        argv += ["--lt-cred-mech", "--user", f"{cfg.user}:{cfg.password}"]
    return argv


def coturn_available(role: Role) -> str | None:
    del role
    return None if shutil.which("turnserver") else "turnserver not found (apt-get install coturn)"


# --------------------------------------------------------------------------- turnkit


def _venv_script(name: str) -> Path:
    return Path(sys.executable).parent / name


def turnkit_stun_command(cfg: ServerConfig) -> list[str]:
    """Keep in step with `stun-server --help`.

    Equivalent to coturn_stun_command: Binding over UDP and TCP on cfg.host:cfg.port, no second
    address (no RFC 5780), and no per-source rate limit (coturn has none; the default of 500/s
    per source IP would throttle a loopback generator, which is one source).
    """
    argv = [str(_venv_script("stun-server")), "--listen", f"{cfg.host}:{cfg.port}"]
    argv += ["--rate-limit", "0", "--log-level", "warning"]
    if cfg.workers is not None:
        argv += ["--workers", str(cfg.workers)]
    return argv


def turnkit_relay_command(cfg: ServerConfig) -> list[str]:
    """Keep in step with `turn-relay serve` and its TOML config.

    Equivalent to coturn_turn_command: listener cfg.host:cfg.port (UDP+TCP), TLS on cfg.tls_port,
    relay address cfg.host with the port block, loopback peers allowed (the default policy denies
    them), no per-user allocation quota (all benchmark clients are one user), a challenge budget
    that the benchmark's burst of clients from 127.0.0.1 does not trip (unless
    cfg.default_challenge_limit: then the relay's default budget), the HTTP API off, and
    channel numbers 0x5000-0x7FFF accepted (turnutils_uclient picks them; RFC 5766 allowed them).
    """
    challenge_limit = (
        ""
        if cfg.default_challenge_limit
        else "[auth.challenge_budget]\nunproven_rate = 1000000.0\nunproven_burst = 1000000\n"
        "proven_rate = 1000000.0\nproven_burst = 1000000\ntotal_rate = 1000000.0\n"
    )
    users = cfg.workdir / "turnkit-users"
    users.write_text(f"{cfg.user}:{cfg.password}\n")
    users.chmod(0o600)
    secrets = cfg.workdir / "turnkit-rest-secrets"
    secrets.write_text(cfg.rest_secret + "\n")
    secrets.chmod(0o600)
    tls = ""
    if cfg.tls_port is not None and cfg.cert is not None and cfg.key is not None:
        tls = (
            f"tls_port = {cfg.tls_port}\n"
            f"tls_cert_file = {_toml_str(cfg.cert)}\n"
            f"tls_key_file = {_toml_str(cfg.key)}\n"
        )
    auth_source = (
        f"rest_secrets_file = {_toml_str(secrets)}"
        if cfg.auth == "rest"
        else f"users_file = {_toml_str(users)}"
    )
    config = cfg.workdir / "turn_relay.toml"
    config.write_text(
        f"""[server]
realm = {_toml_str(cfg.realm)}

[listen]
addresses = [{_toml_str(cfg.host)}]
udp_port = {cfg.port}
tcp_port = {cfg.port}
{tls}
[relay]
addresses = [{_toml_str(cfg.host)}]
port_range = {{ min = {cfg.relay_min_port}, max = {cfg.relay_max_port} }}

[quotas]
max_allocations_per_user = 0
max_allocations = 0

[auth]
{auth_source}

{challenge_limit}
[peer_policy]
allowed_peers = [{_toml_str(cfg.host + "/32")}]

[api]
enabled = false
"""
    )
    argv = [str(_venv_script("turn-relay")), "serve", "--config", str(config)]
    argv.append("--rfc5766-channels")
    if cfg.workers is not None:
        argv += ["--workers", str(cfg.workers)]
    return argv


def _toml_str(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# console script, then the modules it needs: its CLI and the asyncio server shell behind it
# (ARCHITECTURE.md). The CLIs may land before the servers; until then the role is skipped.
_TURNKIT_PARTS: dict[Role, tuple[str, tuple[str, ...]]] = {
    "stun": ("stun-server", ("stun_server.cli", "stun_server.server")),
    "turn": ("turn-relay", ("turn_relay.cli", "turn_relay.shell.server")),
}


def turnkit_available(role: Role) -> str | None:
    script, modules = _TURNKIT_PARTS[role]
    if not _venv_script(script).exists():
        return f"console script {script} not installed: not available yet"
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            return f"{module} does not exist yet: not available yet"
    return None


def turnkit_offload_relay_command(cfg: ServerConfig) -> list[str]:
    """`turnkit_relay_command` with the kernel data path for UDP ChannelData required (``on``:
    the relay does not start without it), attached to ``lo``."""
    return [*turnkit_relay_command(cfg), "--kernel-offload", "on"]


def turnkit_offload_available(role: Role) -> str | None:
    """The offload needs root (or CAP_BPF + CAP_NET_ADMIN) and its object, built here."""
    if role != "turn":
        return "the kernel offload is a relay feature"
    missing = turnkit_available(role)
    if missing is not None:
        return missing
    from turn_relay.offload import missing_capability
    from turn_relay.offload.build import BuildError, build, default_object_path

    lacking = missing_capability()
    if lacking is not None:
        return f"needs root or {lacking}"
    if not default_object_path().is_file():
        try:
            build()
        except BuildError as error:
            return f"cannot build the eBPF object: {error}"
    return None


def turnkit_single_relay_command(cfg: ServerConfig) -> list[str]:
    """`turnkit_relay_command` in one process: the baseline of `turnkit_fleet_relay_command`."""
    return [*turnkit_relay_command(cfg), "--workers", "1"]


class _BenchRedis:
    """One throwaway redis-server for the whole bench run (Debian's), stopped at exit."""

    process: subprocess.Popen[bytes] | None = None
    port = 0

    @classmethod
    def url(cls, workdir: Path) -> str:
        if cls.process is None or cls.process.poll() is not None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                cls.port = probe.getsockname()[1]
            cls.process = subprocess.Popen(
                ["redis-server", "--port", str(cls.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(workdir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            atexit.register(cls.stop)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", cls.port), timeout=0.2),
                ):
                    break
                time.sleep(0.05)
        return f"redis://127.0.0.1:{cls.port}/0"

    @classmethod
    def stop(cls) -> None:
        if cls.process is not None and cls.process.poll() is None:
            cls.process.terminate()
            cls.process.wait(timeout=5)


def turnkit_fleet_relay_command(cfg: ServerConfig) -> list[str]:
    """`turnkit_single_relay_command` as a fleet member: the same config plus [fleet] on a
    redis-server the bench starts (per-user counts, sessions and load published every 0.5 s)."""
    argv = turnkit_relay_command(cfg)
    config = Path(argv[argv.index("--config") + 1])
    fleet = (
        f"\n[fleet]\nredis_url = {_toml_str(_BenchRedis.url(cfg.workdir))}\n"
        f'relay_id = "bench"\nadvertise = [{_toml_str(f"{cfg.host}:{cfg.port}")}]\n'
    )
    config.write_text(config.read_text() + fleet)
    return [*argv, "--workers", "1"]


def turnkit_fleet_available(role: Role) -> str | None:
    if role != "turn":
        return "the fleet is a relay feature"
    if shutil.which("redis-server") is None:
        return "redis-server not installed (scripts/bootstrap.sh installs it)"
    return turnkit_available(role)


PRODUCTS: dict[str, Product] = {
    "coturn": Product("coturn", coturn_stun_command, coturn_turn_command, coturn_available),
    "turnkit": Product("turnkit", turnkit_stun_command, turnkit_relay_command, turnkit_available),
    "turnkit-single": Product(
        "turnkit-single", turnkit_stun_command, turnkit_single_relay_command, turnkit_available
    ),
    "turnkit-fleet": Product(
        "turnkit-fleet", turnkit_stun_command, turnkit_fleet_relay_command, turnkit_fleet_available
    ),
    "turnkit-offload": Product(
        "turnkit-offload",
        turnkit_stun_command,
        turnkit_offload_relay_command,
        turnkit_offload_available,
    ),
}


# --------------------------------------------------------------------------- running one


class ServerStartError(RuntimeError):
    pass


def make_tls_pair(workdir: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost (openssl), in workdir."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    if not cert.exists():
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return cert, key


@dataclass
class RunningServer:
    product: str
    role: Role
    cfg: ServerConfig
    proc: procs.Managed
    startup_seconds: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return self.proc.cpu_seconds()

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds: where a server spends its time, the kernel or itself."""
        return self.proc.cpu_split()

    def memory(self) -> procs.Memory:
        return self.proc.memory()


def wait_ready(proc: procs.Managed, cfg: ServerConfig, role: Role, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise ServerStartError(
                f"{proc.name} exited with {proc.returncode} before answering:\n{proc.log_tail()}"
            )
        if probe_udp(cfg.host, cfg.port, timeout=0.2):
            tcp_ok = probe_tcp_connect(cfg.host, cfg.port)
            tls_ok = (
                cfg.tls_port is None or role == "stun" or probe_tcp_connect(cfg.host, cfg.tls_port)
            )
            if tcp_ok and tls_ok:
                return
        time.sleep(0.1)
    raise ServerStartError(
        f"{proc.name} did not answer a STUN Binding on {cfg.host}:{cfg.port} "
        f"within {timeout:.0f} s:\n{proc.log_tail()}"
    )


@contextmanager
def running_server(
    product: Product,
    role: Role,
    workdir: Path,
    *,
    tls: bool = False,
    auth: Auth = "static",
    relay_ports: int = 3000,
    workers: int | None = None,
    default_challenge_limit: bool = False,
    cpus: frozenset[int] | None = None,
) -> Iterator[RunningServer]:
    """Start a server on fresh loopback ports, yield it once it answers, always stop it.

    ``cpus``: the only CPUs the server (all its threads and processes) may run on."""
    host = "127.0.0.1"
    port = procs.free_port(host)
    tls_port = procs.free_port(host) if tls and role == "turn" else None
    cert = key = None
    if tls_port is not None:
        cert, key = make_tls_pair(workdir)
    relay_min, relay_max = procs.free_port_block(relay_ports, host)
    cfg = ServerConfig(
        workdir=workdir,
        host=host,
        port=port,
        tls_port=tls_port,
        cert=cert,
        key=key,
        relay_min_port=relay_min,
        relay_max_port=relay_max,
        auth=auth,
        workers=workers,
        default_challenge_limit=default_challenge_limit,
    )
    argv = product.stun(cfg) if role == "stun" else product.turn(cfg)
    log = workdir / f"{product.name}-{role}-{port}.log"
    started = time.monotonic()
    proc = procs.Managed(f"{product.name}-{role}", argv, log_path=log, cwd=workdir, cpus=cpus)
    try:
        wait_ready(proc, cfg, role)
        yield RunningServer(product.name, role, cfg, proc, time.monotonic() - started)
    finally:
        proc.stop()
