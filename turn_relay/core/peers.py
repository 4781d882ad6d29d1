"""CreatePermission and ChannelBind (RFC 8656 sections 10 and 12.2), after authentication.

Every peer address passes the peer policy and the rule for the relay's own addresses first
(`turn_relay.core.own_peers`; 403, the core's observer is told why), then must match the family
of one of the allocation's relays (443). CreatePermission is all-or-nothing:
nothing is installed unless every XOR-PEER-ADDRESS is acceptable.
"""

from __future__ import annotations

from stun_server.wire import Message
from stun_server.wire import attributes as attrs

from .allocation import Allocation, ChannelBinding
from .own_peers import OwnPeers
from .peer_policy import Decision, PeerPolicy
from .responses import RequestError, success
from .settings import CoreSettings
from .table import Change, Table


class PeerHandler:
    def __init__(self, settings: CoreSettings, table: Table, policy: PeerPolicy) -> None:
        self.settings = settings
        self.table = table
        self.policy = policy
        self.own = OwnPeers(settings, table)

    def create_permission(
        self, request: Message, allocation: Allocation, now: float
    ) -> tuple[Message, list[Change]]:
        peers = request.get_all(attrs.XorPeerAddress)
        if not peers:
            raise RequestError(400, "CreatePermission without XOR-PEER-ADDRESS")
        for peer in peers:
            self._check_peer(allocation, peer)
        self._check_capacity(allocation, {peer.ip for peer in peers})
        changes: list[Change] = []
        expires_at = now + self.settings.permission_lifetime
        for ip in dict.fromkeys(peer.ip for peer in peers):
            changes.extend(self.table.grant(allocation, ip, expires_at))
        return success(request), changes

    def channel_bind(
        self, request: Message, allocation: Allocation, now: float
    ) -> tuple[Message, list[Change]]:
        number = request.get(attrs.ChannelNumber)
        peer = request.get(attrs.XorPeerAddress)
        if number is None or peer is None:
            raise RequestError(400, "ChannelBind needs CHANNEL-NUMBER and XOR-PEER-ADDRESS")
        if not 0x4000 <= number.number <= self.settings.max_channel:
            top = self.settings.max_channel
            raise RequestError(400, f"channel 0x{number.number:04x} outside 0x4000-0x{top:04X}")
        self._check_peer(allocation, peer)
        bound = allocation.channels.get(number.number)
        if bound is not None and bound.peer != peer.address:
            raise RequestError(400, f"channel 0x{number.number:04x} is bound to {bound.peer}")
        other = allocation.peer_channels.get(peer.address)
        if other is not None and other.number != number.number:
            raise RequestError(400, f"{peer.address} is bound to channel 0x{other.number:04x}")
        self._check_capacity(allocation, {peer.ip})
        changes: list[Change] = []
        expires_at = now + self.settings.channel_lifetime
        if bound is not None:
            bound.expires_at = expires_at
        else:
            changes.extend(
                self.table.bind_channel(
                    allocation, self._binding(allocation, peer, number.number, expires_at)
                )
            )
        changes.extend(
            self.table.grant(allocation, peer.ip, now + self.settings.permission_lifetime)
        )
        return success(request), changes

    def _binding(
        self, allocation: Allocation, peer: attrs.XorPeerAddress, number: int, expires_at: float
    ) -> ChannelBinding:
        relay = allocation.relay_for(peer.ip)
        assert relay is not None  # _check_peer made sure
        header = number.to_bytes(2, "big")
        return ChannelBinding(
            number,
            peer.address,
            relay,
            allocation.five_tuple,
            expires_at,
            header,
            traffic=allocation.traffic,
        )

    def _check_peer(self, allocation: Allocation, peer: attrs.XorPeerAddress) -> None:
        decision = self.policy.decide(peer.ip, peer.port)
        own = self.own.refusal(self.policy, peer.address) if decision.allowed else None
        if own is not None:
            decision = Decision(False, self.own.explain(own, peer.address))
        if not decision.allowed:  # the core's observer logs it (aggregated per source)
            raise RequestError(403, f"peer {peer.ip}: {decision.reason}", reason="peer-denied")
        if allocation.relay_for(peer.ip) is None:
            raise RequestError(443, f"no relay of the family of {peer.ip}")

    def _check_capacity(self, allocation: Allocation, ips: set[str]) -> None:
        limit = self.settings.max_permissions_per_allocation
        if not limit:
            return
        new = len(ips - allocation.permissions.keys())
        if len(allocation.permissions) + new > limit:
            raise RequestError(508, f"more than {limit} permissions")
