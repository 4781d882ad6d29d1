"""Sockets for probes: UDP datagrams and TCP/TLS streams that deliver whole STUN frames.

A channel hands every frame it receives (a datagram, or one STUN/ChannelData frame cut from the
stream with `stream_frame_length`) to a `Receiver`, together with its source address. All
socket, DNS and TLS errors come out as `ProbeError`. Nothing here knows STUN semantics.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rtccheck.probe.errors import FailureKind, ProbeError, from_os_error
from stun_server.wire import StunDecodeError, stream_frame_length

Address = tuple[str, int]
#: frames above this size on a stream mean the peer is not speaking STUN
MAX_STREAM_BUFFER = 1 << 17


class Receiver(Protocol):
    def frame_received(self, data: bytes, source: Address) -> None: ...

    def channel_failed(self, error: ProbeError) -> None: ...


class Channel(Protocol):
    """What a STUN client needs from a socket."""

    @property
    def reliable(self) -> bool: ...

    @property
    def local_address(self) -> Address: ...

    def send(self, data: bytes, destination: Address | None = None) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class TlsSettings:
    """How to verify a TLS server: its name and, optionally, the only CAs to trust."""

    server_name: str
    ca_file: Path | None = None
    verify: bool = True


def tls_context(settings: TlsSettings) -> ssl.SSLContext:
    """Trust only ``ca_file`` when given (as --ca-file says), else the system's store
    (SSL_CERT_FILE honoured)."""
    cafile = str(settings.ca_file) if settings.ca_file is not None else None
    context = ssl.create_default_context(cafile=cafile)
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def resolve(host: str, port: int, *, stream: bool) -> Address:
    """The first address of ``host`` (IPv4 first), as getaddrinfo orders them."""
    loop = asyncio.get_running_loop()
    kind = socket.SOCK_STREAM if stream else socket.SOCK_DGRAM
    try:
        found = await loop.getaddrinfo(host, port, type=kind)
    except OSError as error:
        raise from_os_error(error) from None
    if not found:
        raise ProbeError(FailureKind.RESOLVE, f"{host} has no address")
    found.sort(key=lambda entry: entry[0] != socket.AF_INET)
    sockaddr = found[0][4]
    return str(sockaddr[0]), int(sockaddr[1])


# ---------------------------------------------------------------- UDP


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.receiver.frame_received(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.receiver.channel_failed(from_os_error(exc))


def _local_address(transport: asyncio.BaseTransport) -> Address:
    host, port = transport.get_extra_info("sockname")[:2]
    return str(host), int(port)


class DatagramChannel:
    """A UDP socket; connected to one server (ICMP errors reported) or open to any."""

    reliable = False

    def __init__(self, transport: asyncio.DatagramTransport, remote: Address | None) -> None:
        self._transport = transport
        self._remote = remote

    @property
    def local_address(self) -> Address:
        return _local_address(self._transport)

    def send(self, data: bytes, destination: Address | None = None) -> None:
        if self._transport.is_closing():
            raise ProbeError(FailureKind.CLOSED, "socket closed")
        if destination is None or self._remote is not None:
            self._transport.sendto(data)
        else:
            self._transport.sendto(data, destination)

    def close(self) -> None:
        self._transport.close()


async def open_udp(
    receiver: Receiver, *, remote: Address | None = None, local: Address | None = None
) -> DatagramChannel:
    """A UDP channel. With ``remote`` it is connected (a closed port shows as REFUSED)."""
    loop = asyncio.get_running_loop()
    if local is None and remote is None:
        local = ("0.0.0.0", 0)
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _DatagramProtocol(receiver), local_addr=local, remote_addr=remote
        )
    except OSError as error:
        raise from_os_error(error) from None
    return DatagramChannel(transport, remote)


# ---------------------------------------------------------------- TCP / TLS


class StreamDeframer:
    """Cuts a byte stream into STUN messages and ChannelData frames (sans-I/O)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The complete frames now available; raises ProbeError for a non-STUN stream."""
        self._buffer += data
        frames: list[bytes] = []
        while True:
            try:
                length = stream_frame_length(self._buffer)
            except StunDecodeError as error:
                raise ProbeError(
                    FailureKind.MALFORMED, f"not STUN on the stream: {error}"
                ) from None
            if length is None or len(self._buffer) < length:
                break
            frames.append(bytes(self._buffer[:length]))
            del self._buffer[:length]
        if len(self._buffer) > MAX_STREAM_BUFFER:
            raise ProbeError(FailureKind.MALFORMED, "oversized frame on the stream")
        return frames


class _StreamProtocol(asyncio.Protocol):
    def __init__(self, receiver: Receiver, remote: Address) -> None:
        self.receiver = receiver
        self.remote = remote
        self.deframer = StreamDeframer()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.deframer.feed(data)
        except ProbeError as error:
            self.receiver.channel_failed(error)
            if self.transport is not None:
                self.transport.abort()
            return
        for frame in frames:
            self.receiver.frame_received(frame, self.remote)

    def connection_lost(self, exc: Exception | None) -> None:
        detail = str(exc) if exc else "the server closed the connection"
        self.receiver.channel_failed(ProbeError(FailureKind.CLOSED, detail))


class StreamChannel:
    """A TCP connection, or TLS over TCP, to one server."""

    reliable = True

    def __init__(self, transport: asyncio.Transport, tls_version: str | None) -> None:
        self._transport = transport
        self.tls_version = tls_version

    @property
    def local_address(self) -> Address:
        return _local_address(self._transport)

    def send(self, data: bytes, destination: Address | None = None) -> None:
        if self._transport.is_closing():
            raise ProbeError(FailureKind.CLOSED, "connection closed")
        self._transport.write(data)

    def close(self) -> None:
        self._transport.close()


async def open_stream(
    receiver: Receiver, remote: Address, *, timeout: float, tls: TlsSettings | None = None
) -> StreamChannel:
    """Connect (and handshake) within ``timeout``; failures become ProbeError."""
    loop = asyncio.get_running_loop()
    context = tls_context(tls) if tls is not None else None
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(
                lambda: _StreamProtocol(receiver, remote),
                remote[0],
                remote[1],
                ssl=context,
                server_hostname=tls.server_name if tls is not None else None,
            )
    except (OSError, ssl.SSLError, TimeoutError) as error:
        failure = from_os_error(error)
        failure.during_connect = True
        raise failure from None
    ssl_object = transport.get_extra_info("ssl_object")
    version = ssl_object.version() if isinstance(ssl_object, ssl.SSLObject) else None
    return StreamChannel(transport, version)
