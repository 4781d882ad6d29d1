"""TCP and TLS listeners of the STUN server: our own accept loop, caps, timeouts, framing.

Why not ``loop.create_server``? Two defects met in the field: under uvloop one EMFILE from
accept closes the listening socket for good (its listen callback treats any error as fatal),
and the loop's TLS costs ~300 KiB of heap per connection (see `stun_server.tlsbio`). So a
`StreamListener` accepts by itself (``add_reader``): every accepted socket is first admitted by
the `ConnectionLimiter` (per-source and total caps, `stun_server.limits`), refused ones are
closed at once; EMFILE/ENFILE/ENOBUFS/ENOMEM pause accepting for `ACCEPT_RETRY_DELAY` and are
counted; the rest become transports with ``connect_accepted_socket``.

A connection must finish its TLS handshake and send one complete STUN message within
``first_message_timeout``; after that it may stay ``idle_timeout`` seconds between complete
messages. Frames are delimited with `stream_frame_length` (RFC 8489 section 6.2.2) into a
bounded buffer; anything that is not STUN closes the connection. Every refusal and timeout is
counted in `StreamSet.counters`; refusals and exhaustion are logged at warning through a
`WarningBudget` (one line per kind per interval, however hard the flood).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections import Counter
from typing import cast

from stun_server.limits import ConnectionLimiter, Refusal, WarningBudget
from stun_server.responder import Address, BindingResponder
from stun_server.tlsbio import TlsSession
from stun_server.udp import format_address, local_address
from stun_server.wire import StunDecodeError, stream_frame_length

log = logging.getLogger("stun_server")

MAX_STREAM_FRAME = 8192  # a Binding request is far smaller; larger frames close the connection
ACCEPT_BATCH = 64  # connections accepted per readiness event
ACCEPT_RETRY_DELAY = 0.5  # seconds without accepting after the process ran out of descriptors
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_EXHAUSTED = "accept_exhausted"
FIRST_MESSAGE_TIMEOUT = "first_message_timeout"
IDLE_TIMEOUT = "idle_timeout"
TLS_FAILED = "tls_failed"


class StreamSet:
    """What every stream listener of one server shares: caps, timeouts, counters, connections."""

    def __init__(
        self,
        responder: BindingResponder,
        limiter: ConnectionLimiter,
        *,
        idle_timeout: float,
        first_message_timeout: float,
    ) -> None:
        self.responder = responder
        self.limiter = limiter
        self.idle_timeout = idle_timeout
        self.first_message_timeout = first_message_timeout
        self.counters: Counter[str] = Counter()
        self.warnings = WarningBudget()
        self.open: set[StreamConnection] = set()
        self._loop = asyncio.get_running_loop()
        self._flusher: asyncio.TimerHandle | None = None

    def count(self, kind: str) -> None:
        self.counters[kind] += 1

    def warn(self, kind: str, detail: str) -> None:
        """Count ``kind`` and log it at warning, at most one line per kind per interval."""
        self.count(kind)
        reported = self.warnings.note(kind, self._loop.time())
        if reported:
            self._log_warning(kind, reported, detail)
        elif self._flusher is None:
            self._flusher = self._loop.call_later(self.warnings.interval, self._flush)

    def _flush(self, *, everything: bool = False) -> None:
        self._flusher = None
        now = self._loop.time()
        for kind, reported in self.warnings.flush(now, everything=everything).items():
            self._log_warning(kind, reported, "")

    def _log_warning(self, kind: str, reported: int, detail: str) -> None:
        caps = self.limiter.caps
        what = _WARNINGS[kind].format(total=caps.total, per=caps.per_source)
        tail = f" (last: {detail})" if detail else ""
        log.warning(
            "%s: %d time(s) since the last report, %d in all%s",
            what,
            reported,
            self.counters[kind],
            tail,
        )

    def close_all(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flush(everything=True)
        for connection in list(self.open):
            connection.close()


_WARNINGS = {
    Refusal.TOTAL.value: "TCP/TLS connection refused: {total} connections open (the total cap)",
    Refusal.PER_SOURCE.value: "TCP/TLS connection refused: {per} open from that source (its cap)",
    ACCEPT_EXHAUSTED: "accept failed: out of file descriptors or memory; pausing accepts",
}


class StreamListener:
    """One listening TCP socket (plain or TLS) with its own accept loop."""

    def __init__(self, sock: socket.socket, streams: StreamSet, tls: ssl.SSLContext | None) -> None:
        self.sock = sock
        self.local = local_address(sock)
        self._streams = streams
        self._tls = tls
        self._loop = asyncio.get_running_loop()
        self._resume: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._loop.add_reader(sock.fileno(), self._accept_some)

    def _accept_some(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                client, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    self._streams.warn(ACCEPT_EXHAUSTED, f"{exc.strerror} on {self._name()}")
                    self._pause_accepting()
                    return
                continue  # ECONNABORTED and the like: that client is gone
            self._admit(client, (str(peer[0]), int(peer[1])))

    def _name(self) -> str:
        return f"{'tls' if self._tls else 'tcp'} {format_address(self.local)}"

    def _pause_accepting(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self._resume = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._resume = None
        self._loop.add_reader(self.sock.fileno(), self._accept_some)

    def _admit(self, client: socket.socket, peer: Address) -> None:
        refusal = self._streams.limiter.admit(peer[0])
        if refusal is not None:
            client.close()
            self._streams.warn(refusal.value, f"{format_address(peer)} on {self._name()}")
            return
        task = self._loop.create_task(self._serve(client, peer))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _serve(self, client: socket.socket, peer: Address) -> None:
        session = TlsSession(self._tls) if self._tls is not None else None
        connection = StreamConnection(self._streams, self.local, peer, session)
        try:
            await self._loop.connect_accepted_socket(lambda: connection, client)
        except BaseException:
            client.close()
            connection.connection_lost(None)
            raise

    def close(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
        else:
            self._loop.remove_reader(self.sock.fileno())
        for task in self._pending:
            task.cancel()
        self.sock.close()


class StreamConnection(asyncio.Protocol):
    """One admitted TCP or TLS connection: frames in, answers out, released when it ends."""

    def __init__(
        self, streams: StreamSet, local: Address, peer: Address, tls: TlsSession | None
    ) -> None:
        self._streams = streams
        self._local = local
        self._peer = peer
        self._tls = tls
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._answered = False
        self._released = False
        self._last_message = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._streams.open.add(self)
        self._arm_timer(self._streams.first_message_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._streams.open.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        self._buffer.clear()
        if not self._released:
            self._released = True
            self._streams.limiter.release(self._peer[0])

    def data_received(self, data: bytes) -> None:
        if self._tls is not None:
            data = self._decrypt(data)
            if self._tls.peer_closed:
                return
        self._buffer += data
        while self._transport is not None and not self._transport.is_closing():
            frame = self._next_frame()
            if frame is None:
                return
            self._answer(frame)

    def _decrypt(self, data: bytes) -> bytes:
        assert self._tls is not None and self._transport is not None
        try:
            plaintext, to_send = self._tls.receive(data)
        except ssl.SSLError as exc:
            self._streams.count(TLS_FAILED)
            self._drop(f"TLS: {exc.reason or exc}")
            return b""
        if to_send:
            self._transport.write(to_send)
        if self._tls.peer_closed:
            self.close()
        return plaintext

    def _next_frame(self) -> bytes | None:
        try:
            size = stream_frame_length(self._buffer)
        except StunDecodeError:
            self._drop("not STUN")
            return None
        if size is None:
            return None
        if size > MAX_STREAM_FRAME:
            self._drop(f"frame of {size} bytes")
            return None
        if len(self._buffer) < size:
            return None
        frame = bytes(self._buffer[:size])
        del self._buffer[:size]
        return frame

    def _answer(self, frame: bytes) -> None:
        if not self._answered:  # from now on the idle timeout applies
            self._answered = True
            if self._timer is not None:
                self._timer.cancel()
            self._arm_timer(self._streams.idle_timeout)
        self._last_message = self._loop.time()
        reply, keep_open = self._streams.responder.receive_stream_message(
            frame, self._local, self._peer
        )
        if not keep_open:
            self._drop("not STUN")
        elif reply is not None:
            self._write(reply)

    def _write(self, plaintext: bytes) -> None:
        if self._transport is None:
            return
        if self._tls is None:
            self._transport.write(plaintext)
            return
        try:
            self._transport.write(self._tls.send(plaintext))
        except ssl.SSLError as exc:
            self._drop(f"TLS: {exc.reason or exc}")

    def _drop(self, why: str) -> None:
        log.debug("closing %s: %s", format_address(self._peer), why)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if self._tls is not None:
            with contextlib.suppress(ssl.SSLError):
                self._transport.write(self._tls.close())
        self._transport.close()

    def pause_writing(self) -> None:  # the peer does not read its answers: stop reading
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def _arm_timer(self, delay: float) -> None:
        self._timer = self._loop.call_later(delay, self._check_timeout)

    def _check_timeout(self) -> None:
        if not self._answered:
            self._streams.count(FIRST_MESSAGE_TIMEOUT)
            log.debug("closing %s: no complete STUN message in time", format_address(self._peer))
            self.close()
            return
        remaining = self._last_message + self._streams.idle_timeout - self._loop.time()
        if remaining > 0:
            self._arm_timer(remaining)
            return
        self._streams.count(IDLE_TIMEOUT)
        log.debug("closing idle %s", format_address(self._peer))
        self.close()
