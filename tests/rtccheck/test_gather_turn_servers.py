"""`rtccheck gather` against coturn's turnserver and our turn-relay on loopback: relay candidates
over UDP, TCP and TLS, and failures set up on purpose with their cause in the JSON."""

from __future__ import annotations

import json
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
    free_port,
    serve_with_certs,
)
from rtccheck_schema_validator import report_errors
from turnkit_testing.tls import CertFiles

from rtccheck.cli import main


@pytest.fixture(params=TLS_SERVERS)
def tls_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Server, CertFiles]]:
    yield from serve_with_certs(request.param, tmp_path)


def run_gather(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["gather", *args, "--timeout", "3", "--json"])
    document: dict[str, Any] = json.loads(result.stdout)
    assert report_errors(document) == []
    return document


def results_for(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{r['check']} {r['target']}": r for r in document["results"]}


def uris(server: Server) -> list[str]:
    return [
        f"stun:{HOST}:{server.port}",
        f"turn:{HOST}:{server.port}",
        f"turn:{HOST}:{server.port}?transport=tcp",
        f"turns:{HOST}:{server.tls_port}",
    ]


def test_every_candidate_over_udp_tcp_and_tls(tls_server: tuple[Server, CertFiles]) -> None:
    server, certs = tls_server
    stun, udp, tcp, tls = uris(server)
    document = run_gather(stun, udp, tcp, tls, "--secret", SECRET, "--ca-file", str(certs.ca))
    results = results_for(document)
    assert document["status"] == "pass", document["verdict"]
    assert "127.0.0.1" in results["gather.host local"]["summary"]
    srflx = results[f"gather.srflx {stun}"]
    assert srflx["metrics"]["srflx"] == 1
    for uri, protocol in ((udp, "udp"), (tcp, "tcp"), (tls, "tls")):
        relay = results[f"gather.relay {uri}"]
        candidates = relay["details"]["candidates"]
        relays = [c for c in candidates if c["type"] == "relay"]
        assert len(relays) == 1 and relays[0]["relay_protocol"] == protocol
        assert relays[0]["address"] == HOST and relays[0]["related_address"] == HOST
        assert relays[0]["priority"] < min(
            c["priority"] for c in candidates if c["type"] != "relay"
        )
        assert relay["metrics"]["gathering_ms"] < 3000
    udp_kinds = {c["type"] for c in results[f"gather.relay {udp}"]["details"]["candidates"]}
    assert udp_kinds == {"host", "srflx", "relay"}


def test_wrong_secret_gives_no_relay_candidate(tls_server: tuple[Server, CertFiles]) -> None:
    server, _ = tls_server
    udp = f"turn:{HOST}:{server.port}"
    document = run_gather(udp, "--secret", "not-the-secret")
    relay = results_for(document)[f"gather.relay {udp}"]
    assert relay["status"] == "fail" and document["exit_code"] == 1
    assert relay["cause_id"] == "wrong-secret"
    assert relay["summary"].startswith("no relay candidate: credentials refused (401)")
    assert relay["metrics"]["relay"] == 0


def test_turns_with_an_untrusted_certificate(tls_server: tuple[Server, CertFiles]) -> None:
    server, _ = tls_server
    tls = f"turns:{HOST}:{server.tls_port}"
    relay = results_for(run_gather(tls, "--secret", SECRET))[f"gather.relay {tls}"]
    assert relay["status"] == "fail"
    assert relay["cause_id"] == "tls-untrusted"
    assert "--ca-file" in relay["fix"]


def test_tcp_port_without_listener() -> None:
    tcp = f"turn:{HOST}:{free_port()}?transport=tcp"
    relay = results_for(run_gather(tcp, "--secret", SECRET))[f"gather.relay {tcp}"]
    assert relay["status"] == "fail"
    assert relay["cause_id"] == "connection-refused"
