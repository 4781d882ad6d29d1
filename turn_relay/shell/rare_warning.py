"""A warning that repeats at most once per interval, with how often it happened meanwhile.

For conditions an attacker (or a load spike) can make happen thousands of times a second, such
as running out of file descriptors: the first occurrence is logged at once, later ones are
counted and summed up in one line per ``interval`` seconds, so the log stays readable.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("turn_relay.shell")


class RareWarning:
    def __init__(self, text: str, interval: float = 10.0) -> None:
        self.text = text
        self.interval = interval
        self.total = 0
        self._unreported = 0
        self._last: float | None = None

    def happened(self, detail: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.total += 1
        self._unreported += 1
        if self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        times = "" if self._unreported == 1 else f" ({self._unreported} times since the last)"
        logger.warning("%s: %s%s", self.text, detail, times)
        self._unreported = 0
