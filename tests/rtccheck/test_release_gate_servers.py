"""rtccheck as a release gate, through the CLI, against our turn-relay and coturn on loopback:
--only/--skip in `all`, unmet requirements that say what is missing, iceTransportPolicy
"relay", loopback peers as a lab setting, one root cause reported once, JUnit valid against the
Ant/Jenkins schema, and credentials expiring beyond --max-ttl."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rtccheck_ice_servers import (
    HOST,
    SECRET,
    Server,
    coturn,
    coturn_missing,
    make_certs,
    turn_relay,
)
from rtccheck_junit_schema import junit_errors
from rtccheck_servers import only, results_of, run_cli
from turnkit_testing.tls import CertFiles

from turn_relay.auth.credentials import issue


def _coturn(workdir: Path, certs: CertFiles) -> AbstractContextManager[Server]:
    return coturn(workdir, certs=certs)


def _turn_relay(workdir: Path, certs: CertFiles) -> AbstractContextManager[Server]:
    return turn_relay(workdir, certs=certs, lenient=True)


SERVERS = [
    pytest.param(
        ("coturn", _coturn),
        id="coturn",
        marks=[
            pytest.mark.interop,
            pytest.mark.skipif(coturn_missing(), reason="coturn's turnserver is not installed"),
        ],
    ),
    pytest.param(("turn-relay", _turn_relay), id="turn-relay"),
]


@dataclass(frozen=True)
class Lab:
    kind: str
    server: Server
    certs: CertFiles

    @property
    def udp(self) -> str:
        return f"turn:{HOST}:{self.server.port}"

    @property
    def turns(self) -> str:
        return f"turns:{HOST}:{self.server.tls_port}"

    def cli(self, *args: str, now: float | None = None) -> tuple[int, dict[str, Any]]:
        return run_cli(*args, "--ca-file", str(self.certs.ca), now=now)


@pytest.fixture(scope="module", params=SERVERS)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    kind, factory = request.param
    directory = tmp_path_factory.mktemp(kind)
    certs = make_certs(directory / "certs")
    with factory(directory / "server", certs) as server:
        yield Lab(kind, server, certs)


def test_a_gate_selects_its_families_and_writes_valid_junit(lab: Lab, tmp_path: Path) -> None:
    junit = tmp_path / "rtccheck.xml"
    code, document = lab.cli(
        "all", lab.udp, lab.turns, "--secret", SECRET,
        "--only", "turn,data,policy", "--require", "relay-udp,relay-tls,data-relay",
        "--junit", str(junit),
    )  # fmt: skip
    assert document["checks_run"] == ["turn", "data", "policy"]
    assert all(req["met"] for req in document["requirements"]), document["requirements"]
    policy = {r["target"]: r for r in results_of(document, "policy.peers")}[lab.udp]
    xml = junit.read_text(encoding="utf-8")
    assert junit_errors(xml) == []
    assert f'name="turn.allocate [{lab.udp}]"' in xml
    assert 'name="data" id="1" package="rtccheck"' in xml
    if lab.kind == "turn-relay":
        # allowed_peers 127.0.0.0/8 on a relay listening on 127.0.0.1: a lab, not a hole
        assert policy["status"] == "warn", policy
        assert policy["cause_id"] == "loopback-peers-lab"
        assert policy["details"]["lab"] == {"relay_address": HOST, "accepted": ["127.0.0.1"]}
        assert code == 0, document["verdict"]
        return
    # coturn relays to private and metadata addresses: that still fails, loopback or not
    assert policy["status"] == "fail" and policy["cause_id"] == "forbidden-peers-accepted"
    assert "169.254.169.254 (cloud metadata service" in policy["summary"]
    assert "127.0.0.1" not in policy["summary"]
    assert code == 1
    code, document = lab.cli(
        "all", lab.udp, lab.turns, "--secret", SECRET, "--only", "turn,data,policy",
        "--skip", "policy.peers", "--require", "relay-udp,relay-tls,data-relay",
    )  # fmt: skip
    assert code == 0, document["verdict"]
    assert {r["status"] for r in results_of(document, "policy.peers")} == {"skip"}


def test_an_unmet_requirement_says_what_would_show_it(lab: Lab) -> None:
    code, document = lab.cli(
        "turn", lab.udp, "--secret", SECRET, "--require", "relay-udp,data-relay,relay-tls"
    )
    assert code == 1
    udp, data, tls = document["requirements"]
    assert udp["met"] is True and udp["missing"] is None
    assert data["missing"].startswith("the turn check family runs no data check (data-relay is")
    assert tls["missing"].startswith("no turns: URI was given")


def test_relay_policy_rules_out_the_direct_path(lab: Lab, tmp_path: Path) -> None:
    minted = issue(SECRET, "app", 3600, time.time())
    config = tmp_path / "ice.json"
    entry = {"urls": [lab.udp], "username": minted.username, "credential": minted.password}
    config.write_text(json.dumps({"iceServers": [entry], "iceTransportPolicy": "relay"}))
    code, document = lab.cli(
        "data", "--ice-config", str(config), "--require", "data-relay,data-direct"
    )
    assert code == 1
    direct = only(document, "data.direct")
    assert direct["status"] == "skip" and direct["cause_id"] == "not-applicable-relay-policy"
    assert direct["summary"].startswith("not applicable: the app's RTCConfiguration sets")
    assert only(document, "data.relay")["status"] == "pass"
    relay_req, direct_req = document["requirements"]
    assert relay_req["met"] is True
    assert "data.direct (direct) was skipped: not applicable" in direct_req["missing"]
    limits = only(document, "inputs.ice-config")["details"]["cannot"]
    assert limits[0] == "connect directly (host and srflx candidates are never used)"


def test_an_expired_credential_is_explained_once(lab: Lab) -> None:
    expired = issue(SECRET, "app", 60, time.time() - 3600)
    code, document = lab.cli(
        "all", lab.udp, "--username", expired.username, "--credential", expired.password,
        "--only", "turn,gather,data",
    )  # fmt: skip
    assert code == 1
    allocate = only(document, "turn.allocate", lab.udp)
    assert allocate["cause_id"] == "credential-expired" and allocate["see"] is None
    later = [*results_of(document, "gather.relay"), *results_of(document, "data.relay")]
    assert [r["cause_id"] for r in later] == ["credential-expired"] * 2, later
    for result in later:
        assert result["see"] == f"turn.allocate ({lab.udp})"
        assert result["fix"] == "see turn.allocate"
        assert allocate["fix"] != result["fix"]


def test_a_credential_far_ahead_warns_with_the_issuers_offset(lab: Lab) -> None:
    code, document = lab.cli(
        "all", lab.udp, "--secret", SECRET, "--rest-ttl", "200000", "--only", "credentials,turn"
    )
    assert code == 0
    expiry = only(document, "credentials.expiry")
    assert expiry["status"] == "warn" and expiry["cause_id"] == "credential-long-lived"
    assert "clock skew" in expiry["cause"] and "oversized TTL" in expiry["cause"]
    assert only(document, "turn.allocate")["status"] == "pass"
    # an issuer whose clock runs two days ahead mints a 1 h credential: the offset tells
    issuer_now = time.time() + 2 * 86400
    skewed = issue(SECRET, "app", 3600, issuer_now)
    code, document = lab.cli(
        "all", lab.udp, "--username", skewed.username, "--credential", skewed.password,
        "--server-date", str(int(issuer_now)), "--only", "credentials,turn",
    )  # fmt: skip
    assert code == 0, document["verdict"]
    expiry = only(document, "credentials.expiry")
    assert expiry["status"] == "warn"
    assert abs(expiry["metrics"]["issuer_clock_offset_s"] - 2 * 86400) < 5
    assert "Clock skew is the cause" in expiry["cause"]
    assert only(document, "turn.allocate")["status"] == "pass"
