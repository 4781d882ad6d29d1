"""A UDP ChannelData load generator and echo peer that cost little per message (sendmmsg/recvmmsg).

turnutils_uclient paces each client (about 12.5k msg/s) and, with turnutils_peer, takes about a
core of this 2-core machine: where it sets the rate, the relay's own limit is not measured. Here
one process drives every client: each socket is connected to the relay, Allocates and binds
channel 0x4000 to the echo peer (`turnload.open_channel`), then keeps up to ``--window``
messages in flight, sending ``--batch`` identical ChannelData messages per sendmmsg(2) and
draining replies with recvmmsg(2); the Python cost is per system call, not per message. A
client whose replies stop for 200 ms counts what it had in flight as lost and starts again.

The echo peer (``echo``) answers every datagram back to its sender with `stun_server.mmsg`
(one recvmmsg and one sendmmsg per batch).

Both run as their own processes so the bench can read their CPU time from /proc. The generator
prints ``ready`` when every channel is bound, then one JSON line with its counts after
``--duration`` seconds (the first ``--warmup`` seconds are not counted).

Example::

    python -m bench.flood echo --host 127.0.0.1 --port 18001 &
    python -m bench.flood generate --host 127.0.0.1 --port 3478 --peer 127.0.0.1:18001 \\
        --user bench --password bench --realm turnkit --clients 10 --size 120 --duration 4
    python -m bench.flood generate --direct --peer 127.0.0.1:18001 --clients 10 --size 120

``--direct`` sends the same datagrams to the echo peer with no relay between: the bench uses it
to learn what the generator and the peer cost by themselves per message (their kernel work
included), since on loopback the kernel's delivery work runs in the sender's system call and
is charged to it, offloaded forwarding too.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import select
import socket
import sys
import time
from dataclasses import dataclass

from bench import turnload
from stun_server import mmsg

_MSG_DONTWAIT = 0x40
_STALL = 0.2  # seconds without a reply before a client's in-flight messages count as lost
_SLOT = 2048


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint))


_libc = ctypes.CDLL(None, use_errno=True)
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
_sendmmsg.restype = ctypes.c_int
_recvmmsg = _libc.recvmmsg
_recvmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
_recvmmsg.restype = ctypes.c_int


class _Batches:
    """``batch`` send headers all pointing at one message, and ``batch`` receive slots."""

    def __init__(self, message: bytes, batch: int) -> None:
        self.batch = batch
        self._message = ctypes.create_string_buffer(message, len(message))
        self._send_iov = _IoVec(ctypes.cast(self._message, ctypes.c_void_p), len(message))
        self.send = (_MMsgHdr * batch)()
        for header in self.send:
            header.msg_hdr.msg_iov = ctypes.pointer(self._send_iov)
            header.msg_hdr.msg_iovlen = 1
        self._buffers = ctypes.create_string_buffer(batch * _SLOT)
        base = ctypes.addressof(self._buffers)
        self._recv_iovs = (_IoVec * batch)(*(_IoVec(base + i * _SLOT, _SLOT) for i in range(batch)))
        self.recv = (_MMsgHdr * batch)()
        for i, header in enumerate(self.recv):
            header.msg_hdr.msg_iov = ctypes.pointer(self._recv_iovs[i])
            header.msg_hdr.msg_iovlen = 1

    def send_to(self, fd: int, count: int) -> int:
        sent: int = _sendmmsg(fd, ctypes.addressof(self.send), count, _MSG_DONTWAIT)
        return max(sent, 0)

    def receive(self, fd: int) -> int:
        got: int = _recvmmsg(fd, ctypes.addressof(self.recv), self.batch, _MSG_DONTWAIT, None)
        return max(got, 0)


@dataclass
class _Client:
    sock: socket.socket
    sent: int = 0
    received: int = 0
    lost: int = 0
    last_reply: float = 0.0

    @property
    def in_flight(self) -> int:
        return self.sent - self.received - self.lost


def generate(args: argparse.Namespace) -> int:
    peer_host, _, peer_port = args.peer.rpartition(":")
    peer = (peer_host.strip("[]"), int(peer_port))
    family = socket.AF_INET6 if ":" in (peer[0] if args.direct else args.host) else socket.AF_INET
    clients: list[_Client] = []
    for _ in range(args.clients):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        if args.direct:
            sock.connect(peer)
        else:
            sock.connect((args.host, args.port))
            creds = turnload.Credentials(args.user, args.password, args.realm)
            turnload.open_channel(sock, creds, peer)
        sock.setblocking(False)
        clients.append(_Client(sock))
    payload = bytes(range(256)) * (args.size // 256 + 1)
    framing = b"" if args.direct else (0x4000).to_bytes(2, "big") + args.size.to_bytes(2, "big")
    message = framing + payload[: args.size]
    batches = _Batches(message, args.batch)
    print("ready", flush=True)
    poller = select.epoll()
    for client in clients:
        poller.register(client.sock.fileno(), select.EPOLLIN)
    started = time.monotonic()
    counting_from = started + args.warmup
    end = counting_from + args.duration
    base_received = base_lost = 0
    counting = False
    while True:
        now = time.monotonic()
        if not counting and now >= counting_from:
            counting = True
            base_received = sum(c.received for c in clients)
            base_lost = sum(c.lost for c in clients)
        if now >= end:
            break
        for client in clients:
            fd = client.sock.fileno()
            while (got := batches.receive(fd)) > 0:
                client.received += got
                client.last_reply = now
                if got < batches.batch:
                    break
            room = args.window - client.in_flight
            if room >= batches.batch:
                client.sent += batches.send_to(fd, min(room, batches.batch))
                if client.last_reply == 0.0:
                    client.last_reply = now
            elif now - client.last_reply > _STALL:
                client.lost += client.in_flight
                client.last_reply = now
        poller.poll(0.001)
    received = sum(c.received for c in clients) - base_received
    lost = sum(c.lost for c in clients) - base_lost
    result = {
        "clients": args.clients,
        "size": args.size,
        "seconds": args.duration,
        "received": received,
        "lost": lost,
        "sent": sum(c.sent for c in clients),
        "msgs_per_s": received / args.duration,
    }
    print(json.dumps(result), flush=True)
    for client in clients:
        client.sock.close()
    return 0


def echo(args: argparse.Namespace) -> int:
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.bind((args.host, args.port))
    batch = mmsg.DatagramBatch(family, 64, _SLOT, _SLOT)
    while True:
        count = batch.receive(sock.fileno())
        for index in range(count):
            batch.add_reply(index, batch.payload(index))
        batch.flush(sock.fileno())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flood",
        description="UDP ChannelData flood (sendmmsg/recvmmsg) and its echo peer.",
        epilog="example: python -m bench.flood echo --host 127.0.0.1 --port 18001",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="allocate, bind, flood; print JSON counts")
    gen.add_argument("--host", help="the relay's address (not with --direct)")
    gen.add_argument("--port", type=int, help="the relay's UDP port (not with --direct)")
    gen.add_argument("--peer", required=True, help="HOST:PORT of the echo peer")
    gen.add_argument("--user")
    gen.add_argument("--password")
    gen.add_argument("--realm")
    gen.add_argument(
        "--direct",
        action="store_true",
        help="send the same datagrams straight to the echo peer, no relay: what the generator "
        "and the peer cost by themselves per message",
    )
    gen.add_argument("--clients", type=int, default=10)
    gen.add_argument("--size", type=int, default=120)
    gen.add_argument("--window", type=int, default=256, help="messages in flight per client")
    gen.add_argument("--batch", type=int, default=32, help="messages per sendmmsg")
    gen.add_argument("--warmup", type=float, default=0.5)
    gen.add_argument("--duration", type=float, default=4.0)
    peer = sub.add_parser("echo", help="answer every datagram to its sender")
    peer.add_argument("--host", required=True)
    peer.add_argument("--port", type=int, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "generate":
        needed = ("host", "port", "user", "password", "realm")
        missing = [f"--{name}" for name in needed if getattr(args, name) is None]
        if missing and not args.direct:
            parser.error(f"generate through a relay needs {', '.join(missing)} (or --direct)")
        return generate(args)
    return echo(args)


if __name__ == "__main__":
    sys.exit(main())
