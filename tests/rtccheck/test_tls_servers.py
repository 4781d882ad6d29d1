"""`rtccheck tls` against real servers on loopback: coturn's turnserver, our turn-relay and our
stun-server, each with a throwaway certificate; the JSON names the cause of each failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rtccheck_ice_servers import HOST, coturn, coturn_missing, make_certs, stun_server
from rtccheck_ice_servers import turn_relay as relay
from rtccheck_schema_validator import report_errors
from turnkit_testing.tls import CertFiles

from rtccheck.cli import main

needs_coturn = pytest.mark.skipif(coturn_missing(), reason="coturn's turnserver is not installed")


def run_tls(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["tls", *args, "--timeout", "3", "--json"])
    document: dict[str, Any] = json.loads(result.stdout)
    assert report_errors(document) == []
    assert document["exit_code"] == result.exit_code
    return document


def only_result(document: dict[str, Any]) -> dict[str, Any]:
    (result,) = document["results"]
    assert result["check"] == "tls.handshake"
    return dict(result)


def coturn_tls(tmp_path: Path, certs: CertFiles, *extra: str) -> dict[str, Any]:
    with coturn(tmp_path / "coturn", certs=certs) as server:
        return only_result(run_tls(f"turns:{HOST}:{server.tls_port}", *extra))


@pytest.mark.interop
@needs_coturn
def test_coturn_certificate_from_a_private_ca_passes_with_ca_file(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    result = coturn_tls(tmp_path, certs, "--ca-file", str(certs.ca))
    assert result["status"] == "pass", result
    assert result["details"]["name_match"] is True
    assert result["metrics"]["protocol"] in ("TLSv1.2", "TLSv1.3")


@pytest.mark.interop
@needs_coturn
def test_coturn_name_mismatch(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", names=("turn.example.test",))
    result = coturn_tls(tmp_path, certs, "--ca-file", str(certs.ca))
    assert result["status"] == "fail"
    assert result["cause_id"] == "tls-name-mismatch"
    assert result["summary"] == f"the certificate does not match {HOST}"


@pytest.mark.interop
@needs_coturn
def test_coturn_expired_certificate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", expired=True)
    result = coturn_tls(tmp_path, certs, "--ca-file", str(certs.ca))
    assert result["status"] == "fail"
    assert result["cause_id"] == "tls-expired"
    assert result["metrics"]["days_left"] < 0


@pytest.mark.interop
@needs_coturn
def test_coturn_self_signed_without_ca_file(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", self_signed=True)
    result = coturn_tls(tmp_path, certs)
    assert result["status"] == "fail"
    assert result["cause_id"] == "tls-self-signed"
    assert "--ca-file" in result["fix"]


def test_turn_relay_tls_port(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    with relay(tmp_path / "relay", certs=certs) as server:
        good = only_result(run_tls(f"turns:{HOST}:{server.tls_port}", "--ca-file", str(certs.ca)))
        untrusted = only_result(run_tls(f"turns:{HOST}:{server.tls_port}"))
    assert good["status"] == "pass", good
    assert untrusted["cause_id"] == "tls-untrusted"


def test_stun_server_stuns(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", names=("stun.example.test",))
    with stun_server(tmp_path / "stun", certs=certs) as server:
        document = run_tls(f"stuns:{HOST}:{server.tls_port}", "--ca-file", str(certs.ca))
    result = only_result(document)
    assert result["cause_id"] == "tls-name-mismatch"
    assert document["exit_code"] == 1


def test_bad_ca_file_is_a_usage_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    result = CliRunner().invoke(main, ["tls", f"turns:{HOST}:5349", "--ca-file", str(bogus)])
    assert result.exit_code == 2
    assert "--ca-file" in result.output and "not a PEM CA certificate file" in result.output
