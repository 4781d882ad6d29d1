"""Real data through turn-relay from every lab client, and calls between clients of two NATs.

In ``inet`` (of ``lab`` and of ``twin_lab``): our turn-relay on 203.0.113.1, UDP and TCP 3478
and TLS 443 (a throwaway CA), with the lab's ranges allowed as peers and otherwise its defaults
(each client mints its own REST user, so the per-user quota of 10 allocations holds). Its STUN
side is the STUN server of the direct calls.

* ``rtccheck data`` runs in every client namespace of ``lab`` at once: relay-only agents exchange
  packets through the relay over UDP, TCP and TLS; behind ``udp_blocked`` only TCP and TLS
  work, and the UDP result says why.
* Calls: ``ice_peer.py`` runs one agent in each of two client namespaces; the test relays their
  descriptions (stdin/stdout JSON lines) and reads the outcome. In ``twin_lab`` (two separate
  symmetric NATs, two separate full-cone NATs): a relay-only call between the two symmetric
  clients succeeds through the relay, and the same pair without a relay fails (symmetric NATs
  defeat direct paths, so the relay was needed); a direct call between the two full-cone
  clients succeeds through each side's public address with no TURN server configured. In
  ``lab``: a direct call from the full-cone client to the address-restricted one succeeds too,
  which needs ICE's hole punching (the restricted side must send first).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .lab import Lab, NatType, Site, venv_script
from .lab_tls import make_lab_certificates

pytestmark = pytest.mark.natlab

SECRET = "natlab-calls"
RELAY_PORT = 3478
TLS_PORT = 443
LAB_PEERS = ("203.0.113.0/24", "198.51.100.0/24", "198.18.0.0/15", "100.64.0.0/10")
PROBE_TIMEOUT_S = 2.0
RUN_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 4.0
PEER_SCRIPT = Path(__file__).with_name("ice_peer.py")


@dataclass(frozen=True)
class LabRelay:
    udp: str
    tcp: str
    tls: str
    ca_file: Path


@contextlib.contextmanager
def serve_relay(lab: Lab, name: str) -> Iterator[LabRelay]:
    """Our turn-relay in the lab's ``inet`` until the block ends (stopped by PID)."""
    certs = make_lab_certificates(lab.workdir / f"{name}-tls", lab.server_addr)
    secret_file = lab.workdir / f"{name}-secret"
    secret_file.write_text(SECRET + "\n")
    argv = [
        venv_script("turn-relay"), "serve",
        "--listen", lab.server_addr, "--port", str(RELAY_PORT),
        "--tls-port", str(TLS_PORT), "--tls-cert", str(certs.cert), "--tls-key", str(certs.key),
        "--relay-address", lab.server_addr, "--secret-file", str(secret_file),
        *(arg for net in LAB_PEERS for arg in ("--allowed-peer", net)),
    ]  # fmt: skip
    process = lab.popen(lab.inet, argv, name=name)
    try:
        lab.wait_listening(lab.inet, RELAY_PORT, addr=lab.server_addr)
        for port in (RELAY_PORT, TLS_PORT):
            lab.wait_listening(lab.inet, port, proto="tcp", addr=lab.server_addr)
        host = lab.server_addr
        yield LabRelay(
            udp=f"turn:{host}:{RELAY_PORT}",
            tcp=f"turn:{host}:{RELAY_PORT}?transport=tcp",
            tls=f"turns:{host}:{TLS_PORT}",
            ca_file=certs.ca,
        )
    finally:
        lab.stop(process)


@pytest.fixture(scope="module")
def relay(lab: Lab) -> Iterator[LabRelay]:
    with serve_relay(lab, "turn-relay-calls") as serving:
        yield serving


@pytest.fixture(scope="module")
def twin_relay(twin_lab: Lab) -> Iterator[LabRelay]:
    with serve_relay(twin_lab, "turn-relay-twins") as serving:
        yield serving


def json_document(output: str) -> dict[str, Any]:
    """The JSON report in a run's output (stderr progress lines are mixed into the log)."""
    start = output.find("{\n")
    assert start >= 0, output
    document, _ = json.JSONDecoder().raw_decode(output[start:])
    assert isinstance(document, dict)
    return document


# ---------------------------------------------------------------- rtccheck data everywhere


@pytest.fixture(scope="module")
def data_reports(lab: Lab, relay: LabRelay) -> dict[NatType, dict[str, Any]]:
    """``rtccheck data`` over UDP, TCP and TLS from every client at once."""
    lab.reset_nat_state()
    sites = list(lab.sites.values())
    jobs = [
        (
            site.client,
            [
                venv_script("rtccheck"), "data", relay.udp, relay.tcp, relay.tls,
                "--secret", SECRET, "--rest-user", f"lab-{site.nat}",
                "--ca-file", str(relay.ca_file), "--timeout", str(PROBE_TIMEOUT_S),
                "--packets", "50", "--json",
            ],
        )
        for site in sites
    ]  # fmt: skip
    done = lab.run_parallel(jobs, timeout=RUN_TIMEOUT_S)
    return {site.nat: json_document(run.stdout) for site, run in zip(sites, done, strict=True)}


def relay_result(document: dict[str, Any], uri: str) -> dict[str, Any]:
    (found,) = [r for r in document["results"] if r["check"] == "data.relay" and r["target"] == uri]
    return dict(found)


@pytest.mark.parametrize("nat", list(NatType), ids=str)
def test_data_flows_through_the_relay_from_every_client(
    lab: Lab, relay: LabRelay, data_reports: dict[NatType, dict[str, Any]], nat: NatType
) -> None:
    document = data_reports[nat]
    working = {"tcp": relay.tcp, "tls": relay.tls}
    if nat is not NatType.UDP_BLOCKED:
        working["udp"] = relay.udp
    for protocol, uri in working.items():
        result = relay_result(document, uri)
        assert result["status"] in ("pass", "warn"), result
        pair = result["details"]["selected_pair"]
        assert pair["local"]["type"] == pair["remote"]["type"] == "relay"
        assert pair["local"]["address"] == lab.server_addr
        assert pair["local"]["relay_protocol"] == protocol
        assert result["metrics"]["packets_received"] >= 45, result["metrics"]
    if nat is NatType.UDP_BLOCKED:
        udp = relay_result(document, relay.udp)
        assert udp["status"] == "fail" and udp["cause_id"] == "udp-no-answer", udp
        assert udp["summary"].startswith("no relay candidate: no answer from 203.0.113.1:3478")
        assert document["exit_code"] == 1
    else:
        assert document["exit_code"] == 0, document["verdict"]


# ---------------------------------------------------------------- calls between two clients


class Peer:
    """One ice_peer.py process in a lab namespace; its stdin/stdout are the signalling."""

    def __init__(self, lab: Lab, ns: str, args: list[str], log: Path) -> None:
        argv = [sys.executable, str(PEER_SCRIPT), *args, "--timeout", str(CALL_TIMEOUT_S)]
        self.log = log
        with log.open("wb") as errors:
            self.process = subprocess.Popen(
                lab.command(ns, argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                start_new_session=True,
            )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def event(self, timeout: float = 3 * CALL_TIMEOUT_S) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer from the peer; stderr:\n{self.stderr()}") from None
        event: dict[str, Any] = json.loads(line)
        return event

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def hang_up(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """End the process (and its group) this test started, by PID."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


@dataclass(frozen=True)
class CallOutcome:
    caller: list[dict[str, Any]]
    callee: list[dict[str, Any]]

    def last(self, side: str) -> dict[str, Any]:
        events = self.caller if side == "caller" else self.callee
        return events[-1]

    def connected(self, side: str) -> dict[str, Any]:
        events = self.caller if side == "caller" else self.callee
        (found,) = [e for e in events if e["event"] in ("connected", "failed")]
        return found


def call(lab: Lab, caller_ns: str, callee_ns: str, args: list[str], label: str) -> CallOutcome:
    """Run a call: exchange descriptions, then wait for ICE, the caller's measurement and the
    callee's end. Every wait is bounded; both processes are stopped by PID at the end."""
    caller = Peer(lab, caller_ns, ["--role", "caller", *args], lab.workdir / f"{label}-a.err")
    callee = Peer(lab, callee_ns, ["--role", "callee", *args], lab.workdir / f"{label}-b.err")
    try:
        offers = (caller.event(), callee.event())
        caller.send(offers[1])
        callee.send(offers[0])
        states = (caller.event(), callee.event())
        caller_events = [offers[0], states[0]]
        callee_events = [offers[1], states[1]]
        if states[0]["event"] == "connected":
            caller_events.append(caller.event())
        callee.hang_up()
        if states[1]["event"] == "connected":
            callee_events.append(callee.event())
        return CallOutcome(caller_events, callee_events)
    finally:
        caller.stop()
        callee.stop()


def two_sites(lab: Lab, nat: NatType) -> tuple[Site, Site]:
    """The first two sites of a NAT type: separate NATs with their own public address and LAN."""
    first, second, *_ = lab.sites_of(nat)
    assert first.router.ns != second.router.ns and first.client.ns != second.client.ns
    assert first.public_ip() != second.public_ip() and first.lan != second.lan
    return first, second


def offered(outcome: CallOutcome) -> list[str]:
    """Every candidate both ends offered (SDP)."""
    return [*outcome.caller[0]["candidates"], *outcome.callee[0]["candidates"]]


def candidate_types(sdps: list[str]) -> set[str]:
    return {sdp.split(" typ ", 1)[1].split()[0] for sdp in sdps}


def assert_data_arrived(outcome: CallOutcome) -> None:
    measured = outcome.last("caller")
    assert measured["event"] == "measured", measured
    assert measured["received"] >= 45 and measured["sent"] >= measured["received"], measured
    assert outcome.last("callee")["event"] == "done", outcome.callee


def test_relay_only_call_between_two_symmetric_nats(twin_lab: Lab, twin_relay: LabRelay) -> None:
    a, b = two_sites(twin_lab, NatType.SYMMETRIC)
    twin_lab.reset_nat_state([NatType.SYMMETRIC])
    args = ["--turn", twin_relay.udp, "--secret", SECRET, "--relay-only", "--packets", "50"]
    outcome = call(twin_lab, a.client.ns, b.client.ns, args, "relay-call")
    assert candidate_types(offered(outcome)) == {"relay"}, offered(outcome)
    pairs = {}
    for side in ("caller", "callee"):
        state = outcome.connected(side)
        assert state["event"] == "connected", (side, state)
        pair = pairs[side] = state["selected_pair"]
        assert pair["local"]["type"] == pair["remote"]["type"] == "relay", pair
        assert pair["local"]["address"] == pair["remote"]["address"] == twin_lab.server_addr
    # each end's remote candidate is the other end's relayed address: relay to relay
    assert pairs["caller"]["remote"]["port"] == pairs["callee"]["local"]["port"], pairs
    assert pairs["callee"]["remote"]["port"] == pairs["caller"]["local"]["port"], pairs
    assert_data_arrived(outcome)


def test_two_symmetric_nats_cannot_call_directly(twin_lab: Lab, twin_relay: LabRelay) -> None:
    """The same pair as above without a relay: the call needed it."""
    a, b = two_sites(twin_lab, NatType.SYMMETRIC)
    twin_lab.reset_nat_state([NatType.SYMMETRIC])
    args = ["--stun", f"{twin_lab.server_addr}:{RELAY_PORT}"]
    outcome = call(twin_lab, a.client.ns, b.client.ns, args, "direct-fails")
    sdps = offered(outcome)
    assert candidate_types(sdps) == {"host", "srflx"}, sdps
    # both ends learnt their public address: the candidates were there, the NATs defeat them
    for site in (a, b):
        assert any(f" {site.public_ip()} " in sdp and " typ srflx " in sdp for sdp in sdps), sdps
    for side in ("caller", "callee"):
        assert outcome.connected(side)["event"] == "failed", (side, outcome.connected(side))


def assert_direct(lab: Lab, outcome: CallOutcome, caller: Site, callee: Site) -> None:
    """Both ends connected on a host or srflx candidate of their own and the other end's public
    address (srflx, or prflx when its check arrived before its description)."""
    for side, own, other in (("caller", caller, callee), ("callee", callee, caller)):
        state = outcome.connected(side)
        assert state["event"] == "connected", (side, state)
        pair = state["selected_pair"]
        assert pair["local"]["type"] in ("host", "srflx"), pair
        assert pair["local"]["address"] in (own.client.addr, own.public_ip()), pair
        assert pair["remote"]["type"] in ("srflx", "prflx"), pair
        assert pair["remote"]["address"] == other.public_ip(), pair
        assert lab.server_addr not in (pair["local"]["address"], pair["remote"]["address"])
    assert_data_arrived(outcome)


def test_direct_call_between_two_full_cone_nats(twin_lab: Lab, twin_relay: LabRelay) -> None:
    """No TURN server configured: the call runs through each side's public address."""
    a, b = two_sites(twin_lab, NatType.FULL_CONE)
    twin_lab.reset_nat_state([NatType.FULL_CONE])
    args = ["--stun", f"{twin_lab.server_addr}:{RELAY_PORT}", "--packets", "50"]
    outcome = call(twin_lab, a.client.ns, b.client.ns, args, "direct-call")
    assert "relay" not in candidate_types(offered(outcome)), "no relay was configured"
    assert_direct(twin_lab, outcome, a, b)


def test_direct_call_punches_through_an_address_restricted_nat(lab: Lab, relay: LabRelay) -> None:
    """A full cone calling an address-restricted cone (different sites, no route between their
    LANs): the restricted side only lets the full cone in after sending to it itself."""
    caller, callee = lab.site(NatType.FULL_CONE), lab.site(NatType.ADDRESS_RESTRICTED)
    lab.reset_nat_state([caller.nat, callee.nat])
    args = ["--stun", f"{lab.server_addr}:{RELAY_PORT}", "--packets", "50"]
    outcome = call(lab, caller.client.ns, callee.client.ns, args, "punch-call")
    assert "relay" not in candidate_types(offered(outcome)), "no relay was configured"
    assert_direct(lab, outcome, caller, callee)
