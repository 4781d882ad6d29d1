"""The budget for 401 and 438 answers over UDP (the challenge budget).

A 401 is bigger than the request that asks for it, and a UDP source address can be spoofed, so
unlimited challenges would make the relay a reflector. A single small per-source bucket, though,
starves everyone behind one shared address (an office, a carrier-grade NAT) and lets a spoofer
lock that address out. The budget therefore knows three things:

- **proven sources**: an address (IPv4, or an IPv6 /64) that completed an authenticated request
  within ``proof_lifetime`` seconds has shown that it receives what the relay sends there: the
  request carried a nonce the relay sent to that address only (nonces are bound to the client
  address). It gets the large ``proven`` bucket: every client behind it is answered at once;
- **unproven sources** get the small ``unproven`` bucket: what a spoofer can make the relay send
  toward a victim that never used the relay is at most ``burst + per_second * t`` answers;
- **all sources together** share the ``total`` bucket, which bounds the relay's reflection
  output however many victims a spoofer names.

A spoofer sending from a proven address can drain its big bucket; the clients behind it that
already hold a nonce keep authenticating (an authenticated request spends no budget), and new
ones retry. Memory is bounded by ``max_sources`` buckets and as many proofs.

Clocks: `ChallengeBudget.allow` and `ChallengeBudget.prove` take the monotonic ``now`` of the
core.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass


@functools.lru_cache(maxsize=4096)
def source_key(source: str) -> str:
    """The budget key of a source address: IPv4 as is, IPv6 by its /64 (one subscriber).

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


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket's shape: ``burst`` tokens at once, ``per_second`` regained."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        for name, value in (("per_second", self.per_second), ("burst", self.burst)):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, not {value}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")

    @property
    def refill_time(self) -> float:
        return self.burst / self.per_second


DEFAULT_UNPROVEN = Rate(5.0, 20)
DEFAULT_PROVEN = Rate(200.0, 1000)
DEFAULT_TOTAL = Rate(5000.0, 5000)
DEFAULT_PROOF_LIFETIME = 600.0
DEFAULT_MAX_SOURCES = 65_536


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float

    def refill(self, rate: Rate, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(rate.burst, self.tokens + elapsed * rate.per_second)
        self.updated = now


class ChallengeBudget:
    """May this source be sent one more 401 (or 438) right now? See the module docstring."""

    def __init__(
        self,
        *,
        unproven: Rate = DEFAULT_UNPROVEN,
        proven: Rate = DEFAULT_PROVEN,
        total: Rate | None = DEFAULT_TOTAL,
        proof_lifetime: float = DEFAULT_PROOF_LIFETIME,
        max_sources: int = DEFAULT_MAX_SOURCES,
    ) -> None:
        if not math.isfinite(proof_lifetime) or proof_lifetime <= 0:
            raise ValueError(f"proof_lifetime must be a finite number > 0, not {proof_lifetime}")
        if max_sources < 1:
            raise ValueError("max_sources must be at least 1")
        self.unproven = unproven
        # a proven source never gets less than a stranger
        self.proven = Rate(
            max(proven.per_second, unproven.per_second), max(proven.burst, unproven.burst)
        )
        self.total = total
        self.proof_lifetime = proof_lifetime
        self.max_sources = max_sources
        self._refill_time = max(self.unproven.refill_time, self.proven.refill_time)
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # by last use
        self._proofs: OrderedDict[str, float] = OrderedDict()  # key -> last proof, by age
        self._total = None if total is None else _Bucket(total.burst, 0.0)

    def __len__(self) -> int:
        """Buckets held (sources seen recently that have not refilled)."""
        return len(self._buckets)

    @property
    def proofs(self) -> int:
        return len(self._proofs)

    def is_proven(self, source: str, now: float) -> bool:
        proved = self._proofs.get(source_key(source))
        return proved is not None and now - proved < self.proof_lifetime

    def prove(self, source: str, now: float) -> None:
        """``source`` completed an authenticated request at ``now``: it receives."""
        key = source_key(source)
        proved = self._proofs.pop(key, None)
        if proved is None or now - proved >= self.proof_lifetime:
            self._buckets.pop(key, None)  # newly proven: starts with the full proven burst
        self._proofs[key] = now
        while len(self._proofs) > self.max_sources:
            self._proofs.popitem(last=False)

    def allow(self, source: str, now: float) -> bool:
        """Spend one answer for ``source`` at monotonic ``now``; False when none is left."""
        self._forget_refilled(now)
        key = source_key(source)
        rate = self.proven if self.is_proven(key, now) else self.unproven
        bucket = self._buckets.pop(key, None) or _Bucket(rate.burst, now)
        bucket.refill(rate, now)
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1.0 or not self._take_total(now):
            return False
        bucket.tokens -= 1.0
        return True

    def spent(self, source: str, now: float) -> bool:
        """True when `allow` would refuse ``source`` now (nothing is spent by asking)."""
        key = source_key(source)
        bucket = self._buckets.get(key)
        if bucket is not None:
            rate = self.proven if self.is_proven(key, now) else self.unproven
            if bucket.tokens + max(0.0, now - bucket.updated) * rate.per_second < 1.0:
                return True
        total, total_rate = self._total, self.total
        if total is None or total_rate is None:
            return False
        return total.tokens + max(0.0, now - total.updated) * total_rate.per_second < 1.0

    def _take_total(self, now: float) -> bool:
        total, rate = self._total, self.total
        if total is None or rate is None:
            return True
        total.refill(rate, now)
        if total.tokens < 1.0:
            return False
        total.tokens -= 1.0
        return True

    def _forget_refilled(self, now: float) -> None:
        """Drop the oldest buckets that are full again (a full bucket is the same as none)."""
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.updated < self._refill_time:
                break
            self._buckets.popitem(last=False)
        while self._proofs:
            oldest_proof = next(iter(self._proofs.values()))
            if now - oldest_proof < self.proof_lifetime:
                return
            self._proofs.popitem(last=False)
