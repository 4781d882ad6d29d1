"""TURN data-path runs with coturn's `turnutils_uclient` against `turnutils_peer`.

What the uclient 4.6.1 flags mean (from its --help, README.turnutils and trying them):

  -c        do NOT open the second ("RTCP") allocation per client. Without it every client makes
            two allocations and `-m 1` reports msz=2; channels are used either way.
  -s        use Send/Data indications instead of channels (ChannelData is the default).
  -t        TCP between client and server (relay to the peer stays UDP).
  -t -S     TLS over TCP. `-S` alone means DTLS (UDP), which our servers do not listen for.
  -l N      payload bytes per message (default 100).
  -m N      number of clients (each one allocation with -c).
  -n N      messages per client; it stops when all are sent (and answered or timed out).
  -z MS     per-client send interval; `-z 0` = flood: a 1 ms timer sends up to 50 messages per
            client per tick, i.e. open loop, no window; loss appears when the path saturates.
  -e/-r     peer address/port (turnutils_peer, an echo); -p server port; -u/-w static user;
            -W REST secret (broken with several UDP clients in 4.6.1: allocations get mixed up).

Each client starts sending 1-6 s (1000 ms + random()%5000) after the "Total connect time" line,
so the measurement window of a multi-client run starts 6 s after that line. uclient prints
cumulative counters once per second (line-buffered): "tot_send_msgs=S, tot_recv_msgs=R,
tot_send_bytes ~ SB, tot_recv_bytes ~ RB". The rate is the growth of R over our own monotonic
timestamps of those lines; uclient is stopped (SIGTERM by PID) once the window is over. It exits
0 even at 100% loss and 255 when authentication fails.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from bench import procs

Transport = Literal["udp", "tcp", "tls"]

PROGRESS = re.compile(
    r"msz=(\d+), tot_send_msgs=(\d+), tot_recv_msgs=(\d+), "
    r"tot_send_bytes ~ (\d+), tot_recv_bytes ~ (\d+)"
)
LOST = re.compile(r"Total lost packets (\d+)")
CONNECTED = "Total connect time"
STAGGER_SECONDS = 6.0  # clients start within 1 + 5 s after the connect line
PER_CLIENT_CAP = 20_000  # msgs/s one flooding client can reach at most (about 12.5k seen)


@dataclass(frozen=True)
class UclientCase:
    transport: Transport = "udp"
    send_indications: bool = False  # False: ChannelData
    payload: int = 120
    clients: int = 10


@dataclass
class Progress:
    t: float  # our monotonic clock when the line was read
    sessions: int
    sent: int
    received: int
    sent_bytes: int
    received_bytes: int


@dataclass
class UclientResult:
    case: UclientCase
    argv: list[str]
    ok: bool
    reason: str
    seconds: float = 0.0
    msgs_per_s: float = 0.0  # echoed messages received by the clients per second
    mbit_per_s: float = 0.0  # their payload, one direction
    offered_per_s: float = 0.0  # messages the clients sent per second
    loss: float = 0.0  # 1 - received/sent over the window (in-flight ignored)
    exit_code: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # percent of one core per group
    other_cpu: float = 0.0
    softirq_cpu: float = 0.0
    progress: list[Progress] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["progress"] = [asdict(p) for p in self.progress[-12:]]
        return d


def uclient_argv(
    case: UclientCase,
    *,
    host: str,
    port: int,
    peer_port: int,
    messages: int,
    user: str,
    password: str,
) -> list[str]:
    argv = [shutil.which("turnutils_uclient") or "turnutils_uclient", "-c", "-z", "0"]
    argv += ["-l", str(case.payload), "-m", str(case.clients), "-n", str(messages)]
    argv += ["-u", user, "-w", password, "-e", host, "-r", str(peer_port), "-p", str(port)]
    if case.send_indications:
        argv.append("-s")
    if case.transport == "tcp":
        argv.append("-t")
    elif case.transport == "tls":
        argv += ["-t", "-S"]
    argv.append(host)
    return argv


def parse_progress(line: str, t: float) -> Progress | None:
    m = PROGRESS.search(line)
    if m is None:
        return None
    return Progress(t, *(int(g) for g in m.groups()))


def run_uclient(
    case: UclientCase,
    *,
    host: str,
    port: int,
    peer_port: int,
    user: str,
    password: str,
    duration: float,
    cpu_groups: dict[str, Callable[[], float]],
    wait_for_all: bool = True,
    connect_timeout: float = 15.0,
) -> UclientResult:
    """One flood run. The window starts when every client is sending (6 s after connect; or at
    the first answered message when `wait_for_all` is False or there is one client) and lasts
    `duration` seconds of uclient's once-a-second progress lines."""
    messages = int(PER_CLIENT_CAP * (STAGGER_SECONDS + duration + 4))
    argv = uclient_argv(
        case,
        host=host,
        port=port,
        peer_port=peer_port,
        messages=messages,
        user=user,
        password=password,
    )
    result = UclientResult(case=case, argv=argv, ok=False, reason="")
    launched = time.monotonic()
    hard_deadline = launched + connect_timeout + STAGGER_SECONDS + duration + 10
    client = procs.Managed("uclient", argv, pipe_stdout=True)
    groups = dict(cpu_groups)
    groups["uclient"] = client.cpu_seconds
    connected_at: float | None = None
    start: Progress | None = None
    first_sample: procs.CpuSample | None = None
    last: Progress | None = None
    last_sample: procs.CpuSample | None = None
    try:
        for t, line in client.read_lines(hard_deadline):
            if connected_at is None and CONNECTED in line:
                connected_at = t
                continue
            if "Cannot complete Allocation" in line or "cannot connect" in line:
                result.reason = line.split(": ", 2)[-1].strip()
            p = parse_progress(line, t)
            if p is None:
                lost = LOST.search(line)
                if lost is not None and start is None:
                    result.reason = f"uclient finished before the window: {line.strip()}"
                continue
            result.progress.append(p)
            if start is None:
                all_started = connected_at is not None and t >= connected_at + STAGGER_SECONDS + 0.1
                if p.received > 0 and (all_started or not wait_for_all or case.clients == 1):
                    start = p
                    first_sample = procs.sample_cpu(groups)
                continue
            last = p
            last_sample = procs.sample_cpu(groups)
            if t - start.t >= duration - 0.05:
                break
    finally:
        client.stop()
        result.exit_code = client.returncode
    if start is None or last is None or first_sample is None or last_sample is None:
        if client.returncode == 255 and not result.reason:
            result.reason = "uclient exited 255 (authentication failed?)"
        result.reason = result.reason or "no measurement window: " + " | ".join(client.lines[-3:])
        return result
    dt = last.t - start.t
    received = last.received - start.received
    sent = last.sent - start.sent
    shares = procs.cpu_shares(first_sample, last_sample)
    result.ok = received > 0
    result.reason = result.reason if not result.ok else ""
    result.seconds = dt
    result.msgs_per_s = received / dt
    result.offered_per_s = sent / dt
    result.mbit_per_s = (last.received_bytes - start.received_bytes) * 8 / dt / 1e6
    result.loss = max(0.0, 1.0 - received / sent) if sent else 0.0
    result.cpu = shares.groups
    result.other_cpu = shares.other
    result.softirq_cpu = shares.softirq
    if dt < duration * 0.5:
        result.reason = f"short window ({dt:.1f} s)"
    return result
