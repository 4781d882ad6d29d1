"""Stream connection limits, sans-I/O: per-source and total caps, and warnings that cannot flood.

Both servers accept TCP/TLS connections from anyone, so one host must not be able to hold every
file descriptor. `ConnectionLimiter` answers "may this source open one more connection?" with
two caps:

- ``per_source`` (default `DEFAULT_PER_SOURCE`, 256): an office or a carrier-grade NAT puts many
  real clients behind one IPv4 address (IPv6: one /64, as the rate limiter keys them), each
  browser opening a connection or two at once; 256 serves a few hundred of them and still leaves
  one attacking address a small share of the total.
- ``total`` (default `default_total_connections`): the process's soft RLIMIT_NOFILE (after
  raising it to the hard limit) minus `FD_RESERVE` descriptors kept for listeners, UDP sockets,
  logs and the accept that must notice a refusal, and at most `MAX_DEFAULT_TOTAL`, which bounds
  memory (a TLS connection costs some tens of KiB).

`WarningBudget` turns a stream of refusals into few log lines: the first of each kind is logged at
once, later ones are counted and summarised at most once per ``interval`` seconds, so a flood of
refused connections costs one line per interval, and every refusal is still counted.

Nothing here reads a clock or touches a socket: callers pass ``now``. `turn_relay` uses the same
pieces for its listeners.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass

from stun_server.ratelimit import source_key

DEFAULT_PER_SOURCE = 256
FD_RESERVE = 256
MIN_DEFAULT_TOTAL = 16
MAX_DEFAULT_TOTAL = 65_536
DEFAULT_FIRST_MESSAGE_TIMEOUT = 5.0  # seconds to finish TLS and send one complete STUN message
DEFAULT_WARNING_INTERVAL = 10.0


def default_total_connections(nofile_soft: int) -> int:
    """The total cap for a process whose soft RLIMIT_NOFILE is ``nofile_soft``."""
    return max(MIN_DEFAULT_TOTAL, min(MAX_DEFAULT_TOTAL, nofile_soft - FD_RESERVE))


class Refusal(enum.Enum):
    """Why a connection was not admitted (the value names the counter)."""

    TOTAL = "connection_cap_total"
    PER_SOURCE = "connection_cap_per_source"


@dataclass(frozen=True, slots=True)
class ConnectionCaps:
    total: int
    per_source: int = DEFAULT_PER_SOURCE

    def __post_init__(self) -> None:
        if self.total < 1 or self.per_source < 1:
            raise ValueError(f"connection caps must be >= 1, not {self.total}/{self.per_source}")


class ConnectionLimiter:
    """Open connections by source key; `admit` before serving one, `release` when it ends."""

    def __init__(self, caps: ConnectionCaps) -> None:
        self.caps = caps
        self._by_source: Counter[str] = Counter()
        self.open = 0

    def admit(self, source_ip: str) -> Refusal | None:
        """None (and the connection counts as open), or why it must be refused."""
        if self.open >= self.caps.total:
            return Refusal.TOTAL
        key = source_key(source_ip)
        if self._by_source[key] >= self.caps.per_source:
            return Refusal.PER_SOURCE
        self._by_source[key] += 1
        self.open += 1
        return None

    def release(self, source_ip: str) -> None:
        key = source_key(source_ip)
        if self._by_source[key] <= 0:
            raise ValueError(f"release without admit for {source_ip}")
        self._by_source[key] -= 1
        if not self._by_source[key]:
            del self._by_source[key]
        self.open -= 1

    def open_from(self, source_ip: str) -> int:
        return self._by_source.get(source_key(source_ip), 0)

    @property
    def sources(self) -> int:
        return len(self._by_source)


class WarningBudget:
    """Counts events by kind; says when to log a line so that a flood gives one per interval."""

    def __init__(self, interval: float = DEFAULT_WARNING_INTERVAL) -> None:
        self.interval = interval
        self.totals: Counter[str] = Counter()
        self._unreported: Counter[str] = Counter()
        self._next_report: dict[str, float] = {}

    def note(self, kind: str, now: float) -> int:
        """Count one event; the number of events to report now (0: stay quiet)."""
        self.totals[kind] += 1
        self._unreported[kind] += 1
        if now < self._next_report.get(kind, float("-inf")):
            return 0
        return self._take(kind, now)

    def flush(self, now: float, *, everything: bool = False) -> dict[str, int]:
        """Events not reported yet whose interval has passed (all of them with ``everything``:
        the last summary before stopping)."""
        due = [
            kind
            for kind, count in self._unreported.items()
            if count and (everything or now >= self._next_report[kind])
        ]
        return {kind: self._take(kind, now) for kind in due}

    def _take(self, kind: str, now: float) -> int:
        count = self._unreported.pop(kind)
        self._next_report[kind] = now + self.interval
        return count
