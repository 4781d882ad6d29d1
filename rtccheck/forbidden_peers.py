"""Peer addresses a public TURN relay must refuse (report-only audit list; never sent data).

Each is a way into the relay's own network: loopback, the cloud metadata service, private and
carrier-NAT ranges, multicast/broadcast, and IPv6 spellings that embed those IPv4 addresses
(IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) which a naive deny list misses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForbiddenPeer:
    address: str
    label: str

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.address


FORBIDDEN_PEERS: tuple[ForbiddenPeer, ...] = (
    ForbiddenPeer("127.0.0.1", "loopback"),
    ForbiddenPeer("0.0.0.0", "unspecified (this host)"),
    ForbiddenPeer("169.254.169.254", "cloud metadata service (link-local)"),
    ForbiddenPeer("10.0.0.1", "private (RFC 1918 10/8)"),
    ForbiddenPeer("172.16.0.1", "private (RFC 1918 172.16/12)"),
    ForbiddenPeer("192.168.1.1", "private (RFC 1918 192.168/16)"),
    ForbiddenPeer("100.64.0.1", "carrier-grade NAT (100.64/10)"),
    ForbiddenPeer("224.0.0.1", "multicast"),
    ForbiddenPeer("255.255.255.255", "broadcast"),
    ForbiddenPeer("240.0.0.1", "reserved (240/4)"),
    ForbiddenPeer("::1", "IPv6 loopback"),
    ForbiddenPeer("::", "IPv6 unspecified"),
    ForbiddenPeer("fe80::1", "IPv6 link-local"),
    ForbiddenPeer("fd00::1", "IPv6 unique local (fc00::/7)"),
    ForbiddenPeer("fd00:ec2::254", "cloud metadata service over IPv6 (AWS)"),
    ForbiddenPeer("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ForbiddenPeer("::ffff:169.254.169.254", "IPv4-mapped metadata service"),
    ForbiddenPeer("::ffff:10.0.0.1", "IPv4-mapped private"),
    ForbiddenPeer("::127.0.0.1", "IPv4-compatible loopback (deprecated form)"),
    ForbiddenPeer("64:ff9b::7f00:1", "NAT64 loopback (64:ff9b::/96)"),
    ForbiddenPeer("64:ff9b::a9fe:a9fe", "NAT64 metadata service"),
    ForbiddenPeer("2002:7f00:1::1", "6to4 embedding loopback"),
    ForbiddenPeer("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo embedding loopback"),
)

#: the port put in XOR-PEER-ADDRESS (permissions ignore it; discard service, just in case)
PEER_PORT = 9
