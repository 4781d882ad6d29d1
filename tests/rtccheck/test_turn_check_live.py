"""`rtccheck turn` end to end against our turn-relay and coturn's turnserver on loopback.

Every failure case is set up on purpose and must give its cause_id in the JSON: wrong secret,
expired credential, clock skew, a relay advertising a private address, no UDP listener, TLS name
mismatch, quota (486) and capacity (508). Exit codes 0/1 are checked on every run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rtccheck_servers import (
    SECRET,
    Certs,
    CoturnOptions,
    RelayOptions,
    coturn_available,
    make_certs,
    only,
    results_of,
    run_cli,
    start_coturn,
    start_turn_relay,
    stop,
)

from rtccheck.checks.base import CheckContext
from rtccheck.probe import Credentials, ServerEndpoint, TurnSession, allocation, connect
from rtccheck.uri import parse_uri
from turn_relay.auth.credentials import issue, rest_password

ADVERTISED_PRIVATE = "10.20.30.40"
LOOPBACK_PEERS = ("127.0.0.0/8",)
COTURN = pytest.param(
    "coturn",
    marks=[
        pytest.mark.interop,
        pytest.mark.skipif(not coturn_available(), reason="coturn is not installed"),
    ],
)
KINDS = ["turnkit", COTURN]


@dataclass(frozen=True)
class Server:
    kind: str
    port: int
    tls_port: int | None

    def uri(self, transport: str = "udp", host: str = "127.0.0.1") -> str:
        if transport == "tls":
            return f"turns:{host}:{self.tls_port}"
        return f"turn:{host}:{self.port}?transport={transport}"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("turn-certs"), ["127.0.0.1"])


@contextmanager
def _serving(kind: str, directory: Path, certs: Certs | None, **setup: object) -> Iterator[Server]:
    if kind == "coturn":
        process = start_coturn(directory, CoturnOptions(tls=certs, **setup))  # type: ignore[arg-type]
    else:
        options = RelayOptions(tls=certs, allowed_peers=LOOPBACK_PEERS, **setup)  # type: ignore[arg-type]
        process = start_turn_relay(directory, options)
    try:
        yield Server(kind, process.port, process.tls_port)
    finally:
        stop(process)


@pytest.fixture(scope="module", params=KINDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, certs: Certs
) -> Iterator[Server]:
    kind: str = request.param
    with _serving(kind, tmp_path_factory.mktemp(kind), certs) as running:
        yield running


def _trusting(certs: Certs) -> dict[str, str]:
    return {"SSL_CERT_FILE": str(certs.ca)}


# ---------------------------------------------------------------- success


def test_allocation_over_udp_tcp_and_tls(server: Server, certs: Certs) -> None:
    uris = [server.uri("udp"), server.uri("tcp"), server.uri("tls")]
    code, document = run_cli(
        "turn",
        *uris,
        "--secret",
        SECRET,
        "--require",
        "relay-udp,relay-tcp,relay-tls",
        env=_trusting(certs),
    )
    assert code == 0, document
    for uri, capability in zip(uris, ("relay-udp", "relay-tcp", "relay-tls"), strict=True):
        allocated = only(document, "turn.allocate", uri)
        assert allocated["status"] == "pass", allocated
        assert allocated["capabilities"] == [capability]
        assert allocated["details"]["released"] is True
        assert allocated["details"]["relayed_address"].startswith("127.0.0.")
        assert allocated["metrics"]["lifetime_s"] > 0
        assert only(document, "turn.relay-address", uri)["status"] == "pass"
        data = only(document, "turn.relay-data", uri)
        assert data["status"] == "pass", data
        assert data["details"] == {"send_indication": True, "channel_data": True, "reply": True}
    assert all(requirement["met"] for requirement in document["requirements"])


def test_no_credentials_is_a_skip_that_names_the_realm(server: Server) -> None:
    code, document = run_cli("turn", server.uri("udp"))
    assert code == 0
    result = only(document, "turn.allocate")
    assert result["status"] == "skip"
    assert result["cause_id"] == "no-credentials"
    assert result["details"]["realm"] in ("turnkit.test", "coturn.test")


# ---------------------------------------------------------------- credentials refused


def _refused(document: dict[str, Any]) -> dict[str, Any]:
    result = only(document, "turn.allocate")
    assert result["status"] == "fail", result
    assert result["metrics"]["error_code"] == 401
    return result


def test_wrong_secret(server: Server) -> None:
    code, document = run_cli("turn", server.uri("udp"), "--secret", "not-the-secret")
    assert code == 1
    result = _refused(document)
    assert result["cause_id"] == "wrong-secret"
    assert "another secret" in result["cause"]


def test_expired_credential(server: Server) -> None:
    username = f"{int(time.time()) - 120}:alice"
    password = rest_password(SECRET, username)
    code, document = run_cli(
        "turn", server.uri("tcp"), "--username", username, "--credential", password
    )
    assert code == 1
    result = _refused(document)
    assert result["cause_id"] == "credential-expired"


def test_clock_skew(server: Server) -> None:
    """This machine's clock runs two hours behind the server's: credentials minted here with
    a one-hour ttl are expired for the server; the server's time (--server-date) tells why."""
    real_now = time.time()
    code, document = run_cli(
        "turn",
        server.uri("udp"),
        "--secret",
        SECRET,
        "--rest-ttl",
        "3600",
        "--server-date",
        str(int(real_now)),
        now=real_now - 7200,
    )
    assert code == 1
    result = _refused(document)
    assert result["cause_id"] == "clock-skew"
    assert "server's clock" in result["cause"]


# ---------------------------------------------------------------- transport failures


def test_tls_name_mismatch(server: Server, certs: Certs) -> None:
    code, document = run_cli(
        "turn", server.uri("tls", host="localhost"), "--secret", SECRET, env=_trusting(certs)
    )
    assert code == 1
    result = only(document, "turn.allocate")
    assert result["status"] == "fail"
    assert result["cause_id"] == "tls-name-mismatch"
    assert result["capabilities"] == ["relay-tls"]


@pytest.mark.parametrize("kind", KINDS)
def test_udp_listener_absent(kind: str, tmp_path: Path) -> None:
    with _serving(kind, tmp_path, None, udp=False) as no_udp:
        code, document = run_cli(
            "turn", no_udp.uri("udp"), no_udp.uri("tcp"), "--secret", SECRET, "--timeout", "2"
        )
    assert code == 1
    udp = only(document, "turn.allocate", no_udp.uri("udp"))
    assert udp["status"] == "fail"
    assert udp["cause_id"] in ("udp-port-unreachable", "udp-no-answer")
    assert only(document, "turn.allocate", no_udp.uri("tcp"))["status"] == "pass"


# ---------------------------------------------------------------- relay sanity


@pytest.mark.parametrize("kind", KINDS)
def test_relay_advertising_a_private_address(kind: str, tmp_path: Path) -> None:
    with _serving(kind, tmp_path, None, external=ADVERTISED_PRIVATE) as advertising:
        code, document = run_cli("turn", advertising.uri("udp"), "--secret", SECRET)
    assert code == 0  # a warning
    sanity = only(document, "turn.relay-address")
    assert sanity["status"] == "warn"
    assert sanity["cause_id"] == "relay-private-address"
    assert sanity["cause"].startswith("relay advertises a private address: remote peers can't")
    assert sanity["metrics"]["relayed_address"].startswith(ADVERTISED_PRIVATE + ":")
    data = only(document, "turn.relay-data")
    assert data["status"] == "skip"  # no data is sent to an address that is not ours


def _context(uri: str) -> CheckContext:
    server = parse_uri(uri)
    minted = issue(SECRET, "rtccheck", 600, time.time())
    return CheckContext((server.with_credentials(minted.username, minted.password),), 3.0)


def test_expected_relay_address_and_port_range(tmp_path: Path) -> None:
    """--expect-relay-address / --expect-relay-ports, as an operator passes them."""
    with _serving("turnkit", tmp_path, None, port_range=(40100, 40199)) as relay:
        uri = relay.uri("udp")
        base = ("turn", uri, "--secret", SECRET)
        code_address, unexpected = run_cli(*base, "--expect-relay-address", "127.0.0.9")
        code_ports, outside = run_cli(*base, "--expect-relay-ports", "1-2")
        code_fine, fine = run_cli(
            *base, "--expect-relay-address", "127.0.0.1", "--expect-relay-ports", "40100-40199"
        )
    assert (code_address, code_ports, code_fine) == (1, 1, 0)
    wrong_address = only(unexpected, "turn.relay-address", uri)
    assert (wrong_address["status"], wrong_address["cause_id"]) == (
        "fail",
        "relay-address-unexpected",
    )
    assert only(unexpected, "turn.relay-data", uri)["status"] == "skip"
    wrong_port = only(outside, "turn.relay-address", uri)
    assert (wrong_port["status"], wrong_port["cause_id"]) == ("fail", "relay-port-outside-range")
    assert only(fine, "turn.relay-address", uri)["status"] == "pass"
    assert all(r["status"] == "pass" for r in fine["results"])


def test_expected_relay_address_with_coturn_too(tmp_path: Path) -> None:
    """The same check against a relay nobody here wrote (coturn's turnserver)."""
    if not coturn_available():
        pytest.skip("coturn is not installed")
    with _serving("coturn", tmp_path, None) as relay:
        code, document = run_cli(
            "turn", relay.uri("udp"), "--secret", SECRET, "--expect-relay-address", "127.0.0.9"
        )
    assert code == 1
    assert only(document, "turn.relay-address")["cause_id"] == "relay-address-unexpected"


# ---------------------------------------------------------------- quotas, capacity, cleanup


@contextmanager
def holding_allocations(port: int, username: str, password: str, count: int) -> Iterator[None]:
    """Keep ``count`` UDP allocations on 127.0.0.1:``port`` while the block runs."""
    ready, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        async with AsyncExitStack() as stack:
            for _ in range(count):
                endpoint = ServerEndpoint("127.0.0.1", port, "udp")
                connection = await stack.enter_async_context(
                    connect(endpoint, clock=time.monotonic, timeout=3.0)
                )
                session = TurnSession(
                    connection.client,
                    Credentials(username, password),
                    timeout=3.0,
                    reliable=False,
                )
                await stack.enter_async_context(allocation(session))
            ready.set()
            while not release.is_set():
                await asyncio.sleep(0.02)

    def main() -> None:
        try:
            asyncio.run(hold())
        except BaseException as error:
            failure.append(error)
            ready.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10), "allocations not made"
    assert not failure, failure
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def test_allocations_are_deleted_and_quota_486_is_explained(tmp_path: Path) -> None:
    minted = issue(SECRET, "quota", 600, time.time())
    credentials = ("--username", minted.username, "--credential", minted.password)
    with _serving("turnkit", tmp_path, None, max_allocations_per_user=2) as relay:
        for _ in range(2):  # two allocations per run: they must be deleted each time
            code, document = run_cli("turn", relay.uri("udp"), *credentials)
            assert code == 0, document
            assert only(document, "turn.relay-data")["status"] == "pass"
        with holding_allocations(relay.port, minted.username, minted.password, 2):
            code, document = run_cli("turn", relay.uri("udp"), *credentials)
    assert code == 1
    result = only(document, "turn.allocate")
    assert result["metrics"]["error_code"] == 486
    assert result["cause_id"] == "allocation-quota-reached"


def test_insufficient_capacity_508_is_explained(tmp_path: Path) -> None:
    minted = issue(SECRET, "capacity", 600, time.time())
    with (
        _serving("turnkit", tmp_path, None, port_range=(40300, 40300)) as relay,
        holding_allocations(relay.port, minted.username, minted.password, 1),
    ):
        code, document = run_cli("turn", relay.uri("udp"), "--secret", SECRET)
    assert code == 1
    result = only(document, "turn.allocate")
    assert result["metrics"]["error_code"] == 508
    assert result["cause_id"] == "insufficient-capacity"
    assert results_of(document, "turn.relay-data") == []
