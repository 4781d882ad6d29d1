"""The benchmark scenarios and how one run of each is measured against one server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench import groupcall, procs, servers, stunload, turnload, uclient

WARM_ALLOCATIONS = 50  # held before the allocation-rate window opens
ALLOC_COUNT = 5000  # a window of about half a second: 2000 gave +-25% between runs
LATENCY_SECONDS = 3.0
RELAY_PORTS = 5600  # the relay port block: 50 + ALLOC_COUNT held allocations fit

Kind = Literal["binding", "uclient", "alloc", "memory", "latency", "groupcall", "flood"]


@dataclass(frozen=True)
class Settings:
    duration: float = 4.0  # Binding and latency window, seconds
    warmup: float = 0.5
    stun_processes: int = 1
    stun_window: int = 16
    turn_duration: float = 3.0  # uclient window, seconds
    quick: bool = False
    turnkit_workers: int | None = 0  # 0 = one per core, like coturn's thread per core


@dataclass(frozen=True)
class Scenario:
    name: str
    role: servers.Role
    kind: Kind
    description: str
    unit: str
    case: uclient.UclientCase | None = None
    repeat: bool = False  # cheap: 3 runs by default (uclient scenarios get 1, see --runs)
    extended: bool = False  # left out of the default run (time); --all or --only selects it
    lower_is_better: bool = False
    extra: tuple[tuple[str, str], ...] = ()  # (metric key, unit): secondary table rows

    @property
    def tls(self) -> bool:
        return self.case is not None and self.case.transport == "tls"


@dataclass
class Measurement:
    scenario: str
    server: str
    run: int
    ok: bool
    reason: str = ""
    rate: float = 0.0
    unit: str = ""
    mbit_per_s: float | None = None
    server_cpu: float = 0.0  # percent of one core
    load_cpu: float = 0.0  # load generator(s) + echo peer, percent of one core
    other_cpu: float = 0.0  # other processes on the machine during the window
    softirq_cpu: float = 0.0
    loss: float = 0.0
    server_rss_kib: int = 0
    server_pss_kib: int = 0
    seconds: float = 0.0
    wall: float = 0.0  # the whole run including start and stop
    metrics: dict[str, float] = field(default_factory=dict)  # values of Scenario.extra rows
    details: dict[str, object] = field(default_factory=dict)


def _binding() -> Scenario:
    return Scenario(
        name="stun-binding-udp",
        role="stun",
        kind="binding",
        description=(
            "STUN Binding requests answered per second over UDP; our generator keeps a window "
            "of requests in flight per process and counts only matching answers"
        ),
        unit="req/s",
        repeat=True,
    )


def _turn(
    transport: uclient.Transport, send: bool, payload: int, clients: int, *, extended: bool = False
) -> Scenario:
    method = "send" if send else "channel"
    how = "Send/Data indications" if send else "ChannelData"
    over = {"udp": "UDP", "tcp": "TCP", "tls": "TLS over TCP"}[transport]
    return Scenario(
        name=f"turn-{transport}-{method}-{payload}B-{clients}c",
        role="turn",
        kind="uclient",
        description=(
            f"turnutils_uclient flood (-z 0), {clients} client(s) over {over}, {how}, "
            f"{payload} B payloads, echoed by turnutils_peer; messages the clients got back "
            f"per second"
        ),
        unit="msg/s",
        case=uclient.UclientCase(transport, send, payload, clients),
        extended=extended,
    )


def _flood(payload: int, clients: int) -> Scenario:
    return Scenario(
        name=f"turn-udp-flood-{payload}B-{clients}c",
        role="turn",
        kind="flood",
        description=(
            f"our sendmmsg/recvmmsg generator (bench/flood.py), {clients} UDP clients keeping "
            f"256 ChannelData messages of {payload} B each in flight, echoed by our recvmmsg "
            "peer; messages the clients got back per second. Server cost: the machine's busy "
            "CPU (every process, irq and softirq from /proc/stat) minus what the generator and "
            "the peer cost per message with no relay between (a --direct run right after) and "
            "minus other processes' CPU (noise on a shared machine)"
        ),
        unit="msg/s",
        extended=True,
        extra=(
            ("server_cpu_s_per_million", "server CPU-s per 1M msgs"),
            ("msgs_per_server_cpu_s", "msgs per server CPU-s"),
        ),
    )


FLOODS: list[Scenario] = [
    _flood(payload, clients) for payload in (120, 1000) for clients in (10, 50)
]

SCENARIOS: list[Scenario] = [
    _binding(),
    *(
        _turn("udp", send, payload, clients)
        for send in (False, True)
        for payload in (120, 1000)
        for clients in (1, 10, 50)
    ),
    _turn("tcp", False, 120, 10, extended=True),
    _turn("tcp", False, 120, 50),
    _turn("tls", False, 120, 10),
    _turn("tls", False, 120, 50, extended=True),
    Scenario(
        name="turn-alloc-rate-udp",
        role="turn",
        kind="alloc",
        description=(
            "allocations per second with long-term authentication: 32 concurrent clients, each "
            "on a fresh UDP 5-tuple doing Allocate, 401, authenticated Allocate, until "
            f"{ALLOC_COUNT} more allocations are held"
        ),
        unit="alloc/s",
        repeat=True,
        extra=(("user_us", "us user CPU/alloc"), ("system_us", "us system CPU/alloc")),
    ),
    Scenario(
        name="turn-latency-udp-channel-120B",
        role="turn",
        kind="latency",
        description=(
            "round-trip time added by the relay: 1000 msg/s of 120 B ChannelData to the echo "
            "peer, interleaved with the same load sent straight to the peer; p50 and p99 of "
            "relayed minus direct"
        ),
        unit="us added p50",
        repeat=True,
        lower_is_better=True,
        extra=(("added_p99_us", "us added p99"),),
    ),
    Scenario(
        name="turn-memory-idle-1000",
        role="turn",
        kind="memory",
        description=(
            "server memory (RSS of all its processes) added by 1000 idle UDP allocations, "
            "measured after 50 allocations already exist"
        ),
        unit="MB/1k alloc",
        repeat=True,
        lower_is_better=True,
    ),
    Scenario(
        name="turn-groupcall-chromium-5",
        role="turn",
        kind="groupcall",
        description=(
            "a relay-only group call: headless Chromium, 5 participants from 127.0.0.1 in a "
            "full mesh (20 UDP allocations at once), both servers with their default 401 "
            "limits and one CPU of their own (the browsers get the others); ms from the "
            "start until a pair's data channel is open on both sides, "
            f"p50 over the 10 pairs (a pair not connected in {groupcall.DEADLINE:.0f} s counts "
            f"as {groupcall.DEADLINE:.0f} s)"
        ),
        unit="ms p50",
        repeat=True,
        lower_is_better=True,
        extra=(("p95_ms", "ms p95"),),
    ),
    *FLOODS,
]


def run_once(
    scenario: Scenario, product: servers.Product, run: int, workdir: Path, settings: Settings
) -> Measurement:
    started = time.monotonic()
    m = Measurement(scenario=scenario.name, server=product.name, run=run, ok=False)
    m.unit = scenario.unit
    if scenario.kind == "groupcall":
        workers = settings.turnkit_workers if product.name == "turnkit" else None
        _measure_groupcall(product, workdir, workers, m)
        m.wall = time.monotonic() - started
        return m
    try:
        with servers.running_server(
            product,
            scenario.role,
            workdir,
            tls=scenario.tls,
            relay_ports=RELAY_PORTS,
            workers=settings.turnkit_workers if product.name == "turnkit" else None,
        ) as srv:
            m.details["server_argv"] = srv.proc.argv
            m.details["startup_seconds"] = round(srv.startup_seconds, 3)
            if scenario.kind == "binding":
                _measure_binding(srv, settings, m)
            elif scenario.kind == "uclient":
                _measure_uclient(scenario, srv, workdir, settings, m)
            elif scenario.kind == "alloc":
                _measure_alloc(srv, settings, m)
            elif scenario.kind == "latency":
                _measure_latency(srv, workdir, settings, m)
            elif scenario.kind == "flood":
                _measure_flood(scenario, srv, workdir, settings, m)
            else:
                _measure_memory(srv, settings, m)
            mem = srv.memory()
            m.server_rss_kib, m.server_pss_kib = mem.rss_kib, mem.pss_kib
            m.details["server_processes"] = mem.processes
    except servers.ServerStartError as exc:
        m.ok, m.reason = False, f"server did not start: {exc}"
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:  # a tool missing, ...
        m.ok, m.reason = False, f"{type(exc).__name__}: {exc}"
    m.wall = time.monotonic() - started
    return m


def _measure_binding(srv: servers.RunningServer, settings: Settings, m: Measurement) -> None:
    params = stunload.LoadParams(
        host=srv.cfg.host,
        port=srv.cfg.port,
        processes=settings.stun_processes,
        window=settings.stun_window,
        warmup=0.3 if settings.quick else settings.warmup,
        duration=1.0 if settings.quick else settings.duration,
    )
    result, shares = stunload.run_load(params, srv.cpu_seconds)
    m.ok = result.answered > 0 and result.unmatched == 0
    if result.answered == 0:
        m.reason = "no answers"
    elif result.unmatched:
        m.reason = f"{result.unmatched} unmatched answers"
    m.rate = result.rate
    m.loss = result.loss
    m.seconds = result.seconds
    if shares is not None:
        m.server_cpu = shares.groups["server"]
        m.load_cpu = shares.groups["load"]
        m.other_cpu = shares.other
        m.softirq_cpu = shares.softirq
    m.details["generator"] = {
        "processes": params.processes,
        "window": params.window,
        "sent": result.sent,
        "answered": result.answered,
        "lost": result.lost,
        "late": result.late,
        "unmatched": result.unmatched,
        "errors": result.errors,
        "generator_cpu_self": round(result.generator_cpu, 1),
    }


def _measure_uclient(
    scenario: Scenario,
    srv: servers.RunningServer,
    workdir: Path,
    settings: Settings,
    m: Measurement,
) -> None:
    case = scenario.case
    assert case is not None
    peer_port = procs.free_port(srv.cfg.host, tcp_too=False)
    peer_argv = [shutil.which("turnutils_peer") or "turnutils_peer", "-L", srv.cfg.host]
    peer_argv += ["-p", str(peer_port)]
    with procs.Managed("turnutils_peer", peer_argv, log_path=workdir / "peer.log") as peer:
        groups: dict[str, Callable[[], float]] = {
            "server": srv.cpu_seconds,
            "peer": peer.cpu_seconds,
        }
        port = srv.cfg.tls_port if case.transport == "tls" else srv.cfg.port
        assert port is not None
        result = uclient.run_uclient(
            case,
            host=srv.cfg.host,
            port=port,
            peer_port=peer_port,
            user=srv.cfg.user,
            password=srv.cfg.password,
            duration=2.0 if settings.quick else settings.turn_duration,
            cpu_groups=groups,
            wait_for_all=not settings.quick,
        )
    m.ok = result.ok
    m.reason = result.reason
    m.rate = result.msgs_per_s
    m.mbit_per_s = result.mbit_per_s
    m.loss = result.loss
    m.seconds = result.seconds
    m.server_cpu = result.cpu.get("server", 0.0)
    m.load_cpu = result.cpu.get("uclient", 0.0) + result.cpu.get("peer", 0.0)
    m.other_cpu = result.other_cpu
    m.softirq_cpu = result.softirq_cpu
    m.details["uclient"] = {
        "argv": result.argv,
        "exit_code": result.exit_code,
        "offered_per_s": round(result.offered_per_s),
        "uclient_cpu": round(result.cpu.get("uclient", 0.0), 1),
        "peer_cpu": round(result.cpu.get("peer", 0.0), 1),
        "progress": result.as_dict()["progress"],
    }


def _measure_flood(
    scenario: Scenario,
    srv: servers.RunningServer,
    workdir: Path,
    settings: Settings,
    m: Measurement,
) -> None:
    """Our generator and echo peer (`bench.flood`) through the server, then straight to each
    other. The server's cost is the whole machine's busy CPU over the relayed window, kernel
    packet work included, minus what the generator and the peer cost by themselves for as many
    messages (the direct window's CPU per message) and minus other processes' CPU.

    Why not minus their measured CPU: on loopback the kernel delivers a datagram inside the
    sender's system call and charges that time to the sender, so the offloaded relay's
    forwarding (the eBPF program, the second delivery) is billed to the generator and the peer;
    subtracting their measured CPU made the offloaded relay's cost 0. Their direct cost per
    message is the part that is theirs whichever server sits between."""
    clients, payload = (int(part[:-1]) for part in reversed(scenario.name.split("-")[-2:]))
    duration = 2.0 if settings.quick else settings.turn_duration
    flood = _Flood(clients, payload, warmup=0.5, duration=duration)
    peer_port = procs.free_port(srv.cfg.host, tcp_too=False)
    peer_address = f"{srv.cfg.host}:{peer_port}"
    relay_args = ["--host", srv.cfg.host, "--port", str(srv.cfg.port), "--user", srv.cfg.user]
    relay_args += ["--password", srv.cfg.password, "--realm", srv.cfg.realm]
    echo_argv = [sys.executable, "-m", "bench.flood", "echo", "--host", srv.cfg.host]
    echo_argv += ["--port", str(peer_port)]
    with procs.Managed("flood-echo", echo_argv, log_path=workdir / "echo.log", cwd=_ROOT) as peer:
        _wait_udp_bound(peer_port)
        relayed = flood.run(peer, peer_address, relay_args, srv.cpu_seconds)
        if isinstance(relayed, str):
            m.reason = relayed
            return
        direct = flood.run(peer, peer_address, ["--direct"], None)
    if isinstance(direct, str):
        m.reason = f"direct path: {direct}"
        return
    result = relayed.result
    shares = procs.cpu_shares(relayed.first, relayed.last)
    seconds = shares.seconds
    busy = relayed.machine_busy  # the machine, kernel work included
    server = relayed.cpu("server")
    load = relayed.cpu("load")
    others = max(0.0, relayed.process_busy - server - load)  # other processes (noise)
    m_rate = float(result["msgs_per_s"])
    messages = m_rate * seconds  # the window is the generator's counting window, give or take ms
    direct_messages = float(direct.result["msgs_per_s"]) * direct.seconds
    load_per_message = direct.cpu("load") / direct_messages if direct_messages else 0.0
    load_charged = load_per_message * messages
    server_cost = max(busy - load_charged - others, 1e-9)  # CPU-seconds over the window
    received = int(result["received"])
    m.ok = received > 0
    m.reason = "" if m.ok else "nothing echoed"
    m.rate = m_rate
    sent_total = received + int(result["lost"])
    m.loss = int(result["lost"]) / sent_total if sent_total else 0.0
    m.seconds = seconds
    m.server_cpu = shares.groups["server"]
    m.load_cpu = shares.groups["load"]
    m.other_cpu = shares.other
    m.softirq_cpu = shares.softirq
    m.metrics["server_cpu_s_per_million"] = 1e6 * server_cost / messages if messages else 0.0
    m.metrics["msgs_per_server_cpu_s"] = messages / server_cost
    m.details["flood"] = result | {
        "server_cost_cpu_s": round(server_cost, 3),
        "machine_busy_cpu_s": round(busy, 3),
        "load_cpu_s": round(load, 3),
        "load_charged_cpu_s": round(load_charged, 3),
        "direct_msgs_per_s": direct.result["msgs_per_s"],
        "direct_load_us_per_msg": round(1e6 * load_per_message, 3),
        "other_processes_cpu_s": round(others, 3),
        "window_s": round(seconds, 3),
    }


_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class _FloodWindow:
    """One generator run: its JSON result and CPU samples around its counting window."""

    result: dict[str, Any]
    first: procs.CpuSample
    last: procs.CpuSample

    def cpu(self, group: str) -> float:
        return self.last.groups[group] - self.first.groups.get(group, 0.0)

    @property
    def seconds(self) -> float:
        return self.last.wall - self.first.wall

    @property
    def process_busy(self) -> float:
        return self.last.busy - self.first.busy

    @property
    def machine_busy(self) -> float:
        return self.process_busy + (self.last.irq - self.first.irq)


@dataclass(frozen=True)
class _Flood:
    clients: int
    payload: int
    warmup: float
    duration: float

    def run(
        self,
        peer: procs.Managed,
        peer_address: str,
        target: list[str],
        server_cpu: Callable[[], float] | None,
    ) -> _FloodWindow | str:
        """`bench.flood generate` with ``target`` (the relay's flags, or ``--direct``); a
        string says why it measured nothing."""
        argv = [sys.executable, "-m", "bench.flood", "generate", *target, "--peer", peer_address]
        argv += ["--clients", str(self.clients), "--size", str(self.payload)]
        argv += ["--warmup", str(self.warmup), "--duration", str(self.duration)]
        with procs.Managed("flood", argv, pipe_stdout=True, cwd=_ROOT) as gen:
            deadline = time.monotonic() + 30 + self.clients * 0.2 + self.duration
            lines = gen.read_lines(deadline)
            if not any(text == "ready" for _, text in lines):
                return f"generator did not get ready: {gen.log_tail()}"
            time.sleep(self.warmup)
            groups: dict[str, Callable[[], float]] = {
                "load": lambda: gen.cpu_seconds() + peer.cpu_seconds()
            }
            if server_cpu is not None:
                groups["server"] = server_cpu
            first = procs.sample_cpu(groups)
            result = next((json.loads(t) for _, t in lines if t.startswith("{")), None)
            last = procs.sample_cpu(groups)
        if result is None:
            return "generator printed no result"
        return _FloodWindow(result, first, last)


def _creds(srv: servers.RunningServer) -> turnload.Credentials:
    return turnload.Credentials(srv.cfg.user, srv.cfg.password, srv.cfg.realm)


def _measure_alloc(srv: servers.RunningServer, settings: Settings, m: Measurement) -> None:
    groups: dict[str, Callable[[], float]] = {"server": srv.cpu_seconds}
    count = 500 if settings.quick else ALLOC_COUNT
    first = procs.sample_cpu(groups)
    user0, system0 = srv.cpu_split()
    counts = turnload.allocation_rate(
        srv.cfg.host, srv.cfg.port, _creds(srv), count=count, warm=WARM_ALLOCATIONS, concurrency=32
    )
    user1, system1 = srv.cpu_split()
    last = procs.sample_cpu(groups)
    made = count + WARM_ALLOCATIONS  # the CPU samples bracket the warm-up too
    m.metrics["user_us"] = 1e6 * (user1 - user0) / made
    m.metrics["system_us"] = 1e6 * (system1 - system0) / made
    shares = procs.cpu_shares(first, last)  # includes the 50 warm-up allocations
    m.seconds = counts.seconds
    m.rate = counts.allocated / counts.seconds if counts.seconds > 0 else 0.0
    m.ok = counts.allocated >= count
    failed = sum(counts.failures.values())
    if not m.ok:
        m.reason = f"{counts.allocated} of {count} allocations: {counts.failures}"
    m.loss = failed / (failed + counts.allocated) if failed + counts.allocated else 0.0
    m.server_cpu = shares.groups["server"]
    m.load_cpu = 100.0 * counts.cpu_seconds / counts.seconds if counts.seconds > 0 else 0.0
    m.other_cpu = max(0.0, shares.other - m.load_cpu)  # the generator runs in this process
    m.softirq_cpu = shares.softirq
    lat = sorted(counts.latencies_ms)
    m.details["alloc"] = {
        "allocated": counts.allocated,
        "failures": counts.failures,
        "setup_ms_p50": round(lat[len(lat) // 2], 3) if lat else None,
        "setup_ms_p99": round(lat[int(len(lat) * 0.99)], 3) if lat else None,
    }


def _measure_latency(
    srv: servers.RunningServer, workdir: Path, settings: Settings, m: Measurement
) -> None:
    peer_port = procs.free_port(srv.cfg.host, tcp_too=False)
    peer_argv = [shutil.which("turnutils_peer") or "turnutils_peer", "-L", srv.cfg.host]
    peer_argv += ["-p", str(peer_port)]
    groups: dict[str, Callable[[], float]] = {"server": srv.cpu_seconds}
    with procs.Managed("turnutils_peer", peer_argv, log_path=workdir / "peer.log") as peer:
        _wait_udp_bound(peer_port)
        groups["peer"] = peer.cpu_seconds
        first = procs.sample_cpu(groups)
        cpu0 = time.process_time()
        try:
            lat = turnload.added_latency(
                srv.cfg.host,
                srv.cfg.port,
                (srv.cfg.host, peer_port),
                _creds(srv),
                rate=1000.0,
                warmup=0.3 if settings.quick else 0.5,
                duration=1.5 if settings.quick else LATENCY_SECONDS,
            )
        except turnload.TurnSetupError as exc:
            m.reason = str(exc)
            return
        own = time.process_time() - cpu0
        last = procs.sample_cpu(groups)
    shares = procs.cpu_shares(first, last)
    m.ok = lat.relayed > 0 and lat.direct > 0
    m.reason = "" if m.ok else "no echoes"
    m.rate = lat.added_p50_us
    m.metrics["added_p99_us"] = lat.added_p99_us
    m.seconds = shares.seconds
    m.server_cpu = shares.groups["server"]
    m.load_cpu = shares.groups["peer"] + 100.0 * own / shares.seconds
    m.other_cpu = max(0.0, shares.other - 100.0 * own / shares.seconds)
    m.softirq_cpu = shares.softirq
    sent = lat.relayed + lat.lost_relayed
    m.loss = lat.lost_relayed / sent if sent else 0.0
    m.details["latency"] = {
        k: round(v, 1) if isinstance(v, float) else v for k, v in asdict(lat).items()
    }


def _measure_memory(srv: servers.RunningServer, settings: Settings, m: Measurement) -> None:
    count = 200 if settings.quick else 1000
    mem = turnload.idle_memory(
        srv.cfg.host,
        srv.cfg.port,
        _creds(srv),
        lambda: srv.memory().rss_kib,
        count=count,
    )
    m.ok = mem.held >= count * 0.95
    if not m.ok:
        m.reason = f"only {mem.held} of {count} allocations held: {mem.failures}"
    m.rate = mem.kib_per_1000 / 1024
    m.seconds = mem.seconds
    m.loss = 1 - mem.held / count if count else 0.0
    m.details["memory"] = asdict(mem)


def _measure_groupcall(
    product: servers.Product, workdir: Path, workers: int | None, m: Measurement
) -> None:
    why = groupcall.available()
    if why is not None:
        m.reason = why
        return
    try:
        result = groupcall.measure(product.name, workdir, workers)
    except (OSError, RuntimeError, subprocess.SubprocessError, ValueError) as exc:
        m.reason = f"{type(exc).__name__}: {exc}"
        return
    m.ok = True
    m.rate = float(result["p50_ms"])
    m.metrics["p95_ms"] = float(result["p95_ms"])
    m.loss = result["not_connected"] / result["pairs"] if result["pairs"] else 0.0
    if result["not_connected"]:
        m.reason = (
            f"{result['not_connected']} of {result['pairs']} pairs not connected within "
            f"{groupcall.DEADLINE:.0f} s (counted as {groupcall.DEADLINE:.0f} s)"
        )
    m.details["server_argv"] = result["server_argv"]
    m.details["groupcall"] = {k: v for k, v in result.items() if k != "server_argv"}


def _wait_udp_bound(port: int, timeout: float = 5.0) -> None:
    """Until something has bound UDP `port` on loopback (the echo peer is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)


def select(patterns: list[str], *, include_extended: bool = False) -> list[Scenario]:
    """Scenarios whose name matches any pattern (fnmatch; a pattern without wildcards matches as
    a substring). Without patterns: the default set, plus the extended ones if asked."""
    import fnmatch

    if not patterns:
        return [s for s in SCENARIOS if include_extended or not s.extended]
    chosen = []
    for s in SCENARIOS:
        for p in patterns:
            pat = p if any(ch in p for ch in "*?[") else f"*{p}*"
            if fnmatch.fnmatchcase(s.name, pat):
                chosen.append(s)
                break
    return chosen
