"""TLS churn does not make ``stun-server`` grow: 10,000 connections (a few hundred open at a
time), all closed, leave its RSS within 20 MB of where it started.

Before the fix each TLS connection took ~280 KiB of heap from the event loop's TLS transport
(a 256 KiB receive buffer and 256 KiB reads) that glibc kept after the churn: RSS +45 MB here.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from stun_testkit import stun_server_process
from turnkit_testing import free_port_pair, self_signed_certificate

CHURN = Path(__file__).parents[1] / "turnkit_testing" / "tls_churn.py"
CLIENTS = 2
PER_CLIENT = 5_000
CONCURRENCY = 100  # per client: 200 open at a time


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError("VmRSS")


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
def test_tls_churn_leaves_rss_within_20_mb(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    port, tls_port = free_port_pair(), free_port_pair()
    args = ["--listen", f"127.0.0.1:{port}", "--tls-port", str(tls_port), "--rate-limit", "0"]
    args += ["--tls-cert", str(cert), "--tls-key", str(key), "--log-level", "warning"]
    args += ["--first-message-timeout", "30"]  # a loaded 2-core box may take seconds per handshake
    # 200 are open at a time on the clients' side, and the server still holds some that the
    # clients have just closed: at the default per-source cap (256) a few were refused (7 of
    # 10,000 in one CI run; the log said "256 open from that source"). Memory is measured here,
    # the cap in test_stun_streams.py.
    args += ["--max-connections-per-source", "1024"]
    with stun_server_process(args, tmp_path, ("127.0.0.1", port)) as server:
        assert churn(tls_port, 300, 100, 1) == 300  # warm-up: imports, first allocations
        time.sleep(0.5)
        before = rss_kib(server.process.pid)
        started = time.monotonic()
        assert churn(tls_port, PER_CLIENT, CONCURRENCY, CLIENTS) == CLIENTS * PER_CLIENT
        time.sleep(0.5)
        after = rss_kib(server.process.pid)
        print(
            f"RSS {before} -> {after} KiB after {CLIENTS * PER_CLIENT} TLS connections "
            f"in {time.monotonic() - started:.1f} s"
        )
        assert after - before < 20 * 1024
        assert server.stop() == 0
