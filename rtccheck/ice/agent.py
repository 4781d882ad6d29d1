"""aioice glue for the ICE-agent checks (gather, data).

Which local addresses to gather on, one aioice Connection per server, and candidates the way
Trickle ICE shows them. Two things about aioice 0.13 shape this module:

* aioice never gathers on 127.0.0.1 or ::1 (``aioice.ice.get_host_addresses`` drops them), so on
  a host with only loopback (CI's network namespace) it has no host candidate and hence no srflx
  candidate either. ``IceAgent`` gathers on the addresses it is given instead, and
  ``host_addresses`` adds the loopback ones when a server is on loopback or the host has no
  other address (as Chromium does with --allow-loopback-in-peer-connection).
* aioice's TURN client speaks UDP, TCP and TLS over TCP (``turn_ssl``), not DTLS; it asks STUN
  servers over UDP and IPv4 only. ``unsupported_reason`` says so for the servers it cannot use.

No agent is ever given a server the user did not name: aioice has no default STUN server, and
the checks build every agent from the targets. (aiortc's RTCPeerConnection, by contrast, falls
back to stun:stun.l.google.com:19302 when given no iceServers; the checks use aioice directly,
which is also faster to set up and lets them read the selected pair.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import ssl
from dataclasses import dataclass
from typing import Any

from aioice import Candidate, Connection, TransportPolicy
from aioice.ice import get_host_addresses

from rtccheck.results import JsonValue
from rtccheck.uri import IceServer

LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")
COMPONENT = 1


@dataclass(frozen=True)
class HostAddresses:
    """The local addresses agents gather host candidates on, and why loopback is among them."""

    addresses: tuple[str, ...]
    loopback_reason: str | None = None

    @property
    def only_loopback(self) -> bool:
        return all(is_loopback(address) for address in self.addresses)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_addresses(servers: tuple[IceServer, ...] | list[IceServer]) -> HostAddresses:
    """aioice's own choice of addresses, plus loopback when it is needed to reach anything."""
    usual = tuple(get_host_addresses(use_ipv4=True, use_ipv6=True))
    if any(is_loopback(server.host) for server in servers):
        reason = "a server is on loopback"
    elif not usual:
        reason = "this host has no address besides loopback"
    else:
        return HostAddresses(usual)
    return HostAddresses((*usual, *LOOPBACK_ADDRESSES), reason)


def unsupported_reason(server: IceServer) -> str | None:
    """Why aioice cannot use this server, or None when it can."""
    if server.scheme == "stuns":
        return (
            "aioice asks STUN servers over UDP only, so it gathers nothing from stuns: "
            "(STUN over TLS); the tls check covers this server"
        )
    if server.scheme == "turns" and server.transport == "udp":
        return "aioice has no DTLS TURN client (turns:...?transport=udp); use turns: over TCP"
    if server.scheme == "stun" and _is_ipv6_literal(server.host):
        return "aioice asks STUN servers over IPv4 only"
    return None


def _is_ipv6_literal(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def relay_protocol(server: IceServer) -> str:
    """How the agent reaches the TURN server: "udp", "tcp" or "tls" (RTCIceCandidate's
    relayProtocol)."""
    return "tls" if server.secure else server.transport


@dataclass(frozen=True)
class AgentSettings:
    """The servers one agent uses; built from the targets only."""

    stun_server: tuple[str, int] | None = None
    turn: IceServer | None = None
    tls: ssl.SSLContext | None = None
    relay_only: bool = False


def settings_for(server: IceServer, tls: ssl.SSLContext | None, relay_only: bool) -> AgentSettings:
    """STUN servers give srflx candidates; TURN servers relay candidates, and over UDP also a
    srflx one (a TURN server answers Binding requests, and browsers show that candidate too)."""
    if not server.is_turn:
        return AgentSettings(stun_server=(server.host, server.port))
    stun = (server.host, server.port) if server.transport == "udp" and not relay_only else None
    return AgentSettings(stun_server=stun, turn=server, tls=tls, relay_only=relay_only)


class IceAgent(Connection):
    """An aioice Connection that gathers on the given host addresses (loopback included when
    asked) and waits at most ``gather_timeout`` seconds for STUN and TURN servers."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        controlling: bool,
        hosts: HostAddresses,
        gather_timeout: float,
    ) -> None:
        turn = settings.turn
        # aioice types turn_ssl as bool but hands it unchanged to loop.create_connection(ssl=),
        # which takes an SSLContext: that is how --ca-file reaches TURN over TLS.
        tls: Any = settings.tls if turn is not None and turn.secure else False
        super().__init__(
            ice_controlling=controlling,
            stun_server=settings.stun_server,
            turn_server=(turn.host, turn.port) if turn is not None else None,
            turn_username=turn.username if turn is not None else None,
            turn_password=turn.credential if turn is not None else None,
            turn_ssl=tls,
            turn_transport=turn.transport if turn is not None else "udp",
            transport_policy=TransportPolicy.RELAY if settings.relay_only else TransportPolicy.ALL,
        )
        self.relay_only = settings.relay_only
        self.hosts = hosts
        self.gather_timeout = gather_timeout

    async def gather_candidates(self) -> None:
        """Like aioice's, on ``self.hosts`` (none when relay-only), bounded by the timeout."""
        if self._local_candidates_start:
            return
        self._local_candidates_start = True
        addresses = [] if self.relay_only else list(self.hosts.addresses)
        self._local_candidates += await self.get_component_candidates(
            component=COMPONENT,
            addresses=addresses,
            timeout=max(1, math.ceil(self.gather_timeout)),
        )
        self._local_candidates_end = True

    def candidates_of_type(self, kind: str) -> list[Candidate]:
        return [c for c in self.local_candidates if c.type == kind]


def candidate_view(candidate: Candidate, relay_protocol: str | None = None) -> dict[str, JsonValue]:
    """A candidate as Trickle ICE lists it (plus its SDP line)."""
    return {
        "type": candidate.type,
        "component": candidate.component,
        "foundation": candidate.foundation,
        "protocol": candidate.transport.lower(),
        "address": candidate.host,
        "port": candidate.port,
        "priority": candidate.priority,
        "related_address": candidate.related_address,
        "related_port": candidate.related_port,
        "relay_protocol": relay_protocol if candidate.type == "relay" else None,
        "sdp": "candidate:" + candidate.to_sdp(),
    }


def selected_pair(agent: Connection) -> tuple[Candidate, Candidate] | None:
    """The nominated (selected) candidate pair, once connected.

    aioice has no public accessor; aiortc's RTCIceTransport reads the same ``_nominated``."""
    pair = agent._nominated.get(COMPONENT)
    if pair is None:
        return None
    return pair.local_candidate, pair.remote_candidate


async def exchange_descriptions(first: Connection, second: Connection) -> None:
    """Signal in-process: each agent learns the other's credentials and every candidate."""
    for local, remote in ((first, second), (second, first)):
        remote.remote_username = local.local_username
        remote.remote_password = local.local_password
        for candidate in local.local_candidates:
            await remote.add_remote_candidate(candidate)
        await remote.add_remote_candidate(None)


async def close_agents(agents: list[IceAgent], timeout: float) -> None:
    """Close agents (deleting their TURN allocations), waiting at most ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(agent.close() for agent in agents), return_exceptions=True)
    except TimeoutError:
        pass
