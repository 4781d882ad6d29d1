"""Process entry for ``turn-relay serve``: logging, event loop (uvloop when installed), run.

``server.workers`` other than 1 forks worker processes (`turn_relay.workers`); 0 means one per
core.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from stun_server import logfmt
from turn_relay.config import Secrets, TurnConfig

from .admin_view import LocalAdmin
from .fleet import FleetAdmin, RelayFleet
from .operations import RelayOperations
from .server import RelayServer
from .stream_caps import raise_open_files_limit
from .tuning import tune_gc
from .workers import run_workers, worker_count

logger = logging.getLogger(__name__)


def run_relay(
    config: TurnConfig,
    secrets: Secrets,
    *,
    log_level: str = "info",
    log_format: str = "text",
) -> None:
    """Serve until SIGTERM/SIGINT. Raises OSError when a listener or relay address fails.

    ``log_format``: ``text`` or ``json`` lines (`stun_server.logfmt`, shared with stun-server).
    """
    if not logging.getLogger().handlers:
        logfmt.configure(log_level, log_format)
    logging.getLogger().setLevel(log_level.upper())
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    raise_open_files_limit()
    workers = worker_count(config.server.workers)
    if workers > 1:
        status = run_workers(config, secrets, workers)
        if status:
            sys.exit(status)
        return
    server = RelayServer(config, secrets)
    operations = RelayOperations(server)
    if config.fleet.enabled:
        fleet = RelayFleet(operations, config, secrets)
        server.fleet = fleet
        server.admin = FleetAdmin(config, fleet)
    else:
        server.admin = LocalAdmin(config, operations)
    tune_gc()
    try:
        import uvloop
    except ImportError:
        asyncio.run(server.serve())
        return
    logger.info("event loop: uvloop")
    uvloop.run(server.serve())
