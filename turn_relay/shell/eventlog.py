"""The core's events as log lines (logger ``turn_relay.events``, level info), aggregated.

One line per allocation created (``allocation-created``) and deleted (``allocation-deleted``,
with its duration, traffic and why it ended), one per refused request (``refused``: method,
code, reason, username, source). Fields travel as ``extra={"fields": ...}``, so the text and
JSON formats of `stun_server.logfmt` show the same keys.

Refusals repeat in floods (a spoofed source, a client retrying a revoked credential, a policy
audit probing 23 denied peers): the first of each (reason, source IP) is logged, the rest are
counted for ``window`` seconds and logged as one ``refused-repeated`` line ("N more like this")
when the window closes, once per window for as long as they go on. At most ``max_keys``
(reason, source) pairs are tracked; beyond that the source is folded into ``*``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from turn_relay.core.allocation import Allocation, format_address
from turn_relay.core.events import Refusal

logger = logging.getLogger("turn_relay.events")

DEFAULT_WINDOW = 60.0  # seconds
DEFAULT_MAX_KEYS = 1024

Key = tuple[str, str]  # (reason, source IP)


@dataclass(slots=True)
class _Window:
    opened: float
    repeats: int = 0
    last: Refusal | None = None


class Aggregator:
    """Which repeated events to log: the first of a key, then one count per window."""

    def __init__(self, window: float = DEFAULT_WINDOW, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.window = window
        self.max_keys = max_keys
        self._open: dict[Key, _Window] = {}

    def admit(self, key: Key, refusal: Refusal, now: float) -> tuple[bool, Key]:
        """True when this one is logged; the key it was counted under."""
        if key not in self._open and len(self._open) >= self.max_keys:
            key = (key[0], "*")
        window = self._open.get(key)
        if window is None:
            self._open[key] = _Window(now)
            return True, key
        window.repeats += 1
        window.last = refusal
        return False, key

    def due(self, now: float) -> list[tuple[Key, int, Refusal]]:
        """Windows that closed by ``now``: (key, repeats, last one) for those with repeats.

        A window with repeats stays open for another period (the flood may go on); one
        without is forgotten, so the next event of its key is logged in full again.
        """
        closed: list[tuple[Key, int, Refusal]] = []
        for key, window in list(self._open.items()):
            if now - window.opened < self.window:
                continue
            if window.repeats and window.last is not None:
                closed.append((key, window.repeats, window.last))
                self._open[key] = _Window(now)
            else:
                del self._open[key]
        return closed

    def __len__(self) -> int:
        return len(self._open)


class EventLog:
    """A `turn_relay.core.events.RelayObserver` that logs."""

    def __init__(self, window: float = DEFAULT_WINDOW, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.aggregator = Aggregator(window, max_keys)

    def allocation_created(self, allocation: Allocation, now: float) -> None:
        del now
        if logger.isEnabledFor(logging.INFO):
            logger.info("allocation-created", extra={"fields": _described(allocation)})

    def allocation_deleted(self, allocation: Allocation, reason: str, now: float) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        traffic = allocation.traffic
        fields = _described(allocation)
        fields.update(
            reason=reason,
            duration=round(now - allocation.created_at, 3),
            bytes_to_peer=traffic.bytes_to_peer,
            bytes_to_client=traffic.bytes_to_client,
            packets_to_peer=traffic.packets_to_peer,
            packets_to_client=traffic.packets_to_client,
        )
        logger.info("allocation-deleted", extra={"fields": fields})

    def request_refused(self, refusal: Refusal, now: float) -> None:
        self.flush(now)
        logged, _ = self.aggregator.admit((refusal.reason, refusal.source[0]), refusal, now)
        if logged and logger.isEnabledFor(logging.INFO):
            logger.info("refused", extra={"fields": _refusal_fields(refusal)})

    def flush(self, now: float) -> None:
        """Log the "N more like this" lines of windows that closed; the shell calls this on a
        timer too, so the count of a flood that stopped still comes out."""
        for (reason, source), repeats, last in self.aggregator.due(now):
            fields = _refusal_fields(last)
            fields.update(reason=reason, source_ip=source, repeats=repeats)
            fields.pop("source", None)
            fields["window"] = self.aggregator.window
            logger.info("refused-repeated: %d more like this", repeats, extra={"fields": fields})


def _described(allocation: Allocation) -> dict[str, object]:
    five_tuple = allocation.five_tuple
    credentials = allocation.credentials
    return {
        "session": allocation.session_id,
        "user": credentials.user,
        "username": credentials.username,
        "client": format_address(five_tuple.client),
        "transport": five_tuple.transport.value,
        "relayed": ",".join(
            format_address(allocation.advertised[f]) for f in sorted(allocation.advertised)
        ),
    }


def _refusal_fields(refusal: Refusal) -> dict[str, object]:
    fields: dict[str, object] = {
        "method": refusal.method,
        "code": refusal.code,
        "reason": refusal.reason,
        "username": refusal.username if refusal.username is not None else "",
        "source": format_address(refusal.source),
        "transport": refusal.transport.value,
    }
    if refusal.detail:
        fields["detail"] = refusal.detail
    return fields
