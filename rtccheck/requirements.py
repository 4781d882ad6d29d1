"""What a pipeline can demand with ``--require``: named capabilities that checks test.

A check result lists the capabilities it tests in ``CheckResult.capabilities``. A requirement is
met when at least one result testing it passed (or warned) and none testing it failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

CAPABILITIES: dict[str, str] = {
    "dns": "every server host name resolves",
    "credentials": "the TURN credentials are valid now (and match the secret, when given)",
    "stun": "a STUN Binding request is answered",
    "relay-udp": "a TURN allocation over UDP succeeds",
    "relay-tcp": "a TURN allocation over TCP succeeds",
    "relay-tls": "a TURN allocation over TLS (turns:) succeeds",
    "data-relay": "two ICE agents exchange data through a TURN relay",
    "data-direct": "two ICE agents exchange data on the host/srflx path",
    "tls": "the turns: certificate is valid and matches the host name",
    "policy": "the relay refuses every forbidden peer address tried",
}


class ServerShape(Protocol):
    """What a source needs to know of a server (``results.TargetInfo`` has these fields)."""

    @property
    def scheme(self) -> str: ...

    @property
    def transport(self) -> str: ...

    @property
    def has_credential(self) -> bool: ...


@dataclass(frozen=True)
class Source:
    """Where a capability is shown: the family and checks testing it, and the input they need."""

    family: str
    checks: tuple[str, ...]
    needs: str
    fits: Callable[[ServerShape], bool]


def _any(_: ServerShape) -> bool:
    return True


def _is_turn(server: ServerShape) -> bool:
    return server.scheme in ("turn", "turns")


def _turn_with_credential(server: ServerShape) -> bool:
    return _is_turn(server) and server.has_credential


_WITH_CREDENTIALS = "(credentials from --secret, --username/--credential or an iceServers entry)"

SOURCES: dict[str, Source] = {
    "dns": Source("dns", ("dns.resolve",), "server", _any),
    "credentials": Source(
        "credentials",
        ("credentials.username", "credentials.expiry", "credentials.password"),
        "turn: or turns: URI with credentials (or --username)",
        _is_turn,
    ),
    "stun": Source(
        "stun",
        ("stun.udp", "stun.tls"),
        "stun: or stuns: URI",
        lambda s: s.scheme in ("stun", "stuns"),
    ),
    "relay-udp": Source(
        "turn",
        ("turn.allocate",),
        "turn: URI over UDP (turn:HOST or turn:HOST?transport=udp)",
        lambda s: s.scheme == "turn" and s.transport == "udp",
    ),
    "relay-tcp": Source(
        "turn",
        ("turn.allocate",),
        "turn:HOST?transport=tcp URI",
        lambda s: s.scheme == "turn" and s.transport == "tcp",
    ),
    "relay-tls": Source("turn", ("turn.allocate",), "turns: URI", lambda s: s.scheme == "turns"),
    "data-relay": Source(
        "data",
        ("data.relay",),
        f"turn: or turns: URI with credentials {_WITH_CREDENTIALS}",
        _turn_with_credential,
    ),
    "data-direct": Source("data", ("data.direct",), "server", _any),
    "tls": Source(
        "tls",
        ("tls.handshake",),
        "turns: or stuns: URI",
        lambda s: s.scheme in ("turns", "stuns"),
    ),
    "policy": Source(
        "policy",
        ("policy.peers",),
        f"turn: or turns: URI with credentials {_WITH_CREDENTIALS}",
        _turn_with_credential,
    ),
}


class UnknownRequirementError(ValueError):
    """A ``--require`` name outside CAPABILITIES."""


def parse_requirements(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Split comma-separated ``--require`` values; unknown names raise with the valid list."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in CAPABILITIES:
                known = ", ".join(CAPABILITIES)
                raise UnknownRequirementError(
                    f"unknown requirement {part.strip()!r}; known: {known}"
                )
            if name not in names:
                names.append(name)
    return tuple(names)
