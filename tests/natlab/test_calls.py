"""Real data through turn-relay from every lab client, and calls between clients of two NATs.

In ``inet``: our turn-relay on 203.0.113.1, UDP and TCP 3478 and TLS 443 (a throwaway CA), with
the lab's ranges allowed as peers and otherwise its defaults (each client mints its own REST
user, so the per-user quota of 10 allocations holds).

* ``rtccheck data`` runs in every client namespace at once: relay-only agents exchange packets
  through the relay over UDP, TCP and TLS; behind ``udp_blocked`` only TCP and TLS work, and
  the UDP result says why.
* Calls: ``ice_peer.py`` runs one agent in each of two client namespaces; the test relays their
  descriptions (stdin/stdout JSON lines) and reads the outcome. A relay-only call between the
  symmetric client and the port-restricted one succeeds through the relay, while the same pair
  without a relay fails (those NATs defeat direct paths); a direct call between the full-cone
  and the address-restricted client succeeds on srflx candidates with no relay configured.

The lab has one site per NAT type, so "two symmetric NATs" and "two full cones" are stood in
for by the hardest and the easiest pair of different sites (see the notes in test names).
"""

from __future__ import annotations

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

from .lab import Lab, NatType, venv_script
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


@pytest.fixture(scope="module")
def relay(lab: Lab) -> Iterator[LabRelay]:
    certs = make_lab_certificates(lab.workdir / "calls-tls", lab.server_addr)
    secret_file = lab.workdir / "calls-secret"
    secret_file.write_text(SECRET + "\n")
    argv = [
        venv_script("turn-relay"), "serve",
        "--listen", lab.server_addr, "--port", str(RELAY_PORT),
        "--tls-port", str(TLS_PORT), "--tls-cert", str(certs.cert), "--tls-key", str(certs.key),
        "--relay-address", lab.server_addr, "--secret-file", str(secret_file),
        *(arg for net in LAB_PEERS for arg in ("--allowed-peer", net)),
    ]  # fmt: skip
    process = lab.popen(lab.inet, argv, name="turn-relay-calls")
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
        assert udp["status"] == "fail" and udp["details"]["problem"] == "timeout", udp
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


def _client_ns(lab: Lab, nat: NatType) -> str:
    return lab.site(nat).client.ns


def test_relay_only_call_between_symmetric_and_port_restricted_clients(
    lab: Lab, relay: LabRelay
) -> None:
    """Stands in for "two symmetric NATs" (the lab has one symmetric site): a pair that cannot
    connect directly, as the next test shows."""
    lab.reset_nat_state([NatType.SYMMETRIC, NatType.PORT_RESTRICTED])
    args = ["--turn", relay.udp, "--secret", SECRET, "--relay-only", "--packets", "50"]
    outcome = call(
        lab,
        _client_ns(lab, NatType.SYMMETRIC),
        _client_ns(lab, NatType.PORT_RESTRICTED),
        args,
        "relay-call",
    )
    for side in ("caller", "callee"):
        state = outcome.connected(side)
        assert state["event"] == "connected", (side, state)
        pair = state["selected_pair"]
        assert pair["local"]["type"] == pair["remote"]["type"] == "relay"
        assert pair["local"]["address"] == lab.server_addr
    measured = outcome.last("caller")
    assert measured["event"] == "measured" and measured["received"] >= 45, measured
    assert outcome.last("callee")["event"] == "done"


def test_the_same_pair_cannot_call_directly(lab: Lab, relay: LabRelay) -> None:
    lab.reset_nat_state([NatType.SYMMETRIC, NatType.PORT_RESTRICTED])
    args = ["--stun", f"{lab.server_addr}:{RELAY_PORT}"]
    outcome = call(
        lab,
        _client_ns(lab, NatType.SYMMETRIC),
        _client_ns(lab, NatType.PORT_RESTRICTED),
        args,
        "direct-fails",
    )
    offered = outcome.caller[0]["candidates"] + outcome.callee[0]["candidates"]
    assert any(" typ srflx " in sdp for sdp in offered)
    assert not any(" typ relay " in sdp for sdp in offered)
    assert outcome.connected("caller")["event"] == "failed"


def test_direct_call_between_full_cone_and_address_restricted_clients(
    lab: Lab, relay: LabRelay
) -> None:
    """Stands in for "two full-cone clients" (the lab has one full-cone site): two cone NATs,
    different sites, no route between their LANs, so only the NATs' mappings carry the call."""
    lab.reset_nat_state([NatType.FULL_CONE, NatType.ADDRESS_RESTRICTED])
    args = ["--stun", f"{lab.server_addr}:{RELAY_PORT}", "--packets", "50"]
    outcome = call(
        lab,
        _client_ns(lab, NatType.FULL_CONE),
        _client_ns(lab, NatType.ADDRESS_RESTRICTED),
        args,
        "direct-call",
    )
    offered = outcome.caller[0]["candidates"] + outcome.callee[0]["candidates"]
    assert not any(" typ relay " in sdp for sdp in offered), "no relay was configured"
    publics = {
        "caller": lab.site(NatType.ADDRESS_RESTRICTED).public_ip(),
        "callee": lab.site(NatType.FULL_CONE).public_ip(),
    }
    for side, remote_public in publics.items():
        state = outcome.connected(side)
        assert state["event"] == "connected", (side, state)
        pair = state["selected_pair"]
        assert pair["remote"]["type"] in ("srflx", "prflx"), pair
        assert pair["remote"]["address"] == remote_public, pair
    measured = outcome.last("caller")
    assert measured["event"] == "measured" and measured["received"] >= 45, measured
