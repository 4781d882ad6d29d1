"""coturn's turnutils_uclient makes a session; ``turn-relay sessions --json`` shows it with its
bytes, and ``turn-relay kick`` ends it: the relay deletes the allocation (reason ``kicked``)
and what uclient still sends after that is lost. With ``--workers 1`` and ``--workers 2``.

uclient (even with ``-c``) holds two allocations of the same user, one of which carries the
traffic; the kick by user ends both."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from turn_interop_kit import SECRET, TURN_RELAY, parse_uclient, relay_process
from turnkit_testing import free_port, free_port_pair

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("turnutils_uclient") is None, reason="coturn not installed"),
]

ADMIN_KEY = "uclient-admin-key-0123456"
MESSAGES = 400  # at uclient's 20 ms: about 8 s of traffic
USER = "uclient-admin"


def admin(api: str, key_file: Path, *args: str) -> Any:
    done = subprocess.run(
        [TURN_RELAY, *args, "--api", api, "--admin-key-file", str(key_file)],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.decode()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_uclient_session_is_listed_with_its_bytes_and_kick_ends_it(
    tmp_path: Path, workers: str
) -> None:
    (tmp_path / "api-key").write_text("uclient-credentials-key-0\n")
    key_file = tmp_path / "admin-key"
    key_file.write_text(ADMIN_KEY + "\n")
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    extra = (
        "--rfc5766-channels", "--workers", workers, "--log-format", "json",
        "--api-port", str(api_port), "--api-key-file", str(tmp_path / "api-key"),
        "--admin-key-file", str(key_file),
    )  # fmt: skip
    peer_port = free_port_pair()
    peer = subprocess.Popen(
        ["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with relay_process(tmp_path, *extra) as relay:
            uclient = subprocess.Popen(
                [
                    "turnutils_uclient", "-c", "-W", SECRET, "-u", USER, "-e", "127.0.0.1",
                    "-r", str(peer_port), "-p", str(relay.port), "-n", str(MESSAGES),
                    "-m", "1", "-l", "120", "127.0.0.1",
                ],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                session = _wait_for_traffic(api, key_file)
                code = uclient.poll()
                assert code is None, "uclient finished before the kick"
                output = admin(api, key_file, "kick", USER)
                assert "ended 2 session(s)" in output
                assert json.loads(admin(api, key_file, "sessions", "--json")) == []
                out, _ = uclient.communicate(timeout=60)
            finally:
                if uclient.poll() is None:
                    uclient.kill()
                    uclient.wait()
            log_lines = (tmp_path / "turn-relay.log").read_text().splitlines()
    finally:
        peer.terminate()
        peer.wait(timeout=10)
    assert session["transport"] == "udp" and session["permissions"] == ["127.0.0.1"]
    assert session["bytes_to_peer"] >= 120 and session["packets_to_peer"] >= 1
    assert session["bytes_to_client"] >= 120 and session["packets_to_client"] >= 1
    result = parse_uclient(out.decode(errors="replace"))
    assert result.sent == MESSAGES and result.received < MESSAGES  # cut off by the kick
    events = [json.loads(line) for line in log_lines if line.startswith("{")]
    deleted = [e for e in events if e["msg"] == "allocation-deleted"]
    assert [(e["user"], e["reason"], e["transport"]) for e in deleted] == [
        (USER, "kicked", "udp")
    ] * 2
    (carried,) = [e for e in deleted if e["session"] == session["id"]]
    assert carried["bytes_to_peer"] >= session["bytes_to_peer"]


def _wait_for_traffic(api: str, key_file: Path) -> dict[str, Any]:
    """The uclient session once it has relayed something both ways."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        sessions = json.loads(admin(api, key_file, "sessions", "--json", "--user", USER))
        for found in sessions:
            if found["bytes_to_peer"] and found["bytes_to_client"]:
                assert len(sessions) == 2
                return dict(found)
        time.sleep(0.2)
    raise AssertionError("no uclient session with traffic appeared")
