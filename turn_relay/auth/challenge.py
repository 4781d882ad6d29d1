"""The per-source budget for 401 and 438 answers (the challenge limiter).

Clocks: ``UnauthorizedRateLimiter.allow`` takes the monotonic ``now`` of the core.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass


@functools.lru_cache(maxsize=4096)
def source_key(source: str) -> str:
    """The rate-limit key of a source address: IPv4 as is, IPv6 by its /64 (one subscriber).

    v4-mapped IPv6 counts as its IPv4 address; text that is no IP address is its own key.
    """
    try:
        address = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        return source
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class UnauthorizedRateLimiter:
    """Token bucket per source: may this source be sent one more 401 (or 438) right now?

    A source starts with ``burst`` tokens and regains ``per_second`` tokens per second. When the
    limit is hit the server drops the request silently, so a flood of unauthenticated requests
    cannot be reflected as a flood of 401s. Memory is bounded: buckets that have refilled are
    forgotten (a full bucket is the same as none), and beyond ``max_sources`` the least recently
    seen source is evicted (which can only make the limiter more lenient, never block anyone).
    """

    def __init__(self, per_second: float, burst: int, max_sources: int = 65_536) -> None:
        if per_second <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("per_second must be > 0, burst and max_sources >= 1")
        self.per_second = per_second
        self.burst = burst
        self.max_sources = max_sources
        self._refill_time = burst / per_second
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source: str, now: float) -> bool:
        """Spend one token of ``source`` at monotonic ``now``; False when it has none left."""
        self._forget_refilled(now)
        key = source_key(source)
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(
            float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_second
        )
        bucket.updated = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return allowed

    def _forget_refilled(self, now: float) -> None:
        """Drop the oldest buckets that are full again; they are ordered by last use."""
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.updated < self._refill_time:
                return
            self._buckets.popitem(last=False)
