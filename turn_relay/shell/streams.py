"""TURN over TCP and TLS (RFC 8656 section 3.1): one client per connection, framed messages.

Frames follow RFC 8656 section 12.5: a STUN message is 20 + length bytes, a ChannelData frame
4 + length rounded up to 4 (the rules of `stun_server.wire.stream_frame_length`). A first byte
that starts neither kind of frame cannot be resynchronised, so the connection is closed.

The data path, measured with py-spy under a 50-client TCP flood (docs/benchmarks.md):

- Reading: a `BufferedProtocol`. The transport reads straight into the connection's buffer and
  frames are parsed in place; a routed ChannelData frame goes to its peer as a memoryview slice
  of that buffer (one dict lookup, one ``sendto``, no bytes objects). The buffer holds at most
  one incomplete frame (< 64 KiB) plus one read.
- Fairness: a flooding client could otherwise keep the loop reading its stream (libuv reads up
  to 32 times per readiness event) while the relay sockets' receive buffers overflow with the
  peers' answers (the first profile: 96% of the echoes dropped in the kernel). After
  `READ_BUDGET` bytes in one loop iteration a connection pauses reading until the next one.
- Writing: ChannelData from peers is queued per connection and written once per relay-socket
  batch (`flush`, ``writelines``), so a burst of answers costs one ``writev`` instead of one
  ``write`` per frame (TLS still makes one record per frame). Writes
  towards a client that does not read are dropped once its send buffer passes a limit, so a slow
  client costs bounded memory. TCP_NODELAY is on: batching is ours, not Nagle's.
- TLS: the transport is plain TCP and the connection runs `stun_server.tlsbio.TlsSession`:
  ciphertext is read into a 16 KiB buffer of its own, the plaintext appended to the frame buffer
  (then parsed as above), frames out are encrypted one record each. The loop's own TLS kept
  ~300 KiB of heap per connection that glibc never gave back (docs/operations.md, "TLS memory").
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Protocol, cast

from stun_server.tlsbio import TlsSession
from turn_relay.core.allocation import Address, FiveTuple, Traffic, Transport

from .datagrams import send_many
from .metrics import DataPathStats

WRITE_BUFFER_LIMIT = 1 << 20  # bytes queued towards one client before data is dropped
SETUP_TIMEOUT = 10.0  # default of listen.stream_setup_timeout
READ_BUDGET = 8 * 1024  # bytes one connection may read per event-loop iteration
_FIRST_READ = 4096  # a new connection's buffer; it grows while reads fill it
_MAX_READ = 16 * 1024
_TLS_READ = 16 * 1024 + 256  # one TLS record with its header and tag
TLS_FAILED = "tls-failed"  # a drop reason
_COOKIE = b"\x21\x12\xa4\x42"
_PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")  # by length % 4


class StreamShell(Protocol):
    stats: DataPathStats
    setup_timeout: float  # seconds a connection may live without an allocation

    def from_client(self, data: bytes, five_tuple: FiveTuple) -> None: ...

    def stream_opened(self, connection: StreamConnection) -> bool: ...

    def stream_closed(self, connection: StreamConnection) -> None: ...

    def has_allocation(self, five_tuple: FiveTuple) -> bool: ...


class StreamConnection(asyncio.BufferedProtocol):
    """One client's TCP connection; with ``tls`` (the context for new handshakes, read when the
    connection is admitted) its TLS runs here over memory BIOs (`stun_server.tlsbio`)."""

    def __init__(
        self,
        shell: StreamShell,
        kind: Transport,
        tls: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        self.shell = shell
        self.kind = kind
        self._tls_context = tls
        self._tls: TlsSession | None = None
        self._ciphertext: memoryview | None = None  # what the transport reads into, with TLS
        self.five_tuple: FiveTuple | None = None
        self.transport: asyncio.Transport | None = None
        self.routes: dict[int, tuple[socket.socket, Address]] = {}  # channel -> (relay, peer)
        self.traffic: Traffic | None = None  # the allocation's, for what the fast path sends
        self._buffer = bytearray(_FIRST_READ)
        self._view = memoryview(self._buffer)
        self._start = 0  # first unparsed byte
        self._end = 0  # end of the data read so far
        self._read_size = _FIRST_READ
        self._budget = READ_BUDGET
        self._paused = False
        self._out: list[bytes] = []  # frames towards the client, written by `flush`
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._loop = asyncio.get_running_loop()
        peer = self.transport.get_extra_info("peername")
        local = self.transport.get_extra_info("sockname")
        if not peer or not local:
            self.transport.abort()
            return
        if self.kind is Transport.TCP:
            _set_nodelay(self.transport)
        five_tuple = FiveTuple((peer[0], peer[1]), (local[0], local[1]), self.kind)
        self.five_tuple = five_tuple
        if not self.shell.stream_opened(self):
            self.five_tuple = None  # never admitted: nothing to tell the shell when it goes
            self.transport.abort()
            return
        if self._tls_context is not None:
            try:
                self._tls = TlsSession(self._tls_context())
            except ssl.SSLError:
                self._tls_failed()
                return
            self._ciphertext = memoryview(bytearray(_TLS_READ))
        self._arm_idle_check()  # the setup timeout also bounds the TLS handshake

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._ciphertext is not None:
            return self._ciphertext
        end = self._end
        if len(self._buffer) - end < self._read_size:
            end = self._make_room()
        return self._view[end : end + self._read_size]

    def buffer_updated(self, nbytes: int) -> None:
        if self._tls is not None:
            self._tls_received(nbytes)
            return
        if nbytes == self._read_size and self._read_size < _MAX_READ:
            self._read_size *= 2  # reads fill the buffer: offer more next time
        self._end += nbytes
        self._received(nbytes)

    def _received(self, nbytes: int) -> None:
        """``nbytes`` of plaintext were added at the end of the buffer: handle its frames."""
        self._budget -= nbytes
        self._parse()
        if self._budget <= 0 and not self._paused and self._loop is not None:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                self._paused = True
                transport.pause_reading()
                self._loop.call_soon(self._resume)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._start = self._end = 0
        self._out.clear()
        self.routes.clear()
        self._tls = None
        self._ciphertext = None
        if self.five_tuple is not None:
            self.shell.stream_closed(self)

    # ------------------------------------------------------------ sending

    def write(self, data: bytes) -> None:
        """Send ``data`` now (after whatever `deliver_to` queued, which keeps the order)."""
        if self._out:
            self._out.append(data)
            self.flush()
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self.shell.stats.dropped["client-stream-backlog"] += 1
            return
        if self._tls is None:
            transport.write(data)
        elif self._tls.handshake_done:
            self._write_records((data,))

    def deliver_to(self, header: bytes) -> Callable[[list[bytes]], None]:
        """A fast-path sender of ChannelData (padded to 4) on ``header``'s channel.

        Frames are queued; the relay socket calls `flush` after each batch it read.
        """
        stats = self.shell.stats

        def deliver(payloads: list[bytes]) -> None:
            out = self._out
            for payload in payloads:
                size = len(payload)
                out.append(header + size.to_bytes(2, "big") + payload + _PADDING[size & 3])
                stats.bytes_to_client += size
            stats.packets_to_client += len(payloads)

        return deliver

    def flush(self) -> None:
        out = self._out
        if not out:
            return
        self._out = []
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self.shell.stats.dropped["client-stream-backlog"] += len(out)
            return
        # One call, and still one buffer per frame: TCP gathers them into one writev; TLS makes
        # a record per frame, which clients that expect one message per record (coturn's
        # turnutils_uclient) need: frames joined into one record reached it as one message.
        if self._tls is None:
            transport.writelines(out)
        elif self._tls.handshake_done:
            self._write_records(out)

    def close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._tls is not None:
            with contextlib.suppress(ssl.SSLError):
                transport.write(self._tls.close())  # close_notify
        transport.close()

    # ------------------------------------------------------------ TLS

    def _tls_received(self, nbytes: int) -> None:
        """Ciphertext arrived: answer the handshake, move the plaintext into the buffer."""
        tls, transport, ciphertext = self._tls, self.transport, self._ciphertext
        assert tls is not None and transport is not None and ciphertext is not None
        try:
            plaintext, to_send = tls.receive(bytes(ciphertext[:nbytes]))
        except ssl.SSLError:
            self._tls_failed()
            return
        if to_send:
            transport.write(to_send)
        if plaintext:
            self._append(plaintext)
        if tls.peer_closed:
            self.close()  # answer the peer's close_notify with ours

    def _append(self, plaintext: bytes) -> None:
        size = len(plaintext)
        if len(self._buffer) - self._end < size:
            self._make_room(size)
        end = self._end
        self._buffer[end : end + size] = plaintext
        self._end = end + size
        self._received(size)

    def _write_records(self, frames: tuple[bytes, ...] | list[bytes]) -> None:
        assert self._tls is not None and self.transport is not None
        try:
            self.transport.write(self._tls.send_records(frames))
        except ssl.SSLError:
            self._tls_failed()

    def _tls_failed(self) -> None:
        self.shell.stats.dropped[TLS_FAILED] += 1
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------ internals

    def _parse(self) -> None:
        """Handle every complete frame in the buffer; the fast path forwards routed ones.

        Consecutive frames for one route are sent together (`send_many`) before this returns,
        as memoryviews of the buffer (which is only rearranged by the next `get_buffer`).
        """
        buffer, view = self._buffer, self._view
        start, end = self._start, self._end
        routes = self.routes
        current: tuple[socket.socket, Address] | None = None
        run: list[memoryview] = []
        forwarded = forwarded_bytes = 0
        try:
            while end - start >= 4:
                first = buffer[start]
                length = (buffer[start + 2] << 8) | buffer[start + 3]
                if first & 0xC0 == 0x40:  # ChannelData
                    size = 4 + length + (-length) % 4
                    if end - start < size:
                        break
                    route = routes.get((first << 8) | buffer[start + 1])
                    if route is not None:
                        if route is not current:
                            if run:
                                self._forward(current, run)
                            current, run = route, []
                        run.append(view[start + 4 : start + 4 + length])
                        forwarded += 1
                        forwarded_bytes += length
                        start += size
                        continue
                elif first < 0x40:  # STUN: the cookie and a length multiple of 4, or garbage
                    cookie_ok = end - start < 8 or buffer[start + 4 : start + 8] == _COOKIE
                    if not cookie_ok or length % 4:
                        self._garbage()
                        return
                    size = 20 + length
                    if end - start < size:
                        break
                else:
                    self._garbage()
                    return
                if run:  # keep the order: what the core does may change the routes
                    self._forward(current, run)
                    current, run = None, []
                frame = bytes(view[start : start + size])
                start += size
                self._start = start
                self.shell.from_client(frame, cast(FiveTuple, self.five_tuple))
                if self.transport is None or self.transport.is_closing():
                    return
            if start == end:
                start = end = 0
            self._start, self._end = start, end
        finally:
            if run:
                self._forward(current, run)
            if forwarded:
                stats = self.shell.stats
                stats.packets_to_peer += forwarded
                stats.bytes_to_peer += forwarded_bytes
                traffic = self.traffic
                if traffic is not None:
                    traffic.packets_to_peer += forwarded
                    traffic.bytes_to_peer += forwarded_bytes

    def _forward(self, route: tuple[socket.socket, Address] | None, run: list[memoryview]) -> None:
        assert route is not None
        failed = send_many(route[0], route[1], run)
        if failed:
            self.shell.stats.dropped["peer-send-failed"] += failed

    def _make_room(self, incoming: int = 0) -> int:
        """Move the incomplete frame to the front, into a larger buffer if a read (or
        ``incoming`` bytes) won't fit."""
        start, end = self._start, self._end
        pending = end - start
        needed = pending + max(self._read_size, incoming)
        if len(self._buffer) < needed:
            buffer = bytearray(needed)
            buffer[:pending] = self._view[start:end]
            self._buffer, self._view = buffer, memoryview(buffer)
        elif start:
            self._buffer[:pending] = bytes(self._view[start:end])  # the ranges may overlap
        self._start, self._end = 0, pending
        return pending

    def _garbage(self) -> None:
        self.shell.stats.dropped["stream-garbage"] += 1
        self._start = self._end = 0
        self.close()

    def _resume(self) -> None:
        self._budget = READ_BUDGET
        self._paused = False
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def _arm_idle_check(self) -> None:
        assert self._loop is not None
        self._idle = self._loop.call_later(self.shell.setup_timeout, self._idle_check)

    def _idle_check(self) -> None:
        """Close connections that hold no allocation (RFC 8656 leaves this to the server): one
        that never sent, never authenticated or deleted its allocation holds an fd for
        nothing."""
        assert self.five_tuple is not None
        if self.shell.has_allocation(self.five_tuple):
            self._arm_idle_check()
        else:
            self.close()


def _set_nodelay(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
