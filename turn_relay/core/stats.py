"""What the core counts: plain integers, bumped inline, read by the shell's metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from turn_relay.auth.authenticate import FAILURE_REASONS, NONCE_REASONS


def _zeros(labels: tuple[str, ...]) -> Counter[str]:
    """A counter holding every known label at 0, so its series exist before the first event."""
    return Counter(dict.fromkeys(labels, 0))


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
