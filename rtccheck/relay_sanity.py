"""Is the relayed address a TURN server hands out usable by remote peers? (pure)

Peers anywhere must reach the relayed address, so it must be public, unless the whole
deployment is private (the server itself was reached at an address of the same scope, e.g. a
LAN or loopback test). It must equal the advertised address when one is expected, and its port
must lie inside the configured relay range when that is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtccheck.address_scope import Scope, parse_ip, scope_of
from rtccheck.causes import CauseId
from rtccheck.diagnosis import Diagnosis
from rtccheck.probe.messages import format_address
from rtccheck.results import Status

Address = tuple[str, int]


@dataclass(frozen=True)
class RelayJudgement:
    """The verdict on a relayed address; a diagnosis unless it passes."""

    status: Status
    summary: str
    diagnosis: Diagnosis | None = None

    @property
    def cause_id(self) -> CauseId | None:
        return self.diagnosis.cause_id if self.diagnosis is not None else None


def _finding(
    status: Status, cause_id: CauseId, summary: str, cause: str, fix: str
) -> RelayJudgement:
    return RelayJudgement(status, summary, Diagnosis(cause_id, summary, cause, fix))


def judge_relay(
    relayed: Address,
    server_ip: str,
    *,
    expect_address: str | None = None,
    expect_ports: tuple[int, int] | None = None,
) -> RelayJudgement:
    """The worst finding about ``relayed`` (reached through a server at ``server_ip``)."""
    text = format_address(relayed)
    scope = scope_of(relayed[0])
    if scope is Scope.UNSPECIFIED:
        return _unspecified(text)
    if expect_address is not None and parse_ip(relayed[0]) != parse_ip(expect_address):
        return _unexpected_address(text, expect_address)
    if expect_ports is not None and not expect_ports[0] <= relayed[1] <= expect_ports[1]:
        return _port_outside(text, expect_ports)
    if not scope.is_public:
        return _non_public(text, scope, scope_of(server_ip))
    return RelayJudgement(Status.PASS, f"relayed address {text} is public")


def _unspecified(text: str) -> RelayJudgement:
    return _finding(
        Status.FAIL,
        CauseId.RELAY_UNSPECIFIED,
        f"relay advertises the unspecified address {text}",
        "The server hands out 0.0.0.0/:: as relayed address: it relays from a wildcard socket "
        "without knowing its own address, so no peer can send to it.",
        "Configure the relay address (turn-relay --relay-address, coturn relay-ip) and the "
        "advertised one (turn-relay --external-address, coturn external-ip / -X).",
    )


def _unexpected_address(text: str, expected: str) -> RelayJudgement:
    return _finding(
        Status.FAIL,
        CauseId.RELAY_ADDRESS_UNEXPECTED,
        f"relayed address {text} is not the expected {expected}",
        "The server advertises another address than the one peers should use: a wrong "
        "external/advertised address, or the request reached another server.",
        f"Set the advertised address to {expected} (turn-relay --external-address, coturn "
        "external-ip / -X), or correct the expected address.",
    )


def _port_outside(text: str, ports: tuple[int, int]) -> RelayJudgement:
    low, high = ports
    return _finding(
        Status.FAIL,
        CauseId.RELAY_PORT_OUTSIDE_RANGE,
        f"relayed port of {text} is outside {low}-{high}",
        f"The relay port is outside the range the firewall is expected to open ({low}-{high}): "
        "peers' packets to it will be dropped.",
        "Align the server's relay port range (turn-relay --port-range, coturn min-port/"
        "max-port) with the firewall rules.",
    )


def _non_public(text: str, scope: Scope, server_scope: Scope) -> RelayJudgement:
    if scope is server_scope:
        return RelayJudgement(
            Status.PASS,
            f"relayed address {text} is {scope.value}, like the server's address: fine for a "
            "private deployment, unreachable from the internet",
        )
    return _finding(
        Status.WARN,
        CauseId.RELAY_PRIVATE_ADDRESS,
        f"relay advertises a {scope.value} address {text}",
        "relay advertises a private address: remote peers can't reach it; set the "
        "external/advertised address.",
        "Behind 1:1 NAT (clouds), advertise the public address: turn-relay --external-address "
        "PUBLIC (relay.external), coturn external-ip=PUBLIC/PRIVATE (-X).",
    )
