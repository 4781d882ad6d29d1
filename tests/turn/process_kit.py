"""A real ``turn-relay serve`` process and raw-socket clients for the crowd and attack tests.

Clients here are plain non-blocking UDP sockets driven by one `selectors` loop, so a test can
run a hundred logins, a spoofer and a flood at once without an asyncio task per socket. A login
retransmits its unanswered Allocate as RFC 8489 section 6.2.1 says (RTO 500 ms, doubling, 7
transmissions), and answers the 401 with an authenticated Allocate at once.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from turnkit_testing import free_port

from stun_server.wire import Message, MessageClass, Method, encode, long_term_key, parse
from stun_server.wire import attributes as attrs
from stun_server.wire.errors import StunDecodeError
from turn_relay.auth.credentials import issue

TURN_RELAY = str(Path(sys.executable).parent / "turn-relay")
REALM = "turnkit"  # the default realm
SECRET = "crowd-secret"
RTO = 0.5
TRANSMISSIONS = 7

Address = tuple[str, int]


@dataclass
class Relay:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> Address:
        return ("127.0.0.1", self.port)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until_answering(port: int, timeout: float = 15.0) -> None:
    binding = encode(Message(Method.BINDING, MessageClass.REQUEST))
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            sock.sendto(binding, ("127.0.0.1", port))
            with contextlib.suppress(TimeoutError):
                if sock.recv(2048)[:2] == b"\x01\x01":
                    return
    raise AssertionError(f"turn-relay did not answer on UDP {port}")


@contextlib.contextmanager
def running_relay(
    directory: Path,
    *extra: str,
    port: int | None = None,
    port_range: str = "24300-24999",
    nofile: int | None = None,
    secret: str = SECRET,
) -> Iterator[Relay]:
    """``turn-relay serve`` with its defaults except the flags given (loopback peers allowed).

    ``nofile``: the process's RLIMIT_NOFILE (soft and hard), set before it starts.
    """
    secrets = directory / "rest-secrets"
    if not secrets.exists():
        secrets.write_text(secret + "\n")
    port = port or free_port()
    log = directory / f"relay-{port}.log"
    argv = [
        TURN_RELAY, "serve", "--port", str(port), "--secret-file", str(secrets),
        "--allowed-peer", "127.0.0.0/8", "--port-range", port_range, *extra,
    ]  # fmt: skip

    def limit_files() -> None:
        if nofile is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=limit_files if nofile is not None else None,  # noqa: PLW1509
        )  # fmt: skip
    relay = Relay(process, port, log)
    try:
        wait_until_answering(port)
        yield relay
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def udp_socket(ip: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))
    sock.setblocking(False)
    return sock


def unauthenticated_allocate() -> bytes:
    return encode(
        Message(Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)])
    )


@dataclass
class Login:
    """One client on its own socket: Allocate until allocated (or out of transmissions)."""

    sock: socket.socket
    user: str
    secret: str = SECRET
    started: float = 0.0
    sent: int = 0
    next_at: float = 0.0
    request: bytes = field(default_factory=unauthenticated_allocate)
    allocated_at: float | None = None
    relayed: Address | None = None
    error: int | None = None
    key: bytes = b""

    def send_due(self, server: Address, now: float) -> None:
        if self.done or self.sent >= TRANSMISSIONS or now < self.next_at:
            return
        if not self.sent:
            self.started = now
        self.sock.sendto(self.request, server)
        self.next_at = now + RTO * (2**self.sent)
        self.sent += 1

    @property
    def done(self) -> bool:
        return self.allocated_at is not None or self.error is not None

    def received(self, data: bytes, server: Address, now: float) -> None:
        try:
            message = parse(data)
        except StunDecodeError:
            return
        code = message.get(attrs.ErrorCode)
        if message.cls is MessageClass.SUCCESS and message.method == Method.ALLOCATE:
            relayed = message.get(attrs.XorRelayedAddress)
            self.relayed = None if relayed is None else (relayed.ip, relayed.port)
            self.allocated_at = now
        elif code is not None and code.code == 401 and message.get(attrs.Nonce) is not None:
            if message.transaction_id != parse(self.request).transaction_id:
                return
            nonce = message.get(attrs.Nonce)
            assert nonce is not None
            credential = issue(self.secret, self.user, 3600, time.time())
            self.key = long_term_key(credential.username, REALM, credential.password)
            request = Message(
                Method.ALLOCATE,
                MessageClass.REQUEST,
                attributes=[
                    attrs.RequestedTransport(17),
                    attrs.Username(credential.username),
                    attrs.Realm(REALM),
                    attrs.Nonce(nonce.value),
                ],
            )
            self.request = encode(request, key=self.key)
            self.sent, self.next_at = 0, now  # a new transaction
            self.sock.sendto(self.request, server)
            self.sent, self.next_at = 1, now + RTO
        elif code is not None:
            self.error = code.code


def drive(
    logins: Sequence[Login],
    server: Address,
    until: float,
    *,
    extra: selectors.BaseSelector | None = None,
    tick: object = None,
) -> None:
    """Run every login until all are done or monotonic ``until``; ``tick()`` runs each loop."""
    selector = extra or selectors.DefaultSelector()
    for login in logins:
        selector.register(login.sock, selectors.EVENT_READ, login)
    try:
        while time.monotonic() < until and not all(login.done for login in logins):
            now = time.monotonic()
            for login in logins:
                login.send_due(server, now)
            if callable(tick):
                tick()
            for key, _ in selector.select(timeout=0.005):
                login = key.data
                if not isinstance(login, Login):
                    continue
                with contextlib.suppress(BlockingIOError):
                    while True:
                        data = login.sock.recv(65536)
                        login.received(data, server, time.monotonic())
    finally:
        for login in logins:
            selector.unregister(login.sock)


def logins(count: int, ip: str = "127.0.0.1", prefix: str = "user") -> list[Login]:
    return [Login(udp_socket(ip), f"{prefix}{index}") for index in range(count)]


def close_all(found: Sequence[Login]) -> None:
    for login in found:
        login.sock.close()


def allocated_within(found: Sequence[Login], seconds: float) -> int:
    return sum(
        1
        for login in found
        if login.allocated_at is not None and login.allocated_at - login.started <= seconds
    )
