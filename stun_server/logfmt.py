"""Log lines ops can search, the same for ``stun-server`` and ``turn-relay``.

Two formats, chosen with ``--log-format``:

- ``text`` (default): ``2024-05-01T12:00:00.123Z INFO turn_relay.events[4242]: refused
  reason=bad-integrity username=1714564800:alice source=203.0.113.7:50000 ...``; a record's
  fields (``extra={"fields": {...}}``) follow the message as ``key=value``, values with spaces
  or quotes JSON-quoted, so ``grep reason=revoked`` finds them;
- ``json``: one object per line with the stable keys ``ts``, ``level``, ``logger``, ``pid``,
  ``msg``, then the record's fields by name (and ``exc`` for a traceback).

The standard library's `logging` does the rest; this module only formats.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import IO

FORMATS = ("text", "json")
_RESERVED = frozenset({"ts", "level", "logger", "pid", "msg", "exc"})


def fields_of(record: logging.LogRecord) -> Mapping[str, object]:
    found = getattr(record, "fields", None)
    return found if isinstance(found, Mapping) else {}


def timestamp(record: logging.LogRecord) -> str:
    """UTC, ISO 8601, milliseconds: ``2024-05-01T12:00:00.123Z``."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if not text or any(c in text for c in ' ="\\') or not text.isprintable():
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{timestamp(record)} {record.levelname} {record.name}[{record.process}]: "
            f"{record.getMessage()}"
        )
        pairs = " ".join(f"{k}={_text_value(v)}" for k, v in fields_of(record).items())
        if pairs:
            line += " " + pairs
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            entry[key if key not in _RESERVED else f"field_{key}"] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        return JsonFormatter()
    if kind == "text":
        return TextFormatter()
    raise ValueError(f"log format {kind!r} is not one of {', '.join(FORMATS)}")


def configure(level: str, kind: str = "text", stream: IO[str] | None = None) -> None:
    """One handler on the root logger, writing ``kind`` lines at ``level`` and above."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(kind))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
