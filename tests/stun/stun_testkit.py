"""STUN server test helpers: raw requests, free ports, certificates, a server process."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from turnkit_testing import (  # noqa: F401  (re-exported for the stun tests)
    free_port_pair,
    ipv6_loopback_available,
    second_loopback_available,
    self_signed_certificate,
)

from stun_server.wire import Message, MessageClass, Method, encode
from stun_server.wire import attributes as attrs

COOKIE = b"\x21\x12\xa4\x42"
STUN_SERVER = Path(sys.executable).parent / "stun-server"
TID = bytes(range(1, 13))


def tlv(attr_type: int, value: bytes, padding: bytes = b"\x00") -> bytes:
    """One raw attribute, padded to 4 bytes with ``padding``."""
    return struct.pack("!HH", attr_type, len(value)) + value + padding * (-len(value) % 4)


def raw_message(msg_type: int, body: bytes = b"", transaction_id: bytes = TID) -> bytes:
    """A STUN header (length taken from ``body``) followed by ``body``, nothing checked."""
    return struct.pack("!HH", msg_type, len(body)) + COOKIE + transaction_id + body


def binding_request(
    *attributes: attrs.AnyAttribute, fingerprint: bool = False, transaction_id: bytes = TID
) -> bytes:
    message = Message(Method.BINDING, MessageClass.REQUEST, transaction_id, list(attributes))
    return encode(message, fingerprint=fingerprint)


def software_tlv(text: str) -> bytes:
    return tlv(attrs.Software.TYPE, text.encode())


def xor_mapped_v4(ip: str, port: int) -> bytes:
    """XOR-MAPPED-ADDRESS for an IPv4 address, computed by hand (RFC 8489 section 14.2)."""
    xport = port ^ 0x2112
    xip = bytes(a ^ b for a, b in zip(ipaddress.IPv4Address(ip).packed, COOKIE, strict=True))
    return tlv(0x0020, struct.pack("!BBH", 0, 1, xport) + xip)


# ---------------------------------------------------------------- ports and addresses


# ---------------------------------------------------------------- UDP client


def udp_exchange(
    server: tuple[str, int], data: bytes, *, timeout: float = 1.0, sock: socket.socket | None = None
) -> tuple[bytes, tuple[str, int]] | None:
    """Send ``data`` and wait for one datagram: (bytes, sender), or None after ``timeout``."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    own = sock is None
    client = sock or socket.socket(family, socket.SOCK_DGRAM)
    try:
        if own:
            client.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        client.settimeout(timeout)
        client.sendto(data, server)
        try:
            reply, sender = client.recvfrom(65535)
        except TimeoutError:
            return None
        return reply, (str(sender[0]), int(sender[1]))
    finally:
        if own:
            client.close()


def wait_until_answering(server: tuple[str, int], *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if udp_exchange(server, binding_request(), timeout=0.2) is not None:
            return
    raise TimeoutError(f"no STUN answer from {server} within {within} s")


# ---------------------------------------------------------------- TLS and TCP clients


def client_context(cafile: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False
    return context


def stream_binding(
    server: tuple[str, int],
    *,
    context: ssl.SSLContext | None = None,
    source: str = "127.0.0.1",
    timeout: float = 2.0,
) -> bytes | None:
    """One Binding over TCP (or TLS with ``context``): the answer, or None if refused or silent."""
    try:
        with socket.create_connection(server, timeout=timeout, source_address=(source, 0)) as raw:
            stream = context.wrap_socket(raw) if context is not None else raw
            stream.sendall(binding_request())
            head = _read_exactly(stream, 20)
            return head + _read_exactly(stream, int.from_bytes(head[2:4], "big"))
    except (OSError, EOFError):
        return None


def _read_exactly(stream: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.recv(size - len(data))
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


# ---------------------------------------------------------------- a server process


@dataclass
class ServerProcess:
    """A ``stun-server`` child process; `stop` sends a signal and returns the exit status."""

    process: subprocess.Popen[str]
    log_path: Path
    address: tuple[str, int]
    exit_status: int | None = field(default=None)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, signum: int = signal.SIGTERM, *, within: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            self.exit_status = self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise
        return self.exit_status


@contextlib.contextmanager
def stun_server_process(
    args: list[str],
    log_dir: Path,
    address: tuple[str, int],
    *,
    wait: bool = True,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[ServerProcess]:
    """Run ``stun-server ARGS``; stop it (SIGTERM, by PID) when the block ends."""
    log_path = log_dir / f"stun-server-{address[1]}.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [str(STUN_SERVER), *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=preexec_fn,  # noqa: PLW1509 (only setrlimit, before any thread runs)
        )
    server = ServerProcess(process, log_path, address)
    try:
        if wait:
            wait_until_answering(address)
        yield server
    finally:
        if process.poll() is None:
            server.stop()
