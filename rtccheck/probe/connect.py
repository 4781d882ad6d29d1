"""Open a STUN client to one server over UDP, TCP or TLS."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rtccheck.probe.client import Clock, StunClient
from rtccheck.probe.transport import (
    Address,
    TlsSettings,
    open_stream,
    open_udp,
    resolve,
)

Transport = Literal["udp", "tcp", "tls"]


@dataclass(frozen=True)
class ServerEndpoint:
    """Where to reach a server: host (name or IP), port and the transport to use."""

    host: str
    port: int
    transport: Transport

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.upper()} {host}:{self.port}"


@dataclass(frozen=True)
class Connection:
    client: StunClient
    remote: Address
    local: Address
    tls_version: str | None = None


@contextlib.asynccontextmanager
async def connect(
    endpoint: ServerEndpoint,
    *,
    clock: Clock,
    timeout: float,
    ca_file: Path | None = None,
) -> AsyncIterator[Connection]:
    """A client whose channel is connected to ``endpoint``; closed on exit."""
    stream = endpoint.transport != "udp"
    remote = await resolve(endpoint.host, endpoint.port, stream=stream)
    client = StunClient(clock)
    tls_version = None
    if stream:
        tls = TlsSettings(endpoint.host, ca_file) if endpoint.transport == "tls" else None
        channel = await open_stream(client, remote, timeout=timeout, tls=tls)
        tls_version = channel.tls_version
        client.attach(channel)
    else:
        client.attach(await open_udp(client, remote=remote))
    try:
        yield Connection(client, remote, client.channel.local_address, tls_version)
    finally:
        client.close()
