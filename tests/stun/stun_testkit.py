"""STUN server test helpers: raw requests, free ports, certificates, a server process."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def second_loopback_available() -> bool:
    """127.0.0.2 is usable on Linux without configuration (all of 127/8 is local)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.2", 0))
    except OSError:
        return False
    return True


def _port_is_free(ip: str, port: int, kind: int) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, kind) as sock:
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def free_port_pair(ips: tuple[str, ...] = ("127.0.0.1",)) -> int:
    """A port P with P and P+1 free for UDP and TCP on every IP of ``ips``."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        candidates = [(ip, p, k) for ip in ips for p in (port, port + 1) for k in (1, 2)]
        if all(_port_is_free(ip, p, kind) for ip, p, kind in candidates):
            return port
    raise RuntimeError("no free port pair found")


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


# ---------------------------------------------------------------- TLS


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway certificate for ``host`` (IP SAN) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


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
    args: list[str], log_dir: Path, address: tuple[str, int], *, wait: bool = True
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
        )
    server = ServerProcess(process, log_path, address)
    try:
        if wait:
            wait_until_answering(address)
        yield server
    finally:
        if process.poll() is None:
            server.stop()
