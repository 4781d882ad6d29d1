"""Our own TURN clients for what turnutils_uclient cannot express:

- allocation rate: `concurrency` clients, each on a fresh UDP socket (a new 5-tuple), doing
  Allocate -> 401 -> Allocate with long-term credentials, until N allocations are held;
- memory per idle allocation: hold N allocations open and read the server's memory before/after;
- added latency: ChannelData at a fixed moderate rate through the relay to the echo peer,
  interleaved with the same payload sent straight to the peer; the relay's p50/p99 minus the
  direct path's.

Single process, non-blocking sockets and an epoll selector; every loop is bounded by a deadline
and a count.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import turnmsg as tm

STEP_TIMEOUT = 2.0  # seconds for one request/response step before the client is written off


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str
    realm: str  # the realm we expect; the server's 401 tells the one to use

    def key(self, realm: bytes) -> bytes:
        return tm.long_term_key(self.user, realm.decode(errors="replace"), self.password)


@dataclass
class _Client:
    sock: socket.socket
    state: str = "unauth"  # unauth -> auth -> (refresh | held)
    tid: bytes = b""
    sent_at: float = 0.0
    realm: bytes = b""
    nonce: bytes = b""
    started_at: float = 0.0


@dataclass
class AllocCounts:
    allocated: int = 0  # authenticated Allocate successes in the window
    deleted: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the generator's own CPU time in the window
    latencies_ms: list[float] = field(default_factory=list)  # first Allocate to success

    def fail(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1


class _Allocator:
    """Drives many concurrent allocation state machines over one selector."""

    def __init__(self, host: str, port: int, creds: Credentials, *, hold: bool) -> None:
        self.host, self.port, self.creds, self.hold = host, port, creds, hold
        self.sel = selectors.DefaultSelector()
        self.active: dict[int, _Client] = {}
        self.held: list[_Client] = []
        self.keys: dict[bytes, bytes] = {}
        self.randbytes = random.Random(os.urandom(16)).randbytes
        self.counts = AllocCounts()
        self.counting = False

    def close(self) -> None:
        for c in list(self.active.values()) + self.held:
            c.sock.close()
        self.active.clear()
        self.held.clear()
        self.sel.close()

    def _send(self, c: _Client, data: bytes) -> None:
        c.sent_at = time.monotonic()
        with contextlib.suppress(OSError):  # counted when the step times out
            c.sock.send(data)

    def start_one(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect((self.host, self.port))
        c = _Client(sock, started_at=time.monotonic())
        self.active[sock.fileno()] = c
        self.sel.register(sock, selectors.EVENT_READ, c)
        c.tid = self.randbytes(12)
        self._send(
            c, tm.request(tm.ALLOCATE, c.tid, [tm.attr(tm.REQUESTED_TRANSPORT, tm.UDP_TRANSPORT)])
        )

    def _drop(self, c: _Client, why: str | None) -> None:
        if why is not None and self.counting:
            self.counts.fail(why)
        self.sel.unregister(c.sock)
        self.active.pop(c.sock.fileno(), None)
        c.sock.close()

    def _authed(self, c: _Client, method: int, attrs: list[bytes]) -> None:
        key = self.keys.get(c.realm)
        if key is None:
            key = self.keys[c.realm] = self.creds.key(c.realm)
        c.tid = self.randbytes(12)
        all_attrs = attrs + tm.auth_attrs(self.creds.user, c.realm, c.nonce)
        self._send(c, tm.request(method, c.tid, all_attrs, key))

    def _allocate_authed(self, c: _Client) -> None:
        self._authed(c, tm.ALLOCATE, [tm.attr(tm.REQUESTED_TRANSPORT, tm.UDP_TRANSPORT)])

    def on_readable(self, c: _Client) -> None:
        try:
            data = c.sock.recv(4096)
        except OSError:
            self._drop(c, "socket error")
            return
        msg = tm.parse(data)
        if msg is None or msg[1] != c.tid:
            return  # a retransmitted or stray answer
        kind, _, attrs = msg
        code = tm.error_code(attrs.get(tm.ERROR_CODE, b""))
        if c.state == "unauth":
            if kind == tm.ALLOCATE | tm.ERROR and code == 401 and tm.NONCE in attrs:
                c.realm = attrs.get(tm.REALM, self.creds.realm.encode())
                c.nonce = attrs[tm.NONCE]
                c.state = "auth"
                self._allocate_authed(c)
            else:
                self._drop(c, f"first Allocate: {kind:#06x} {code}")
        elif c.state == "auth":
            if kind == tm.ALLOCATE | tm.SUCCESS:
                if self.counting:
                    self.counts.allocated += 1
                    self.counts.latencies_ms.append(1000 * (time.monotonic() - c.started_at))
                if self.hold:
                    c.state = "held"
                    self.sel.unregister(c.sock)
                    self.active.pop(c.sock.fileno(), None)
                    self.held.append(c)
                else:
                    c.state = "refresh"
                    self._authed(c, tm.REFRESH, [tm.attr(tm.LIFETIME, b"\x00\x00\x00\x00")])
            elif code == 438 and tm.NONCE in attrs:  # stale nonce: retry with the new one
                c.nonce = attrs[tm.NONCE]
                self._allocate_authed(c)
            else:
                self._drop(c, f"Allocate: {code or hex(kind)}")
        elif c.state == "refresh":
            if kind == tm.REFRESH | tm.SUCCESS:
                if self.counting:
                    self.counts.deleted += 1
                self._drop(c, None)
            else:
                self._drop(c, f"Refresh: {code or hex(kind)}")

    def sweep(self, now: float) -> None:
        for c in list(self.active.values()):
            if now - c.sent_at > STEP_TIMEOUT:
                self._drop(c, f"timeout in {c.state}")


def _fill(a: _Allocator, target: int, concurrency: int, deadline: float) -> None:
    """Run clients until `target` allocations are held (or the deadline passes)."""
    started = len(a.held)
    while len(a.held) < target and time.monotonic() < deadline:
        while len(a.active) < concurrency and started < target:
            a.start_one()
            started += 1
        if not a.active:
            started = len(a.held)  # some failed: start the missing ones again
            continue
        for key, _ in a.sel.select(timeout=0.05):
            a.on_readable(key.data)
        a.sweep(time.monotonic())


def allocation_rate(
    host: str,
    port: int,
    creds: Credentials,
    *,
    count: int = 2000,
    warm: int = 50,
    concurrency: int = 16,
    time_limit: float = 30.0,
) -> AllocCounts:
    """Allocations per second with long-term authentication: the time `concurrency` clients,
    each on a fresh UDP 5-tuple (Allocate, 401, authenticated Allocate), take to create `count`
    allocations once `warm` exist. They are held, not deleted: coturn keeps a deleted
    allocation's relay port and 5-tuple for a while (437/508 in a create-delete loop), so a loop
    would measure that, not the allocation path."""
    a = _Allocator(host, port, creds, hold=True)
    deadline = time.monotonic() + time_limit
    try:
        _fill(a, warm, concurrency, deadline)
        a.counting = True
        t0, cpu0 = time.monotonic(), time.process_time()
        _fill(a, warm + count, concurrency, deadline)
        a.counts.seconds = time.monotonic() - t0
        a.counts.cpu_seconds = time.process_time() - cpu0
        return a.counts
    finally:
        a.close()


@dataclass
class IdleMemory:
    held: int
    baseline_allocations: int
    before_kib: int
    after_kib: int
    kib_per_1000: float
    failures: dict[str, int]
    seconds: float


def idle_memory(
    host: str,
    port: int,
    creds: Credentials,
    memory_kib: Callable[[], int],
    *,
    count: int = 1000,
    baseline: int = 50,
    concurrency: int = 32,
    time_limit: float = 60.0,
) -> IdleMemory:
    """Server memory per 1000 idle allocations: hold `baseline` allocations, read the memory,
    add `count` more, let the server settle, read it again."""
    a = _Allocator(host, port, creds, hold=True)
    a.counting = True
    started_at = time.monotonic()
    deadline = started_at + time_limit
    try:
        _fill(a, baseline, concurrency, deadline)
        time.sleep(0.5)
        before = memory_kib()
        _fill(a, baseline + count, concurrency, deadline)
        time.sleep(1.0)
        after = memory_kib()
        added = len(a.held) - baseline
        return IdleMemory(
            held=added,
            baseline_allocations=baseline,
            before_kib=before,
            after_kib=after,
            kib_per_1000=(after - before) * 1000 / added if added > 0 else 0.0,
            failures=dict(a.counts.failures),
            seconds=time.monotonic() - started_at,
        )
    finally:
        a.close()


# --------------------------------------------------------------------------- latency


@dataclass
class Latency:
    rate: float  # messages per second on each path
    relayed: int  # answers received through the relay in the window
    direct: int
    lost_relayed: int
    lost_direct: int
    relay_p50_us: float
    relay_p99_us: float
    direct_p50_us: float
    direct_p99_us: float
    added_p50_us: float
    added_p99_us: float


class TurnSetupError(RuntimeError):
    pass


def _blocking_step(sock: socket.socket, data: bytes, tid: bytes) -> tuple[int, dict[int, bytes]]:
    sock.send(data)
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        msg = tm.parse(sock.recv(4096))
        if msg is not None and msg[1] == tid:
            return msg[0], msg[2]
    raise TurnSetupError("no answer from the TURN server")


def open_channel(
    sock: socket.socket, creds: Credentials, peer: tuple[str, int], channel: int = 0x4000
) -> None:
    """Allocate (with the 401 round trip) and bind `channel` to the peer on a connected socket."""
    transport = [tm.attr(tm.REQUESTED_TRANSPORT, tm.UDP_TRANSPORT)]
    tid = os.urandom(12)
    kind, attrs = _blocking_step(sock, tm.request(tm.ALLOCATE, tid, transport), tid)
    if tm.error_code(attrs.get(tm.ERROR_CODE, b"")) != 401:
        raise TurnSetupError(f"expected 401, got {kind:#06x}")
    realm, nonce = attrs.get(tm.REALM, creds.realm.encode()), attrs.get(tm.NONCE, b"")
    key = creds.key(realm)
    tid = os.urandom(12)
    msg = tm.request(tm.ALLOCATE, tid, transport + tm.auth_attrs(creds.user, realm, nonce), key)
    kind, attrs = _blocking_step(sock, msg, tid)
    if kind != tm.ALLOCATE | tm.SUCCESS:
        raise TurnSetupError(f"Allocate failed: {tm.error_code(attrs.get(tm.ERROR_CODE, b''))}")
    bind = [
        tm.attr(tm.CHANNEL_NUMBER, struct.pack("!HH", channel, 0)),
        tm.attr(tm.XOR_PEER_ADDRESS, tm.xor_address(*peer)),
    ]
    tid = os.urandom(12)
    msg = tm.request(tm.CHANNEL_BIND, tid, bind + tm.auth_attrs(creds.user, realm, nonce), key)
    kind, attrs = _blocking_step(sock, msg, tid)
    if kind != tm.CHANNEL_BIND | tm.SUCCESS:
        raise TurnSetupError(f"ChannelBind failed: {tm.error_code(attrs.get(tm.ERROR_CODE, b''))}")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def added_latency(
    host: str,
    port: int,
    peer: tuple[str, int],
    creds: Credentials,
    *,
    rate: float = 1000.0,
    payload: int = 120,
    warmup: float = 0.5,
    duration: float = 4.0,
) -> Latency:
    """Round trips through the relay (ChannelData) and straight to the echo peer, interleaved
    half an interval apart at `rate` messages per second each."""
    channel = 0x4000
    relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    direct = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        relay.connect((host, port))
        direct.connect(peer)
        open_channel(relay, creds, peer, channel)
        relay.setblocking(False)
        direct.setblocking(False)
        pad = b"\x00" * max(0, payload - 16)
        stamp = struct.Struct("!Qq")
        rtts: dict[str, list[float]] = {"relay": [], "direct": []}
        sent = {"relay": 0, "direct": 0}
        interval = 1.0 / rate
        start = time.monotonic()
        count_from = start + warmup
        end = count_from + duration
        next_send = start
        which = 0  # even: direct, odd: relay
        seq = 0
        while True:
            now = time.monotonic()
            if now >= end + 0.2:
                break
            if now >= next_send and now < end:
                seq += 1
                body = stamp.pack(seq, time.perf_counter_ns()) + pad
                path = "relay" if which else "direct"
                if now >= count_from:
                    sent[path] += 1
                with contextlib.suppress(OSError):
                    if which:
                        relay.send(tm.channel_data(channel, body))
                    else:
                        direct.send(body)
                which ^= 1
                next_send += interval / 2
                continue
            wait = max(0.0, min(next_send, end + 0.2) - time.monotonic())
            ready, _, _ = select.select([relay, direct], [], [], wait)
            got = time.perf_counter_ns()
            for sock in ready:
                try:
                    data = sock.recv(4096)
                except OSError:
                    continue
                if sock is relay:
                    if len(data) < 20 or data[0] & 0xC0 != 0x40:
                        continue
                    data, path = data[4:], "relay"
                else:
                    path = "direct"
                _, sent_ns = stamp.unpack_from(data)
                if time.monotonic() >= count_from:
                    rtts[path].append((got - sent_ns) / 1000.0)
        r, d = rtts["relay"], rtts["direct"]
        return Latency(
            rate=rate,
            relayed=len(r),
            direct=len(d),
            lost_relayed=max(0, sent["relay"] - len(r)),
            lost_direct=max(0, sent["direct"] - len(d)),
            relay_p50_us=_percentile(r, 0.50),
            relay_p99_us=_percentile(r, 0.99),
            direct_p50_us=_percentile(d, 0.50),
            direct_p99_us=_percentile(d, 0.99),
            added_p50_us=_percentile(r, 0.50) - _percentile(d, 0.50),
            added_p99_us=_percentile(r, 0.99) - _percentile(d, 0.99),
        )
    finally:
        relay.close()
        direct.close()
