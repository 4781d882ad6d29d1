"""Long-term credential lookup and the per-source 401 rate limiter."""

from __future__ import annotations

import pytest

from turn_relay.auth.challenge import ChallengeBudget, Rate, source_key
from turn_relay.auth.credentials import issue, rest_password
from turn_relay.auth.longterm import AuthRejectedError, LongTermAuth, RejectReason

REALM = "turn.example.com"
NOW = 1_700_000_000.0


def rejection(auth: LongTermAuth, username: str, now: float = NOW, **kwargs: bool) -> RejectReason:
    with pytest.raises(AuthRejectedError) as caught:
        auth.lookup(username, REALM, now, **kwargs)
    assert caught.value.code == 401
    return caught.value.why


def test_static_user() -> None:
    auth = LongTermAuth(REALM, static_users={"alice": "wonderland"})
    credential = auth.lookup("alice", REALM, NOW)
    assert credential.passwords == ("wonderland",)
    assert credential.user == "alice"
    assert credential.expires_at is None


def test_unknown_static_user_without_rest() -> None:
    auth = LongTermAuth(REALM, static_users={"alice": "wonderland"})
    assert rejection(auth, "bob") is RejectReason.UNKNOWN_USER


def test_wrong_realm() -> None:
    auth = LongTermAuth(REALM, static_users={"alice": "wonderland"})
    with pytest.raises(AuthRejectedError) as caught:
        auth.lookup("alice", "evil.example", NOW)
    assert caught.value.why is RejectReason.WRONG_REALM
    assert "evil.example" in caught.value.detail


def test_rest_credential_gives_one_candidate_per_secret() -> None:
    auth = LongTermAuth(REALM, rest_secrets=("new", b"old"))
    credential = issue("old", "alice", 600, NOW)
    found = auth.lookup(credential.username, REALM, NOW + 10)
    assert found.passwords == (
        rest_password("new", credential.username),
        credential.password,
    )
    assert found.user == "alice"
    assert found.expires_at == int(NOW) + 600


def test_static_user_wins_over_rest_shape() -> None:
    auth = LongTermAuth(REALM, static_users={"1700000600:bob": "pw"}, rest_secrets=("s",))
    assert auth.lookup("1700000600:bob", REALM, NOW).passwords == ("pw",)


def test_malformed_rest_username() -> None:
    auth = LongTermAuth(REALM, rest_secrets=("s",))
    assert rejection(auth, "bob") is RejectReason.MALFORMED_USERNAME
    assert rejection(auth, "bob", live_allocation=True) is RejectReason.MALFORMED_USERNAME


def test_expired_rest_credential_is_rejected() -> None:
    auth = LongTermAuth(REALM, rest_secrets=("s",))
    username = issue("s", "alice", 60, NOW).username
    auth.lookup(username, REALM, NOW + 59)
    assert rejection(auth, username, NOW + 60) is RejectReason.EXPIRED


def test_strict_expiry_rechecks_live_allocations() -> None:
    auth = LongTermAuth(REALM, rest_secrets=("s",), strict_expiry=True)
    username = issue("s", "alice", 60, NOW).username
    assert rejection(auth, username, NOW + 61, live_allocation=True) is RejectReason.EXPIRED


def test_lenient_expiry_lets_live_allocations_continue() -> None:
    auth = LongTermAuth(REALM, rest_secrets=("s",), strict_expiry=False)
    username = issue("s", "alice", 60, NOW).username
    found = auth.lookup(username, REALM, NOW + 3600, live_allocation=True)
    assert found.passwords == (rest_password("s", username),)
    assert rejection(auth, username, NOW + 3600) is RejectReason.EXPIRED  # a new Allocate


def test_custom_separator() -> None:
    auth = LongTermAuth(REALM, rest_secrets=("s",), separator="-")
    username = issue("s", "alice", 60, NOW, separator="-").username
    assert auth.lookup(username, REALM, NOW).user == "alice"


def test_monotonic_now_is_refused() -> None:
    auth = LongTermAuth(REALM, rest_secrets=("s",))
    with pytest.raises(ValueError, match="Unix time"):
        auth.lookup("1700000600:alice", REALM, 4242.0)


def test_secrets_stay_out_of_repr() -> None:
    auth = LongTermAuth(REALM, static_users={"alice": "wonderland"}, rest_secrets=("hush",))
    assert "wonderland" not in repr(auth)
    assert "hush" not in repr(auth)


# --- rate limiter -------------------------------------------------------------------------------


def test_burst_then_refill() -> None:
    limiter = ChallengeBudget(unproven=Rate(2.0, 3))
    assert [limiter.allow("192.0.2.1", 10.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("192.0.2.1", 10.4) is False  # 0.8 token
    assert limiter.allow("192.0.2.1", 10.5) is True  # 1.0 token
    assert limiter.allow("192.0.2.1", 10.5) is False


def test_sources_are_independent() -> None:
    limiter = ChallengeBudget(unproven=Rate(1.0, 1))
    assert limiter.allow("192.0.2.1", 0.0)
    assert not limiter.allow("192.0.2.1", 0.0)
    assert limiter.allow("192.0.2.2", 0.0)


def test_ipv6_sources_share_their_slash_64() -> None:
    limiter = ChallengeBudget(unproven=Rate(1.0, 1))
    assert limiter.allow("2001:db8:1:2::1", 0.0)
    assert not limiter.allow("2001:db8:1:2:ffff::9", 0.0)
    assert limiter.allow("2001:db8:1:3::1", 0.0)


def test_source_key() -> None:
    assert source_key("192.0.2.1") == "192.0.2.1"
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert source_key("fe80::1%eth0") == "fe80::/64"
    assert source_key("not-an-ip") == "not-an-ip"


def test_refilled_buckets_are_forgotten() -> None:
    limiter = ChallengeBudget(unproven=Rate(1.0, 5))
    for i in range(100):
        limiter.allow(f"192.0.2.{i}", 0.0)
    assert len(limiter) == 100
    limiter.allow("198.51.100.1", 5.0)  # everyone else has refilled by now
    assert len(limiter) == 1


def test_memory_is_bounded() -> None:
    limiter = ChallengeBudget(unproven=Rate(0.001, 1), max_sources=10)
    for i in range(1000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}", 1.0)
        assert len(limiter) <= 10


def test_least_recently_seen_is_evicted_first() -> None:
    limiter = ChallengeBudget(unproven=Rate(0.001, 1), max_sources=2)
    assert limiter.allow("192.0.2.1", 0.0)
    assert limiter.allow("192.0.2.2", 0.0)
    assert not limiter.allow("192.0.2.1", 0.0)  # .1 is now the most recent
    assert limiter.allow("192.0.2.3", 0.0)  # evicts .2
    assert not limiter.allow("192.0.2.1", 0.0)  # .1 still remembered and empty
    assert limiter.allow("192.0.2.2", 0.0)  # .2 was forgotten: a fresh bucket


def test_bad_limiter_settings() -> None:
    with pytest.raises(ValueError):
        ChallengeBudget(unproven=Rate(0, 1))
    with pytest.raises(ValueError):
        ChallengeBudget(unproven=Rate(1, 0))
    with pytest.raises(ValueError):
        ChallengeBudget(unproven=Rate(1, 1), max_sources=0)
