"""Per-source token buckets with bounded memory (sans-I/O: the caller passes ``now``).

`SourceRateLimiter.allow(source_ip, now)` spends one token of the source's bucket, which holds
at most ``burst`` tokens and regains ``rate`` tokens per second. IPv4 sources are keyed by address,
IPv6 sources by their /64 (one subscriber usually owns a whole /64), v4-mapped IPv6 by the IPv4
address inside.

Memory stays bounded: every ``burst / rate`` seconds a sweep forgets buckets that have refilled
(a full bucket behaves exactly like no bucket), and beyond ``max_sources`` the oldest bucket is
evicted, which can only make the limiter more lenient for that source, never block anyone.
The per-call work is one dict lookup and a little float arithmetic, cheap enough for the
Binding fast path.
"""

from __future__ import annotations

import ipaddress

_MAX_KEY_CACHE = 4096


def source_key(source_ip: str) -> str:
    """The bucket key of ``source_ip``: IPv4 as is, IPv6 by /64, v4-mapped by its IPv4 address."""
    if ":" not in source_ip:
        return source_ip
    try:
        address = ipaddress.IPv6Address(source_ip)
    except ValueError:
        return source_ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class SourceRateLimiter:
    """Token bucket per source address; see the module docstring."""

    def __init__(self, rate: float, burst: float, max_sources: int = 65_536) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 tokens per second, not {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1 token, not {burst}")
        if max_sources < 1:
            raise ValueError(f"max_sources must be >= 1, not {max_sources}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_sources = max_sources
        self.refill_seconds = self.burst / self.rate
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, updated_at]
        self._ipv6_keys: dict[str, str] = {}
        self._next_sweep: float | None = None

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source_ip: str, now: float) -> bool:
        """Spend one token of ``source_ip`` at monotonic time ``now``; False when none is left."""
        if self._next_sweep is None or now >= self._next_sweep:
            self._sweep(now)
        key = source_ip if ":" not in source_ip else self._ipv6_key(source_ip)
        bucket = self._buckets.get(key)
        if bucket is None:
            self._admit(key, now)
            return True
        tokens = bucket[0]
        elapsed = now - bucket[1]
        if elapsed > 0:  # a clock that stands still (or steps back) refills nothing
            tokens += elapsed * self.rate
            tokens = min(tokens, self.burst)
            bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _admit(self, key: str, now: float) -> None:
        buckets = self._buckets
        if len(buckets) >= self.max_sources:
            del buckets[next(iter(buckets))]  # the oldest: more lenient, still bounded
        buckets[key] = [self.burst - 1.0, now]

    def _sweep(self, now: float) -> None:
        """Forget every bucket that has refilled by ``now``."""
        horizon = now - self.refill_seconds
        for key, (_, updated) in list(self._buckets.items()):
            if updated <= horizon:
                del self._buckets[key]
        self._next_sweep = now + self.refill_seconds

    def _ipv6_key(self, source_ip: str) -> str:
        key = self._ipv6_keys.get(source_ip)
        if key is None:
            if len(self._ipv6_keys) >= _MAX_KEY_CACHE:
                self._ipv6_keys.clear()
            key = self._ipv6_keys[source_ip] = source_key(source_ip)
        return key
