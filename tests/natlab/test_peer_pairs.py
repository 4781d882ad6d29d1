"""Two-party call tests between lab networks, through turn-relay's rendezvous (issue 13).

In ``inet``: turn-relay on 203.0.113.1 (UDP/TCP 3478, TLS 443 with a throwaway CA) with its HTTP
API on port 8080, the rendezvous on (a pairing secret) and a report store in the lab's work
directory. Each test opens a room with ``rtccheck pair`` (run in ``inet``), starts the leading
party, waits until the relay shows it in the room, then starts the other one. Parties are
``rtccheck peer`` (aiortc) or Debian's Chromium on the relay's ``/peer/`` page, each inside a
client namespace. The verdict must match the lab's truth:

* two separate symmetric NATs (CLI <-> CLI): direct fails, the relay works over UDP;
* full cone <-> port-restricted cone (Chromium leads, CLI follows): direct works;
* UDP blocked <-> no NAT (CLI leads, Chromium follows): only TCP and TLS to the relay work;
* double NAT <-> symmetric (Chromium <-> Chromium): direct fails, the relay works over UDP, and
  the ICE restart leg keeps the data channel open with loss and RTT reported.

After each test the relay holds no room, party or socket, and its task count is back where it
was. Chromium is started with the flags of FIELD-NOTES.md plus mDNS host candidates off and
exactly the relay's key trusted for turns:.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .lab import Host, Lab, NatType, venv_script
from .lab_tls import make_lab_certificates

pytestmark = pytest.mark.natlab

CHROMIUM = Path("/usr/bin/chromium")
REST_SECRET = "natlab-peer-rest"
PAIRING_SECRET = "natlab-peer-pairing-secret"
API_KEY = "natlab-peer-api-key-0123456789"
#: the API (and its rendezvous) on the second public address, port 443: the UDP-blocked site
#: lets only TCP to 443 and 3478 out, as a strict office firewall would
API_PORT = 443
LAB_PEERS = ("203.0.113.0/24", "198.51.100.0/24", "198.18.0.0/15", "100.64.0.0/10")
PAIR_TIMEOUT_S = 120.0
LEG_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PeerRelay:
    api: str
    ca_file: Path
    spki: str
    state_dir: Path


def _spki(cert: Path) -> str:
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    der = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def relay_config(lab: Lab, name: str) -> tuple[Path, PeerRelay]:
    work = lab.workdir / name
    work.mkdir()
    certs = make_lab_certificates(work / "tls", lab.server_addr)
    for file_name, text in (("rest", REST_SECRET), ("pairing", PAIRING_SECRET), ("key", API_KEY)):
        (work / file_name).write_text(text + "\n")
    state_dir = work / "state"
    config = work / "relay.toml"
    config.write_text(
        f"""
[server]
state_dir = "{state_dir}"
[listen]
addresses = ["{lab.server_addr}"]
udp_port = 3478
tcp_port = 3478
tls_port = 443
tls_cert_file = "{certs.cert}"
tls_key_file = "{certs.key}"
[auth]
rest_secrets_file = "{work / "rest"}"
[peer_policy]
allowed_peers = {json.dumps(list(LAB_PEERS))}
[api]
enabled = true
listen = "{lab.alt_server_addr}"
port = {API_PORT}
api_key_file = "{work / "key"}"
[rendezvous]
pairing_secrets_file = "{work / "pairing"}"
"""
    )
    api = f"http://{lab.alt_server_addr}:{API_PORT}"
    return config, PeerRelay(api, certs.ca, _spki(certs.cert), state_dir)


@contextlib.contextmanager
def serve_peer_relay(lab: Lab, name: str) -> Iterator[PeerRelay]:
    config, relay = relay_config(lab, name)
    process = lab.popen(lab.inet, [venv_script("turn-relay"), "serve", "--config", str(config)])
    try:
        lab.wait_listening(lab.inet, API_PORT, proto="tcp", addr=lab.alt_server_addr)
        lab.wait_listening(lab.inet, 443, proto="tcp", addr=lab.server_addr)
        yield relay
    finally:
        lab.stop(process)


@pytest.fixture(scope="module")
def relay(lab: Lab) -> Iterator[PeerRelay]:
    with serve_peer_relay(lab, "peer-relay") as serving:
        yield serving


@pytest.fixture(scope="module")
def twin_relay(twin_lab: Lab) -> Iterator[PeerRelay]:
    with serve_peer_relay(twin_lab, "peer-relay-twins") as serving:
        yield serving


def curl_json(lab: Lab, url: str) -> dict[str, Any]:
    """A GET from inside ``inet`` (the test runs in the root namespace, outside the lab)."""
    code = (
        "import json,sys,urllib.request\n"
        "r=urllib.request.Request(sys.argv[1],headers={'Authorization':'Bearer '+sys.argv[2]})\n"
        "print(urllib.request.urlopen(r,timeout=5).read().decode())"
    )
    done = lab.python(lab.inet, code, url, API_KEY, timeout=15)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert isinstance(body, dict)
    return body


def stats(lab: Lab, relay: PeerRelay) -> dict[str, Any]:
    return curl_json(lab, f"{relay.api}/rendezvous/stats")


def open_room(lab: Lab, relay: PeerRelay) -> dict[str, Any]:
    secret = lab.workdir / "pairing-secret-for-cli"
    secret.write_text(PAIRING_SECRET + "\n")
    argv = [venv_script("rtccheck"), "pair", "--relay", relay.api, "--secret-file", str(secret)]
    done = lab.run(lab.inet, [*argv, "--json"], timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    room: dict[str, Any] = json.loads(done.stdout)
    return room


def cli_party(lab: Lab, host: Host, relay: PeerRelay, link: str, name: str) -> Any:
    argv = [
        venv_script("rtccheck"), "peer", link, "--json", "--ca-file", str(relay.ca_file),
        "--leg-timeout", str(LEG_TIMEOUT_S), "--wait", "60",
    ]  # fmt: skip
    return lab.popen(host, argv, name=name)


def chromium_party(lab: Lab, host: Host, relay: PeerRelay, link: str, name: str) -> Any:
    profile = lab.workdir / f"{name}-profile"
    argv = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {lab.server_addr},"
        f" EXCLUDE {lab.alt_server_addr}",
        "--enable-logging=stderr",
        f"--ignore-certificate-errors-spki-list={relay.spki}",
        link,
    ]  # fmt: skip
    return lab.popen(host, argv, name=name)


def wait_for_parties(
    lab: Lab, relay: PeerRelay, count: int, party: Any, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while stats(lab, relay)["parties"] < count:
        log = "\n".join(line for line in lab.read_log(party).splitlines() if "dbus" not in line)
        assert time.monotonic() < deadline, f"fewer than {count} parties in {timeout} s:\n{log}"
        time.sleep(0.3)


def stored_peer_reports(relay: PeerRelay) -> list[dict[str, Any]]:
    database = relay.state_dir / "reports.sqlite3"
    if not database.exists():
        return []
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute("SELECT body FROM reports WHERE source = 'peer' ORDER BY rowid")
        return [json.loads(body) for (body,) in rows.fetchall()]


def wait_for_report(relay: PeerRelay, known: int, processes: list[Any], lab: Lab) -> dict[str, Any]:
    deadline = time.monotonic() + PAIR_TIMEOUT_S
    while len(reports := stored_peer_reports(relay)) <= known:
        logs = "\n".join(lab.read_log(p)[-2000:] for p in processes)
        assert time.monotonic() < deadline, f"no verdict in {PAIR_TIMEOUT_S} s:\n{logs}"
        time.sleep(0.5)
    return reports[-1]


def wait_cli(lab: Lab, process: Any) -> tuple[int, dict[str, Any]]:
    code = process.wait(timeout=PAIR_TIMEOUT_S)
    output = lab.read_log(process)
    start = output.find("{\n")
    assert start >= 0, output
    document, _ = json.JSONDecoder().raw_decode(output[start:])
    return code, document


def results_by_check(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for result in report["results"]:  # the figures, in the test log
        print(f"  [{result['status']}] {result['summary']}")
        if restart := result["details"].get("restart"):
            print(f"    restart: {json.dumps(restart)}")
    return {result["check"]: result for result in report["results"]}


def assert_measured(result: dict[str, Any]) -> None:
    metrics = result["metrics"]
    assert result["status"] in ("pass", "warn"), json.dumps(result)
    assert metrics["connect_ms"] is not None and metrics["connect_ms"] > 0, result
    assert metrics["rtt_p50_ms"] is not None and metrics["rtt_p95_ms"] is not None, result
    assert metrics["loss_pct"] is not None and metrics["loss_pct"] < 20, result
    assert metrics["throughput_mbps"] is not None and metrics["throughput_mbps"] > 0, result


def assert_relay_pair(result: dict[str, Any], protocol: str) -> None:
    pair = result["details"]["pair"]
    assert pair["local"]["type"] == "relay", result
    assert pair["local"]["relay_protocol"] == protocol, result


def assert_nothing_left(lab: Lab, relay: PeerRelay, tasks_before: int) -> None:
    """No party, socket or extra task on the relay, and no live room with anyone in it (a
    room registered by `rtccheck pair` that nobody joined stays until it expires)."""
    deadline = time.monotonic() + 10
    while True:
        now = stats(lab, relay)
        idle = now["occupied_rooms"] == 0 and now["parties"] == 0 and now["sockets"] == 0
        if (idle and now["tasks"] <= tasks_before) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert idle, now
    assert now["tasks"] <= tasks_before, now


# ---------------------------------------------------------------- the pairs


def test_symmetric_to_symmetric_cli_needs_turn(twin_lab: Lab, twin_relay: PeerRelay) -> None:
    lab, relay = twin_lab, twin_relay
    first, second = lab.sites_of(NatType.SYMMETRIC)
    lab.reset_nat_state([NatType.SYMMETRIC])
    tasks_before = stats(lab, relay)["tasks"]
    room = open_room(lab, relay)
    leader = cli_party(lab, first.client, relay, room["links"]["a"], "peer-sym-a")
    try:
        wait_for_parties(lab, relay, 1, leader)
        follower = cli_party(lab, second.client, relay, room["links"]["b"], "peer-sym-b")
        try:
            code_a, report_a = wait_cli(lab, leader)
            code_b, report_b = wait_cli(lab, follower)
        finally:
            lab.stop(follower)
    finally:
        lab.stop(leader)
    assert report_a == report_b  # both sides see the same verdict
    assert report_a["verdict"] == "needs TURN (UDP is fine)", report_a
    assert (code_a, code_b) == (0, 0)
    results = results_by_check(report_a)
    assert results["peer.all"]["status"] in ("fail", "warn"), results["peer.all"]
    if results["peer.all"]["status"] == "warn":  # connected, but only through the relay
        pair = results["peer.all"]["details"]["pair"]
        assert "relay" in (pair["local"]["type"], pair["remote"]["type"]), pair
    for leg, protocol in (("relay-udp", "udp"), ("relay-tcp", "tcp"), ("relay-tls", "tls")):
        assert_measured(results[f"peer.{leg}"])
        assert_relay_pair(results[f"peer.{leg}"], protocol)
    assert results["peer.ice-restart"]["status"] == "skip"
    assert "cannot restart ICE" in results["peer.ice-restart"]["summary"]
    assert stored_peer_reports(relay)[-1] == report_a
    assert_nothing_left(lab, relay, tasks_before)


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason=f"{CHROMIUM} missing: install Debian's chromium (bootstrap does)",
)


@needs_chromium
def test_full_cone_chromium_to_port_restricted_cli_direct(lab: Lab, relay: PeerRelay) -> None:
    cone, restricted = lab.site(NatType.FULL_CONE), lab.site(NatType.PORT_RESTRICTED)
    lab.reset_nat_state([NatType.FULL_CONE, NatType.PORT_RESTRICTED])
    tasks_before = stats(lab, relay)["tasks"]
    room = open_room(lab, relay)
    browser = chromium_party(lab, cone.client, relay, room["links"]["a"], "peer-cone-chromium")
    try:
        wait_for_parties(lab, relay, 1, browser)
        cli = cli_party(lab, restricted.client, relay, room["links"]["b"], "peer-restricted-cli")
        try:
            code, report = wait_cli(lab, cli)
        finally:
            lab.stop(cli)
    finally:
        lab.stop(browser)
    assert report["verdict"] == "direct works", json.dumps(report)
    assert code == 0
    results = results_by_check(report)
    assert_measured(results["peer.all"])
    pair = results["peer.all"]["details"]["pair"]
    assert pair["local"]["type"] in ("host", "srflx", "prflx"), pair
    assert pair["remote"]["type"] in ("host", "srflx", "prflx"), pair
    parties = results["peer.verdict"]["details"]["parties"]
    assert (parties["leader"]["kind"], parties["follower"]["kind"]) == ("browser", "cli")
    assert "HeadlessChrome" in parties["leader"]["agent"]
    for leg in ("relay-udp", "relay-tcp", "relay-tls"):
        assert_measured(results[f"peer.{leg}"])
    assert stored_peer_reports(relay)[-1] == report
    assert_nothing_left(lab, relay, tasks_before)


@needs_chromium
def test_udp_blocked_cli_to_open_chromium_needs_tls(lab: Lab, relay: PeerRelay) -> None:
    blocked, open_site = lab.site(NatType.UDP_BLOCKED), lab.site(NatType.NONE)
    lab.reset_nat_state([NatType.UDP_BLOCKED, NatType.NONE])
    tasks_before = stats(lab, relay)["tasks"]
    room = open_room(lab, relay)
    cli = cli_party(lab, blocked.client, relay, room["links"]["a"], "peer-blocked-cli")
    try:
        wait_for_parties(lab, relay, 1, cli)
        browser = chromium_party(lab, open_site.client, relay, room["links"]["b"], "peer-open")
        try:
            code, report = wait_cli(lab, cli)
        finally:
            lab.stop(browser)
    finally:
        lab.stop(cli)
    assert report["verdict"] == "needs TURN over TLS on 443", json.dumps(report)
    assert code == 0
    results = results_by_check(report)
    assert results["peer.all"]["status"] == "fail", results["peer.all"]
    assert results["peer.relay-udp"]["status"] == "fail", results["peer.relay-udp"]
    # the UDP-blocked side gathered no relay candidate over UDP; the open side did
    gathered = results["peer.relay-udp"]["details"]["gathered"]
    assert "relay" not in gathered["leader"] and "relay" in gathered["follower"], gathered
    for leg, protocol in (("relay-tcp", "tcp"), ("relay-tls", "tls")):
        assert_measured(results[f"peer.{leg}"])
        assert_relay_pair(results[f"peer.{leg}"], protocol)
    parties = results["peer.verdict"]["details"]["parties"]
    assert (parties["leader"]["kind"], parties["follower"]["kind"]) == ("cli", "browser")
    assert_nothing_left(lab, relay, tasks_before)


@needs_chromium
def test_double_nat_to_symmetric_chromium_ice_restart(lab: Lab, relay: PeerRelay) -> None:
    double, symmetric = lab.site(NatType.DOUBLE_NAT), lab.site(NatType.SYMMETRIC)
    lab.reset_nat_state([NatType.DOUBLE_NAT, NatType.SYMMETRIC])
    tasks_before = stats(lab, relay)["tasks"]
    known = len(stored_peer_reports(relay))
    room = open_room(lab, relay)
    leader = chromium_party(lab, double.client, relay, room["links"]["a"], "peer-double")
    follower = None
    try:
        wait_for_parties(lab, relay, 1, leader)
        follower = chromium_party(lab, symmetric.client, relay, room["links"]["b"], "peer-sym")
        report = wait_for_report(relay, known, [leader, follower], lab)
    finally:
        for browser in (follower, leader):
            if browser is not None:
                lab.stop(browser)
    assert report["verdict"] == "needs TURN (UDP is fine)", json.dumps(report)
    results = results_by_check(report)
    assert results["peer.all"]["status"] in ("fail", "warn"), results["peer.all"]
    for leg in ("relay-udp", "relay-tcp", "relay-tls"):
        assert_measured(results[f"peer.{leg}"])
    restart = results["peer.ice-restart"]
    assert restart["status"] == "pass", json.dumps(restart)
    details = restart["details"]["restart"]
    assert details["channel_survived"] is True, details
    assert details["credentials_changed"] is True, details  # a real ICE restart (new ufrag)
    assert details["new_session_selected"] is True, details  # ... carrying the data now
    assert details["after"]["packets_received"] > 0, details
    assert details["after"]["rtt_p50_ms"] is not None, details
    assert restart["metrics"]["loss_pct"] is not None, restart
    assert restart["metrics"]["rtt_p50_ms"] is not None, restart
    parties = results["peer.verdict"]["details"]["parties"]
    assert (parties["leader"]["kind"], parties["follower"]["kind"]) == ("browser", "browser")
    assert_nothing_left(lab, relay, tasks_before)
