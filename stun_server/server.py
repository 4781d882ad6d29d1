"""asyncio shell around `BindingResponder`: UDP, TCP and TLS listeners, worker processes, signals.

One `StunServer` per process binds every listener of a `ServerConfig`: UDP and TCP on each listen
address, TLS on each listen IP at the TLS port, and for RFC 5780 the other three UDP sockets of
each primary/alternate IP x primary/alternate port quad. Each UDP socket is served by a thread
with a blocking loop (`stun_server.udp`: recvmmsg/sendmmsg batches on Linux), cheaper per
datagram than an event loop; streams (`stun_server.streams`: caps per source and in total,
timeouts, TLS over memory BIOs) and signals run on the event loop.

`run(config)` is the process entry: it raises the soft RLIMIT_NOFILE to the hard limit (logged),
uses uvloop when installed, SIGINT/SIGTERM stop it cleanly (exit status 0), and ``workers > 1``
forks that many processes whose listeners share their ports with SO_REUSEPORT (the kernel
spreads clients over them by address hash).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from stun_server.config import ServerConfig
from stun_server.fdlimit import nofile_soft_limit, raise_nofile_limit
from stun_server.limits import ConnectionCaps, ConnectionLimiter, default_total_connections
from stun_server.responder import Address, BindingResponder
from stun_server.streams import StreamListener, StreamSet
from stun_server.udp import UdpLoop, format_address, local_address
from stun_server.udp import udp_loop as new_udp_loop

log = logging.getLogger("stun_server")

UDP_BUFFER_BYTES = 4 * 1024 * 1024
_PORT_RETRIES = 20


@dataclass(frozen=True, slots=True)
class Listener:
    transport: str  # "udp", "tcp" or "tls"
    address: Address
    note: str = ""

    def __str__(self) -> str:
        text = f"{self.transport} {format_address(self.address)}"
        return f"{text} ({self.note})" if self.note else text


# ---------------------------------------------------------------- sockets


def open_socket(address: Address, kind: int, *, reuse_port: bool) -> socket.socket:
    """A bound, non-blocking socket (listening, for streams)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            _enlarge_buffers(sock)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if kind == socket.SOCK_STREAM:
            sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _enlarge_buffers(sock: socket.socket) -> None:
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_BUFFER_BYTES)


def _bind_udp_and_tcp(
    address: Address, *, tcp: bool, reuse_port: bool
) -> tuple[socket.socket, socket.socket | None]:
    """UDP and (optionally) TCP on the same address and port; port 0 picks one free for both."""
    for _ in range(_PORT_RETRIES):
        udp = open_socket(address, socket.SOCK_DGRAM, reuse_port=reuse_port)
        if not tcp:
            return udp, None
        try:
            stream = open_socket(local_address(udp), socket.SOCK_STREAM, reuse_port=reuse_port)
        except OSError as exc:
            udp.close()
            if address[1] != 0 or exc.errno != errno.EADDRINUSE:
                raise
            continue
        return udp, stream
    raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {address[0]}")


# ---------------------------------------------------------------- the server


def tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


class StunServer:
    """Every listener of one process. `start` binds them all, `close` releases them."""

    def __init__(self, config: ServerConfig, *, reuse_port: bool = False) -> None:
        self.config = config
        self.reuse_port = reuse_port
        self.responder = BindingResponder(config.responder_config())  # for TCP and TLS
        self.listeners: list[Listener] = []
        self._udp_sockets: dict[Address, socket.socket] = {}
        self._udp_loops: list[UdpLoop] = []
        self._stream_listeners: list[StreamListener] = []
        self._streams: StreamSet | None = None

    @property
    def connection_count(self) -> int:
        return len(self._streams.open) if self._streams is not None else 0

    @property
    def stream_counters(self) -> dict[str, int]:
        """Refusals, exhaustion and timeouts of TCP/TLS connections so far."""
        return dict(self._streams.counters) if self._streams is not None else {}

    def connection_caps(self) -> ConnectionCaps:
        total = self.config.max_connections or default_total_connections(nofile_soft_limit())
        return ConnectionCaps(total, self.config.max_connections_per_source)

    async def start(self) -> list[Listener]:
        """Bind every listener, then start serving; on failure nothing stays bound."""
        context = tls_context(self.config)  # a bad certificate fails before any socket opens
        self._streams = StreamSet(
            self.responder,
            ConnectionLimiter(self.connection_caps()),
            idle_timeout=self.config.idle_timeout,
            first_message_timeout=self.config.first_message_timeout,
        )
        try:
            for address in self.config.listen:
                await self._listen_udp_and_tcp(address)
                if context is not None:
                    await self._listen_tls((address[0], self.config.tls_listen_port), context)
            self._bind_rfc5780_sockets()
        except BaseException:
            await self.close()
            raise
        self._start_udp_loops()
        return self.listeners

    async def _listen_udp_and_tcp(self, address: Address) -> None:
        udp, tcp = _bind_udp_and_tcp(address, tcp=self.config.tcp, reuse_port=self.reuse_port)
        self._add_udp(udp, "")
        if tcp is not None:
            await self._serve_stream(tcp, "tcp", None)

    async def _listen_tls(self, address: Address, context: ssl.SSLContext) -> None:
        sock = open_socket(address, socket.SOCK_STREAM, reuse_port=self.reuse_port)
        await self._serve_stream(sock, "tls", context)

    def _bind_rfc5780_sockets(self) -> None:
        for address in self.responder.rfc5780_sockets:
            if address not in self._udp_sockets:
                sock = open_socket(address, socket.SOCK_DGRAM, reuse_port=self.reuse_port)
                self._add_udp(sock, "RFC 5780 alternate")

    def _add_udp(self, sock: socket.socket, note: str) -> None:
        sock.setblocking(True)
        local = local_address(sock)
        self._udp_sockets[local] = sock
        self.listeners.append(Listener("udp", local, note))

    def _start_udp_loops(self) -> None:
        responder_config = self.config.responder_config()
        recv_size = max(2048, responder_config.max_padding + 1024)
        for sock in self._udp_sockets.values():
            responder = BindingResponder(responder_config)  # one per thread: nothing shared
            batch = self.config.udp_batch
            loop = new_udp_loop(sock, responder, self._udp_sockets, recv_size, batch=batch)
            self._udp_loops.append(loop)
        for udp_loop in self._udp_loops:
            udp_loop.start()

    async def _serve_stream(
        self, sock: socket.socket, transport: str, context: ssl.SSLContext | None
    ) -> None:
        assert self._streams is not None
        try:
            listener = StreamListener(sock, self._streams, context)
        except BaseException:
            sock.close()
            raise
        self._stream_listeners.append(listener)
        self.listeners.append(Listener(transport, listener.local))

    async def close(self) -> None:
        """Stop the UDP threads, close every listener and connection."""
        for udp_loop in self._udp_loops:
            udp_loop.stop()
        for udp_loop in self._udp_loops:
            udp_loop.join(timeout=2.0)
        self._udp_loops.clear()
        for sock in self._udp_sockets.values():
            sock.close()
        self._udp_sockets.clear()
        for listener in self._stream_listeners:
            listener.close()
        self._stream_listeners.clear()
        if self._streams is not None:
            self._streams.close_all()
        self.listeners.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost callbacks


# ---------------------------------------------------------------- processes


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


async def serve(config: ServerConfig, *, reuse_port: bool = False, announce: bool = True) -> int:
    """Run one server until SIGINT or SIGTERM; the exit status (0 after a clean stop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # before any socket answers
        loop.add_signal_handler(signum, stop.set)
    server = StunServer(config, reuse_port=reuse_port)
    try:
        listeners = await server.start()
    except (OSError, ssl.SSLError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    for listener in listeners:
        log.log(logging.INFO if announce else logging.DEBUG, "listening on %s", listener)
    await stop.wait()
    counters = server.stream_counters
    await server.close()
    if any(counters.values()):
        log.info("TCP/TLS: %s", ", ".join(f"{k} {v}" for k, v in sorted(counters.items())))
    log.log(logging.INFO if announce else logging.DEBUG, "stopped")
    return 0


def run_in_loop(main: Coroutine[Any, Any, int]) -> int:
    with asyncio.Runner(loop_factory=_new_event_loop) as runner:
        return runner.run(main)


def run(config: ServerConfig) -> int:
    """The process entry: one server, or ``workers`` forked servers sharing their ports."""
    log.info("%s", raise_nofile_limit().describe())
    workers = config.workers or os.cpu_count() or 1
    if workers == 1:
        return run_in_loop(serve(config))
    return _Supervisor(config, workers).run()


_CLEAN_EXITS = (0, -signal.SIGTERM, -signal.SIGINT)  # a signal before the loop took it over


class _Supervisor:
    """Forks the workers, forwards SIGINT/SIGTERM to them, and reports how they ended."""

    def __init__(self, config: ServerConfig, workers: int) -> None:
        self.config = config
        self.workers = workers
        self.children: set[int] = set()
        self.stopping = False
        self.parent_pid = os.getpid()

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for index in range(self.workers):
                self.children.add(self._fork(index))
            log.info("%d worker processes share the ports (SO_REUSEPORT)", self.workers)
            return self._wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _fork(self, index: int) -> int:
        pid = os.fork()
        if pid == 0:  # the worker
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
            status = 1
            try:
                status = run_in_loop(serve(self.config, reuse_port=True, announce=index == 0))
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(status)
        return pid

    def _on_signal(self, signum: int, frame: object) -> None:
        if os.getpid() != self.parent_pid:
            return
        self.stopping = True
        self._signal_children()

    def _signal_children(self) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _wait(self) -> int:
        status = 0
        while self.children:
            pid, wait_status = os.wait()
            self.children.discard(pid)
            code = os.waitstatus_to_exitcode(wait_status)
            if not (self.stopping and code in _CLEAN_EXITS):
                log.error("worker %d exited with status %d; stopping the others", pid, code)
                status = 1
                self.stopping = True
                self._signal_children()
        return status
