"""All allocations of one relay: lookups, quotas, fast-path maps and expiry timers.

Lookups: by 5-tuple (client messages) and by relay address (peer datagrams). Fast-path maps hold
only *routed* channel bindings (bound, and the peer's IP has a permission), keyed so one dict
lookup finds where a ChannelData frame or a peer datagram goes.

Expiry uses one min-heap of (deadline, seq, kind, object). Refreshing an object only moves its
``expires_at``; when the stale heap entry comes due, it is pushed again at the new deadline.
So a timer tick costs O(log n) per object actually due, never a scan of every allocation.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from .allocation import (
    Address,
    Allocation,
    ChannelBinding,
    FiveTuple,
    Permission,
)
from .ports import RelayPorts


class _AllocationTimer(NamedTuple):
    allocation: Allocation


class _PermissionTimer(NamedTuple):
    allocation: Allocation
    permission: Permission


class _ChannelTimer(NamedTuple):
    allocation: Allocation
    binding: ChannelBinding


class _ReservationTimer(NamedTuple):
    token: bytes


class _QuarantineTimer(NamedTuple):
    family: int
    port: int


_Timer = _AllocationTimer | _PermissionTimer | _ChannelTimer | _ReservationTimer | _QuarantineTimer


@dataclass(frozen=True, slots=True)
class RouteChange:
    """A channel binding became usable for relaying (``up``) or stopped being usable."""

    binding: ChannelBinding
    up: bool


@dataclass(frozen=True, slots=True)
class PermissionChange:
    """A permission for ``ip`` was installed (``up``) or went away, on ``relay``."""

    allocation: Allocation
    ip: str
    relay: Address
    up: bool


@dataclass(frozen=True, slots=True)
class AllocationAdded:
    allocation: Allocation


@dataclass(frozen=True, slots=True)
class AllocationRemoved:
    allocation: Allocation
    reason: str  # "expired", "deleted", "credential-expired", "connection-closed", ...


@dataclass(frozen=True, slots=True)
class RelayRemoved:
    """A relay address went away while no allocation did: one relay of a dual allocation, or
    a reserved port whose token expired unused."""

    relay: Address


@dataclass(frozen=True, slots=True)
class RelayReserved:
    """A port was reserved (EVEN-PORT R=1): bind it now, so the token can be honoured."""

    relay: Address


Change = (
    RouteChange
    | PermissionChange
    | AllocationAdded
    | AllocationRemoved
    | RelayRemoved
    | RelayReserved
)


class Table:
    def __init__(self, ports: RelayPorts, *, max_per_user: int = 0, max_total: int = 0) -> None:
        self.ports = ports
        self.max_per_user = max_per_user  # 0 = unlimited
        self.max_total = max_total
        self.by_five_tuple: dict[FiveTuple, Allocation] = {}
        self.by_relay: dict[Address, Allocation] = {}
        self.routes_out: dict[tuple[FiveTuple, int], ChannelBinding] = {}
        self.routes_in: dict[tuple[Address, Address], ChannelBinding] = {}
        self.per_user: Counter[str] = Counter()
        # allocations the other relays of a fleet hold, by user (fed by the shell, never waited on)
        self.remote_per_user: Mapping[str, int] = {}
        # peer address -> channel bindings to it (by id): bindings to a relayed address of
        # this relay go when its allocation goes, so the port cannot be reached once freed
        self._bound_to: dict[Address, dict[int, tuple[Allocation, ChannelBinding]]] = {}
        self._heap: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self.by_five_tuple)

    # ------------------------------------------------------------ quotas

    def quota_reached(self, user: str) -> bool:
        return self.full() or self.user_at_quota(user)

    def full(self) -> bool:
        """This relay holds ``max_total`` allocations."""
        return bool(self.max_total) and len(self.by_five_tuple) >= self.max_total

    def user_at_quota(self, user: str) -> bool:
        """``user`` holds ``max_per_user`` allocations here and on the fleet's other relays."""
        if not self.max_per_user:
            return False
        held = self.per_user[user] + self.remote_per_user.get(user, 0)
        return held >= self.max_per_user

    # ------------------------------------------------------------ allocations

    def add(self, allocation: Allocation) -> list[Change]:
        self.by_five_tuple[allocation.five_tuple] = allocation
        for relay in allocation.relays.values():
            self.by_relay[relay] = allocation
        self.per_user[allocation.credentials.user] += 1
        self._push(allocation.expires_at, _AllocationTimer(allocation))
        return [AllocationAdded(allocation)]

    def remove(self, allocation: Allocation, reason: str) -> list[Change]:
        """Forget ``allocation`` and free its ports; returns its routes going down, then itself."""
        if not allocation.alive:
            return []
        allocation.alive = False
        changes: list[Change] = [
            RouteChange(b, up=False) for b in allocation.channels.values() if self._unroute(b)
        ]
        changes.extend(_permission_changes(allocation, allocation.permissions))
        for binding in allocation.channels.values():
            self._forget_peer(binding)
        del self.by_five_tuple[allocation.five_tuple]
        for family, relay in allocation.relays.items():
            self.by_relay.pop(relay, None)
            self.ports.release(family, relay[1])
        user = allocation.credentials.user
        self.per_user[user] -= 1
        if self.per_user[user] <= 0:
            del self.per_user[user]
        changes.append(AllocationRemoved(allocation, reason))
        for address in (*allocation.relays.values(), *allocation.advertised.values()):
            changes.extend(self.unbind_peer(address))
        return changes

    def unbind_peer(self, peer: Address) -> list[Change]:
        """Remove every channel binding to ``peer`` (a relayed address that went away)."""
        changes: list[Change] = []
        for allocation, binding in list(self._bound_to.pop(peer, {}).values()):
            changes.extend(self.unbind_channel(allocation, binding))
        return changes

    def drop_relay(self, allocation: Allocation, family: int) -> list[Change]:
        """Remove one family's relay of a dual allocation (Refresh lifetime 0 with a family)."""
        relay = allocation.relays.pop(family)
        advertised = allocation.advertised.pop(family, None)
        self.by_relay.pop(relay, None)
        self.ports.release(family, relay[1])
        changes: list[Change] = []
        for binding in [b for b in allocation.channels.values() if b.relay == relay]:
            changes.extend(self.unbind_channel(allocation, binding))
        orphans = [ip for ip in allocation.permissions if allocation.relay_for(ip) is None]
        for ip in orphans:
            del allocation.permissions[ip]
        changes.extend(PermissionChange(allocation, ip, relay, up=False) for ip in orphans)
        changes.append(RelayRemoved(relay))
        for address in {relay, advertised or relay}:
            changes.extend(self.unbind_peer(address))
        return changes

    def set_expiry(self, allocation: Allocation, expires_at: float) -> None:
        earlier = expires_at < allocation.expires_at
        allocation.expires_at = expires_at
        if earlier:
            self._push(expires_at, _AllocationTimer(allocation))

    # ------------------------------------------------------------ permissions

    def grant(self, allocation: Allocation, ip: str, expires_at: float) -> list[Change]:
        """Install or refresh the permission for ``ip``; returns routes that come up."""
        permission = allocation.permissions.get(ip)
        if permission is not None:
            permission.expires_at = expires_at
            return []
        permission = Permission(ip, expires_at)
        allocation.permissions[ip] = permission
        self._push(expires_at, _PermissionTimer(allocation, permission))
        changes: list[Change] = list(_permission_changes(allocation, [ip], up=True))
        changes.extend(
            RouteChange(b, up=True)
            for b in allocation.channels.values()
            if b.peer[0] == ip and self._route(b)
        )
        return changes

    def revoke(self, allocation: Allocation, permission: Permission) -> list[Change]:
        if allocation.permissions.get(permission.ip) is not permission:
            return []
        del allocation.permissions[permission.ip]
        changes: list[Change] = [
            RouteChange(b, up=False)
            for b in allocation.channels.values()
            if b.peer[0] == permission.ip and self._unroute(b)
        ]
        changes.extend(_permission_changes(allocation, [permission.ip]))
        return changes

    # ------------------------------------------------------------ channels

    def bind_channel(self, allocation: Allocation, binding: ChannelBinding) -> list[Change]:
        allocation.channels[binding.number] = binding
        allocation.peer_channels[binding.peer] = binding
        self._bound_to.setdefault(binding.peer, {})[id(binding)] = (allocation, binding)
        self._push(binding.expires_at, _ChannelTimer(allocation, binding))
        if allocation.permissions.get(binding.peer[0]) is not None and self._route(binding):
            return [RouteChange(binding, up=True)]
        return []

    def unbind_channel(self, allocation: Allocation, binding: ChannelBinding) -> list[Change]:
        if allocation.channels.get(binding.number) is not binding:
            return []
        del allocation.channels[binding.number]
        allocation.peer_channels.pop(binding.peer, None)
        self._forget_peer(binding)
        return [RouteChange(binding, up=False)] if self._unroute(binding) else []

    def _forget_peer(self, binding: ChannelBinding) -> None:
        bound = self._bound_to.get(binding.peer)
        if bound is not None:
            bound.pop(id(binding), None)
            if not bound:
                del self._bound_to[binding.peer]

    def _route(self, binding: ChannelBinding) -> bool:
        if binding.routed:
            return False
        binding.routed = True
        self.routes_out[(binding.five_tuple, binding.number)] = binding
        self.routes_in[(binding.relay, binding.peer)] = binding
        return True

    def _unroute(self, binding: ChannelBinding) -> bool:
        if not binding.routed:
            return False
        binding.routed = False
        self.routes_out.pop((binding.five_tuple, binding.number), None)
        self.routes_in.pop((binding.relay, binding.peer), None)
        return True

    # ------------------------------------------------------------ ports held by time

    def hold_reservation(self, token: bytes, relay: Address, expires_at: float) -> list[Change]:
        self._push(expires_at, _ReservationTimer(token))
        return [RelayReserved(relay)]

    def quarantine(self, family: int, port: int, until: float) -> None:
        """Keep ``port`` out of the pool until ``until`` (the shell could not bind it)."""
        self._push(until, _QuarantineTimer(family, port))

    # ------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def expire(self, now: float) -> list[Change]:
        """Process every heap entry due at ``now``; returns what changed."""
        changes: list[Change] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, timer = heapq.heappop(self._heap)
            changes.extend(self._expire_one(timer, now))
        return changes

    def _expire_one(self, timer: _Timer, now: float) -> list[Change]:
        if isinstance(timer, _AllocationTimer):
            return self._expire_allocation(timer.allocation, now)
        if isinstance(timer, _PermissionTimer):
            return self._expire_permission(timer.allocation, timer.permission, now)
        if isinstance(timer, _ChannelTimer):
            return self._expire_channel(timer.allocation, timer.binding, now)
        if isinstance(timer, _ReservationTimer):
            expired = self.ports.expire_reservation(timer.token, now)
            return [] if expired is None else [RelayRemoved(expired.relay)]
        self.ports.release(timer.family, timer.port)
        return []

    def _expire_allocation(self, allocation: Allocation, now: float) -> list[Change]:
        if not allocation.alive:
            return []
        if allocation.expires_at > now:
            self._push(allocation.expires_at, _AllocationTimer(allocation))
            return []
        return self.remove(allocation, "expired")

    def _expire_permission(
        self, allocation: Allocation, permission: Permission, now: float
    ) -> list[Change]:
        if not allocation.alive or allocation.permissions.get(permission.ip) is not permission:
            return []
        if permission.expires_at > now:
            self._push(permission.expires_at, _PermissionTimer(allocation, permission))
            return []
        return self.revoke(allocation, permission)

    def _expire_channel(
        self, allocation: Allocation, binding: ChannelBinding, now: float
    ) -> list[Change]:
        if not allocation.alive or allocation.channels.get(binding.number) is not binding:
            return []
        if binding.expires_at > now:
            self._push(binding.expires_at, _ChannelTimer(allocation, binding))
            return []
        return self.unbind_channel(allocation, binding)

    def _push(self, when: float, timer: _Timer) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), timer))


def _permission_changes(
    allocation: Allocation, ips: Iterable[str], *, up: bool = False
) -> Iterator[PermissionChange]:
    """Changes for ``ips`` (``up`` or down), each on the allocation's relay of its family."""
    for ip in ips:
        relay = allocation.relay_for(ip)
        if relay is not None:
            yield PermissionChange(allocation, ip, relay, up)
