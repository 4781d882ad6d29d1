"""Free ports and loopback capabilities (tests only ever bind 127.0.0.0/8 and ::1)."""

from __future__ import annotations

import socket

_KINDS = (socket.SOCK_DGRAM, socket.SOCK_STREAM)


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def port_is_free(ip: str, port: int) -> bool:
    """``port`` can be bound on ``ip`` for both UDP and TCP right now."""
    for kind in _KINDS:
        with socket.socket(_family(ip), kind) as sock:
            try:
                sock.bind((ip, port))
            except OSError:
                return False
    return True


def _candidate_port(ip: str) -> int:
    with socket.socket(_family(ip), socket.SOCK_STREAM) as probe:
        probe.bind((ip, 0))
        return int(probe.getsockname()[1])


def free_port(ip: str = "127.0.0.1") -> int:
    """A port free for UDP and TCP on ``ip`` (a small race with other processes is accepted)."""
    for _ in range(100):
        port = _candidate_port(ip)
        if port_is_free(ip, port):
            return port
    raise RuntimeError(f"no free UDP+TCP port on {ip}")


def free_port_pair(ips: tuple[str, ...] = ("127.0.0.1",)) -> int:
    """A port P with P and P + 1 free for UDP and TCP on every IP in ``ips``."""
    for _ in range(200):
        port = _candidate_port(ips[0])
        if port < 65535 and all(port_is_free(ip, p) for ip in ips for p in (port, port + 1)):
            return port
    raise RuntimeError("no free port pair")


def _can_bind(ip: str) -> bool:
    if ":" in ip and not socket.has_ipv6:
        return False
    try:
        with socket.socket(_family(ip), socket.SOCK_DGRAM) as sock:
            sock.bind((ip, 0))
    except OSError:
        return False
    return True


def ipv6_loopback_available() -> bool:
    return _can_bind("::1")


def second_loopback_available() -> bool:
    """127.0.0.2 is usable on Linux without configuration (all of 127/8 is local)."""
    return _can_bind("127.0.0.2")
