"""One short log line, not a traceback, for malformed HTTP requests (aiohttp.server).

aiohttp logs every request it cannot parse (an over-long request line, a bad header) at ERROR
with the parser's traceback, so anyone who can reach the API port can fill the log with them.
These are the client's errors, already answered 400: this filter keeps them to one line.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError


class MalformedRequestFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = " ".join(str(exc.message).split())[:120]
            said = record.getMessage()
            record.msg = "%s (answered %d): %s"
            record.args = (said, exc.code, reason)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install() -> None:
    """Add the filter to aiohttp's server logger (once)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())
