"""What counts as a round trip: the probe message sent, and the reply that answers it.

The check sends one probe (``--send``, by default ``rtccheck-probe <random hex>``) once the
connection is up, then reads what the server sends for up to --timeout seconds:

- ``any`` (the default): the first message the server sends after the probe was written
  counts: a WebSocket text or binary frame, or for Socket.IO any event or the acknowledgement
  of the probe event. (A server that greets every new connection passes by its greeting.)
- ``echo``: only a message equal to the probe counts (a Socket.IO event or acknowledgement
  whose first argument is the probe text).
- ``--expect-text TEXT``: only a message containing TEXT counts.

WebSocket control frames (ping, pong) never count. Messages that do not count are tallied;
when time runs out the result is ``round-trip-no-answer`` if none came at all and
``round-trip-unexpected`` if some came but none counted.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from enum import StrEnum


class ExpectMode(StrEnum):
    ANY = "any"
    ECHO = "echo"
    TEXT = "text"


@dataclass(frozen=True)
class Expectation:
    mode: ExpectMode = ExpectMode.ANY
    text: str | None = None

    def accepts(self, probe: str, reply: str) -> bool:
        if self.mode is ExpectMode.ECHO:
            return reply == probe
        if self.mode is ExpectMode.TEXT:
            return self.text is not None and self.text in reply
        return True

    def describe(self) -> str:
        if self.mode is ExpectMode.ECHO:
            return "an echo of the probe"
        if self.mode is ExpectMode.TEXT:
            return f"a message containing {self.text!r}"
        return "any message"


def default_probe() -> str:
    return f"rtccheck-probe {secrets.token_hex(8)}"


def reply_text(payload: object) -> str:
    """A received message as text: text as is, bytes decoded, anything else as JSON."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    return json.dumps(payload, ensure_ascii=False, default=str)
