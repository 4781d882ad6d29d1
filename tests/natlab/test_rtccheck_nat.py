"""rtccheck's nat and turn checks behind every NAT of the lab.

In ``inet``: our stun-server in RFC 5780 mode (203.0.113.1:3478 and 203.0.113.2, UDP only) and
turn-relay (UDP 3480, TCP 3478, TLS 443 on 203.0.113.1, the lab's ranges allowed as peers). TCP
3478 and 443 are the only ports the udp_blocked site lets out, so its nat check learns that TCP
gets out and its turn check allocates over TCP and TLS. ``rtccheck nat --json`` and
``rtccheck turn --json`` run in every client namespace at once; each run's JSON is compared with
the site's design (``site.expected``) and with the classic names and verdicts those imply.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rtccheck.causes import CAUSE_IDS

from .lab import Behaviour, Lab, NatType, Site, venv_script
from .lab_tls import make_lab_certificates

pytestmark = pytest.mark.natlab

SECRET = "natlab-secret"
STUN_PORT = 3478
TURN_UDP_PORT = 3480
TURN_TCP_PORT = 3478
TURN_TLS_PORT = 443
PROBE_TIMEOUT_S = "2"
RUN_TIMEOUT_S = 60.0
LAB_PEERS = ("203.0.113.0/24", "198.51.100.0/24", "198.18.0.0/15", "100.64.0.0/10")

#: the RFC 3489 name each site's rules produce
CLASSIC_NAMES = {
    NatType.NONE: "open internet",
    NatType.FULL_CONE: "full cone",
    NatType.ADDRESS_RESTRICTED: "restricted cone",
    NatType.PORT_RESTRICTED: "port-restricted cone",
    NatType.SYMMETRIC: "symmetric",
    NatType.UDP_BLOCKED: "UDP blocked",
    NatType.DOUBLE_NAT: "port-restricted cone",
    NatType.HAIRPIN: "port-restricted cone",
}
#: what the verdict must say for each kind of site (and the TURN need behind it)
VERDICT_PHRASES = {
    NatType.NONE: ("open internet", "TURN is needed only for peers whose own network blocks UDP"),
    NatType.FULL_CONE: ("full cone", "TURN is needed only for peers whose own network"),
    NatType.ADDRESS_RESTRICTED: ("restricted cone", "TURN is needed only for peers whose own"),
    NatType.PORT_RESTRICTED: ("port-restricted cone", "peers behind symmetric NATs need TURN"),
    NatType.SYMMETRIC: ("symmetric", "Many calls need TURN"),
    NatType.UDP_BLOCKED: ("UDP is blocked", "Every call needs TURN over TCP"),
    NatType.DOUBLE_NAT: ("port-restricted cone", "peers behind symmetric NATs need TURN"),
    NatType.HAIRPIN: ("port-restricted cone", "peers behind symmetric NATs need TURN"),
}
TURN_NEED = {
    NatType.NONE: "only-for-peers-without-udp",
    NatType.FULL_CONE: "only-for-peers-without-udp",
    NatType.ADDRESS_RESTRICTED: "only-for-peers-without-udp",
    NatType.PORT_RESTRICTED: "for-symmetric-peers",
    NatType.SYMMETRIC: "for-many-peers",
    NatType.UDP_BLOCKED: "always",
    NatType.DOUBLE_NAT: "for-symmetric-peers",
    NatType.HAIRPIN: "for-symmetric-peers",
}


def json_document(output: str) -> dict[str, Any]:
    """The JSON report in a run's output (progress lines on stderr are mixed in there)."""
    start = output.find("{\n")
    assert start >= 0, output
    document, _ = json.JSONDecoder().raw_decode(output[start:])
    assert isinstance(document, dict)
    for result in document["results"]:  # every cause is a catalogued id; fail/warn name one
        if result["status"] in ("fail", "warn") or result["cause_id"] is not None:
            assert result["cause_id"] in CAUSE_IDS, result
    return document


def one(document: dict[str, Any], check: str, target: str | None = None) -> dict[str, Any]:
    found = [
        r
        for r in document["results"]
        if r["check"] == check and (target is None or r["target"] == target)
    ]
    assert len(found) == 1, (check, target, document["results"])
    result: dict[str, Any] = found[0]
    return result


# ---------------------------------------------------------------- servers in inet


@dataclass(frozen=True)
class LabServers:
    ca_file: Path


def _relay_config(lab: Lab, cert: Path, key: Path) -> Path:
    secrets = lab.workdir / "relay-secrets"
    secrets.write_text(SECRET + "\n")
    peers = ", ".join(f'"{net}"' for net in LAB_PEERS)
    config = lab.workdir / "relay.toml"
    config.write_text(
        "\n".join(
            [
                "[server]",
                'realm = "natlab"',
                "[listen]",
                f'addresses = ["{lab.server_addr}"]',
                f"udp_port = {TURN_UDP_PORT}",
                f"tcp_port = {TURN_TCP_PORT}",
                f"tls_port = {TURN_TLS_PORT}",
                f'tls_cert_file = "{cert}"',
                f'tls_key_file = "{key}"',
                "[relay]",
                f'addresses = ["{lab.server_addr}"]',
                "[quotas]",
                "max_allocations_per_user = 0",  # every client mints the same user
                "[auth]",
                f'rest_secrets_file = "{secrets}"',
                "[auth.unauthorized_limit]",
                "per_second = 1000.0",
                "burst = 1000",
                "[peer_policy]",
                f"allowed_peers = [{peers}]",
                "",
            ]
        )
    )
    return config


@pytest.fixture(scope="module")
def servers(lab: Lab) -> Iterator[LabServers]:
    certs = make_lab_certificates(lab.workdir / "tls", lab.server_addr)
    ca, cert, key = certs.ca, certs.cert, certs.key
    stun = lab.popen(
        lab.inet,
        [
            venv_script("stun-server"),
            "--listen",
            f"{lab.server_addr}:{STUN_PORT}",
            "--alternate",
            lab.alt_server_addr,
            "--no-tcp",
            "--rate-limit",
            "0",
        ],
        name="stun-server",
    )
    relay = lab.popen(
        lab.inet,
        [venv_script("turn-relay"), "serve", "--config", str(_relay_config(lab, cert, key))],
        name="turn-relay",
    )
    try:
        lab.wait_listening(lab.inet, STUN_PORT + 1, addr=lab.alt_server_addr)
        for port in (TURN_TCP_PORT, TURN_TLS_PORT):
            lab.wait_listening(lab.inet, port, proto="tcp", addr=lab.server_addr)
        lab.wait_listening(lab.inet, TURN_UDP_PORT, addr=lab.server_addr)
        yield LabServers(ca)
    finally:
        lab.stop(relay)
        lab.stop(stun)


# ---------------------------------------------------------------- rtccheck nat


@pytest.fixture(scope="module")
def nat_reports(lab: Lab, servers: LabServers) -> dict[NatType, dict[str, Any]]:
    """``rtccheck nat --json`` from every client at once, on fresh NAT state."""
    lab.reset_nat_state()
    sites = list(lab.sites.values())
    argv = [
        venv_script("rtccheck"),
        "nat",
        f"stun:{lab.server_addr}:{STUN_PORT}",
        "--timeout",
        PROBE_TIMEOUT_S,
        "--json",
    ]
    done = lab.run_parallel([(site.client, argv) for site in sites], timeout=RUN_TIMEOUT_S)
    return {site.nat: json_document(run.stdout) for site, run in zip(sites, done, strict=True)}


def _expected_mapping(site: Site) -> str:
    if not site.expected.nat:
        return "no-nat"
    assert site.expected.mapping is not None
    return site.expected.mapping.value


@pytest.mark.parametrize("nat", [n for n in NatType if n is not NatType.UDP_BLOCKED], ids=str)
def test_nat_behaviour_matches_the_rules(
    lab: Lab, nat_reports: dict[NatType, dict[str, Any]], nat: NatType
) -> None:
    site = lab.site(nat)
    result = one(nat_reports[nat], "nat.behaviour")
    metrics, details = result["metrics"], result["details"]
    assert metrics["method"] == "rfc5780", result
    assert metrics["mapping"] == _expected_mapping(site), result
    assert site.expected.filtering is not None
    assert metrics["filtering"] == site.expected.filtering.value, result
    assert metrics["hairpinning"] == ("yes" if site.expected.hairpin else "no"), result
    assert metrics["classic_name"] == CLASSIC_NAMES[nat], result
    assert metrics["turn_need"] == TURN_NEED[nat], result
    assert metrics["mapped_address"].startswith(site.public_ip() + ":"), result
    for phrase in VERDICT_PHRASES[nat]:
        assert phrase in details["verdict"], (phrase, details["verdict"])
    if site.expected.hairpin:
        assert "No hairpinning" not in details["verdict"]
    else:
        assert "No hairpinning" in details["verdict"]
    symmetric = site.expected.mapping is Behaviour.ADDRESS_AND_PORT_DEPENDENT
    assert result["status"] == ("warn" if symmetric else "pass"), result
    assert ("symmetric" in details["direct_not_with"]) is (
        site.expected.filtering is Behaviour.ADDRESS_AND_PORT_DEPENDENT
    )


def test_nat_udp_blocked_says_only_tcp_and_tls_work(
    nat_reports: dict[NatType, dict[str, Any]],
) -> None:
    result = one(nat_reports[NatType.UDP_BLOCKED], "nat.behaviour")
    metrics, details = result["metrics"], result["details"]
    assert result["status"] == "warn" and result["cause_id"] == "udp-blocked", result
    assert metrics["classic_name"] == CLASSIC_NAMES[NatType.UDP_BLOCKED]
    assert metrics["mapping"] == "unknown" and metrics["filtering"] == "unknown"
    assert metrics["transport"] == "tcp"
    assert metrics["turn_need"] == TURN_NEED[NatType.UDP_BLOCKED]
    observed = details["observations"]
    assert observed["udp_answered"] is False
    assert observed["tcp_answered"] is True
    assert observed["tls_443_answered"] is True
    for phrase in VERDICT_PHRASES[NatType.UDP_BLOCKED]:
        assert phrase in details["verdict"]


# ---------------------------------------------------------------- rtccheck turn


def _turn_uris(lab: Lab) -> dict[str, str]:
    host = lab.server_addr
    return {
        "udp": f"turn:{host}:{TURN_UDP_PORT}",
        "tcp": f"turn:{host}:{TURN_TCP_PORT}?transport=tcp",
        "tls": f"turns:{host}:{TURN_TLS_PORT}",
    }


@pytest.fixture(scope="module")
def turn_reports(lab: Lab, servers: LabServers) -> dict[NatType, dict[str, Any]]:
    """``rtccheck turn --json`` over UDP, TCP and TLS from every client at once."""
    lab.reset_nat_state()
    sites = list(lab.sites.values())
    argv = [
        venv_script("rtccheck"),
        "turn",
        *_turn_uris(lab).values(),
        "--secret",
        SECRET,
        "--timeout",
        PROBE_TIMEOUT_S,
        "--json",
    ]
    trusting = ["env", f"SSL_CERT_FILE={servers.ca_file}"]  # the lab's CA, for turns:
    jobs = [(site.client, [*trusting, *argv]) for site in sites]
    done = lab.run_parallel(jobs, timeout=RUN_TIMEOUT_S)
    return {site.nat: json_document(run.stdout) for site, run in zip(sites, done, strict=True)}


@pytest.mark.parametrize("nat", list(NatType), ids=str)
def test_turn_allocates_and_relays_from_every_site(
    lab: Lab, turn_reports: dict[NatType, dict[str, Any]], nat: NatType
) -> None:
    site = lab.site(nat)
    document = turn_reports[nat]
    uris = _turn_uris(lab)
    working = ("tcp", "tls") if nat is NatType.UDP_BLOCKED else ("udp", "tcp", "tls")
    for transport in working:
        uri = uris[transport]
        allocated = one(document, "turn.allocate", uri)
        assert allocated["status"] == "pass", allocated
        assert allocated["details"]["mapped_address"].startswith(site.public_ip() + ":")
        assert allocated["details"]["released"] is True
        assert one(document, "turn.relay-address", uri)["status"] == "pass"
        data = one(document, "turn.relay-data", uri)
        assert data["status"] == "pass", data
    if nat is NatType.UDP_BLOCKED:
        udp = one(document, "turn.allocate", uris["udp"])
        assert udp["status"] == "fail"
        assert udp["cause_id"] == "udp-no-answer"
        assert document["exit_code"] == 1
    else:
        assert document["exit_code"] == 0, document["verdict"]
