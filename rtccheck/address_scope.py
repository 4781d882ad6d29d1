"""Where an IP address can be reached from: loopback, link-local, private, carrier NAT, public.

Unlike ``ipaddress``'s ``is_private``, documentation and benchmarking ranges count as public
here: labs and examples use them to stand for public addresses. IPv4-mapped IPv6 addresses are
judged by the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Scope(StrEnum):
    LOOPBACK = "loopback"
    UNSPECIFIED = "unspecified"
    LINK_LOCAL = "link-local"
    PRIVATE = "private"
    CARRIER_NAT = "carrier-nat"
    MULTICAST = "multicast"
    PUBLIC = "public"

    @property
    def is_public(self) -> bool:
        return self is Scope.PUBLIC


_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_CARRIER_NAT = ipaddress.ip_network("100.64.0.0/10")


def parse_ip(text: str) -> IPAddress:
    """An address, with IPv4-mapped IPv6 turned into the IPv4 it carries; ValueError if bad."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def scope_of(text: str) -> Scope:
    address = parse_ip(text)
    checks: tuple[tuple[bool, Scope], ...] = (
        (address.is_unspecified, Scope.UNSPECIFIED),
        (address.is_loopback, Scope.LOOPBACK),
        (address.is_link_local, Scope.LINK_LOCAL),
        (address.is_multicast, Scope.MULTICAST),
        (
            any(address in net for net in _PRIVATE_NETWORKS if net.version == address.version),
            Scope.PRIVATE,
        ),
        (address.version == 4 and address in _CARRIER_NAT, Scope.CARRIER_NAT),
    )
    for matched, scope in checks:
        if matched:
            return scope
    return Scope.PUBLIC
