"""Which peers a client may reach through the relay (CreatePermission, ChannelBind, Send).

Deny by default everything that is not a public unicast address: loopback, unspecified, private,
carrier-grade NAT, link-local (cloud metadata services live there), multicast, broadcast,
reserved, documentation, benchmarking and unique-local ranges. IPv6 addresses that embed an IPv4
address (v4-mapped, v4-translated, v4-compatible, NAT64, 6to4, Teredo) are judged by the IPv4
address they lead to, so ``::ffff:127.0.0.1`` or ``64:ff9b::7f00:1`` cannot reach loopback.

Precedence, first that applies wins:
  1. the relay's own addresses are allowed (clients of one relay talking to each other); when a
     port is given and relay ports are known, only the relay port range is reachable on them
     (the core narrows that to the relayed addresses it has allocated, `turn_relay.core.peers`);
  2. ``denied_peers`` (operator's explicit deny list) denies;
  3. ``allowed_peers`` re-opens defaults (a LAN deployment, tests);
  4. the default deny list denies;
  5. anything else is allowed.
An operator's deny always beats an operator's allow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str  # one line for logs and operators


@dataclass(frozen=True, slots=True)
class Rule:
    network: IPNetwork
    label: str  # completes the sentence "<address> is <label>"


@dataclass(frozen=True, slots=True)
class EmbeddedIPv4:
    address: IPv4Address
    form: str  # e.g. "NAT64 64:ff9b::/96"


def _rules(*pairs: tuple[str, str]) -> tuple[Rule, ...]:
    return tuple(Rule(ip_network(cidr), label) for cidr, label in pairs)


# Ordered: the first matching rule names the reason, so specific entries come first.
DEFAULT_DENIED_IPV4 = _rules(
    ("0.0.0.0/32", "unspecified"),
    ("0.0.0.0/8", "'this network' (RFC 791)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.100.100.200/32", "shared address space (cloud metadata)"),
    ("100.64.0.0/10", "shared address space (RFC 6598 carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.169.254/32", "link-local (cloud metadata)"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "reserved for IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation (RFC 5737)"),
    ("192.88.99.0/24", "reserved (deprecated 6to4 relay anycast)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation (RFC 5737)"),
    ("203.0.113.0/24", "documentation (RFC 5737)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "limited broadcast"),
    ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
)

DEFAULT_DENIED_IPV6 = _rules(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001:2::/48", "benchmarking (RFC 5180)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2001::/23", "reserved for IETF protocol assignments (RFC 2928)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "SRv6 segment identifiers (RFC 9602)"),
    ("fd00:ec2::254/128", "unique local (cloud metadata)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
    ("::/3", "reserved (outside global unicast 2000::/3)"),
    ("4000::/2", "reserved (outside global unicast 2000::/3)"),
    ("8000::/1", "reserved (outside global unicast 2000::/3)"),
)

_V4_MAPPED = IPv6Network("::ffff:0:0/96")
_V4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
_V4_COMPATIBLE = IPv6Network("::/96")
_NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = IPv6Network("2002::/16")
_TEREDO = IPv6Network("2001::/32")

# RFC 6052 section 2.2: where the IPv4 bytes sit for each NAT64 prefix length (byte 8 is the
# reserved "u" octet). A local-use /48 may be subnetted to any of these lengths, and the relay
# cannot know which, so every reading is checked.
_RFC6052_IPV4_BYTES: dict[int, tuple[int, ...]] = {
    48: (6, 7, 9, 10),
    56: (7, 9, 10, 11),
    64: (9, 10, 11, 12),
    96: (12, 13, 14, 15),
}


def _ipv4_from_bytes(packed: bytes, positions: Iterable[int]) -> IPv4Address:
    return IPv4Address(bytes(packed[i] for i in positions))


def _low32(address: IPv6Address) -> IPv4Address:
    return IPv4Address(int(address) & 0xFFFFFFFF)


def _local_nat64_readings(address: IPv6Address) -> tuple[EmbeddedIPv4, ...]:
    packed = address.packed
    readings: list[EmbeddedIPv4] = []
    for length, positions in _RFC6052_IPV4_BYTES.items():
        embedded = _ipv4_from_bytes(packed, positions)
        if embedded not in (r.address for r in readings):
            form = f"local-use NAT64 64:ff9b:1::/48 read as a /{length} prefix"
            readings.append(EmbeddedIPv4(embedded, form))
    return tuple(readings)


def embedded_ipv4(address: IPv6Address) -> tuple[EmbeddedIPv4, ...]:
    """The IPv4 address(es) an IPv6 address leads to; empty for plain IPv6."""
    if address in _V4_MAPPED:
        return (EmbeddedIPv4(_low32(address), "v4-mapped ::ffff:0:0/96"),)
    if address in _V4_TRANSLATED:
        return (EmbeddedIPv4(_low32(address), "v4-translated ::ffff:0:0:0/96"),)
    if address in _V4_COMPATIBLE and int(address) > 1:  # :: and ::1 are IPv6's own
        return (EmbeddedIPv4(_low32(address), "v4-compatible ::/96"),)
    if address in _NAT64_WELL_KNOWN:
        return (EmbeddedIPv4(_low32(address), "NAT64 64:ff9b::/96"),)
    if address in _NAT64_LOCAL_USE:
        return _local_nat64_readings(address)
    if address in _SIX_TO_FOUR:
        return (EmbeddedIPv4(IPv4Address((int(address) >> 80) & 0xFFFFFFFF), "6to4 2002::/16"),)
    if address in _TEREDO:
        client = IPv4Address(~int(address) & 0xFFFFFFFF)
        return (EmbeddedIPv4(client, "Teredo 2001::/32 client"),)
    return ()


def show(address: IPAddress) -> str:
    """Text form that keeps an embedded IPv4 address readable (``::ffff:127.0.0.1``)."""
    if isinstance(address, IPv6Address):
        low = _low32(address)
        if address in _V4_MAPPED:
            return f"::ffff:{low}"
        if address in _V4_TRANSLATED:
            return f"::ffff:0:{low}"
        if address in _V4_COMPATIBLE and int(address) > 0xFFFF:
            return f"::{low}"
    return str(address)


def _first_match(rules: Iterable[Rule], address: IPAddress) -> Rule | None:
    return next((rule for rule in rules if address in rule.network), None)


def _operator_rules(networks: Iterable[str | IPNetwork], list_name: str) -> tuple[Rule, ...]:
    parsed = (n if isinstance(n, IPv4Network | IPv6Network) else ip_network(n) for n in networks)
    return tuple(Rule(network, f"in {list_name} {network}") for network in parsed)


def _parse(address: str | IPAddress) -> IPAddress:
    if isinstance(address, str):
        address = ip_address(address)
    if isinstance(address, IPv6Address) and address.scope_id is not None:
        return IPv6Address(int(address))
    return address


class PeerPolicy:
    """Decides, per peer address, whether the relay may send to it. Immutable after creation."""

    def __init__(
        self,
        *,
        allowed_peers: Iterable[str | IPNetwork] = (),
        denied_peers: Iterable[str | IPNetwork] = (),
        own_addresses: Iterable[str | IPAddress] = (),
        own_ports: tuple[int, int] | None = None,
    ) -> None:
        self._allowed = _operator_rules(allowed_peers, "allowed_peers")
        self._denied = _operator_rules(denied_peers, "denied_peers")
        self._own = frozenset(_parse(a) for a in own_addresses)
        self._own_ports = own_ports

    def decide(self, address: str | IPAddress, port: int | None = None) -> Decision:
        """Allowed or not, with a one-line reason. Text that is no IP address is denied.

        ``port``: give it where the request has one (ChannelBind, Send); CreatePermission has
        none. It only matters for the relay's own addresses (relay ports only).
        """
        try:
            ip = _parse(address)
        except ValueError:
            return Decision(False, f"{address!r} is not an IP address")
        embedded = embedded_ipv4(ip) if isinstance(ip, IPv6Address) else ()
        if self._is_own(ip, embedded):
            return self._decide_own(ip, port)
        for view in (ip, *(e.address for e in embedded)):
            denied = _first_match(self._denied, view)
            if denied is not None:
                return Decision(False, f"{show(ip)} is {denied.label}")
        allowed = _first_match(self._allowed, ip)
        if allowed is not None:
            return Decision(True, f"{show(ip)} is {allowed.label}")
        if isinstance(ip, IPv6Address) and embedded:
            return self._decide_embedded(ip, embedded)
        return self._decide_by_defaults(ip)

    def is_own(self, address: str) -> bool:
        """Is ``address`` one of the relay's own addresses (where only relay ports count)?"""
        try:
            ip = _parse(address)
        except ValueError:
            return False
        embedded = embedded_ipv4(ip) if isinstance(ip, IPv6Address) else ()
        return self._is_own(ip, embedded)

    def _is_own(self, ip: IPAddress, embedded: tuple[EmbeddedIPv4, ...]) -> bool:
        if ip in self._own:
            return True
        return len(embedded) == 1 and ip in _V4_MAPPED and embedded[0].address in self._own

    def _decide_own(self, ip: IPAddress, port: int | None) -> Decision:
        if port is None or self._own_ports is None:
            return Decision(True, f"{show(ip)} is the relay's own address")
        low, high = self._own_ports
        if low <= port <= high:
            return Decision(
                True, f"{show(ip)} is the relay's own address, port {port} a relay port"
            )
        return Decision(
            False, f"{show(ip)} is the relay's own address but port {port} is outside {low}-{high}"
        )

    def _decide_by_defaults(self, ip: IPAddress) -> Decision:
        rules = DEFAULT_DENIED_IPV4 if isinstance(ip, IPv4Address) else DEFAULT_DENIED_IPV6
        denied = _first_match(rules, ip)
        if denied is not None:
            return Decision(False, f"{ip} is {denied.label}")
        return Decision(True, f"{ip} is not in any denied range")

    def _decide_embedded(self, ip: IPv6Address, embedded: tuple[EmbeddedIPv4, ...]) -> Decision:
        reopened: list[str] = []
        for reading in embedded:
            says = f"{show(ip)} embeds {reading.address} ({reading.form}), which is"
            allowed = _first_match(self._allowed, reading.address)
            if allowed is not None:
                reopened.append(f"{says} {allowed.label}")
                continue
            denied = _first_match(DEFAULT_DENIED_IPV4, reading.address)
            if denied is not None:
                return Decision(False, f"{says} {denied.label}")
        if reopened:
            return Decision(True, reopened[0])
        shown = ", ".join(f"{reading.address} ({reading.form})" for reading in embedded)
        return Decision(True, f"{show(ip)} embeds {shown}, not in any denied range")
