"""`python -m bench`: run the scenarios against each server, print the table, dump JSON."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from bench import procs, report, scenarios, servers


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Side-by-side benchmarks of turnkit and coturn on loopback: STUN Binding rate with "
            "our generator, TURN relay rates with turnutils_uclient/turnutils_peer."
        ),
    )
    p.add_argument("--quick", action="store_true", help="one short run per scenario (smoke)")
    p.add_argument(
        "--runs",
        type=int,
        default=None,
        help="runs per scenario and server, medians reported (default: 3 for the cheap "
        "scenarios, 1 for the uclient floods, to stay under 10 minutes)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="scenario name pattern (fnmatch, or substring); repeat or comma-separate",
    )
    p.add_argument(
        "--servers",
        default="coturn,turnkit",
        help="comma-separated servers to compare (coturn, turnkit, turnkit-offload: the kernel"
        " data path, root; the bench then runs in a private network namespace); default"
        " coturn,turnkit",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=4.0,
        help="window of the Binding, allocation and latency runs, s (default 4)",
    )
    p.add_argument("--turn-duration", type=float, default=3.0, help="uclient window, s (default 3)")
    p.add_argument("--stun-procs", type=int, default=1, help="Binding generator processes")
    p.add_argument(
        "--stun-window", type=int, default=16, help="Binding requests in flight per process"
    )
    p.add_argument(
        "--settle",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="before each run, wait up to this long for other processes to use less than "
        "--quiet percent of a core (default 5; 0 = never wait)",
    )
    p.add_argument(
        "--settle-budget",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="cap on the total --settle waiting of the whole bench (default 20)",
    )
    p.add_argument("--quiet", type=float, default=25.0, help="see --settle (default 25)")
    p.add_argument(
        "--turnkit-workers",
        type=int,
        default=0,
        help="worker processes for stun-server and turn-relay (default 0 = one per core, as "
        "coturn runs one relay thread per core; -1 = the servers' own default)",
    )
    p.add_argument("--json", type=Path, default=None, help="JSON path (default bench/results/)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument(
        "--from-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="print the table of an earlier JSON dump again (nothing is run)",
    )
    p.add_argument(
        "--all", action="store_true", help="also the extended scenarios (beyond 10 minutes)"
    )
    return p


def _on_signal(signum: int, frame: FrameType | None) -> None:
    del frame
    raise SystemExit(128 + signum)  # unwinds through the context managers that stop servers


def _estimate(sc: scenarios.Scenario, st: scenarios.Settings) -> float:
    if sc.kind == "binding":
        return 1.5 + (1.3 if st.quick else st.warmup + st.duration)
    if sc.kind == "latency":
        return 1.5 + (1.8 if st.quick else 0.5 + scenarios.LATENCY_SECONDS)
    if sc.kind in ("alloc", "memory"):
        return 4.0
    if sc.kind == "groupcall":
        return 12.0
    if sc.kind == "flood":
        return 3.0 + (2.0 if st.quick else st.turn_duration)
    assert sc.case is not None
    connect = 1.0 + sc.case.clients * 0.06
    if st.quick:
        return connect + 4.0 + 2.0
    return connect + 6.2 + st.turn_duration + 1.0


def _reprint(path: Path) -> int:
    doc = json.loads(path.read_text())
    measurements = [scenarios.Measurement(**m) for m in doc["measurements"]]
    names = {m.scenario for m in measurements}
    chosen = [sc for sc in scenarios.SCENARIOS if sc.name in names]
    skipped = {
        s["server"]: s["note"].removeprefix("skipped: ")
        for s in doc["summary"]
        if s["scenario"] == "*"
    }
    print(report.table(report.summarize(chosen, measurements, skipped)))
    print()
    print(report.LEGEND)
    machine = doc.get("machine", {})
    print(
        f"machine: {machine.get('cpus')} cpus, {machine.get('cpu_model', '?')}; loadavg before "
        f"{machine.get('loadavg')} after {doc.get('loadavg_after')}; options {doc.get('options')}"
    )
    return 0


_NETNS_ENV = "TURNKIT_BENCH_NETNS"


def _in_private_namespace(args: argparse.Namespace, argv: list[str] | None) -> None:
    """The kernel offload attaches to ``lo``: as root, run in a network namespace of our own
    (``unshare -n``, loopback only, gone when the bench ends) rather than on the host's lo."""
    if "turnkit-offload" not in args.servers or os.environ.get(_NETNS_ENV) or os.geteuid() != 0:
        return
    if shutil.which("unshare") is None:
        return
    os.environ[_NETNS_ENV] = "1"
    command = 'ip link set lo up && exec "$0" "$@"'
    own = sys.argv[1:] if argv is None else argv
    print("bench: in a private network namespace (unshare -n) for the offload", file=sys.stderr)
    os.execvp(
        "unshare", ["unshare", "-n", "sh", "-c", command, sys.executable, "-m", "bench", *own]
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _in_private_namespace(args, argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    if args.from_json is not None:
        return _reprint(args.from_json)
    patterns = [p for item in args.only for p in item.split(",") if p]
    chosen = scenarios.select(patterns, include_extended=args.all)
    if args.list:
        for sc in scenarios.select(patterns, include_extended=True):
            mark = "+" if sc.extended else ("*" if sc.repeat else " ")
            print(f"{mark} {sc.name:32} {sc.description}")
        print("(* = 3 runs by default, the others 1, see --runs; + = only with --all or --only)")
        return 0
    if not chosen:
        print(f"no scenario matches {patterns}", file=sys.stderr)
        return 2

    settings = scenarios.Settings(
        duration=args.duration,
        stun_processes=args.stun_procs,
        stun_window=args.stun_window,
        turn_duration=args.turn_duration,
        quick=args.quick,
        turnkit_workers=None if args.turnkit_workers < 0 else args.turnkit_workers,
    )
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in servers.PRODUCTS]
    if unknown:
        print(f"unknown server(s) {unknown}; known: {sorted(servers.PRODUCTS)}", file=sys.stderr)
        return 2

    skipped: dict[str, str] = {}
    usable: dict[str, list[servers.Product]] = {}
    for role in ("stun", "turn"):
        usable[role] = []
        for name in names:
            product = servers.PRODUCTS[name]
            why = product.available(role)
            if why is None:
                usable[role].append(product)
            elif any(sc.role == role for sc in chosen):
                key = f"{name} ({role})"
                skipped[key] = why
                print(f"bench: {key}: {why}; skipped", file=sys.stderr)

    def runs_for(sc: scenarios.Scenario) -> int:
        if args.quick:
            return 1
        if args.runs is not None:
            return max(1, int(args.runs))
        return 3 if sc.repeat else 1

    plan = [
        (sc, run, product)
        for sc in chosen
        for run in range(1, runs_for(sc) + 1)
        for product in usable[sc.role]
    ]
    estimate = sum(_estimate(sc, settings) for sc, _, _ in plan)
    print(
        f"bench: {len(plan)} runs ({len(chosen)} scenarios x {', '.join(names)}), "
        f"about {estimate / 60:.1f} min",
        file=sys.stderr,
    )
    machine_before = report.machine_info()
    started = time.monotonic()
    measurements: list[scenarios.Measurement] = []
    try:
        with tempfile.TemporaryDirectory(prefix="turnkit-bench-") as tmp:
            settle_budget = args.settle_budget
            for i, (sc, run, product) in enumerate(plan, 1):
                workdir = Path(tmp) / f"{i:03d}-{product.name}"
                workdir.mkdir()
                waited, busy = 0.0, 0.0
                if args.settle > 0 and not args.quick:
                    waited, busy = procs.wait_quiet(args.quiet, min(args.settle, settle_budget))
                    settle_budget = max(0.0, settle_budget - waited)
                m = scenarios.run_once(sc, product, run, workdir, settings)
                m.details["settle"] = {"waited_s": round(waited, 1), "busy_before": round(busy)}
                measurements.append(m)
                status = (
                    f"{m.rate:,.0f} {m.unit}  server {m.server_cpu:.0f}% "
                    f"load {m.load_cpu:.0f}% other {m.other_cpu:.0f}%"
                    if m.ok
                    else f"FAILED: {m.reason}"
                )
                print(
                    f"[{i}/{len(plan)}] {sc.name} {product.name} run {run}: {status} "
                    f"({m.wall:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        print("bench: interrupted; reporting what ran", file=sys.stderr)
    elapsed = time.monotonic() - started

    summaries = report.summarize(chosen, measurements, skipped)
    print()
    print(report.table(summaries))
    print()
    print(report.LEGEND)
    after = report.machine_info()
    print(
        f"machine: {machine_before.get('cpus')} cpus, {machine_before.get('cpu_model', '?')}; "
        f"loadavg before {machine_before.get('loadavg')} after {after.get('loadavg')}; "
        f"{elapsed / 60:.1f} min"
    )
    path = report.write_json(
        args.json,
        options=vars(args) | {"json": str(args.json) if args.json else None},
        machine_before=machine_before,
        machine_after=after,
        measurements=measurements,
        summaries=summaries,
        elapsed=elapsed,
    )
    print(f"json: {path}")
    failed = [m for m in measurements if not m.ok]
    return 1 if failed or not measurements else 0
