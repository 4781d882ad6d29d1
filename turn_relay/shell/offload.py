"""The kernel data path seen from the shell: one more consumer of the core's route actions.

The core's ``RouteUp``/``RouteDown`` actions already keep the userspace fast-path dicts; here the
same actions of UDP clients go into the eBPF program's maps (`turn_relay.offload`), so there is
no second source of truth: a route is in the kernel only while the core says it is routed
(bound channel, live permission, live allocation), and every way a route ends (channel or
permission expiry, Refresh to 0, a dropped relay, a closed or removed allocation) reaches the
kernel as the same ``RouteDown``. TCP and TLS clients stay in userspace.

Counters: the shell calls `KernelRoutes.poll` every `POLL_INTERVAL` seconds (and each route's
final reading comes with its ``RouteDown``); the difference since the last reading is added to
the relayed packets and bytes (`DataPathStats`, shown in /metrics) and charged to the
allocation's bandwidth cap (`RelayCore.offloaded`). An allocation that goes over its cap has
its kernel routes taken down (*suspended*): its traffic falls back to userspace, where the
core's token bucket drops what is over the cap, and the routes come back once the allocation
has repaid what it owed. The kernel can overshoot a cap by at most what it forwards in one
poll interval, which the debt then takes out of the following seconds, so the long-run rate
stays at the cap.

Worker processes (``--workers N``): the parent opens the offload before forking (one program,
one pair of maps, one attachment per interface); each worker writes only its own routes (its
5-tuples and relay ports are its own) through the inherited map descriptors, and only the
parent detaches (`KernelOffload.after_fork`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final, NamedTuple, Protocol

from turn_relay.config import TurnConfig
from turn_relay.core.actions import RouteDown, RouteUp
from turn_relay.core.allocation import FiveTuple, Transport
from turn_relay.offload import (
    KernelOffload,
    OffloadMode,
    OffloadUnavailable,
    Route,
    RouteCounters,
    start_offload,
)
from turn_relay.offload.build import default_object_path
from turn_relay.offload.kernel import interfaces_holding

from .metrics import DataPathStats

__all__ = ["POLL_INTERVAL", "KernelRoutes", "KernelStart", "start_kernel_offload"]

logger = logging.getLogger(__name__)

POLL_INTERVAL: Final = 1.0  # seconds between two readings of the kernel's counters


class KernelStart(NamedTuple):
    """What `start_kernel_offload` found: the offload (or None), its state, and why."""

    offload: KernelOffload | None
    state: str  # "active", "off" or "unavailable" (the /metrics gauge's label)
    reason: str


def offload_addresses(config: TurnConfig) -> list[str]:
    """The addresses whose interfaces carry offloadable traffic: UDP listeners and relays."""
    listen = list(config.listen.addresses) if config.listen.udp_port else []
    return [*listen, *config.relay.addresses]


def start_kernel_offload(config: TurnConfig) -> KernelStart:
    """Open the offload as ``config.offload.mode`` says, logging one line about the outcome.

    ``on`` raises `OffloadUnavailable` with the reason; ``auto`` returns state "unavailable"
    and the reason (logged once, as a warning); ``off`` logs nothing.
    """
    settings = config.offload
    mode = OffloadMode(settings.mode)
    if mode is OffloadMode.OFF:
        return KernelStart(None, "off", "kernel offload is off")
    try:
        if not config.listen.udp_port:
            raise OffloadUnavailable("no UDP listener: nothing to forward in the kernel")
        interfaces = list(settings.interfaces) or interfaces_holding(offload_addresses(config))
        started = start_offload(mode, interfaces, settings.object_file or default_object_path())
    except OffloadUnavailable as error:
        if mode is OffloadMode.ON:
            raise
        logger.warning("kernel offload unavailable, relaying in userspace: %s", error.reason)
        return KernelStart(None, "unavailable", error.reason)
    if started.offload is None:  # AUTO reported a reason instead of raising
        logger.warning("kernel offload unavailable, relaying in userspace: %s", started.reason)
        return KernelStart(None, "unavailable", started.reason)
    stale = started.offload.replaced_stale
    note = f" (removed a stale filter on {', '.join(stale)})" if stale else ""
    logger.info(
        "%s: UDP ChannelData of bound channels forwarded in the kernel%s", started.reason, note
    )
    return KernelStart(started.offload, "active", started.reason)


class BandwidthCap(Protocol):
    """What the routes need from the core (`RelayCore`): charging and asking the cap."""

    def offloaded(self, five_tuple: FiveTuple, octets: int, now: float) -> bool: ...

    def within_cap(self, five_tuple: FiveTuple, now: float) -> bool: ...


def _route(action: RouteUp | RouteDown) -> Route:
    five_tuple = action.five_tuple
    return Route(five_tuple.client, five_tuple.server, action.channel, action.relay, action.peer)


class KernelRoutes:
    """The core's UDP channel routes mirrored into the kernel, and its counters read back."""

    def __init__(self, start: KernelStart, stats: DataPathStats, cap: BandwidthCap) -> None:
        self.state = start.state
        self.reason = start.reason
        self._offload = start.offload
        self._stats = stats
        self._cap = cap
        self._installed: dict[Route, FiveTuple] = {}  # in the kernel now
        self._seen: dict[Route, RouteCounters] = {}  # the last reading of each installed route
        self._of_allocation: dict[FiveTuple, set[Route]] = {}  # routed by the core, either way
        self._suspended: set[FiveTuple] = set()  # over their bandwidth cap: userspace for now

    @property
    def active(self) -> bool:
        return self._offload is not None

    @property
    def installed(self) -> int:
        return len(self._installed)

    def suspended(self, five_tuple: FiveTuple) -> bool:
        return five_tuple in self._suspended

    # ------------------------------------------------------------ the core's actions

    def up(self, action: RouteUp) -> None:
        """The core routed a channel: a UDP client's route goes into the kernel too."""
        five_tuple = action.five_tuple
        if self._offload is None or five_tuple.transport is not Transport.UDP:
            return
        route = _route(action)
        self._of_allocation.setdefault(five_tuple, set()).add(route)
        if five_tuple not in self._suspended:
            self._install(route, five_tuple)

    def down(self, action: RouteDown, now: float) -> None:
        """The core unrouted a channel: out of the kernel, its last counters accounted."""
        five_tuple = action.five_tuple
        if self._offload is None or five_tuple.transport is not Transport.UDP:
            return
        route = _route(action)
        routes = self._of_allocation.get(five_tuple)
        if routes is not None:
            routes.discard(route)
            if not routes:
                del self._of_allocation[five_tuple]
                self._suspended.discard(five_tuple)
        octets = self._uninstall(route)
        if octets:
            self._cap.offloaded(five_tuple, octets, now)

    # ------------------------------------------------------------ counters and caps

    def poll(self, now: float) -> None:
        """Read the kernel's counters: metrics, bandwidth caps, suspensions and their end."""
        if self._offload is None:
            return
        owed: dict[FiveTuple, int] = {}
        for route, reading in self._offload.counters().items():
            five_tuple = self._installed.get(route)
            if five_tuple is not None:
                owed[five_tuple] = owed.get(five_tuple, 0) + self._account(route, reading)
        for five_tuple, octets in owed.items():
            if octets and not self._cap.offloaded(five_tuple, octets, now):
                self._suspend(five_tuple, now)
        for five_tuple in [f for f in self._suspended if self._cap.within_cap(f, now)]:
            self._resume(five_tuple)

    def close(self) -> None:
        """The last readings into the metrics, then the offload closed (detached if ours)."""
        offload, self._offload = self._offload, None
        if offload is None:
            return
        try:
            for route, reading in offload.counters().items():
                if route in self._installed:
                    self._account(route, reading)
        finally:
            self._installed.clear()
            self._seen.clear()
            self._of_allocation.clear()
            self._suspended.clear()
            offload.close()

    # ------------------------------------------------------------ helpers

    def _install(self, route: Route, five_tuple: FiveTuple) -> None:
        assert self._offload is not None
        if route in self._installed:
            return
        if self._offload.route_up(route):  # False: client and peer families differ
            self._installed[route] = five_tuple
            self._seen[route] = RouteCounters()

    def _uninstall(self, route: Route) -> int:
        """Take ``route`` out of the kernel; the application bytes it moved since last read."""
        assert self._offload is not None
        if self._installed.pop(route, None) is None:
            return 0
        final = self._offload.route_down(route)
        octets = self._account(route, final) if final is not None else 0
        self._seen.pop(route, None)
        return octets

    def _account(self, route: Route, reading: RouteCounters) -> int:
        """Add what ``route`` forwarded since its last reading to the stats; returns its bytes."""
        seen = self._seen.get(route, RouteCounters())
        to_peer = reading.to_peer.packets - seen.to_peer.packets
        to_client = reading.to_client.packets - seen.to_client.packets
        bytes_to_peer = reading.to_peer.bytes - seen.to_peer.bytes
        bytes_to_client = reading.to_client.bytes - seen.to_client.bytes
        self._seen[route] = reading
        stats = self._stats
        stats.kernel_packets_to_peer += to_peer
        stats.kernel_packets_to_client += to_client
        stats.kernel_bytes_to_peer += bytes_to_peer
        stats.kernel_bytes_to_client += bytes_to_client
        return bytes_to_peer + bytes_to_client

    def _suspend(self, five_tuple: FiveTuple, now: float) -> None:
        self._suspended.add(five_tuple)
        octets = sum(self._uninstall(r) for r in self._routes_installed(five_tuple))
        if octets:
            self._cap.offloaded(five_tuple, octets, now)
        self._stats.kernel_suspensions += 1
        logger.debug("bandwidth cap: %s:%d relayed in userspace for now", *five_tuple.client)

    def _resume(self, five_tuple: FiveTuple) -> None:
        self._suspended.discard(five_tuple)
        for route in sorted(self._of_allocation.get(five_tuple, ())):
            self._install(route, five_tuple)

    def _routes_installed(self, five_tuple: FiveTuple) -> Iterable[Route]:
        return [r for r in self._of_allocation.get(five_tuple, ()) if r in self._installed]
