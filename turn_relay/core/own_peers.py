"""Peers on the relay's own addresses: only the relayed transport addresses it has allocated.

The peer policy lets clients reach the relay's own addresses so that two clients of one relay
can talk (relay to relay), and on them only the relay port range. That is still too much: a
Send indication reached every UDP port of the relay's address once the IP had a permission,
its own listener included (a Binding came back as a Data indication, an Allocate as a 401, so
allocations could be made through the relay itself), and other services listening in the
relay port range were reachable too. So every path that sends to a peer (CreatePermission,
ChannelBind, Send, and the shell's fast paths, which leave own addresses to the core) asks
`OwnPeers.refusal`:

- the relay's listeners are never a peer, whatever the policy or its allow list says;
- on an own address (as the policy knows them: not re-opened by ``allowed_peers``), a port in
  this core's share of the relay range must be a live allocation's relayed address. Ports of
  the range that other worker processes allocate from stay allowed by the policy's range rule
  (a worker does not see the others' tables).
"""

from __future__ import annotations

from ipaddress import ip_address

from .allocation import Address
from .peer_policy import PeerPolicy
from .settings import CoreSettings
from .table import Table

TO_LISTENER = "to-relay-listener"  # a drop reason
TO_UNALLOCATED = "to-unallocated-relay-port"  # a drop reason


class OwnPeers:
    def __init__(self, settings: CoreSettings, table: Table) -> None:
        self.settings = settings
        self.table = table
        self._local = {relay.advertised: relay.local for relay in settings.relays}
        relay_ips = {ip for relay in settings.relays for ip in (relay.local, relay.advertised)}
        self._listeners: set[Address] = set()
        for host, port in settings.listeners:
            if ip_address(host).is_unspecified:
                version = ip_address(host).version
                self._listeners.update(
                    (ip, port) for ip in relay_ips if ip_address(ip).version == version
                )
            else:
                self._listeners.add((host, port))
        # addresses the shell's fast path must leave to the core (Send indications)
        self.addresses = frozenset(relay_ips | {host for host, _ in self._listeners})

    def refusal(self, policy: PeerPolicy, peer: Address) -> str | None:
        """Why ``peer`` may not be sent to (a drop reason), or None when it may."""
        ip, port = peer
        if ip not in self.addresses and not policy.is_own(ip):
            return None
        if peer in self._listeners:
            return TO_LISTENER
        if not policy.is_own(ip):
            return None  # re-opened by the operator's allow list: the policy decides
        if not self.settings.port_min <= port <= self.settings.port_max:
            return None  # another worker's share (or outside the range: the policy refuses)
        if (self._local.get(ip, ip), port) in self.table.by_relay:
            return None
        return TO_UNALLOCATED

    def explain(self, reason: str, peer: Address) -> str:
        if reason == TO_LISTENER:
            return f"{peer[0]}:{peer[1]} is the relay's own listener"
        return f"{peer[0]}:{peer[1]} is the relay's own address but no relayed address of it"
