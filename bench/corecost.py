"""CPU cost of turn-relay's sans-I/O core per allocation, without sockets.

    .venv/bin/python -m bench.corecost [--allocations N] [--repeat R]

Builds the relay core from the same TOML the benchmark gives `turn-relay serve`, then feeds it
what one benchmark client sends: an Allocate without credentials (answered 401) and the
authenticated Allocate (answered with the relayed address), each on a fresh 5-tuple. Prints the
microseconds per 401 and per authenticated Allocate, best of R rounds of N allocations. The
difference between this figure and the server's CPU per allocation in `turn-alloc-rate-udp` is
the socket work and the running server's surroundings (kernel packet work on the same cores).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

from bench import servers
from bench import turnmsg as tm
from turn_relay.config import load, load_secrets
from turn_relay.config.wiring import build_core
from turn_relay.core.actions import Action, ToClient
from turn_relay.core.allocation import FiveTuple, Transport
from turn_relay.core.relay import RelayCore

SERVER = ("127.0.0.1", 3478)


def _core(workdir: Path, ports: int) -> tuple[RelayCore, servers.ServerConfig]:
    cfg = servers.ServerConfig(
        workdir=workdir, port=SERVER[1], relay_min_port=65536 - ports, relay_max_port=65535
    )
    servers.turnkit_relay_command(cfg)  # writes turn_relay.toml into workdir
    config = load(workdir / "turn_relay.toml")
    core = build_core(config, load_secrets(config), legacy_channels=True)
    gc.freeze()  # as turn-relay's runner does
    gc.set_threshold(50_000, 20, 100)
    return core, cfg


def _round(
    core: RelayCore, cfg: servers.ServerConfig, first_port: int, count: int
) -> tuple[float, float]:
    """(µs per 401, µs per authenticated Allocate) for ``count`` new clients."""
    tuples = [FiveTuple(("127.0.0.1", first_port + i), SERVER, Transport.UDP) for i in range(count)]
    plain = [tm.attr(tm.REQUESTED_TRANSPORT, tm.UDP_TRANSPORT)]
    unauthenticated = [tm.request(tm.ALLOCATE, os.urandom(12), plain) for _ in range(count)]
    now = time.monotonic()
    started = time.perf_counter()
    answers = [core.receive(unauthenticated[i], tuples[i], now) for i in range(count)]
    challenge_s = time.perf_counter() - started
    parsed = tm.parse(_answer(answers[0]))
    if parsed is None or tm.NONCE not in parsed[2]:
        raise SystemExit(f"expected a 401 with a NONCE, got {answers[0]}")
    key = tm.long_term_key(cfg.user, cfg.realm, cfg.password)
    signed = plain + tm.auth_attrs(cfg.user, cfg.realm.encode(), parsed[2][tm.NONCE])
    requests = [tm.request(tm.ALLOCATE, os.urandom(12), signed, key) for _ in range(count)]
    started = time.perf_counter()
    answers = [core.receive(requests[i], tuples[i], now) for i in range(count)]
    allocate_s = time.perf_counter() - started
    last = tm.parse(_answer(answers[-1]))
    if last is None or last[0] != tm.ALLOCATE | tm.SUCCESS:
        raise SystemExit(f"expected an Allocate success, got {answers[-1]}")
    return 1e6 * challenge_s / count, 1e6 * allocate_s / count


def _answer(actions: list[Action]) -> bytes:
    """What the core sends back to the client (the last ToClient)."""
    return next((a.data for a in reversed(actions) if isinstance(a, ToClient)), b"")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.corecost",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--allocations", type=int, default=5000, help="per round (5000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is shown (5)")
    args = parser.parse_args(argv)
    if not 1 <= args.allocations <= 10_000 or not 1 <= args.repeat <= 5:
        parser.error("--allocations must be 1-10000 and --repeat 1-5 (one relay port each)")
    with tempfile.TemporaryDirectory(prefix="turnkit-corecost-") as workdir:
        core, cfg = _core(Path(workdir), args.allocations * args.repeat)
        rounds = [
            _round(core, cfg, 1024 + r * args.allocations, args.allocations)
            for r in range(args.repeat)
        ]
    challenge = min(r[0] for r in rounds)
    allocate = min(r[1] for r in rounds)
    print(
        f"turn-relay core, best of {args.repeat} x {args.allocations} allocations: "
        f"401 {challenge:.1f} µs + authenticated Allocate {allocate:.1f} µs "
        f"= {challenge + allocate:.1f} µs per allocation (one core, no sockets)"
    )


if __name__ == "__main__":
    main()
