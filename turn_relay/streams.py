"""TURN over TCP and TLS (RFC 8656 section 3.1): one client per connection, framed messages.

Frames follow RFC 8656 section 12.5: a STUN message is 20 + length bytes, a ChannelData frame
4 + length rounded up to 4 (`stream_frame_length`). The receive buffer never holds more than one
incomplete frame (at most 64 KiB) plus what one read returned; a first byte that starts neither
kind of frame cannot be resynchronised, so the connection is closed. Writes towards a client
that does not read are dropped once its send buffer passes a limit, so a slow client costs
bounded memory.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Protocol, cast

from stun_server.wire import StunDecodeError, stream_frame_length

from .allocation import Address, FiveTuple, Transport
from .metrics import DataPathStats

WRITE_BUFFER_LIMIT = 1 << 20  # bytes queued towards one client before data is dropped
SETUP_TIMEOUT = 60.0  # seconds a connection may live without an allocation


class StreamShell(Protocol):
    stats: DataPathStats

    def from_client(self, data: bytes, five_tuple: FiveTuple) -> None: ...

    def stream_opened(self, connection: StreamConnection) -> None: ...

    def stream_closed(self, connection: StreamConnection) -> None: ...

    def has_allocation(self, five_tuple: FiveTuple) -> bool: ...


class StreamConnection(asyncio.Protocol):
    def __init__(self, shell: StreamShell, kind: Transport) -> None:
        self.shell = shell
        self.kind = kind
        self.five_tuple: FiveTuple | None = None
        self.transport: asyncio.Transport | None = None
        self.routes: dict[int, tuple[socket.socket, Address]] = {}  # channel -> (relay, peer)
        self._buffer = bytearray()
        self._idle: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = self.transport.get_extra_info("peername")
        local = self.transport.get_extra_info("sockname")
        if not peer or not local:
            self.transport.abort()
            return
        self.five_tuple = FiveTuple((peer[0], peer[1]), (local[0], local[1]), self.kind)
        self.shell.stream_opened(self)
        self._arm_idle_check()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= 4:
            try:
                size = stream_frame_length(buffer[offset : offset + 4])
            except StunDecodeError:
                self.shell.stats.dropped["stream-garbage"] += 1
                self.close()
                return
            if size is None or len(buffer) - offset < size:
                break
            frame = bytes(buffer[offset : offset + size])
            offset += size
            self._frame(frame)
            if self.transport is None or self.transport.is_closing():
                return
        del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._buffer.clear()
        self.routes.clear()
        if self.five_tuple is not None:
            self.shell.stream_closed(self)

    # ------------------------------------------------------------ sending

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self.shell.stats.dropped["client-stream-backlog"] += 1
            return
        transport.write(data)

    def deliver_to(self, header: bytes) -> Callable[[bytes], None]:
        """A fast-path sender of ChannelData (padded to 4) on ``header``'s channel."""
        stats = self.shell.stats

        def deliver(payload: bytes) -> None:
            pad = b"\x00" * ((-len(payload)) % 4)
            self.write(header + len(payload).to_bytes(2, "big") + payload + pad)
            stats.packets_to_client += 1
            stats.bytes_to_client += len(payload)

        return deliver

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # ------------------------------------------------------------ internals

    def _frame(self, frame: bytes) -> None:
        assert self.five_tuple is not None
        if frame[0] >= 0x40:
            route = self.routes.get((frame[0] << 8) | frame[1])
            if route is not None:
                end = 4 + ((frame[2] << 8) | frame[3])
                try:
                    route[0].sendto(frame[4:end], route[1])
                except OSError:
                    self.shell.stats.dropped["peer-send-failed"] += 1
                self.shell.stats.packets_to_peer += 1
                self.shell.stats.bytes_to_peer += end - 4
                return
        self.shell.from_client(frame, self.five_tuple)

    def _arm_idle_check(self) -> None:
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(SETUP_TIMEOUT, self._idle_check)

    def _idle_check(self) -> None:
        """Close connections that hold no allocation (RFC 8656 leaves this to the server)."""
        assert self.five_tuple is not None
        if self.shell.has_allocation(self.five_tuple):
            self._arm_idle_check()
        else:
            self.close()
