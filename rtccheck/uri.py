"""STUN and TURN URIs (RFC 7064, RFC 7065) parsed into typed server targets.

    stun:host[:port]            stuns:host[:port]
    turn:host[:port][?transport=udp|tcp]
    turns:host[:port][?transport=udp|tcp]

``host`` is a DNS name, an IPv4 address or a bracketed IPv6 address. Default ports are 3478
(stun, turn) and 5349 (stuns, turns); the default transport is UDP for ``stun``/``turn`` and
TCP for ``stuns``/``turns`` (TLS over TCP).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Literal

Scheme = Literal["stun", "stuns", "turn", "turns"]
Transport = Literal["udp", "tcp"]

SCHEMES: tuple[Scheme, ...] = ("stun", "stuns", "turn", "turns")
PLAIN_PORT = 3478
SECURE_PORT = 5349
_HOST_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?$")
_IPV4_SHAPE = re.compile(r"^[0-9.]+$")
_TRANSPORTS: dict[str, Transport] = {"udp": "udp", "tcp": "tcp"}


class UriError(ValueError):
    """A STUN/TURN URI that cannot be used; the message says what is wrong and how to write it."""


@dataclass(frozen=True, slots=True)
class IceServer:
    """One server to check, as a WebRTC app would hand it to RTCPeerConnection."""

    uri: str
    scheme: Scheme
    host: str
    port: int
    transport: Transport
    secure: bool
    username: str | None = None
    credential: str | None = None
    port_given: bool = False
    source: str = "argument"

    @property
    def is_turn(self) -> bool:
        return self.scheme in ("turn", "turns")

    @property
    def host_is_ip(self) -> bool:
        return is_ip_literal(self.host)

    @property
    def has_credentials(self) -> bool:
        return self.username is not None and self.credential is not None

    @property
    def canonical(self) -> str:
        """The URI spelled out in full: scheme, host, port and (for TURN) transport."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.scheme}:{host}:{self.port}"
        return f"{text}?transport={self.transport}" if self.is_turn else text

    def with_credentials(self, username: str | None, credential: str | None) -> IceServer:
        return replace(self, username=username, credential=credential)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_uri(text: str, source: str = "argument") -> IceServer:
    """Parse one ``stun:``/``stuns:``/``turn:``/``turns:`` URI; raises UriError with a hint."""
    uri = text.strip()
    if not uri:
        raise UriError("empty URI: write e.g. stun:stun.example.com or turn:turn.example.com")
    scheme = _scheme_of(uri)
    rest = uri[len(scheme) + 1 :]
    if rest.startswith("//"):
        raise UriError(f"{uri!r}: STUN/TURN URIs have no '//': write {scheme}:{rest[2:]}")
    authority, query = _split_query(uri, rest)
    transport = _transport_of(uri, scheme, query)
    host, port = _split_host_port(uri, scheme, authority)
    secure = scheme.endswith("s")
    return IceServer(
        uri=uri,
        scheme=scheme,
        host=host,
        port=port if port is not None else (SECURE_PORT if secure else PLAIN_PORT),
        transport=transport or ("tcp" if secure else "udp"),
        secure=secure,
        port_given=port is not None,
        source=source,
    )


def _scheme_of(uri: str) -> Scheme:
    head, colon, _ = uri.partition(":")
    lowered = head.lower()
    for scheme in SCHEMES:
        if colon and lowered == scheme:
            return scheme
    if not colon:
        raise UriError(f"{uri!r} has no scheme: write stun:{uri} or turn:{uri}")
    if lowered in ("http", "https", "udp", "tcp", "tls", "dtls"):
        raise UriError(
            f"{uri!r}: scheme {head!r} is not a STUN/TURN scheme; "
            "use stun:, stuns:, turn: or turns: (turns: for TLS)"
        )
    raise UriError(f"{uri!r}: unknown scheme {head!r}; use stun:, stuns:, turn: or turns:")


def _split_query(uri: str, rest: str) -> tuple[str, str | None]:
    authority, question, query = rest.partition("?")
    if "/" in authority:
        path = authority[authority.index("/") :]
        raise UriError(f"{uri!r}: a STUN/TURN URI has no path; remove {path!r}")
    if "@" in authority:
        raise UriError(
            f"{uri!r}: credentials do not belong in the URI (RFC 7065 has no user part); "
            "pass them with --username/--credential or in the iceServers entry"
        )
    return authority, (query if question else None)


def _transport_of(uri: str, scheme: Scheme, query: str | None) -> Transport | None:
    if query is None:
        return None
    if scheme in ("stun", "stuns"):
        raise UriError(
            f"{uri!r}: stun: URIs take no query (RFC 7064); "
            "remove the ?... part (rtccheck probes STUN over UDP and TCP by itself)"
        )
    key, equals, value = query.partition("=")
    if key.lower() != "transport" or not equals or "&" in value:
        raise UriError(
            f"{uri!r}: the only query a TURN URI takes is ?transport=udp or ?transport=tcp"
        )
    lowered = value.lower()
    if lowered in _TRANSPORTS:
        return _TRANSPORTS[lowered]
    if lowered in ("tls", "dtls"):
        raise UriError(
            f"{uri!r}: transport {value!r} is not a TURN transport; for TLS write turns:"
        )
    raise UriError(f"{uri!r}: transport must be udp or tcp, not {value!r}")


def _split_host_port(uri: str, scheme: Scheme, authority: str) -> tuple[str, int | None]:
    if not authority:
        raise UriError(f"{uri!r} has no host: write {scheme}:host or {scheme}:host:port")
    if authority.startswith("["):
        return _split_bracketed(uri, authority)
    if authority.count(":") > 1:
        raise UriError(
            f"{uri!r}: put an IPv6 address in brackets, e.g. {scheme}:[2001:db8::1]:{PLAIN_PORT}"
        )
    host, colon, port_text = authority.partition(":")
    return _checked_host(uri, host), (_checked_port(uri, port_text) if colon else None)


def _split_bracketed(uri: str, authority: str) -> tuple[str, int | None]:
    inside, bracket, after = authority[1:].partition("]")
    if not bracket:
        raise UriError(f"{uri!r}: '[' without a closing ']' around the IPv6 address")
    try:
        address = ipaddress.IPv6Address(inside.replace("%25", "%"))
    except ValueError:
        raise UriError(f"{uri!r}: {inside!r} inside brackets is not an IPv6 address") from None
    if not after:
        return str(address), None
    if not after.startswith(":"):
        raise UriError(f"{uri!r}: expected ':port' after ']', found {after!r}")
    return str(address), _checked_port(uri, after[1:])


def _checked_host(uri: str, host: str) -> str:
    if not host:
        raise UriError(f"{uri!r} has no host before the port")
    if _IPV4_SHAPE.match(host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise UriError(f"{uri!r}: {host!r} is not a valid IPv4 address") from None
    lowered = host.lower()
    if len(lowered) > 253 or not _HOST_NAME.match(lowered):
        raise UriError(f"{uri!r}: {host!r} is not a valid host name")
    return lowered


def _checked_port(uri: str, text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise UriError(f"{uri!r}: port {text!r} is not a number (1-65535)")
    port = int(text)
    if not 1 <= port <= 65535:
        raise UriError(f"{uri!r}: port {port} is outside 1-65535")
    return port
