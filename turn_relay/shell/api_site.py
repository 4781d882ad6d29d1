"""The HTTP API's listening socket, with per-source and total connection caps.

aiohttp closes idle keep-alive connections itself (``keepalive_timeout``) but has no cap on how
many one host may hold open; `CappedSite` counts connections per source (IPv4 address, IPv6
/64) with stun-server's `ConnectionLimiter` and closes one over a cap at once, before aiohttp
reads a byte. Everything else of `web.TCPSite` (TLS, the runner's shutdown) is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from aiohttp import web

from stun_server.limits import ConnectionCaps, ConnectionLimiter

from .rare_warning import RareWarning

logger = logging.getLogger(__name__)

API_MAX_CONNECTIONS = 1024  # the API serves an app's backend and ops, not users' browsers...
API_MAX_CONNECTIONS_PER_SOURCE = 128  # ...except the check page: an office behind one address


class _Counted(asyncio.Protocol):
    """Admits a connection against the caps, then hands every event to aiohttp's handler."""

    def __init__(self, inner: Any, site: CappedSite) -> None:
        self._inner = inner
        self._site = site
        self._source: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        source = str(peer[0]) if peer else "?"
        refusal = self._site.limiter.admit(source)
        if refusal is not None:
            self._site.refused[refusal.value] += 1
            self._site.warning.happened(f"{source}: {refusal.value}")
            transport.abort()  # type: ignore[attr-defined]
            return
        self._source = source
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._source is None:
            return
        self._site.limiter.release(self._source)
        self._source = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._source is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received() if self._source is not None else None
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class CappedSite(web.TCPSite):
    """`web.TCPSite` whose connections are counted and capped (see the module docstring)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, **kwargs: Any) -> None:
        caps = kwargs.pop("caps", None) or ConnectionCaps(
            API_MAX_CONNECTIONS, API_MAX_CONNECTIONS_PER_SOURCE
        )
        super().__init__(runner, host, port, **kwargs)
        self.limiter = ConnectionLimiter(caps)
        self.refused: Counter[str] = Counter()
        self.warning = RareWarning("HTTP API connection refused at its connection cap")

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        factory = self._runner.server
        assert factory is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Counted(factory(), self),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        if sockets:
            self._bound_port = sockets[0].getsockname()[1]
