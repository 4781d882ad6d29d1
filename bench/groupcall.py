"""The group-call scenario: a relay-only Chromium mesh of 5 from one address through one server.

Five pages (one Playwright context each, Debian's chromium) join a WebSocket signalling room on
127.0.0.1 and start together; each holds one RTCPeerConnection per other participant with
``iceTransportPolicy: "relay"`` and a UDP TURN URL of the server under test, so the call makes
20 allocations from 127.0.0.1 at once. A pair's connect time is when its data channel was open
on both sides, after the start; a pair not connected within `DEADLINE` s counts as `DEADLINE`
(and the run says how many). Both servers run with their own default 401 limits (coturn: none;
turn-relay: its per-source challenge budget), since that is what such a call meets.

The server gets one CPU to itself and the browsers the others, as a relay has its own host.
Sharing them, five Chromium pages keep a 2-CPU machine at 100% for a second or two at the
start of the call (Chromium, run as root, raises its browser thread to nice -8), and either
server then waits that long to run: 0.4-1.5 s of run-queue wait for coturn's threads, up to
1.3 s for turn-relay's, in one call (``/proc/PID/task/*/schedstat``), so the figure measured
the scheduler more than the relay.

The browser needs a network namespace that holds only loopback (it would otherwise try Google
hosts): when the bench runs in the host's namespace, each run is a child process under
``unshare -n`` that starts the server, the signalling relay and the browser in there::

    python -m bench.groupcall --server turnkit --workdir /tmp/x    # one run, JSON on stdout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import servers

_TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from turnkit_testing.browsers import chromium, chromium_available  # noqa: E402
from turnkit_testing.mesh import (  # noqa: E402
    close_pages,
    open_pages,
    peer_names,
    percentile,
    run_mesh,
)
from turnkit_testing.signaling import serve_signaling  # noqa: E402

SIZE = 5
DEADLINE = 30.0  # seconds; a pair not connected by then counts as this
RELAY_PORTS = 400
CHILD_TIMEOUT = 120.0


def loopback_only() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def available() -> str | None:
    why = chromium_available()
    if why is not None:
        return why
    if not loopback_only() and (os.geteuid() != 0 or shutil.which("unshare") is None):
        return "needs root and unshare (Chromium runs in a loopback-only namespace)"
    return None


async def _call(srv: servers.RunningServer) -> dict[str, Any]:
    cfg = srv.cfg
    ice = [{"urls": [f"turn:{cfg.host}:{cfg.port}?transport=udp"],
            "username": cfg.user, "credential": cfg.password}]  # fmt: skip
    peers = peer_names(SIZE)
    async with chromium() as browser, serve_signaling() as url:
        warm = await open_pages([browser], url, 1)  # first-launch caches (FIELD-NOTES)
        await close_pages(warm)
        pages = await open_pages([browser], url, SIZE)
        try:
            outcome = await run_mesh(pages, dict.fromkeys(peers, ice), room="bench")
        finally:
            await close_pages(pages)
    times = outcome.connect_times()
    limit = DEADLINE * 1000
    missing = sum(1 for t in times if t is None or t > limit)
    counted = [limit if t is None or t > limit else t for t in times]
    return {
        "browser": browser.version,
        "pairs": len(times),
        "not_connected": missing,
        "connect_ms": [None if t is None else round(t, 1) for t in times],
        "p50_ms": percentile(counted, 0.50),
        "p95_ms": percentile(counted, 0.95),
        "problems": outcome.problems("udp")[:10],
    }


def split_cpus(allowed: set[int]) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """(the server's CPUs, everyone else's): the highest allowed CPU for the server, the rest
    for the browsers; (None, None) on one CPU, where there is nothing to split."""
    if len(allowed) < 2:
        return None, None
    server = max(allowed)
    return frozenset({server}), frozenset(allowed - {server})


def measure_here(product: str, workdir: Path, workers: int | None) -> dict[str, Any]:
    """One group call through ``product`` in this (loopback-only) namespace."""
    allowed = os.sched_getaffinity(0)
    server_cpus, browser_cpus = split_cpus(allowed)
    with servers.running_server(
        servers.PRODUCTS[product],
        "turn",
        workdir,
        relay_ports=RELAY_PORTS,
        workers=workers,
        default_challenge_limit=True,
        cpus=server_cpus,
    ) as srv:
        if browser_cpus is not None:  # inherited by Playwright's driver and the browsers
            os.sched_setaffinity(0, browser_cpus)
        try:
            result = asyncio.run(_call(srv))
        finally:
            os.sched_setaffinity(0, allowed)
        result["server_argv"] = srv.proc.argv
        result["server_cpus"] = sorted(server_cpus or allowed)
        return result


def measure(product: str, workdir: Path, workers: int | None) -> dict[str, Any]:
    """`measure_here`, in a child under ``unshare -n`` unless already loopback-only."""
    if loopback_only():
        return measure_here(product, workdir, workers)
    argv = [sys.executable, "-m", "bench.groupcall", "--server", product, "--workdir", str(workdir)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    script = 'ip link set lo up && exec "$@"'
    done = subprocess.run(
        ["unshare", "-n", "bash", "-c", script, "groupcall", *argv],
        check=False, capture_output=True, text=True, timeout=CHILD_TIMEOUT,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"group call child exited {done.returncode}: {done.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.groupcall",
        description="One relay-only Chromium group call (mesh of 5) through one server; JSON out.",
        epilog="example: python -m bench.groupcall --server coturn --workdir /tmp/gc",
    )
    parser.add_argument("--server", choices=sorted(servers.PRODUCTS), required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(json.dumps(measure(args.server, args.workdir, args.workers)))


if __name__ == "__main__":
    main()
