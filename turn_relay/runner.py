"""Process entry for ``turn-relay serve``: logging, event loop (uvloop when installed), run."""

from __future__ import annotations

import asyncio
import logging

from .config import Secrets, TurnConfig
from .server import RelayServer

logger = logging.getLogger(__name__)


def run_relay(
    config: TurnConfig,
    secrets: Secrets,
    *,
    log_level: str = "info",
) -> None:
    """Serve until SIGTERM/SIGINT. Raises OSError when a listener or relay address fails."""
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(log_level.upper())
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    if config.server.workers != 1:
        logger.warning(
            "server.workers=%d: worker processes are not implemented yet; running one process",
            config.server.workers,
        )
    server = RelayServer(config, secrets)
    try:
        import uvloop
    except ImportError:
        asyncio.run(server.serve())
        return
    logger.info("event loop: uvloop")
    uvloop.run(server.serve())
