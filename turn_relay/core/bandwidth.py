"""Per-allocation bandwidth cap (``quotas.max_bandwidth_per_allocation``): a token bucket.

RFC 8656 section 5: a server with a bandwidth quota should discard application data beyond it
(UDP has no congestion control to push back). Sans-I/O: ``now`` is passed in.
"""

from __future__ import annotations


class TokenBucket:
    """``rate`` bytes per second with a burst of one second's worth."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, now: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = rate
        self.tokens = rate
        self.updated = now

    def take(self, amount: int, now: float) -> bool:
        """Spend ``amount`` bytes if the bucket holds them; False means drop the packet."""
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
            self.updated = now
        if amount > self.tokens:
            return False
        self.tokens -= amount
        return True

    def spend(self, amount: int, now: float) -> bool:
        """Charge ``amount`` bytes already relayed elsewhere (the kernel data path, counted
        after the fact): the bucket may go into debt, which later packets repay before any is
        let through. True while the bucket is not in debt."""
        self.take(0, now)  # refill up to now
        self.tokens -= amount
        return self.tokens >= 0

    def in_debt(self, now: float) -> bool:
        self.take(0, now)
        return self.tokens < 0
