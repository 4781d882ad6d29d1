"""What every check gets (CheckContext) and must provide (the Check protocol).

A check family is a module with a docstring (its help text: first line = summary, then details
and examples) and ``async def run(ctx: CheckContext) -> list[CheckResult]``. It reads the
servers, timeout, clocks and options from the context, never from globals, and reports every
finding, including failures, as a CheckResult rather than raising.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rtccheck.credential_service import ServerClock
from rtccheck.results import CheckResult, Status
from rtccheck.uri import IceServer


class Check(Protocol):
    """A check family: usually a module with a docstring and an async ``run``."""

    async def run(self, ctx: CheckContext) -> list[CheckResult]: ...


@dataclass(frozen=True)
class Nameserver:
    host: str
    port: int = 53


#: how long the NAT mapping-lifetime estimate may take at most, when asked for
DEFAULT_LIFETIME_MAX_S = 120.0
#: a REST credential expiring further ahead than this warns (clock skew or an oversized TTL)
DEFAULT_MAX_TTL_S = 86400


@dataclass(frozen=True)
class CheckOptions:
    #: TURN REST shared secret (to recompute passwords)
    secret: str | None = None
    #: separator between expiry and user in REST usernames
    separator: str = ":"
    #: --username/--credential, explained even when no server is given
    username: str | None = None
    credential: str | None = None
    #: the server's clock relative to ours, when known (Date header, --server-date)
    server_clock: ServerClock | None = None
    #: DNS servers to ask; empty means the system's resolver configuration
    nameservers: tuple[Nameserver, ...] = ()
    #: trust only the CAs in this PEM file for TLS (turns:, stuns:); None = system store
    ca_file: Path | None = None
    #: ping packets the data check sends on each path
    packets: int = 100
    #: the relayed address TURN servers should hand out (public/advertised IP), when known
    expect_relay_address: str | None = None
    #: the relay port range the servers are configured with, inclusive, when known
    expect_relay_ports: tuple[int, int] | None = None
    #: estimate how long NAT mappings live (the nat check then takes up to nat_lifetime_max_s)
    nat_lifetime: bool = False
    nat_lifetime_max_s: float = DEFAULT_LIFETIME_MAX_S
    #: the longest sane credential validity: an expiry further ahead warns
    max_ttl_s: int = DEFAULT_MAX_TTL_S
    #: the app's RTCConfiguration iceTransportPolicy: "all", or "relay" (TURN only, no direct
    #: path: the data check then does not measure one)
    ice_transport_policy: str = "all"

    @property
    def relay_only(self) -> bool:
        return self.ice_transport_policy == "relay"


@dataclass(frozen=True)
class CheckContext:
    targets: tuple[IceServer, ...]
    timeout: float = 5.0
    #: wall clock, Unix seconds (credential expiry, report timestamps)
    now: Callable[[], float] = time.time
    #: monotonic seconds (round-trip times, deadlines)
    monotonic: Callable[[], float] = time.monotonic
    options: CheckOptions = field(default_factory=CheckOptions)


@dataclass(frozen=True)
class Family:
    """A registered check family: its sub-command name and the check that runs it."""

    name: str
    check: Check
    doc: str | None = None
    available: bool = True
    needs_targets: bool = True

    @property
    def help(self) -> str:
        return inspect.cleandoc(self.doc or inspect.getdoc(self.check) or self.name)

    @property
    def summary(self) -> str:
        return self.help.splitlines()[0].rstrip(".")


class PendingCheck:
    """Stands in for a family whose probes are not written yet."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, ctx: CheckContext) -> list[CheckResult]:
        return [
            CheckResult(
                check=f"{self.name}.pending",
                target="-",
                status=Status.SKIP,
                summary=f"the {self.name} check is not available in this version yet",
            )
        ]


def pending(name: str, summary: str) -> Family:
    """Register a sub-command whose check is still to be written."""
    doc = f"{summary}.\n\nNot available in this version yet."
    return Family(name, PendingCheck(name), doc=doc, available=False)
