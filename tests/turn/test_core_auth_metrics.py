"""Auth metrics: the 401 challenge every client starts with is not a failure.

A Chromium test found ``turnkit_relay_auth_failures_total{code="401"}`` counting the first 401
of every healthy allocation, so an alert on it fired on healthy traffic. Challenges, refused
credentials (by reason) and 438 Stale Nonce are three separate counters now.
"""

from __future__ import annotations

from turn_testkit import (
    REALM,
    T0,
    Client,
    allocated,
    error_code,
    five_tuple,
    make_core,
    responses,
    wall,
)

from stun_server.wire import Message, MessageClass, Method, encode
from stun_server.wire import attributes as attrs
from turn_relay.auth.authenticate import FAILURE_REASONS, NONCE_REASONS
from turn_relay.auth.challenge import ChallengeBudget, Rate
from turn_relay.auth.credentials import issue
from turn_relay.core.relay import RelayCore
from turn_relay.shell.metrics import HELP, DataPathStats, prometheus_text, snapshot


def failures(core: RelayCore) -> dict[str, int]:
    return {reason: n for reason, n in core.stats.auth_failures.items() if n}


def stale(core: RelayCore) -> dict[str, int]:
    return {reason: n for reason, n in core.stats.stale_nonces.items() if n}


def metrics_text(core: RelayCore) -> str:
    flat = snapshot(core.stats, DataPathStats(), allocations=0, relays=0, connections=0)
    return prometheus_text(flat)


def test_a_healthy_allocation_is_one_challenge_and_no_failure() -> None:
    core = make_core()
    client = allocated(core)
    assert client.refresh(600, now=T0 + 60).cls is MessageClass.SUCCESS
    assert core.stats.auth_challenges == 1
    assert failures(core) == {} and stale(core) == {}
    text = metrics_text(core)
    assert "turnkit_relay_auth_challenges_total 1.0\n" in text
    for reason in FAILURE_REASONS:  # every series exists (at 0) before the first failure
        assert f'turnkit_relay_auth_failures_total{{reason="{reason}"}} 0.0\n' in text
    for reason in NONCE_REASONS:
        assert f'turnkit_relay_stale_nonces_total{{reason="{reason}"}} 0.0\n' in text
    assert "auth_failures_total{code=" not in text  # the old, misleading series is gone


def test_many_healthy_clients_never_count_a_failure() -> None:
    core = make_core()
    for port in range(40000, 40010):
        allocated(core, port=port)
    assert core.stats.auth_challenges == 10
    assert failures(core) == {}
    assert core.stats.error_responses[401] == 10  # the wire still says 401 to each


def test_wrong_password_is_a_bad_integrity_failure() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    client.password = "not-the-password"
    assert error_code(client.allocate(now=T0)) == 401
    assert core.stats.auth_challenges == 1
    assert failures(core) == {"bad-integrity": 1}


def test_wrong_secret_is_a_bad_integrity_failure() -> None:
    core = make_core()
    credential = issue("another-secret", "alice", 3600, wall(T0))
    client = Client(core, five_tuple(), credential.username, credential.password)
    assert error_code(client.allocate(now=T0)) == 401
    assert failures(core) == {"bad-integrity": 1}


def test_refused_usernames_have_their_reasons() -> None:
    core = make_core()
    assert error_code(Client(core, five_tuple(40000), "mallory", "x").allocate(now=T0)) == 401
    expired = Client.rest(core, T0 - 7200, ttl=3600, port=40001)
    assert error_code(expired.allocate(now=T0)) == 401
    assert failures(core) == {"malformed-username": 1, "expired": 1}  # not "<expiry>:<user>"
    assert core.stats.auth_challenges == 2
    static_only = make_core(secrets=())
    assert error_code(Client(static_only, five_tuple(), "mallory", "x").allocate(now=T0)) == 401
    assert failures(static_only) == {"unknown-user": 1}


def test_400_for_a_signed_request_without_nonce_is_a_failure() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    request = Message(
        Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)]
    )
    request.add(attrs.Username(client.username), attrs.Realm(REALM))
    (response,) = responses(client.send(encode(request, key=client.key), T0))
    assert error_code(response) == 400
    assert failures(core) == {"missing-username-realm-or-nonce": 1}
    assert core.stats.auth_challenges == 0


def test_stale_nonce_is_counted_apart_from_failures() -> None:
    core = make_core(nonce_lifetime=600.0)
    client = allocated(core)
    assert client.refresh(600, now=T0 + 601).cls is MessageClass.SUCCESS  # after one 438
    assert stale(core) == {"stale-nonce": 1}
    assert failures(core) == {}
    assert core.stats.auth_challenges == 1
    other = Client.rest(core, T0, port=40001)
    other.learn_nonce(T0)
    other.five_tuple = other.five_tuple._replace(client=("127.0.0.2", 40001))  # not its nonce
    allocate = Message(
        Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)]
    )
    assert error_code(other.exchange(allocate, T0 + 1)) == 438
    assert stale(core) == {"stale-nonce": 1, "invalid-nonce": 1}


def test_challenges_count_what_was_sent_and_drops_count_apart() -> None:
    """A dropped challenge is not a challenge: counting it too made each login that waited for
    the budget (a client retransmitting) look like two or more challenges."""
    core = make_core(limiter=ChallengeBudget(unproven=Rate(1.0, 2)))
    client = Client.rest(core, T0)
    request = Message(
        Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)]
    )
    for _ in range(4):
        client.send(encode(request), T0)
    assert core.stats.auth_challenges == 2
    assert core.stats.rate_limited == 2
    assert failures(core) == {}


def test_every_exported_metric_has_help_and_type() -> None:
    core = make_core()
    allocated(core)
    text = metrics_text(core)
    samples = {line.split()[0].split("{")[0] for line in text.splitlines() if line[0] != "#"}
    histograms = {n for n in HELP if f"# TYPE {n} histogram" in text}
    names = {
        s.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
        if s.rsplit("_", 1)[0] in histograms
        else s
        for s in samples
    }
    for name in names:
        assert name in HELP, name
        assert f"# HELP {name} " in text
        assert f"# TYPE {name} " in text
    assert "not a failure" in HELP["turnkit_relay_auth_challenges_total"]
