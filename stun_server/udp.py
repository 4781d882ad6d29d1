"""UDP serving threads: blocking loops around `BindingResponder.receive_datagram`.

For this one-datagram-in, one-datagram-out path a blocking loop costs less CPU per request than
an event loop (uvloop included): no readiness polling, no callbacks, no transport bookkeeping.
Each socket gets a thread and its own responder (no state shared between threads).

`BatchUdpLoop` (Linux) moves up to ``slots`` datagrams per system call with recvmmsg/sendmmsg
(`stun_server.mmsg`); `UdpLoop` is the portable ``recvfrom`` / ``sendto`` loop. `stop` wakes
a blocked reader with ``shutdown(SHUT_RD)``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeAlias

from stun_server import mmsg
from stun_server.responder import Address, BindingResponder

log = logging.getLogger("stun_server")

_SendTo: TypeAlias = Callable[[bytes, Address], int]

BATCH_SLOTS = 32
_REPLY_ROOM = 512  # a reply exceeds its request by far less than this (PADDING is mirrored)


def format_address(address: Address) -> str:
    ip, port = address[0], address[1]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def local_address(sock: socket.socket) -> Address:
    name = sock.getsockname()
    return (str(name[0]), int(name[1]))


class UdpLoop:
    """Serves one blocking UDP socket from its own thread with ``recvfrom`` / ``sendto``."""

    def __init__(
        self,
        sock: socket.socket,
        responder: BindingResponder,
        senders: dict[Address, socket.socket],
        recv_size: int,
    ) -> None:
        self.sock = sock
        self.local = local_address(sock)
        self.responder = responder
        self._senders = senders  # local address -> socket, to answer from another one
        self._recv_size = recv_size
        self._stopping = False
        self._failures = 0
        name = f"udp {format_address(self.local)}"
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):  # Linux wakes the reader, then reports ENOTCONN
            self.sock.shutdown(socket.SHUT_RD)

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("udp %s: thread did not stop", format_address(self.local))

    def _serve(self) -> None:
        recvfrom, sendto = self.sock.recvfrom, self.sock.sendto
        receive, local, size = self.responder.receive_datagram, self.local, self._recv_size
        clock = time.monotonic
        while True:
            try:
                data, addr = recvfrom(size)
            except OSError as exc:
                if self._stopping:
                    return
                self._pause_after(exc)
                continue
            if self._stopping:
                return
            try:
                answers = receive(data, local, addr, clock())
            except Exception:  # a responder bug must not end the UDP service
                self._report_failure(addr)
                continue
            for reply, source, destination in answers:
                if source == local:
                    self._send(sendto, reply, destination)
                else:
                    self._send_elsewhere(reply, source, destination)

    def _report_failure(self, addr: Address) -> None:
        self._failures += 1
        if self._failures in (1, 10) or self._failures % 1000 == 0:  # bounded logging
            log.exception(
                "udp %s: failure #%d on a datagram from %s", self.local, self._failures, addr
            )

    def _pause_after(self, exc: OSError) -> None:
        if exc.errno != errno.EINTR:
            log.warning("udp %s: %s", format_address(self.local), exc)
            time.sleep(0.01)  # never spin on a persistent error

    def _send_elsewhere(self, reply: bytes, source: Address, destination: Address) -> None:
        sender = self._senders.get(source)
        if sender is None:
            log.warning("no socket on %s to answer from", format_address(source))
            return
        self._send(sender.sendto, reply, destination)

    def _send(self, sendto: _SendTo, reply: bytes, destination: Address) -> None:
        try:
            sendto(reply, destination)
        except OSError as exc:
            log.debug("udp %s -> %s: %s", format_address(self.local), destination, exc)


class BatchUdpLoop(UdpLoop):
    """Like `UdpLoop`, with up to `BATCH_SLOTS` datagrams per recvmmsg and sendmmsg call."""

    def __init__(
        self,
        sock: socket.socket,
        responder: BindingResponder,
        senders: dict[Address, socket.socket],
        recv_size: int,
    ) -> None:
        super().__init__(sock, responder, senders, recv_size)
        send_size = recv_size + _REPLY_ROOM
        self._batch = mmsg.DatagramBatch(sock.family, BATCH_SLOTS, recv_size, send_size)

    def _serve(self) -> None:
        batch, fd = self._batch, self.sock.fileno()
        while True:
            try:
                count = batch.receive(fd)
            except OSError as exc:
                if self._stopping:
                    return
                self._pause_after(exc)
                continue
            if self._stopping:
                return
            self._answer_batch(count, time.monotonic())
            for error in batch.flush(fd):
                log.debug("udp %s: %s", format_address(self.local), error)

    def _answer_batch(self, count: int, now: float) -> None:
        """Queue the answers to the first ``count`` slots (the rare others go out at once)."""
        batch, receive, local = self._batch, self.responder.receive_datagram, self.local
        for index in range(count):
            addr = batch.source(index)
            try:
                answers = receive(batch.payload(index), local, addr, now)
            except Exception:  # a responder bug must not end the UDP service
                self._report_failure(addr)
                continue
            for reply, source, destination in answers:
                if destination is addr and source == local and batch.add_reply(index, reply):
                    continue
                self._send_elsewhere(reply, source, destination)


def udp_loop(
    sock: socket.socket,
    responder: BindingResponder,
    senders: dict[Address, socket.socket],
    recv_size: int,
    *,
    batch: bool = True,
) -> UdpLoop:
    """The fastest loop this platform offers for ``sock`` (``batch=False``: the plain one)."""
    if batch and mmsg.available():
        return BatchUdpLoop(sock, responder, senders, recv_size)
    return UdpLoop(sock, responder, senders, recv_size)
