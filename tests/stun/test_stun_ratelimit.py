"""Per-source token buckets: refill by the clock the caller passes, bounded memory."""

from __future__ import annotations

import pytest

from stun_server.ratelimit import SourceRateLimiter, source_key


def test_burst_then_refill_at_rate() -> None:
    limiter = SourceRateLimiter(rate=10, burst=5)
    assert [limiter.allow("10.0.0.1", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert not limiter.allow("10.0.0.1", 0.05)  # half a token
    assert limiter.allow("10.0.0.1", 0.1)
    assert not limiter.allow("10.0.0.1", 0.1)


def test_refill_never_exceeds_the_burst() -> None:
    limiter = SourceRateLimiter(rate=10, burst=2)
    assert limiter.allow("10.0.0.1", 0.0)
    results = [limiter.allow("10.0.0.1", 1000.0) for _ in range(3)]
    assert results == [True, True, False]


def test_a_clock_that_steps_back_refills_nothing() -> None:
    limiter = SourceRateLimiter(rate=10, burst=1)
    assert limiter.allow("10.0.0.1", 5.0)
    assert not limiter.allow("10.0.0.1", 1.0)
    assert not limiter.allow("10.0.0.1", 5.0)
    assert limiter.allow("10.0.0.1", 5.1)


def test_sources_have_separate_buckets() -> None:
    limiter = SourceRateLimiter(rate=1, burst=1)
    assert limiter.allow("10.0.0.1", 0.0)
    assert not limiter.allow("10.0.0.1", 0.0)
    assert limiter.allow("10.0.0.2", 0.0)


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an ip:", "not an ip:"),
    ],
)
def test_source_keys(source: str, key: str) -> None:
    assert source_key(source) == key


def test_one_ipv6_subscriber_shares_a_bucket() -> None:
    limiter = SourceRateLimiter(rate=1, burst=2)
    assert limiter.allow("2001:db8::1", 0.0)
    assert limiter.allow("2001:db8::2", 0.0)
    assert not limiter.allow("2001:db8::3", 0.0)
    assert limiter.allow("2001:db8:0:1::1", 0.0)


def test_refilled_buckets_are_forgotten() -> None:
    limiter = SourceRateLimiter(rate=10, burst=10)  # refills in 1 s
    for index in range(100):
        limiter.allow(f"10.0.0.{index}", 0.0)
    assert len(limiter) == 100
    limiter.allow("10.0.1.1", 0.5)  # first sweep happened at 0.0; next is due at 1.0
    assert len(limiter) == 101
    limiter.allow("10.0.1.1", 1.2)
    assert len(limiter) == 1  # only the bucket used within the last second remains


def test_memory_is_bounded_by_max_sources() -> None:
    limiter = SourceRateLimiter(rate=1, burst=1, max_sources=50)
    for index in range(1000):
        assert limiter.allow(f"10.0.{index // 256}.{index % 256}", 0.0)
        assert len(limiter) <= 50
    # the newest sources are still remembered (and limited)
    assert not limiter.allow("10.0.3.231", 0.0)


@pytest.mark.parametrize(
    ("rate", "burst", "max_sources"), [(0, 1, 1), (-1, 1, 1), (1, 0.5, 1), (1, 1, 0)]
)
def test_parameters_are_validated(rate: float, burst: float, max_sources: int) -> None:
    with pytest.raises(ValueError):
        SourceRateLimiter(rate, burst, max_sources)
