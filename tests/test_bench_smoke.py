"""Smoke test of the benchmark harness: our Binding generator against coturn for about a second.

Behaviour only (answers counted, nothing unmatched, the server stopped afterwards), never speed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `bench` is not an installed package; it lives at the repo root
    sys.path.insert(0, str(REPO))

from bench import procs, servers, stunload  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn not installed"),
]


def test_binding_generator_against_coturn(tmp_path: Path) -> None:
    product = servers.PRODUCTS["coturn"]
    with servers.running_server(product, "stun", tmp_path) as srv:
        pid = srv.pid
        params = stunload.LoadParams(
            host=srv.cfg.host, port=srv.cfg.port, processes=1, window=8, warmup=0.2, duration=1.0
        )
        result, shares = stunload.run_load(params, srv.cpu_seconds)
    assert result.answered > 0
    assert result.unmatched == 0
    assert result.errors == 0
    assert result.sent >= result.answered
    assert shares is not None and shares.groups["server"] > 0
    assert not _alive(pid), "the harness left the server running"


def test_server_stopped_when_the_body_raises(tmp_path: Path) -> None:
    product = servers.PRODUCTS["coturn"]
    pid = 0
    with (
        pytest.raises(RuntimeError, match="boom"),
        servers.running_server(product, "stun", tmp_path) as srv,
    ):
        pid = srv.pid
        assert procs.tree_memory(pid).rss_kib > 0
        raise RuntimeError("boom")
    assert pid and not _alive(pid)


def test_a_server_given_cpus_runs_all_its_threads_there(tmp_path: Path) -> None:
    ours = os.sched_getaffinity(0)
    cpu = min(ours)
    with servers.running_server(
        servers.PRODUCTS["coturn"], "turn", tmp_path, cpus=frozenset({cpu})
    ) as srv:
        threads = [int(task.name) for task in Path(f"/proc/{srv.pid}/task").iterdir()]
        assert len(threads) > 1  # coturn's relay threads, started after exec, inherit it
        affinities = {tid: frozenset(os.sched_getaffinity(tid)) for tid in threads}
        assert set(affinities.values()) == {frozenset({cpu})}, affinities
    assert os.sched_getaffinity(0) == ours  # only the child was pinned


def test_the_group_call_gives_the_server_one_cpu_and_the_browsers_the_rest() -> None:
    from bench import groupcall

    assert groupcall.split_cpus({0, 1}) == (frozenset({1}), frozenset({0}))
    assert groupcall.split_cpus({0, 2, 3}) == (frozenset({3}), frozenset({0, 2}))
    assert groupcall.split_cpus({5}) == (None, None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); it is gone as a server
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_core_cost_runs_the_allocate_exchange(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench.corecost` drives 401 then success through the core (it exits otherwise)."""
    from bench import corecost

    corecost.main(["--allocations", "50", "--repeat", "2"])
    line = capsys.readouterr().out.strip()
    assert line.startswith("turn-relay core, best of 2 x 50 allocations: 401 ")
    assert line.endswith("µs per allocation (one core, no sockets)")


def test_core_cost_refuses_more_allocations_than_relay_ports() -> None:
    from bench import corecost

    with pytest.raises(SystemExit) as exit_info:
        corecost.main(["--allocations", "10001"])
    assert exit_info.value.code == 2


def test_a_direct_flood_measures_the_generator_and_the_peer_alone(tmp_path: Path) -> None:
    """`flood generate --direct` sends to the echo peer with no relay; every echo is counted."""
    import json
    import socket
    import subprocess

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    flood = [sys.executable, "-m", "bench.flood"]
    direct = ["--direct", "--peer", f"127.0.0.1:{port}", "--clients", "2", "--size", "120"]
    peer = subprocess.Popen([*flood, "echo", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO)
    try:
        done = subprocess.run(
            [*flood, "generate", *direct, "--warmup", "0.2", "--duration", "0.5"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    finally:
        peer.kill()
        peer.wait(timeout=10)
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "ready"
    result = json.loads(lines[-1])
    assert result["clients"] == 2
    assert result["received"] > 0
    assert result["lost"] == 0
    assert result["sent"] >= result["received"]


def test_a_relayed_flood_without_credentials_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import flood

    with pytest.raises(SystemExit) as exit_info:
        flood.main(["generate", "--peer", "127.0.0.1:9", "--host", "127.0.0.1", "--port", "3478"])
    assert exit_info.value.code == 2
    assert "needs --user, --password, --realm (or --direct)" in capsys.readouterr().err
