"""TLS churn does not make ``turn-relay serve`` grow: 10,000 connections (200 open at a time),
each a handshake, one Binding over TLS and a close, leave its RSS within 20 MB of where it started.

Before the fix the listener was the event loop's TLS (``create_server(ssl=...)``): a 256 KiB
receive buffer per connection and 256 KiB reads, heap that glibc keeps once freed. The same churn
then left the relay about 200 MB larger (docs/operations.md, "TLS memory").
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_kit import rss_bytes, running_relay
from turnkit_testing import free_port, self_signed_certificate

CHURN = Path(__file__).parents[1] / "turnkit_testing" / "tls_churn.py"
CLIENTS = 2
PER_CLIENT = 5_000
CONCURRENCY = 100  # per client: 200 open at a time


def churn(port: int, count: int, concurrency: int, clients: int) -> int:
    """Run ``clients`` churn processes at once; the connections answered in all."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(CHURN), "127.0.0.1", str(port), str(count), str(concurrency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(clients)
    ]
    answered = 0
    for process in processes:
        out, _ = process.communicate(timeout=100)
        answered += int(out.split()[1])
    return answered


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_tls_churn_leaves_rss_within_20_mb(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    tls_port = free_port()
    tls = ["--tls-port", str(tls_port), "--tls-cert", str(cert), "--tls-key", str(key)]
    with running_relay(tmp_path, *tls, "--log-level", "warning") as relay:
        assert churn(tls_port, 300, 100, 1) == 300  # warm-up: imports, first allocations
        time.sleep(0.5)
        before = rss_bytes(relay.process.pid)
        started = time.monotonic()
        assert churn(tls_port, PER_CLIENT, CONCURRENCY, CLIENTS) == CLIENTS * PER_CLIENT
        time.sleep(0.5)
        after = rss_bytes(relay.process.pid)
        print(
            f"RSS {before // 1024} -> {after // 1024} KiB after {CLIENTS * PER_CLIENT} TLS "
            f"connections in {time.monotonic() - started:.1f} s"
        )
        assert after - before < 20 * 1024 * 1024
        assert relay.process.poll() is None
