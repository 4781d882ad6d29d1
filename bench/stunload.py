"""STUN Binding load generator: worker processes, each with a window of outstanding requests.

Every worker owns one connected UDP socket (so the server sees one 5-tuple per worker), keeps
`window` requests with random transaction IDs in flight, and sends a new request for every
matching answer. Requests not answered within `timeout` are counted lost and replaced, so the
window never drains. Only answers whose transaction ID is outstanding count; answers to requests
already written off are "late", anything else is "unmatched".

All workers warm up until a common start instant, count for `duration` seconds, and stop by
themselves at the end instant or after `max_requests` sends, whichever comes first.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import procs
from bench.stunmsg import BINDING_REQUEST_PREFIX, BINDING_SUCCESS_PREFIX, COOKIE_BYTES

ERROR_PREFIX = b"\x01\x11"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LoadParams:
    host: str
    port: int
    processes: int = 1
    window: int = 64
    warmup: float = 1.0
    duration: float = 5.0
    timeout: float = 0.5  # seconds before an unanswered request is written off
    max_requests: int = 5_000_000  # per worker, a hard bound besides the time bound


@dataclass
class WorkerCounts:
    sent: int = 0
    answered: int = 0
    lost: int = 0  # written off after `timeout`
    late: int = 0  # answered after being written off
    unmatched: int = 0  # an ID never sent, or not a Binding success/error for us
    errors: int = 0  # Binding error responses to our requests
    cpu_seconds: float = 0.0  # the worker's own CPU time during the window
    window_seconds: float = 0.0
    stopped_by_count: bool = False


@dataclass
class LoadResult:
    params: LoadParams
    answered: int
    sent: int
    lost: int
    late: int
    unmatched: int
    errors: int
    seconds: float
    rate: float  # answered requests per second
    loss: float  # lost / (answered + lost)
    generator_cpu: float  # percent of one core, all workers together
    workers: list[WorkerCounts] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _worker_main(params: LoadParams) -> None:
    """Entry of one worker process: stdout says "ready", stdin gives the window, stdout gets the
    counts as JSON."""
    family = socket.AF_INET6 if ":" in params.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.connect((params.host, params.port))
    sock.settimeout(0.05)
    print("ready", flush=True)
    line = sys.stdin.readline().split()
    if len(line) != 2:
        return
    start_at, end_at = float(line[0]), float(line[1])
    if end_at - time.monotonic() > params.warmup + params.duration + 60:
        return  # a clock we do not share: refuse rather than run unbounded
    counts = _run(sock, params, start_at, end_at)
    sock.close()
    print(json.dumps(asdict(counts)), flush=True)


def _run(sock: socket.socket, params: LoadParams, start_at: float, end_at: float) -> WorkerCounts:
    randbytes = random.Random(os.urandom(16)).randbytes
    prefix = BINDING_REQUEST_PREFIX
    send = sock.send
    recv = sock.recv
    monotonic = time.monotonic
    outstanding: dict[bytes, float] = {}
    written_off: set[bytes] = set()
    c = WorkerCounts()
    sent_total = 0
    counting = False
    cpu_start = 0.0
    since_sweep = 0

    def fill(now: float) -> None:
        nonlocal sent_total
        while len(outstanding) < params.window and sent_total < params.max_requests:
            tid = randbytes(12)
            outstanding[tid] = now
            with contextlib.suppress(OSError):  # ENOBUFS, ECONNREFUSED: as good as lost
                send(prefix + tid)
            sent_total += 1
            if counting:
                c.sent += 1

    def sweep(now: float) -> None:
        limit = now - params.timeout
        old = [tid for tid, t in outstanding.items() if t < limit]
        for tid in old:
            del outstanding[tid]
            written_off.add(tid)
        if counting:
            c.lost += len(old)
        if len(written_off) > 200_000:
            written_off.clear()

    now = monotonic()
    fill(now)
    while True:
        now = monotonic()
        if not counting and now >= start_at:
            counting = True
            cpu_start = time.process_time()
        if now >= end_at:
            break
        if sent_total >= params.max_requests and not outstanding:
            c.stopped_by_count = True
            break
        try:
            data = recv(2048)
        except TimeoutError:
            sweep(monotonic())
            fill(monotonic())
            continue
        except OSError:  # ICMP port unreachable surfaced on the connected socket
            time.sleep(0.01)
            sweep(monotonic())
            fill(monotonic())
            continue
        tid = data[8:20]
        if data[4:8] == COOKIE_BYTES and tid in outstanding:
            del outstanding[tid]
            if data[0:2] == BINDING_SUCCESS_PREFIX:
                if counting:
                    c.answered += 1
            elif data[0:2] == ERROR_PREFIX:
                if counting:
                    c.errors += 1
            elif counting:
                c.unmatched += 1
        elif tid in written_off:
            written_off.discard(tid)
            if counting:
                c.late += 1
        elif counting:
            c.unmatched += 1
        since_sweep += 1
        if since_sweep >= 4096:
            since_sweep = 0
            sweep(now)
        fill(now)
    if counting:
        c.cpu_seconds = time.process_time() - cpu_start
        c.window_seconds = min(now, end_at) - start_at
    if sent_total >= params.max_requests:
        c.stopped_by_count = True
    return c


def run_load(
    params: LoadParams,
    server_cpu: Callable[[], float] | None = None,
) -> tuple[LoadResult, procs.CpuShares | None]:
    """Run the generator against host:port; returns the totals and, when `server_cpu` is given,
    the CPU shares of the server and the generator over the counting window."""
    argv = [sys.executable, "-m", "bench.stunload", json.dumps(asdict(params))]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    workers: list[procs.Managed] = []
    try:
        for i in range(params.processes):
            workers.append(
                procs.Managed(f"binding-load-{i}", argv, pipe_stdout=True, stdin_pipe=True, env=env)
            )
        for w in workers:
            if _next_line(w, time.monotonic() + 30) != "ready":
                raise RuntimeError(f"load worker {w.pid} did not start:\n{w.log_tail()}")
        start_at = time.monotonic() + params.warmup
        end_at = start_at + params.duration
        for w in workers:
            w.write_line(f"{start_at!r} {end_at!r}")

        worker_pids = [w.pid for w in workers]
        groups: dict[str, Callable[[], float]] = {"load": lambda: procs.cpu_seconds(worker_pids)}
        if server_cpu is not None:
            groups["server"] = server_cpu
        _sleep_until(start_at)
        first = procs.sample_cpu(groups)
        _sleep_until(end_at)
        last = procs.sample_cpu(groups)
        shares = procs.cpu_shares(first, last) if server_cpu is not None else None

        counts: list[WorkerCounts] = []
        for w in workers:
            line = _next_line(w, time.monotonic() + params.timeout + 10)
            if not line.startswith("{"):
                raise RuntimeError(f"load worker {w.pid} did not report:\n{w.log_tail()}")
            counts.append(WorkerCounts(**json.loads(line)))
    finally:
        for w in workers:
            w.stop()
    answered = sum(c.answered for c in counts)
    lost = sum(c.lost for c in counts)
    seconds = max((c.window_seconds for c in counts), default=0.0) or params.duration
    gen_cpu = 100.0 * sum(c.cpu_seconds for c in counts) / seconds
    result = LoadResult(
        params=params,
        answered=answered,
        sent=sum(c.sent for c in counts),
        lost=lost,
        late=sum(c.late for c in counts),
        unmatched=sum(c.unmatched for c in counts),
        errors=sum(c.errors for c in counts),
        seconds=seconds,
        rate=answered / seconds,
        loss=lost / (answered + lost) if answered + lost else 0.0,
        generator_cpu=gen_cpu,
        workers=counts,
    )
    return result, shares


def _next_line(proc: procs.Managed, deadline: float) -> str:
    for _, line in proc.read_lines(deadline):
        return line.strip()
    return ""


def _sleep_until(t: float) -> None:
    left = t - time.monotonic()
    if left > 0:
        time.sleep(left)


if __name__ == "__main__":
    _worker_main(LoadParams(**json.loads(sys.argv[1])))
