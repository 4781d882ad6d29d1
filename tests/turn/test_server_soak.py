"""A thousand UDP allocations against ``turn-relay serve``: allocate, bind a channel or permit
the echo peer, send data, refresh, send again, delete. Every payload comes back, the relay's
file descriptors return to where they started and its RSS stays bounded (issue 11: what held up
under a soak must keep holding)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from load_kit import Load, allocate_all, codes, refresh
from process_kit import SECRET, open_fds, rss_bytes, running_relay

ALLOCATIONS = 1_000
ROUNDS = 3  # data rounds before the refresh, and again after it
RSS_BOUND = 40 * 1024 * 1024  # growth allowed while 1,000 allocations are held


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_thousand_allocations_refresh_relay_and_give_back_their_fds(tmp_path: Path) -> None:
    with running_relay(tmp_path, "--port-range", "20000-21999", "--log-level", "warning") as relay:
        pid = relay.process.pid
        fds_before, rss_before = open_fds(pid), rss_bytes(pid)
        load = Load(relay.address, ALLOCATIONS)
        try:
            for client in load.clients:
                client.log_in(SECRET, f"soak{client.index}", 3600, time.time())
            allocate_all(load, load.clients)
            assert open_fds(pid) == fds_before + ALLOCATIONS  # one relay socket each
            for number in range(ROUNDS):
                assert load.data_round(load.clients, number) == ALLOCATIONS
            assert codes(load.transact(load.clients, refresh(600))) == [None] * ALLOCATIONS
            for number in range(ROUNDS, 2 * ROUNDS):
                assert load.data_round(load.clients, number) == ALLOCATIONS
            rss_held = rss_bytes(pid)
            assert codes(load.transact(load.clients, refresh(0))) == [None] * ALLOCATIONS
            assert load.echoes == 2 * ROUNDS * ALLOCATIONS
        finally:
            load.close()
        deadline = time.monotonic() + 5
        while open_fds(pid) != fds_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_fds(pid) == fds_before
        rss_after = rss_bytes(pid)
        print(
            f"fds {fds_before} -> {fds_before + ALLOCATIONS} -> {open_fds(pid)}; RSS "
            f"{rss_before // 1024} -> {rss_held // 1024} (held) -> {rss_after // 1024} KiB"
        )
        assert rss_held - rss_before < RSS_BOUND
        assert rss_after - rss_before < RSS_BOUND
        assert relay.process.poll() is None
