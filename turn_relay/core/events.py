"""What the core tells an observer about: allocations created and deleted, requests refused.

The core hands plain objects to a `RelayObserver` it was given (the shell's event log turns
them into log lines; tests collect them). No strings are formatted here and nothing is reported
per data packet: only control-path outcomes, each at most once per request or allocation.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from .allocation import Address, Allocation, Transport


class Refusal(NamedTuple):
    """A request the core answered with an error other than the 401 challenge."""

    method: str  # "allocate", "refresh", ...
    code: int  # the wire code: 400, 401, 403, 437, 486, ... (0: dropped unanswered)
    reason: str  # a stable tag: "bad-integrity", "revoked", "peer-denied", "draining", ...
    username: str | None  # the USERNAME the request carried, if any
    source: Address
    transport: Transport
    detail: str = ""  # free text for people (e.g. why a peer was denied)


class RelayObserver(Protocol):
    """Told by the core, on the control path only; ``now`` is the core's clock."""

    def allocation_created(self, allocation: Allocation, now: float) -> None: ...

    def allocation_deleted(self, allocation: Allocation, reason: str, now: float) -> None: ...

    def request_refused(self, refusal: Refusal, now: float) -> None: ...


class NullObserver:
    """The default: nobody listens."""

    def allocation_created(self, allocation: Allocation, now: float) -> None:
        pass

    def allocation_deleted(self, allocation: Allocation, reason: str, now: float) -> None:
        pass

    def request_refused(self, refusal: Refusal, now: float) -> None:
        pass
