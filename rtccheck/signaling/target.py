"""A signaling URL as the check understands it: scheme, host, port, path and protocol."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit


class Protocol(StrEnum):
    WEBSOCKET = "websocket"
    SOCKETIO = "socketio"


SCHEMES = ("ws", "wss", "http", "https")
DEFAULT_SOCKETIO_PATH = "socket.io"


class SignalingUrlError(ValueError):
    """The URL cannot be checked (a usage error, exit status 2)."""


@dataclass(frozen=True)
class SignalingTarget:
    url: str
    scheme: str
    host: str
    port: int
    #: path and query as sent in the request line (``/`` at least)
    resource: str
    protocol: Protocol

    @property
    def secure(self) -> bool:
        return self.scheme in ("wss", "https")

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def http_base(self) -> str:
        """``http(s)://host:port``: where a Socket.IO client starts."""
        return f"{'https' if self.secure else 'http'}://{self.authority}"

    @property
    def socketio_path(self) -> str:
        """The Engine.IO path: the URL's own when it names one, else ``socket.io``."""
        path = self.resource.partition("?")[0].strip("/")
        return path if path.endswith(DEFAULT_SOCKETIO_PATH) else DEFAULT_SOCKETIO_PATH


def parse_target(url: str, protocol: str = "auto") -> SignalingTarget:
    """``ws://``/``wss://`` is a plain WebSocket unless its path is a Socket.IO path
    (``/socket.io/``); ``http://``/``https://`` is Socket.IO. ``protocol`` overrides that."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise SignalingUrlError(f"{url!r}: give a ws://, wss://, http:// or https:// URL")
    try:
        port = parts.port
    except ValueError:
        raise SignalingUrlError(f"{url!r}: the port is not a number in 0-65535") from None
    if not parts.hostname:
        raise SignalingUrlError(f"{url!r}: the URL has no host")
    secure = scheme in ("wss", "https")
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return SignalingTarget(
        url=url.strip(),
        scheme=scheme,
        host=parts.hostname,
        port=port or (443 if secure else 80),
        resource=resource,
        protocol=_protocol(protocol, scheme, parts.path),
    )


def _protocol(choice: str, scheme: str, path: str) -> Protocol:
    if choice != "auto":
        return Protocol(choice)
    if scheme in ("http", "https") or DEFAULT_SOCKETIO_PATH in path:
        return Protocol.SOCKETIO
    return Protocol.WEBSOCKET
