"""The few STUN bytes the benchmarks need, built with struct (no codec dependency).

A Binding request without attributes is just the 20-byte header: type 0x0001, length 0, the magic
cookie and a 96-bit transaction ID. A success response has type 0x0101 and echoes the ID.
"""

from __future__ import annotations

import os
import socket
import struct
import time

MAGIC_COOKIE = 0x2112A442
COOKIE_BYTES = struct.pack("!I", MAGIC_COOKIE)
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
BINDING_REQUEST_PREFIX = struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE)
BINDING_SUCCESS_PREFIX = struct.pack("!H", BINDING_SUCCESS)


def binding_request(transaction_id: bytes) -> bytes:
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction ID is 12 bytes")
    return BINDING_REQUEST_PREFIX + transaction_id


def is_binding_success(data: bytes, transaction_id: bytes) -> bool:
    return (
        len(data) >= 20
        and data[0:2] == BINDING_SUCCESS_PREFIX
        and data[4:8] == COOKIE_BYTES
        and data[8:20] == transaction_id
    )


def probe_udp(host: str, port: int, timeout: float = 0.3) -> bool:
    """One Binding request over UDP; True when a matching success response arrives."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    tid = os.urandom(12)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(binding_request(tid), (host, port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = sock.recv(2048)
                if is_binding_success(data, tid):
                    return True
        except OSError:  # timeout, ICMP port unreachable
            return False
    return False


def probe_tcp_connect(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
