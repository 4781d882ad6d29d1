"""How many TCP/TLS client connections the relay admits, in total and per source address.

The configured caps (``listen.max_stream_connections``, ``..._per_source``) are lowered to what
the process's file descriptor limit allows: each connection is one fd and may hold a relay
socket (a second one), and some are kept for listeners, UDP allocations and the HTTP API. One
source gets at most a quarter of what is left, so a single host cannot hold every fd (issue 11:
1,100 idle connections from one address used up a relay's 1,024 fds and every TCP client was
refused for a minute).
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

from turn_relay.config import ListenConfig

logger = logging.getLogger(__name__)

RESERVED_FDS = 128  # listeners, the HTTP API, logs, UDP allocations under a stream flood
SOURCE_SHARE = 4  # one source may hold at most 1/SOURCE_SHARE of the connections


@dataclass(frozen=True, slots=True)
class StreamCaps:
    total: int
    per_source: int

    @classmethod
    def for_limits(cls, listen: ListenConfig, open_files: int | None = None) -> StreamCaps:
        if open_files is None:
            open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        by_fds = max(1, (open_files - RESERVED_FDS) // 2)
        total = min(listen.max_stream_connections, by_fds)
        per_source = min(listen.max_stream_connections_per_source, max(1, total // SOURCE_SHARE))
        return cls(total, per_source)


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (systemd starts services at 1024);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        logger.warning("could not raise the open files limit from %d to %d: %s", soft, hard, exc)
        return soft
    logger.info("open files limit raised from %d to %d", soft, hard)
    return hard
