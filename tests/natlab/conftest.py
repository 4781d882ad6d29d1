"""Fixtures of the NAT lab tier.

``lab`` builds every NAT site once per test session (about a second) and tears it down at the end,
even when tests fail. ``twin_lab`` (built once per session, only when a test asks for it) has two
separate symmetric NATs and two separate full-cone NATs, for calls between two clients behind the
same kind of NAT. On a machine that cannot create namespaces (not root, no ``ip netns``, no
nftables NAT) every natlab test is skipped with the reason; it never passes vacuously.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from .lab import Lab, NatType, unavailable_reason

_HERE = Path(__file__).parent
_UNAVAILABLE_KEY = pytest.StashKey[str | None]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this directory belongs to the natlab tier."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.natlab)


def _skip_reason(config: pytest.Config) -> str | None:
    if _UNAVAILABLE_KEY not in config.stash:
        config.stash[_UNAVAILABLE_KEY] = unavailable_reason()
    return config.stash[_UNAVAILABLE_KEY]


def root_namespace_state() -> dict[str, object]:
    """What the lab must never change in the root namespace."""

    def ip_json(*args: str) -> object:
        out = subprocess.run(
            ["ip", "-json", *args], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out) if out.strip() else []

    links = ip_json("link", "show")
    assert isinstance(links, list)
    return {
        "links": sorted(str(link["ifname"]) for link in links),
        "addrs": ip_json("-4", "addr", "show"),
        "routes": ip_json("-4", "route", "show", "table", "all"),
        "rules": ip_json("-4", "rule", "show"),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
    }


@pytest.fixture(scope="session")
def root_state_before(request: pytest.FixtureRequest) -> dict[str, object]:
    reason = _skip_reason(request.config)
    if reason:
        pytest.skip(reason)
    return root_namespace_state()


#: The sites of `twin_lab`: each type twice, as separate NATs (own router, public address, LAN).
TWIN_NATS = (NatType.SYMMETRIC, NatType.SYMMETRIC, NatType.FULL_CONE, NatType.FULL_CONE)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM (CI cancelling the job) would kill pytest without any teardown. Turn it into
    KeyboardInterrupt: pytest then stops the session and still runs the labs' teardown."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _session_lab(request: pytest.FixtureRequest, built: Lab) -> Iterator[Lab]:
    reason = _skip_reason(request.config)
    if reason:
        pytest.skip(reason)
    with _sigterm_as_interrupt(), built:
        yield built


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest, root_state_before: dict[str, object]) -> Iterator[Lab]:
    """The whole lab (every `NatType` once), shared by the session. Tests that depend on fresh
    NAT state call ``lab.reset_nat_state()`` and use ``lab.fresh_port()``."""
    yield from _session_lab(request, Lab())


@pytest.fixture(scope="session")
def twin_lab(request: pytest.FixtureRequest, root_state_before: dict[str, object]) -> Iterator[Lab]:
    """Two symmetric and two full-cone sites (`TWIN_NATS`), shared by the session: the second
    site of a type is ``twin_lab.sites_of(nat)[1]``. A lab of its own, so ``lab.sites`` of the
    main lab keeps meaning "one site per NAT type"."""
    yield from _session_lab(request, Lab(TWIN_NATS))
