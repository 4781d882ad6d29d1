"""coturn's turnutils_uclient relays through ``turn-relay`` to turnutils_peer: UDP, TCP and TLS,
with channels and with Send/Data indications, REST secret, zero lost messages.

uclient picks channel numbers from RFC 5766's range (up to 0x7FFF), so the relay runs with
``--rfc5766-channels``; without ``-c`` it also opens a second (RTCP) allocation with EVEN-PORT R=1
and RESERVATION-TOKEN. One UDP client per run (FIELD-NOTES: ``-m 2+`` with ``-W`` confuses it).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from turn_interop_kit import SECRET, Relay, parse_uclient, relay_process
from turnkit_testing import free_port_pair

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("turnutils_uclient") is None, reason="coturn not installed"),
]

MESSAGES = 100


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    with relay_process(tmp_path_factory.mktemp("uclient"), "--rfc5766-channels") as running:
        yield running


@pytest.fixture(scope="module")
def peer_port() -> Iterator[int]:
    port = free_port_pair()
    process = subprocess.Popen(
        ["turnutils_peer", "-L", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


CASES = {
    "udp-channels": ([], 2),
    "udp-channels-no-rtcp": (["-c"], 1),
    "udp-send-indications": (["-s"], 2),
    "tcp-channels": (["-t"], 2),
    "tcp-send-indications": (["-t", "-s"], 2),
    "tls-channels": (["-t", "-S"], 2),
    "tls-send-indications": (["-t", "-S", "-s"], 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_uclient_relays_without_loss(
    relay: Relay, peer_port: int, case: str, tmp_path: Path
) -> None:
    flags, allocations = CASES[case]
    port = relay.tls_port if "-S" in flags else relay.port
    command = [
        "turnutils_uclient", *flags, "-W", SECRET, "-u", f"uclient-{case}",
        "-e", "127.0.0.1", "-r", str(peer_port), "-p", str(port),
        "-n", str(MESSAGES), "-m", "1", "-l", "120", "-z", "5", "127.0.0.1",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    (tmp_path / "uclient.log").write_text(output)
    assert done.returncode == 0, output[-2000:]
    result = parse_uclient(output)
    expected = MESSAGES * allocations
    assert (result.sent, result.received, result.lost) == (expected, expected, 0), output[-1500:]


def test_relay_logged_no_errors(relay: Relay) -> None:
    log = (relay.secret_file.parent / "turn-relay.log").read_text()
    assert " ERROR " not in log and "Traceback" not in log
