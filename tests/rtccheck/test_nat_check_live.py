"""`rtccheck nat` end to end on loopback (where there is no NAT: the NAT lab covers real ones).

RFC 5780 against our stun-server and coturn (two addresses, 127.0.0.1 and 127.0.0.2), the
two-server fallback without OTHER-ADDRESS, UDP blocked with TCP still answering, nothing
answering at all, and the mapping-lifetime estimate (asked for explicitly).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rtccheck_servers import (
    CoturnOptions,
    RelayOptions,
    Running,
    coturn_available,
    free_ports,
    only,
    run_cli,
    running,
    start_coturn,
    start_turn_relay,
    stop,
    stun_server_argv,
)


@pytest.fixture(scope="module")
def rfc5780_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("nat-stun")
    port = free_ports(2, ("127.0.0.1", "127.0.0.2"))
    with running(stun_server_argv(port), directory / "stun.log", port) as server:
        yield server


def _assert_open_internet(result: dict[str, object]) -> None:
    metrics = result["metrics"]
    assert isinstance(metrics, dict)
    assert result["status"] == "pass", result
    assert metrics["method"] == "rfc5780"
    assert metrics["mapping"] == "no-nat"
    assert metrics["filtering"] == "endpoint-independent"
    assert metrics["hairpinning"] == "yes"
    assert metrics["port_preservation"] == "yes"
    assert metrics["classic_name"] == "open internet"
    assert metrics["transport"] == "udp"


def test_rfc5780_on_loopback_is_open_internet(rfc5780_server: Running) -> None:
    code, document = run_cli("nat", f"stun:127.0.0.1:{rfc5780_server.port}", "--timeout", "2")
    assert code == 0, document
    result = only(document, "nat.behaviour")
    _assert_open_internet(result)
    observed = result["details"]["observations"]
    assert observed["other_address"] == f"127.0.0.2:{rfc5780_server.port + 1}"
    assert observed["mapped_alternate_address"] == observed["mapped"]
    assert observed["answered_change_ip_and_port"] is True
    assert "open internet" in result["details"]["verdict"]


@pytest.mark.interop
@pytest.mark.skipif(not coturn_available(), reason="coturn is not installed")
def test_rfc5780_against_coturn(tmp_path: Path) -> None:
    coturn = start_coturn(tmp_path, CoturnOptions(rfc5780=True))
    try:
        code, document = run_cli("nat", f"stun:127.0.0.1:{coturn.port}", "--timeout", "2")
    finally:
        stop(coturn)
    assert code == 0, document
    _assert_open_internet(only(document, "nat.behaviour"))


def test_two_plain_servers_are_the_fallback(tmp_path: Path) -> None:
    first, second = free_ports(1), free_ports(1, ("127.0.0.2",))
    plain_a = stun_server_argv(first, alternate=False)
    plain_b = [*stun_server_argv(second, alternate=False)]
    plain_b[plain_b.index(f"127.0.0.1:{second}")] = f"127.0.0.2:{second}"
    with (
        running(plain_a, tmp_path / "a.log", first),
        running(plain_b, tmp_path / "b.log", second, "127.0.0.2"),
    ):
        code, document = run_cli(
            "nat", f"stun:127.0.0.1:{first}", f"stun:127.0.0.2:{second}", "--timeout", "2"
        )
    result = only(document, "nat.behaviour")
    assert result["metrics"]["method"] == "two-servers", result
    assert result["metrics"]["mapping"] == "no-nat"
    assert result["metrics"]["filtering"] == "unknown"
    assert result["details"]["second_server"] == f"stun:127.0.0.2:{second}"
    assert result["details"]["observations"]["mapped_second_server"] is not None
    assert code in (0, 1)


def test_udp_blocked_but_tcp_answers(tmp_path: Path) -> None:
    """turn-relay without a UDP listener still answers Binding over TCP."""
    relay = start_turn_relay(tmp_path, RelayOptions(udp=False))
    try:
        code, document = run_cli("nat", f"turn:127.0.0.1:{relay.port}", "--timeout", "1")
    finally:
        stop(relay)
    assert code == 0  # a warning: calls from here need TURN over TCP
    result = only(document, "nat.behaviour")
    assert result["status"] == "warn"
    assert result["cause_id"] == "udp-blocked"
    assert result["metrics"]["classic_name"] == "UDP blocked"
    assert result["metrics"]["transport"] == "tcp"
    assert "TURN over TCP" in result["details"]["verdict"]


def test_nothing_answers(tmp_path: Path) -> None:
    code, document = run_cli("nat", f"stun:127.0.0.1:{free_ports(1)}", "--timeout", "1")
    assert code == 1
    result = only(document, "nat.behaviour")
    assert result["status"] == "fail"
    assert result["cause_id"] == "no-server-reachable"


def test_mapping_lifetime_only_when_asked(rfc5780_server: Running) -> None:
    uri = f"stun:127.0.0.1:{rfc5780_server.port}"
    code, document = run_cli(
        "nat", uri, "--timeout", "2", "--nat-lifetime", "--nat-lifetime-max", "2"
    )
    assert code == 0
    result = only(document, "nat.behaviour")
    assert result["metrics"]["mapping_lifetime_s"] == 2.0
    assert result["details"]["mapping_lifetime_bounds_s"] == [2.0, None]
    code, plain = run_cli("nat", uri, "--timeout", "2")
    assert code == 0
    assert only(plain, "nat.behaviour")["metrics"]["mapping_lifetime_s"] is None
