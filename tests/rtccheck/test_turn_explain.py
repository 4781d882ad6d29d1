"""How the stun and turn checks explain what they saw: pure functions, no sockets.

Address scopes, the relay sanity judgement, TURN error codes, refused credentials (with the
credentials check's analysis), transport failures, and which probes the checks plan.
"""

from __future__ import annotations

import ssl

import pytest

from rtccheck.address_scope import Scope, scope_of
from rtccheck.checks import stun, turn
from rtccheck.checks.base import CheckOptions
from rtccheck.credential_service import ServerClock
from rtccheck.explain.transport import explain_failure
from rtccheck.explain.turn_errors import (
    Rejected,
    explain_error,
    explain_rejected_credentials,
    explain_unauthorized,
)
from rtccheck.option_values import parse_port_range
from rtccheck.probe.connect import ServerEndpoint
from rtccheck.probe.errors import FailureKind, ProbeError, from_os_error
from rtccheck.relay_sanity import judge_relay
from rtccheck.results import Status
from rtccheck.tlsinfo.trust import certificate_diagnosis
from rtccheck.uri import parse_uri
from turn_relay.auth.credentials import rest_password

NOW = 1_700_000_000.0
SECRET = "s3cret"


@pytest.mark.parametrize(
    ("address", "scope"),
    [
        ("127.0.0.1", Scope.LOOPBACK),
        ("::1", Scope.LOOPBACK),
        ("0.0.0.0", Scope.UNSPECIFIED),
        ("169.254.169.254", Scope.LINK_LOCAL),
        ("10.1.2.3", Scope.PRIVATE),
        ("192.168.0.1", Scope.PRIVATE),
        ("fd00::5", Scope.PRIVATE),
        ("100.64.0.1", Scope.CARRIER_NAT),
        ("224.0.0.1", Scope.MULTICAST),
        ("::ffff:10.0.0.1", Scope.PRIVATE),
        ("203.0.113.1", Scope.PUBLIC),  # documentation ranges stand for public addresses
        ("198.51.100.7", Scope.PUBLIC),
        ("8.8.8.8", Scope.PUBLIC),
    ],
)
def test_address_scopes(address: str, scope: Scope) -> None:
    assert scope_of(address) is scope


# ---------------------------------------------------------------- relay sanity


def test_public_relay_passes() -> None:
    judgement = judge_relay(("203.0.113.5", 50000), "203.0.113.5")
    assert judgement.status is Status.PASS and judgement.cause_id is None


def test_private_relay_behind_a_public_server_warns_with_the_fix() -> None:
    judgement = judge_relay(("10.0.0.5", 50000), "203.0.113.5")
    assert judgement.status is Status.WARN
    assert judgement.cause_id == "relay-private-address"
    assert judgement.diagnosis is not None
    assert judgement.diagnosis.cause.startswith("relay advertises a private address: remote peers")
    assert "--external-address" in judgement.diagnosis.fix


def test_private_relay_advertised_by_a_loopback_server_warns_too() -> None:
    judgement = judge_relay(("10.20.30.40", 50000), "127.0.0.1")
    assert judgement.status is Status.WARN and judgement.cause_id == "relay-private-address"


def test_relay_in_the_servers_own_private_scope_is_a_private_deployment() -> None:
    assert judge_relay(("127.0.0.1", 50000), "127.0.0.1").status is Status.PASS
    assert judge_relay(("10.0.0.9", 50000), "10.0.0.5").status is Status.PASS


def test_unspecified_unexpected_and_out_of_range_relays_fail() -> None:
    assert judge_relay(("0.0.0.0", 1), "203.0.113.5").cause_id == "relay-unspecified"
    unexpected = judge_relay(("203.0.113.5", 50000), "x", expect_address="203.0.113.9")
    assert unexpected.status is Status.FAIL
    assert unexpected.cause_id == "relay-address-unexpected"
    same = judge_relay(("203.0.113.9", 50000), "x", expect_address="::ffff:203.0.113.9")
    assert same.status is Status.PASS
    outside = judge_relay(("203.0.113.5", 40000), "x", expect_ports=(49152, 65535))
    assert outside.status is Status.FAIL
    assert outside.cause_id == "relay-port-outside-range"
    inside = judge_relay(("203.0.113.5", 49152), "x", expect_ports=(49152, 65535))
    assert inside.status is Status.PASS


def test_port_range_parsing() -> None:
    assert parse_port_range("49152-65535") == (49152, 65535)
    for bad in ("49152", "a-b", "5-1", "0-10"):
        with pytest.raises(ValueError, match=r"port range|MIN"):
            parse_port_range(bad)


# ---------------------------------------------------------------- TURN error codes


@pytest.mark.parametrize(
    ("code", "cause_id", "words"),
    [
        (403, "forbidden", "Forbidden"),
        (437, "allocation-mismatch", "5-tuple"),
        (438, "stale-nonce", "stale"),
        (441, "wrong-credentials", "other credentials"),
        (442, "unsupported-transport", "UDP"),
        (486, "allocation-quota-reached", "quota"),
        (508, "insufficient-capacity", "port range"),
        (300, "try-alternate", "another server"),
        (599, "error-response", "599"),
    ],
)
def test_error_codes_are_explained(code: int, cause_id: str, words: str) -> None:
    explanation = explain_error(code, f"{code} Some Reason", "Allocate")
    assert explanation.cause_id == cause_id
    assert words in explanation.cause
    assert explanation.summary == f"Allocate answered {code} Some Reason"
    assert explanation.fix


def test_a_401_without_credentials_is_a_request_for_them() -> None:
    assert explain_unauthorized("turnkit", have_credentials=False).cause_id == "no-credentials"
    assert explain_unauthorized(None, have_credentials=True).cause_id == "bad-challenge"


def _rejected(username: str, credential: str | None) -> Rejected:
    return Rejected(username, credential, "turnkit", "turn:192.0.2.1")


def test_rejected_expired_rest_username() -> None:
    username = f"{int(NOW) - 60}:alice"
    found = explain_rejected_credentials(
        _rejected(username, rest_password(SECRET, username)), CheckOptions(), NOW
    )
    assert found.cause_id == "credential-expired"
    assert "expired" in found.summary


def test_rejected_because_the_servers_clock_is_ahead() -> None:
    username = f"{int(NOW) + 600}:alice"
    options = CheckOptions(server_clock=ServerClock(3600.0, "--server-date"))
    found = explain_rejected_credentials(_rejected(username, "x"), options, NOW)
    assert found.cause_id == "clock-skew"
    assert "server's clock" in found.cause


def test_rejected_reversed_username() -> None:
    found = explain_rejected_credentials(_rejected("alice:1700003600", "x"), CheckOptions(), NOW)
    assert found.cause_id == "username-malformed"
    assert "reversed" in found.summary


def test_rejected_password_that_does_not_match_the_given_secret() -> None:
    username = f"{int(NOW) + 3600}:alice"
    options = CheckOptions(secret=SECRET)
    found = explain_rejected_credentials(_rejected(username, "not-it"), options, NOW)
    assert found.cause_id == "wrong-password"


def test_rejected_although_the_password_matches_the_secret_means_another_secret() -> None:
    username = f"{int(NOW) + 3600}:alice"
    options = CheckOptions(secret=SECRET)
    found = explain_rejected_credentials(
        _rejected(username, rest_password(SECRET, username)), options, NOW
    )
    assert found.cause_id == "wrong-secret"
    assert "another secret" in found.cause


def test_rejected_shortly_before_expiry_may_be_clock_skew() -> None:
    username = f"{int(NOW) + 120}:alice"
    options = CheckOptions(secret=SECRET)
    found = explain_rejected_credentials(
        _rejected(username, rest_password(SECRET, username)), options, NOW
    )
    assert found.cause_id == "clock-skew-or-wrong-secret"
    assert "--server-date" in found.cause


def test_rejected_static_user_and_rest_user_without_secret() -> None:
    static = explain_rejected_credentials(_rejected("alice", "pw"), CheckOptions(), NOW)
    assert static.cause_id == "credentials-rejected" and "unknown user" in static.cause
    rest = explain_rejected_credentials(
        _rejected(f"{int(NOW) + 3600}:alice", "pw"), CheckOptions(), NOW
    )
    assert rest.cause_id == "credentials-rejected" and "another secret" in rest.cause


# ---------------------------------------------------------------- transport failures


@pytest.mark.parametrize(
    ("transport", "kind", "during_connect", "cause_id"),
    [
        ("udp", FailureKind.TIMEOUT, False, "udp-no-answer"),
        ("tcp", FailureKind.TIMEOUT, True, "connect-timeout"),
        ("tcp", FailureKind.TIMEOUT, False, "stream-no-answer"),
        ("udp", FailureKind.REFUSED, False, "udp-port-unreachable"),
        ("tcp", FailureKind.REFUSED, True, "connection-refused"),
        ("tls", FailureKind.CLOSED, True, "tls-handshake-failed"),
        ("tcp", FailureKind.CLOSED, False, "connection-closed"),
        ("tls", FailureKind.TLS_NAME_MISMATCH, True, "tls-name-mismatch"),
        ("tls", FailureKind.TLS_UNTRUSTED, True, "tls-untrusted"),
        ("tls", FailureKind.TLS_EXPIRED, True, "tls-expired"),
        ("tls", FailureKind.TLS_HANDSHAKE, True, "tls-handshake-failed"),
        ("udp", FailureKind.UNREACHABLE, False, "unreachable"),
        ("udp", FailureKind.RESOLVE, False, "dns-failure"),
        ("udp", FailureKind.MALFORMED, False, "malformed-answer"),
        ("udp", FailureKind.OS_ERROR, False, "socket-error"),
    ],
)
def test_transport_failures_are_explained(
    transport: str, kind: FailureKind, during_connect: bool, cause_id: str
) -> None:
    endpoint = ServerEndpoint("192.0.2.1", 3478, transport)  # type: ignore[arg-type]
    error = ProbeError(kind, "detail", during_connect=during_connect)
    explanation = explain_failure(error, endpoint, 2.0)
    assert explanation.cause_id == cause_id
    assert explanation.cause and explanation.fix and explanation.summary


@pytest.mark.parametrize(
    ("verify_code", "cause_id"),
    [
        (62, "tls-name-mismatch"),
        (64, "tls-name-mismatch"),
        (10, "tls-expired"),
        (9, "tls-not-yet-valid"),
        (18, "tls-self-signed"),
        (19, "tls-untrusted"),
        (20, "tls-untrusted"),
        (50, "tls-verify-failed"),
    ],
)
def test_refused_certificates_get_the_tls_checks_cause_ids(verify_code: int, cause_id: str) -> None:
    """The probes (stun, turn) explain a refused certificate as the tls check does."""
    refused = ssl.SSLCertVerificationError("refused")
    refused.verify_code, refused.verify_message = verify_code, "OpenSSL says no"
    error = from_os_error(refused)
    assert error.verify_code == verify_code
    endpoint = ServerEndpoint("turn.example.test", 5349, "tls")
    found = explain_failure(error, endpoint, 2.0)
    assert found.cause_id == cause_id
    assert found.summary.startswith("TLS to turn.example.test:5349 failed: ")
    assert found.cause_id == certificate_diagnosis(verify_code, "", "x", None).cause_id


def test_udp_timeout_says_what_the_brief_says() -> None:
    endpoint = ServerEndpoint("192.0.2.1", 3478, "udp")
    explanation = explain_failure(ProbeError(FailureKind.TIMEOUT), endpoint, 2.0)
    assert explanation.cause.startswith("UDP to 192.0.2.1:3478 got no answer: a firewall drops UDP")
    assert "nothing listens" in explanation.cause


# ---------------------------------------------------------------- planning


def test_stun_plans_udp_and_tcp_for_stun_and_tls_for_stuns() -> None:
    targets = tuple(
        parse_uri(u)
        for u in ("stun:192.0.2.1", "stuns:192.0.2.1", "stun:192.0.2.1:3478", "turn:192.0.2.1")
    )
    probes = stun.plan(targets)
    assert [(p.endpoint.transport, p.endpoint.port) for p in probes] == [
        ("udp", 3478),
        ("tcp", 3478),
        ("tls", 5349),
    ]
    assert [p.required for p in probes] == [True, False, True]


def test_turn_plans_the_uri_transport_and_skips_dtls() -> None:
    targets = tuple(
        parse_uri(u)
        for u in (
            "turn:192.0.2.1",
            "turn:192.0.2.1?transport=tcp",
            "turns:192.0.2.1:443",
            "turns:192.0.2.1?transport=udp",
            "stun:192.0.2.1",
            "turn:192.0.2.1:3478",
        )
    )
    planned, skipped = turn.plan(targets)
    assert [(t.endpoint.transport, t.endpoint.port) for t in planned] == [
        ("udp", 3478),
        ("tcp", 3478),
        ("tls", 443),
    ]
    assert [t.capability for t in planned] == [("relay-udp",), ("relay-tcp",), ("relay-tls",)]
    assert [s.status for s in skipped] == [Status.SKIP]
