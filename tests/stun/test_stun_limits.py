"""Connection caps and the warning budget (sans-I/O), and the RLIMIT_NOFILE helper."""

from __future__ import annotations

import resource

import pytest

from stun_server.fdlimit import NofileChange
from stun_server.limits import (
    ConnectionCaps,
    ConnectionLimiter,
    Refusal,
    WarningBudget,
    default_total_connections,
)


def test_per_source_cap_refuses_only_that_source() -> None:
    limiter = ConnectionLimiter(ConnectionCaps(total=10, per_source=2))
    assert [limiter.admit("198.51.100.1") for _ in range(3)] == [None, None, Refusal.PER_SOURCE]
    assert limiter.admit("198.51.100.2") is None
    assert (limiter.open, limiter.open_from("198.51.100.1"), limiter.sources) == (3, 2, 2)


def test_total_cap_and_release() -> None:
    limiter = ConnectionLimiter(ConnectionCaps(total=2, per_source=5))
    assert limiter.admit("198.51.100.1") is None
    assert limiter.admit("198.51.100.2") is None
    assert limiter.admit("198.51.100.3") is Refusal.TOTAL
    limiter.release("198.51.100.1")
    assert limiter.admit("198.51.100.3") is None
    assert limiter.sources == 2


def test_ipv6_sources_share_their_64_and_v4_mapped_is_ipv4() -> None:
    limiter = ConnectionLimiter(ConnectionCaps(total=10, per_source=1))
    assert limiter.admit("2001:db8:1:2::1") is None
    assert limiter.admit("2001:db8:1:2::99") is Refusal.PER_SOURCE
    assert limiter.admit("2001:db8:1:3::1") is None
    assert limiter.admit("198.51.100.7") is None
    assert limiter.admit("::ffff:198.51.100.7") is Refusal.PER_SOURCE


def test_release_without_admit_is_a_bug() -> None:
    with pytest.raises(ValueError, match="release without admit"):
        ConnectionLimiter(ConnectionCaps(total=1)).release("198.51.100.1")


def test_caps_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ConnectionCaps(total=0)


@pytest.mark.parametrize(
    ("soft", "total"), [(1024, 768), (100, 16), (20_000, 19_744), (1 << 20, 65_536)]
)
def test_default_total_leaves_a_reserve(soft: int, total: int) -> None:
    assert default_total_connections(soft) == total


def test_warning_budget_reports_the_first_then_one_summary_per_interval() -> None:
    budget = WarningBudget(interval=10)
    assert budget.note("cap", 0.0) == 1
    assert [budget.note("cap", 0.1 * i) for i in range(1, 50)] == [0] * 49
    assert budget.note("other", 1.0) == 1  # kinds are independent
    assert budget.flush(9.9) == {}
    assert budget.flush(10.0) == {"cap": 49}
    assert budget.flush(30.0) == {}
    assert budget.note("cap", 30.0) == 1
    assert budget.totals == {"cap": 51, "other": 1}


def test_nofile_change_text() -> None:
    raised = NofileChange(1024, 524288, 524288)
    assert raised.describe() == "RLIMIT_NOFILE soft raised from 1024 to 524288 (hard 524288)"
    same = NofileChange(4096, 4096, resource.RLIM_INFINITY)
    assert same.describe() == "RLIMIT_NOFILE soft 4096 (hard unlimited), already at the hard limit"
    assert "cannot raise: no" in NofileChange(1024, 1024, 2048, "no").describe()
