"""What the check page's routes need: settings from the config, and the views the shell hands in.

A check-page test is tagged on the relay by its TURN user: the page's credentials are issued
for ``check-<test id>`` (`test_user`), so the core's allocations carry the test id in their
credentials and the shell can tell which allocations belong to which test (`ObservedProvider`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from turn_relay.auth.credentials import DEFAULT_SEPARATOR
from turn_relay.config import TurnConfig, ice_urls
from turn_relay.config.urls import api_base_url, check_stun_urls
from turn_relay.reports.store import ReportStore
from turn_relay.reports.validation import DEFAULT_MAX_REPORT_BYTES

from .shared_reports import ReportShare

TEST_USER_PREFIX = "check-"

#: test id -> the relay's own record of that test's allocations (`relay_observed.allocations`),
#: from every worker process when there are several
ObservedProvider = Callable[[str], Awaitable[list[dict[str, Any]]]]


def test_user(test_id: str) -> str:
    """The TURN REST user part of a test's credentials."""
    return TEST_USER_PREFIX + test_id


def test_id_of(user: str) -> str | None:
    """The test id a TURN user carries, if it is a check-page user."""
    return user[len(TEST_USER_PREFIX) :] if user.startswith(TEST_USER_PREFIX) else None


@dataclass(frozen=True, slots=True)
class CheckSettings:
    turn_urls: tuple[str, ...]
    stun_urls: tuple[str, ...]
    base_url: str
    credential_ttl: int = 900
    page_loads_per_minute: int = 30
    uploads_per_minute: int = 6
    separator: str = DEFAULT_SEPARATOR
    max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES
    #: the rendezvous is on: the page offers "test with another person"
    peer_test: bool = False

    @classmethod
    def from_config(cls, config: TurnConfig) -> CheckSettings:
        check = config.check
        return cls(
            turn_urls=ice_urls(config),
            stun_urls=check_stun_urls(config),
            base_url=api_base_url(config),
            credential_ttl=check.credential_ttl,
            page_loads_per_minute=check.page_loads_per_minute,
            uploads_per_minute=check.uploads_per_minute,
            separator=config.auth.separator,
            peer_test=config.rendezvous.enabled,
        )


@dataclass(frozen=True, slots=True)
class CheckViews:
    """What the shell hands the API for the check page and the report routes."""

    settings: CheckSettings
    store: ReportStore
    observed: ObservedProvider
    #: a fleet member's siblings' reports (`shared_reports.ReportShare`), None alone
    share: ReportShare | None = None
