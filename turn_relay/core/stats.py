"""What the core counts: plain integers, bumped inline, read by the shell's metrics."""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, field

from turn_relay.auth.authenticate import FAILURE_REASONS, NONCE_REASONS

from .allocation import Allocation

# Histogram bucket upper bounds (the last is +Inf): seconds an allocation lived, bytes it moved
LIFETIME_BOUNDS: tuple[float, ...] = (10, 60, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600, math.inf)
BYTES_BOUNDS: tuple[float, ...] = (0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, math.inf)


def _zeros(labels: tuple[str, ...]) -> Counter[str]:
    """A counter holding every known label at 0, so its series exist before the first event."""
    return Counter(dict.fromkeys(labels, 0))


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (not cumulative) and the sum: what a Prometheus histogram needs,
    summable across worker processes. Observed once per allocation, never per packet."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


def _histogram(bounds: tuple[float, ...]) -> Histogram:
    return Histogram(bounds)


@dataclass(slots=True)
class CoreStats:
    """What the core saw. Packets a shell forwards on its own fast path are not in here."""

    allocations_created: int = 0
    allocations_removed: Counter[str] = field(default_factory=Counter)  # by reason
    error_responses: Counter[int] = field(default_factory=Counter)  # by code, all methods
    # Authentication outcomes other than success, by the authenticator's ``why``:
    auth_challenges: int = 0  # 401 to a request without credentials (every client's first step)
    auth_failures: Counter[str] = field(default_factory=lambda: _zeros(FAILURE_REASONS))
    stale_nonces: Counter[str] = field(default_factory=lambda: _zeros(NONCE_REASONS))  # 438
    rate_limited: int = 0  # 401/438 not sent: the source exceeded its budget
    requests: Counter[str] = field(default_factory=Counter)  # by method name
    packets_to_peer: int = 0
    bytes_to_peer: int = 0
    packets_to_client: int = 0
    bytes_to_client: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # by reason
    # per ended allocation: how long it lived, what it relayed each way
    allocation_lifetime: Histogram = field(default_factory=lambda: _histogram(LIFETIME_BOUNDS))
    allocation_bytes_to_peer: Histogram = field(default_factory=lambda: _histogram(BYTES_BOUNDS))
    allocation_bytes_to_client: Histogram = field(default_factory=lambda: _histogram(BYTES_BOUNDS))

    def ended(self, allocation: Allocation, now: float) -> None:
        self.allocation_lifetime.observe(now - allocation.created_at)
        self.allocation_bytes_to_peer.observe(allocation.traffic.bytes_to_peer)
        self.allocation_bytes_to_client.observe(allocation.traffic.bytes_to_client)
