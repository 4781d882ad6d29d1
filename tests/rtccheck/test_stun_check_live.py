"""`rtccheck stun` end to end against our stun-server and coturn on loopback.

Servers run as subprocesses on free ports of 127.0.0.1 (and 127.0.0.2 for RFC 5780). TLS uses a
throwaway CA made per module and trusted through SSL_CERT_FILE for the run.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rtccheck_servers import (
    Certs,
    CoturnOptions,
    Running,
    coturn_available,
    free_ports,
    make_certs,
    only,
    run_cli,
    running,
    start_coturn,
    stop,
    stun_server_argv,
    venv_script,
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("stun-certs"), ["127.0.0.1"])


@pytest.fixture(scope="module")
def stun_server(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("stun-server")
    port = free_ports(2, ("127.0.0.1", "127.0.0.2"))
    tls_port = free_ports(1)
    argv = stun_server_argv(port, certs=certs, tls_port=tls_port)
    with running(argv, directory / "stun-server.log", port) as server:
        server.tls_port = tls_port
        yield server


def _trusting(certs: Certs) -> dict[str, str]:
    return {"SSL_CERT_FILE": str(certs.ca)}


def test_binding_over_udp_tcp_and_tls_passes(stun_server: Running, certs: Certs) -> None:
    plain = f"stun:127.0.0.1:{stun_server.port}"
    secure = f"stuns:127.0.0.1:{stun_server.tls_port}"
    code, document = run_cli("stun", plain, secure, "--require", "stun", env=_trusting(certs))
    assert code == 0, document
    udp, tcp = only(document, "stun.udp"), only(document, "stun.tcp")
    tls = only(document, "stun.tls")
    for result in (udp, tcp, tls):
        assert result["status"] == "pass", result
        assert result["details"]["mapped_address"].startswith("127.0.0.1:")
        assert result["details"]["behind_nat"] is False
        assert result["metrics"]["rtt_ms"] >= 0
    assert udp["details"]["rfc5780"] is True
    assert udp["details"]["other_address"] == f"127.0.0.2:{stun_server.port + 1}"
    assert tls["details"]["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert udp["capabilities"] == ["stun"] and tcp["capabilities"] == []
    assert document["requirements"][0]["met"] is True


def test_udp_listener_absent_fails_and_tcp_only_warns() -> None:
    port = free_ports(1)
    code, document = run_cli("stun", f"stun:127.0.0.1:{port}", "--timeout", "1")
    assert code == 1
    udp, tcp = only(document, "stun.udp"), only(document, "stun.tcp")
    assert udp["status"] == "fail"
    assert udp["cause_id"] == "udp-port-unreachable"
    assert tcp["status"] == "warn"
    assert tcp["cause_id"] == "connection-refused"


def test_tls_name_mismatch(stun_server: Running, certs: Certs) -> None:
    uri = f"stuns:localhost:{stun_server.tls_port}"  # the certificate names 127.0.0.1 only
    code, document = run_cli("stun", uri, env=_trusting(certs))
    assert code == 1
    result = only(document, "stun.tls")
    assert result["status"] == "fail"
    assert result["cause_id"] == "tls-name-mismatch"
    assert "localhost" in result["cause"]


def test_tls_untrusted_certificate(stun_server: Running, tmp_path: Path) -> None:
    empty_store = tmp_path / "empty.pem"
    empty_store.write_text("")
    uri = f"stuns:127.0.0.1:{stun_server.tls_port}"
    code, document = run_cli("stun", uri, env={"SSL_CERT_FILE": str(empty_store)})
    assert code == 1
    assert only(document, "stun.tls")["cause_id"] == "tls-untrusted"


def test_ca_file_option_is_trusted(stun_server: Running, certs: Certs, tmp_path: Path) -> None:
    empty_store = tmp_path / "empty.pem"
    empty_store.write_text("")
    uri = f"stuns:127.0.0.1:{stun_server.tls_port}"
    code, document = run_cli(
        "stun", uri, "--ca-file", str(certs.ca), env={"SSL_CERT_FILE": str(empty_store)}
    )
    assert code == 0, document
    assert only(document, "stun.tls")["status"] == "pass"


def test_tls_to_a_plain_port_is_a_handshake_failure(stun_server: Running) -> None:
    code, document = run_cli("stun", f"stuns:127.0.0.1:{stun_server.port}", "--timeout", "2")
    assert code == 1
    assert only(document, "stun.tls")["cause_id"] == "tls-handshake-failed"


def test_exit_codes_through_the_console_script(stun_server: Running) -> None:
    script = venv_script("rtccheck")
    good = subprocess.run(
        [script, "stun", f"stun:127.0.0.1:{stun_server.port}", "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    usage = subprocess.run(
        [script, "stun", "--json"], check=False, capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2
    assert "give at least one server" in usage.stderr and usage.stdout == ""


@pytest.mark.interop
@pytest.mark.skipif(not coturn_available(), reason="coturn's turnserver is not installed")
def test_coturn_answers_binding_with_rfc5780(tmp_path: Path) -> None:
    coturn = start_coturn(tmp_path, CoturnOptions(rfc5780=True))
    try:
        code, document = run_cli("stun", f"stun:127.0.0.1:{coturn.port}")
    finally:
        stop(coturn)
    assert code == 0, document
    udp = only(document, "stun.udp")
    assert udp["details"]["rfc5780"] is True
    assert udp["details"]["software"].startswith("Coturn")
    assert only(document, "stun.tcp")["status"] == "pass"
