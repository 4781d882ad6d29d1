"""Per-source request limits for the public routes (the check page): a token bucket per source.

A source is an IPv4 address or an IPv6 /64 (one household gets one /64). The table is bounded:
when full, the bucket touched longest ago is forgotten, which can only let a source in early.
Time is passed in (``now``), so tests step it by hand.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network, ip_address


def source_key(address: str | None) -> str:
    """``203.0.113.7`` as it is; ``2001:db8:1:2::9`` as its /64; unknown as ``"-"``."""
    if not address:
        return "-"
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class SourceLimiter:
    """``per_minute`` requests per source, with bursts of up to ``per_minute``."""

    def __init__(self, per_minute: int, max_sources: int = 10_000) -> None:
        if per_minute < 1 or max_sources < 1:
            raise ValueError("per_minute and max_sources must be positive")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, address: str | None, now: float) -> bool:
        """Take one token for ``address``'s source; False when it has none left."""
        key = source_key(address)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.capacity, now)
        else:
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def retry_after(self, address: str | None) -> int:
        """Whole seconds until ``address``'s source has a token again (at least 1)."""
        bucket = self._buckets.get(source_key(address))
        missing = 1.0 - (bucket.tokens if bucket is not None else 1.0)
        return max(1, int(missing / self.rate + 0.999))
