"""`rtccheck data` through coturn's turnserver and our turn-relay on loopback: relay-only ICE
agents exchange real packets over UDP, TCP and TLS to the relay; the selected pair proves the
relay carried them; failures set up on purpose give their cause in the JSON. Also: a full
default run against our relay finishes in a few seconds."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rtccheck_ice_servers import (
    HOST,
    SECRET,
    TLS_SERVERS,
    Server,
    coturn,
    coturn_missing,
    make_certs,
    serve_with_certs,
    turn_relay,
)
from rtccheck_schema_validator import report_errors
from turnkit_testing.tls import CertFiles

from rtccheck.cli import main

needs_coturn = pytest.mark.skipif(coturn_missing(), reason="coturn's turnserver is not installed")


@pytest.fixture(params=TLS_SERVERS)
def tls_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Server, CertFiles]]:
    yield from serve_with_certs(request.param, tmp_path)


def run_data(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["data", *args, "--json"])
    document: dict[str, Any] = json.loads(result.stdout)
    assert report_errors(document) == []
    assert document["exit_code"] == result.exit_code
    return document


def by_target(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["target"]: r for r in document["results"]}


def test_data_flows_through_the_relay_on_every_transport(
    tls_server: tuple[Server, CertFiles],
) -> None:
    server, certs = tls_server
    udp, tcp = f"turn:{HOST}:{server.port}", f"turn:{HOST}:{server.port}?transport=tcp"
    tls = f"turns:{HOST}:{server.tls_port}"
    document = run_data(
        udp, tcp, tls, "--secret", SECRET, "--ca-file", str(certs.ca),
        "--require", "data-relay,data-direct",
    )  # fmt: skip
    assert document["status"] == "pass", document["verdict"]
    assert all(outcome["met"] for outcome in document["requirements"])
    results = by_target(document)
    for uri, protocol in ((udp, "udp"), (tcp, "tcp"), (tls, "tls")):
        relay = results[uri]
        assert relay["check"] == "data.relay" and relay["status"] == "pass", relay
        pair = relay["details"]["selected_pair"]
        assert pair["local"]["type"] == "relay" and pair["remote"]["type"] == "relay"
        assert pair["local"]["relay_protocol"] == protocol
        metrics = relay["metrics"]
        assert metrics["packets_sent"] == 100 and metrics["loss_pct"] == 0
        assert 0 < metrics["rtt_p50_ms"] <= metrics["rtt_p95_ms"] < 100
        assert metrics["throughput_mbps"] > 1
    direct = results["direct"]
    assert direct["check"] == "data.direct" and direct["status"] == "pass"
    assert direct["details"]["selected_pair"]["local"]["type"] == "host"


def test_wrong_secret(tls_server: tuple[Server, CertFiles]) -> None:
    server, _ = tls_server
    udp = f"turn:{HOST}:{server.port}"
    document = run_data(udp, "--secret", "not-the-secret", "--timeout", "2")
    relay = by_target(document)[udp]
    assert relay["status"] == "fail" and document["exit_code"] == 1
    assert relay["cause_id"] == "wrong-secret"
    assert relay["summary"].startswith("no relay candidate: credentials refused (401)")


@pytest.mark.interop
@needs_coturn
def test_coturn_peer_policy_stops_the_data(tmp_path: Path) -> None:
    """Allocations work, but coturn refuses loopback peers without --allow-loopback-peers."""
    with coturn(tmp_path, allow_loopback_peers=False) as server:
        udp = f"turn:{HOST}:{server.port}"
        document = run_data(udp, "--secret", SECRET, "--timeout", "1.5")
    relay = by_target(document)[udp]
    assert relay["status"] == "fail"
    assert relay["cause_id"] == "relay-peer-forbidden"
    assert relay["cause"].startswith("Allocation works but no data flows")
    kinds = {c["type"] for c in relay["details"]["gathered"]}
    assert kinds == {"relay"}


def _timed_run(*args: str) -> tuple[dict[str, Any], float]:
    argv = [str(Path(sys.executable).parent / "rtccheck"), *args, "--json"]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
    document: dict[str, Any] = json.loads(done.stdout)
    return document, time.monotonic() - started


def test_full_default_run_against_our_relay_takes_a_few_seconds(tmp_path: Path) -> None:
    """The whole data check (three relay paths and the direct one) in a few seconds, and the
    default run (every family at once) with every gather/data/tls result passing.

    The relay is lenient: a full run makes more than 10 allocations with one minted user from
    one address, beyond turn-relay's default per-user quota (486) and 401 rate limit (dropped
    challenges, retried after seconds)."""
    certs = make_certs(tmp_path / "certs")
    with turn_relay(tmp_path / "relay", certs=certs, lenient=True) as server:
        servers = [
            f"stun:{HOST}:{server.port}",
            f"turn:{HOST}:{server.port}",
            f"turn:{HOST}:{server.port}?transport=tcp",
            f"turns:{HOST}:{server.tls_port}",
        ]
        options = ["--secret", SECRET, "--ca-file", str(certs.ca)]
        data_only, data_s = _timed_run("data", *servers, *options)
        everything, all_s = _timed_run(*servers, *options)
    assert data_only["status"] == "pass" and data_s < 5, f"data took {data_s:.1f} s"
    mine = [
        r for r in everything["results"] if r["check"].split(".")[0] in ("gather", "data", "tls")
    ]
    assert len(mine) == 10 and all(r["status"] == "pass" for r in mine), [
        (r["check"], r["target"], r["summary"]) for r in mine if r["status"] != "pass"
    ]
    assert all_s < 8, f"the default run took {all_s:.1f} s"
