"""``stun-server`` as a process: help, flags, start-up lines, clean stop on signals, workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from binding_load import run_load
from click.testing import CliRunner
from stun_testkit import STUN_SERVER, binding_request, stun_server_process, udp_exchange
from turnkit_testing import free_port_pair

from stun_server.cli import main


def test_help_explains_itself_with_examples() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for text in ("--listen", "--alternate", "--rate-limit", "--workers", "Examples:", "5780"):
        assert text in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "localhost:1"], "--listen: 'localhost:1'"),
        (["--alternate", "127.0.0.2", "--listen", "0.0.0.0:1"], "rfc5780.alternate (--alternate):"),
        (["--rate-limit", "-5"], "limits.rate_limit (--rate-limit): must be >= 0"),
        (["--tls-cert", "x.pem"], "tls.cert and tls.key go together"),
    ],
)
def test_bad_flags_are_usage_errors_naming_the_setting(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output


def test_bad_config_file_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[limits]\nrate_limit = "fast"\n')
    result = CliRunner().invoke(main, ["--config", str(config)])
    assert result.exit_code == 2
    assert "limits.rate_limit (--rate-limit): expected a number" in result.output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_logs_one_line_per_listener_and_stops_cleanly(tmp_path: Path, signum: int) -> None:
    port = free_port_pair()
    args = ["--listen", f"127.0.0.1:{port}", "--log-level", "info"]
    with stun_server_process(args, tmp_path, ("127.0.0.1", port)) as server:
        started = time.monotonic()
        assert server.stop(signum) == 0
        assert time.monotonic() - started < 5
    lines = server.log().splitlines()
    assert sum("listening on" in line for line in lines) == 2
    assert any(f"listening on udp 127.0.0.1:{port}" in line for line in lines)
    assert any(f"listening on tcp 127.0.0.1:{port}" in line for line in lines)
    assert "Traceback" not in server.log()


def test_config_file_and_flag_override(tmp_path: Path) -> None:
    port = free_port_pair()
    config = tmp_path / "stun.toml"
    config.write_text(f'[server]\nlisten = ["127.0.0.1:{port}"]\nsoftware = "from-file"\n')
    args = ["--config", str(config), "--no-tcp", "--software", "from-flag"]
    with stun_server_process(args, tmp_path, ("127.0.0.1", port)) as server:
        answer = udp_exchange(("127.0.0.1", port), binding_request())
        assert answer is not None and b"from-flag" in answer[0]
        assert server.stop() == 0
    assert "listening on tcp" not in server.log()


def test_port_in_use_exits_1_with_a_message(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(STUN_SERVER), "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert "cannot start" in result.stderr


def _children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from the parent field of /proc/*/stat)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def test_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    port = free_port_pair()
    args = ["--listen", f"127.0.0.1:{port}", "--workers", "2", "--rate-limit", "0"]
    with stun_server_process(args, tmp_path, ("127.0.0.1", port)) as server:
        workers = _children_of(server.process.pid)
        assert len(workers) == 2
        for _ in range(20):  # many source ports: the kernel spreads them over both workers
            assert udp_exchange(("127.0.0.1", port), binding_request()) is not None
        assert server.stop() == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    assert server.log().count("listening on udp") == 1  # only the first worker announces
    assert "2 worker processes share the ports" in server.log()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_dying_worker_stops_the_rest_with_status_1(tmp_path: Path) -> None:
    port = free_port_pair()
    args = ["--listen", f"127.0.0.1:{port}", "--workers", "2"]
    with stun_server_process(args, tmp_path, ("127.0.0.1", port)) as server:
        workers = _children_of(server.process.pid)
        os.kill(workers[0], signal.SIGKILL)
        assert server.process.wait(timeout=10) == 1


def test_a_short_load_is_answered(tmp_path: Path) -> None:
    port = free_port_pair()
    args = ["--listen", f"127.0.0.1:{port}", "--rate-limit", "0", "--no-tcp"]
    with stun_server_process(args, tmp_path, ("127.0.0.1", port)) as server:
        result = run_load("127.0.0.1", port, processes=2, window=8, seconds=0.5)
        assert result.answered > 100
        assert server.stop() == 0


def test_load_generator_refuses_non_loopback_targets() -> None:
    with pytest.raises(ValueError, match="not a loopback"):
        run_load("192.0.2.1", 3478, seconds=0.1)
