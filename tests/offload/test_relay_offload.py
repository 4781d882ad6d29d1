"""``turn-relay serve --kernel-offload`` in the client | relay | peer lab: coturn's uclient relays
ChannelData through the kernel with no loss, IPv4 and IPv6; the kernel's counters are what the
peer received and /metrics shows them; once a permission or channel expires or the allocation is
deleted, the kernel forwards nothing more; ``auto`` with an unloadable object serves in userspace
after one log line, ``on`` exits 2 with the reason; a filter left by a killed relay is replaced;
worker processes share one attachment, which the parent removes.

The relay namespace does not forward IP: whatever reaches the peer went through the eBPF program
or the relay's own sockets, and the counters say which.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
from turn_interop_kit import parse_uclient

from .topology import (
    CLIENT4,
    LISTENER4,
    LISTENER6,
    PEER4,
    PEER6,
    RELAYED4,
    RELAYED6,
    Topology,
    inside,
    run,
)
from .turn_client import TurnClient

TURN_RELAY: Final = str(Path(sys.executable).parent / "turn-relay")
SECRET: Final = "offload-secret"
REALM: Final = "offload.test"
API_KEY: Final = "offload-api-key-0123456789"
PORT: Final = 3478
API_PORT: Final = 8080
PEER_PORT: Final = 3480
STRANGER4: Final = "198.51.100.3"  # a second address of the peer namespace, never permitted
MESSAGES: Final = 1000
QUIET: Final = 0.5


def _uclient_available() -> None:
    if shutil.which("turnutils_uclient") is not None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("turnutils_uclient missing under CI (bootstrap installs coturn)")
    pytest.skip("coturn not installed")


# ---------------------------------------------------------------------------- the echo peer


@dataclass
class EchoPeer:
    """A UDP echo in the peer namespace that counts what it received and sent back."""

    sock: socket.socket
    received: int = 0
    received_bytes: int = 0
    sent: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                data, source = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            self.received += 1
            self.received_bytes += len(data)
            self.sock.sendto(data, source)
            self.sent += 1


@contextlib.contextmanager
def echo_peer(lab: Topology, address: tuple[str, int]) -> Iterator[EchoPeer]:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with inside(lab.peer):
        sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(address)
    peer = EchoPeer(sock)
    thread = threading.Thread(target=peer.serve, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        peer.stop.set()
        thread.join(5)
        sock.close()


# ---------------------------------------------------------------------------- the relay


@dataclass
class RelayProcess:
    process: subprocess.Popen[bytes]
    log: Path
    lab: Topology

    def metrics(self) -> dict[str, float]:
        with inside(self.lab.relay):
            reply = urllib.request.urlopen(f"http://127.0.0.1:{API_PORT}/metrics", timeout=5)
            text = reply.read().decode()
        flat: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                flat[key] = float(value)
        return flat

    def kernel(self, direction: str, what: str = "packets") -> float:
        return self.metrics().get(
            f'turnkit_relay_kernel_{what}_total{{direction="{direction}"}}', 0
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def write_config(
    directory: Path,
    *,
    mode: str,
    bpf_object: Path | None,
    permission_lifetime: int = 300,
    channel_lifetime: int = 600,
    workers: int = 1,
) -> Path:
    (directory / "secret").write_text(SECRET + "\n")
    (directory / "api-key").write_text(API_KEY + "\n")
    object_line = f'object_file = "{bpf_object}"' if bpf_object else ""
    config = directory / "relay.toml"
    config.write_text(
        f"""
[server]
realm = "{REALM}"
workers = {workers}
[listen]
addresses = ["{LISTENER4}", "{LISTENER6}"]
udp_port = {PORT}
tcp_port = 0
[relay]
addresses = ["{RELAYED4}", "{RELAYED6}"]
port_range = {{ min = 50000, max = 50999 }}
[allocation]
rfc5766_channels = true
permission_lifetime = {permission_lifetime}
channel_lifetime = {channel_lifetime}
[quotas]
max_allocations_per_user = 0
[auth]
rest_secrets_file = "{directory / "secret"}"
[peer_policy]
allowed_peers = ["198.51.100.0/24", "2001:db8:2::/64"]
[api]
enabled = true
listen = "127.0.0.1"
port = {API_PORT}
api_key_file = "{directory / "api-key"}"
[offload]
mode = "{mode}"
{object_line}
"""
    )
    return config


def start_relay(
    lab: Topology, config: Path, *extra: str, env: dict[str, str] | None = None
) -> RelayProcess:
    import os

    log = config.parent / "relay.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["ip", "netns", "exec", lab.relay, TURN_RELAY, "serve", "--config", str(config),
             *extra],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )  # fmt: skip
    relay = RelayProcess(process, log, lab)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None or "HTTP API on" in relay.log_text():
            break
        time.sleep(0.1)
    return relay


@contextlib.contextmanager
def relay_running(lab: Topology, config: Path, **kwargs: object) -> Iterator[RelayProcess]:
    relay = start_relay(lab, config, **kwargs)  # type: ignore[arg-type]
    try:
        assert relay.process.poll() is None, relay.log_text()
        yield relay
    finally:
        relay.stop()


def uclient(lab: Topology, family: int, messages: int = MESSAGES) -> str:
    v6 = family == socket.AF_INET6
    command = [
        "ip", "netns", "exec", lab.client,
        "turnutils_uclient", "-c", "-W", SECRET, "-u", "uclient",
        "-e", PEER6 if v6 else PEER4, "-r", str(PEER_PORT), "-p", str(PORT),
        "-n", str(messages), "-m", "1", "-l", "120", "-z", "1",
        *(["-x"] if v6 else []), LISTENER6 if v6 else LISTENER4,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=90, check=False)
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def filters(lab: Topology, device: str) -> str:
    return subprocess.run(
        ["tc", "-n", lab.relay, "filter", "show", "dev", device, "ingress"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"), pytest.param(socket.AF_INET6, id="ipv6")]


# ---------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("family", FAMILIES)
def test_uclient_channel_data_goes_through_the_kernel_without_loss(
    lab: Topology, bpf_object: Path, tmp_path: Path, family: int
) -> None:
    _uclient_available()
    peer_ip = PEER6 if family == socket.AF_INET6 else PEER4
    config = write_config(tmp_path, mode="on", bpf_object=bpf_object)
    with relay_running(lab, config) as relay, echo_peer(lab, (peer_ip, PEER_PORT)) as peer:
        output = uclient(lab, family)
        result = parse_uclient(output)
        assert (result.sent, result.received, result.lost) == (MESSAGES, MESSAGES, 0), output[
            -1500:
        ]
        assert peer.received == MESSAGES
        assert wait_for(lambda: relay.kernel("to_client") == peer.sent)
        flat = relay.metrics()
        assert flat['turnkit_relay_kernel_offload{state="active"}'] == 1
        assert flat['turnkit_relay_kernel_packets_total{direction="to_peer"}'] == peer.received
        assert flat['turnkit_relay_kernel_bytes_total{direction="to_peer"}'] == peer.received_bytes
        assert flat['turnkit_relay_kernel_packets_total{direction="to_client"}'] == peer.sent
        assert (
            flat['turnkit_relay_kernel_bytes_total{direction="to_client"}'] == peer.received_bytes
        )
        # nothing went through userspace: the relayed totals are the kernel's
        assert flat['turnkit_relay_relayed_packets_total{direction="to_peer"}'] == MESSAGES
        assert flat['turnkit_relay_relayed_packets_total{direction="to_client"}'] == MESSAGES
    log = relay.log_text()
    assert "kernel offload on r0, r1" in log and "Traceback" not in log
    assert filters(lab, "r0") == "" and filters(lab, "r1") == ""  # detached on SIGTERM


@contextlib.contextmanager
def lab_client(lab: Topology) -> Iterator[TurnClient]:
    with inside(lab.client):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((CLIENT4, 0))
        sock.settimeout(3.0)
        yield TurnClient(sock, (LISTENER4, PORT), SECRET, REALM)


def received(sock: socket.socket, quiet: float = QUIET) -> list[bytes]:
    """Every datagram ``sock`` gets until it stays quiet for ``quiet`` seconds."""
    found: list[bytes] = []
    sock.settimeout(quiet)
    with contextlib.suppress(TimeoutError):
        while True:
            found.append(sock.recvfrom(65536)[0])
    sock.settimeout(3.0)
    return found


def round_trip(client: TurnClient, peer: EchoPeer, channel: int, count: int) -> list[bytes]:
    """``count`` ChannelData messages out; what came back to the client."""
    for index in range(count):
        client.channel_data(channel, b"%05d" % index)
    return received(client.sock)


def test_after_permission_expiry_and_deletion_the_kernel_forwards_nothing(
    lab: Topology, bpf_object: Path, tmp_path: Path
) -> None:
    run("ip", "-n", lab.peer, "addr", "add", f"{STRANGER4}/24", "dev", "p0")
    config = write_config(tmp_path, mode="on", bpf_object=bpf_object, permission_lifetime=2)
    with (
        relay_running(lab, config) as relay,
        echo_peer(lab, (PEER4, PEER_PORT)) as peer,
        lab_client(lab) as client,
    ):
        relayed = client.allocate()
        client.bind(0x4001, (PEER4, PEER_PORT))
        echoed = round_trip(client, peer, 0x4001, 20)
        assert len(echoed) == 20 and all(m[:2] == b"\x40\x01" for m in echoed)
        assert wait_for(lambda: relay.kernel("to_peer") == 20 and relay.kernel("to_client") == 20)

        # peer policy holds in the kernel: a stranger's datagram is not forwarded
        with inside(lab.peer):
            stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with stranger:
            stranger.bind((STRANGER4, PEER_PORT))
            stranger.sendto(b"let me in", relayed)
            assert received(client.sock) == []

        time.sleep(2.5)  # the permission expires; the channel (600 s) is still bound
        assert round_trip(client, peer, 0x4001, 10) == []
        with inside(lab.peer):
            late = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with late:
            late.bind((PEER4, PEER_PORT + 1))
            late.sendto(b"too late", relayed)
        assert received(client.sock) == []
        flat = relay.metrics()
        assert flat["turnkit_relay_kernel_routes"] == 0
        assert flat['turnkit_relay_kernel_packets_total{direction="to_peer"}'] == 20
        assert peer.received == 20

        # a new permission brings the bound channel's route back into the kernel; then
        # Refresh 0: after the delete nothing is forwarded either way
        client.permit((PEER4, PEER_PORT))
        assert len(round_trip(client, peer, 0x4001, 5)) == 5
        assert wait_for(lambda: relay.kernel("to_peer") == 25)
        client.delete()
        assert round_trip(client, peer, 0x4001, 5) == []
        assert peer.received == 25
        assert relay.metrics()["turnkit_relay_kernel_routes"] == 0
        dropped = relay.metrics()
        assert dropped.get('turnkit_relay_dropped_total{reason="no-permission"}', 0) >= 1


def test_after_channel_expiry_peer_data_arrives_as_data_indications_from_userspace(
    lab: Topology, bpf_object: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mode="on", bpf_object=bpf_object, channel_lifetime=2)
    with (
        relay_running(lab, config) as relay,
        echo_peer(lab, (PEER4, PEER_PORT)) as peer,
        lab_client(lab) as client,
    ):
        relayed = client.allocate()
        client.bind(0x4001, (PEER4, PEER_PORT))
        assert len(round_trip(client, peer, 0x4001, 10)) == 10
        time.sleep(2.5)  # the channel expires; its permission (300 s) stays
        assert round_trip(client, peer, 0x4001, 10) == []  # unbound: dropped by the core
        assert peer.received == 10
        with inside(lab.peer):
            other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with other:
            other.bind((PEER4, PEER_PORT + 1))
            other.sendto(b"hello", relayed)
            (indication,) = received(client.sock)
        assert indication[:2] == b"\x00\x17"  # a Data indication, built in userspace
        flat = relay.metrics()
        assert flat["turnkit_relay_kernel_routes"] == 0
        assert flat['turnkit_relay_kernel_packets_total{direction="to_client"}'] == 10


@pytest.fixture
def corrupt_object(tmp_path: Path, bpf_object: Path) -> Path:
    blob = bytearray(bpf_object.read_bytes())
    blob[64 : len(blob) // 2] = b"\xa5" * (len(blob) // 2 - 64)
    path = tmp_path / "corrupt.bpf.o"
    path.write_bytes(bytes(blob))
    return path


def test_auto_with_an_unloadable_object_serves_in_userspace_after_one_log_line(
    lab: Topology, corrupt_object: Path, tmp_path: Path
) -> None:
    _uclient_available()
    config = write_config(tmp_path, mode="auto", bpf_object=None)
    env = {"TURNKIT_OFFLOAD_OBJECT": str(corrupt_object)}
    with (
        relay_running(lab, config, env=env) as relay,
        echo_peer(lab, (PEER4, PEER_PORT)) as peer,
    ):
        result = parse_uclient(uclient(lab, socket.AF_INET, messages=200))
        assert (result.sent, result.received, result.lost) == (200, 200, 0)
        assert peer.received == 200
        flat = relay.metrics()
        assert flat['turnkit_relay_kernel_offload{state="unavailable"}'] == 1
        assert flat['turnkit_relay_kernel_packets_total{direction="to_peer"}'] == 0
        assert flat['turnkit_relay_relayed_packets_total{direction="to_peer"}'] == 200
    lines = [line for line in relay.log_text().splitlines() if "offload" in line]
    assert len(lines) == 1, lines
    assert (
        "kernel offload unavailable, relaying in userspace: kernel refused the program"
        in (lines[0])
    )
    assert str(corrupt_object) in lines[0]
    assert filters(lab, "r0") == ""


def test_on_with_an_unloadable_object_exits_2_with_the_reason(
    lab: Topology, corrupt_object: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mode="auto", bpf_object=corrupt_object)
    relay = start_relay(lab, config, "--kernel-offload", "on")
    try:
        assert relay.process.wait(20) == 2
    finally:  # a relay that did not exit must not outlive the test (and its namespace)
        if relay.process.poll() is None:
            relay.process.kill()
            relay.process.wait(10)
    log = relay.log_text()
    assert "cannot start the relay: --kernel-offload on, but kernel refused the program" in log
    assert "Traceback" not in log
    assert filters(lab, "r0") == "" and filters(lab, "r1") == ""


def test_a_filter_left_by_a_killed_relay_is_replaced_at_the_next_start(
    lab: Topology, bpf_object: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mode="on", bpf_object=bpf_object)
    killed = start_relay(lab, config)
    killed.process.kill()  # no chance to detach
    killed.process.wait(10)  # killed: nothing left to clean up
    assert "turnkit_channel_forward" in filters(lab, "r0")
    with relay_running(lab, config) as relay:
        assert "removed a stale filter on r0, r1" in relay.log_text()
        assert filters(lab, "r0").count("turnkit_channel_forward") == 1
    assert "turnkit_channel_forward" not in filters(lab, "r0") + filters(lab, "r1")


def test_workers_share_the_parents_attachment(
    lab: Topology, bpf_object: Path, tmp_path: Path
) -> None:
    _uclient_available()
    config = write_config(tmp_path, mode="on", bpf_object=bpf_object, workers=2)
    with relay_running(lab, config) as relay, echo_peer(lab, (PEER4, PEER_PORT)) as peer:
        for _ in range(2):  # two clients (two source ports): one worker or both
            result = parse_uclient(uclient(lab, socket.AF_INET, messages=300))
            assert (result.sent, result.received, result.lost) == (300, 300, 0)
        assert wait_for(lambda: relay.kernel("to_client") == 600)
        flat = relay.metrics()
        assert flat['turnkit_relay_kernel_offload{state="active"}'] == 1  # one state, not two
        assert flat['turnkit_relay_kernel_packets_total{direction="to_peer"}'] == peer.received
        assert filters(lab, "r0").count("turnkit_channel_forward") == 1
    assert relay.process.returncode == 0, relay.log_text()
    assert "turnkit_channel_forward" not in filters(lab, "r0") + filters(lab, "r1")
    assert len(re.findall("kernel offload on", relay.log_text())) == 1
