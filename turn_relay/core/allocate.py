"""Allocate and Refresh (RFC 8656 sections 7 and 8), after authentication succeeded.

Handlers return the response and the table changes; they raise `RequestError` for error responses.
The Allocate checks run in the order of RFC 8656 section 7.2 (the 5-tuple check, 437, is the
core's, because it needs the retransmission cache first).
"""

from __future__ import annotations

from dataclasses import dataclass

from stun_server.wire import PROTOCOL_UDP, Message
from stun_server.wire import attributes as attrs
from turn_relay.auth.authenticate import Authenticated

from .allocation import (
    FAMILY_IPV4,
    FAMILY_IPV6,
    Address,
    Allocation,
    Credentials,
    FiveTuple,
)
from .bandwidth import TokenBucket
from .responses import RequestError, success
from .settings import CoreSettings
from .table import Change, Table


@dataclass(frozen=True, slots=True)
class _Plan:
    family: int  # of the first relayed address
    dual: bool  # ADDITIONAL-ADDRESS-FAMILY IPv6 asked for a second one
    even: attrs.EvenPort | None
    token: bytes | None


def desired_lifetime(
    requested: attrs.Lifetime | None, settings: CoreSettings, *, allow_zero: bool
) -> int:
    """RFC 8656 7.2 / 8.2: min(requested, max), but never below the default (0 deletes)."""
    if requested is None:
        return settings.default_lifetime
    if requested.value == 0 and allow_zero:
        return 0
    return max(settings.default_lifetime, min(requested.value, settings.max_lifetime))


class AllocateHandler:
    def __init__(self, settings: CoreSettings, table: Table) -> None:
        self.settings = settings
        self.table = table
        self.alternate: Address | None = None  # where a full relay sends new clients (300)

    # ------------------------------------------------------------ Allocate

    def allocate(
        self, request: Message, five_tuple: FiveTuple, auth: Authenticated, now: float
    ) -> tuple[Message, list[Change]]:
        plan = self._plan(request, auth)
        ports, address_error = self._take_ports(plan, now)
        lifetime = desired_lifetime(request.get(attrs.Lifetime), self.settings, allow_zero=False)
        allocation = self._new_allocation(five_tuple, ports, auth, now, lifetime)
        changes = self.table.add(allocation)
        response = success(request)
        for family in sorted(allocation.advertised):
            ip, port = allocation.advertised[family]
            response.add(attrs.XorRelayedAddress(ip, port))
        if address_error is not None:
            response.add(address_error)
        response.add(attrs.Lifetime(lifetime))
        if plan.even is not None and plan.even.reserve:
            token, reserved = self._reserve(allocation, plan.family, now)
            response.add(attrs.ReservationToken(token))
            changes.extend(reserved)
        response.add(attrs.XorMappedAddress(*five_tuple.client))
        return response, changes

    def _plan(self, request: Message, auth: Authenticated) -> _Plan:
        transport = request.get(attrs.RequestedTransport)
        if transport is None:
            raise RequestError(400, "REQUESTED-TRANSPORT missing")
        if transport.value != PROTOCOL_UDP:
            raise RequestError(442, f"transport protocol {transport.value}")
        token = request.get(attrs.ReservationToken)
        even = request.get(attrs.EvenPort)
        requested = request.get(attrs.RequestedAddressFamily)
        additional = request.get(attrs.AdditionalAddressFamily)
        if token is not None and (even or requested or additional):
            raise RequestError(400, "RESERVATION-TOKEN with EVEN-PORT or an address family")
        if requested is not None and additional is not None:
            raise RequestError(400, "REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together")
        family = FAMILY_IPV4 if requested is None else requested.value
        if token is None and not self.table.ports.supports(family):
            raise RequestError(440, f"no relay address of family {family}")
        if even is not None and even.reserve and additional is not None:
            raise RequestError(400, "EVEN-PORT with R=1 and ADDITIONAL-ADDRESS-FAMILY")
        if additional is not None and additional.value != FAMILY_IPV6:
            raise RequestError(400, f"ADDITIONAL-ADDRESS-FAMILY {additional.value}, only IPv6 (2)")
        if self.table.full():
            if self.alternate is not None:
                alternate = attrs.AlternateServer(*self.alternate)
                raise RequestError(300, "relay full: try the alternate", alternate)
            raise RequestError(486, "relay at its allocation limit")
        if self.table.user_at_quota(auth.credential.user):
            raise RequestError(486, f"user {auth.credential.user!r} at quota")
        return _Plan(family, additional is not None, even, None if token is None else token.value)

    def _take_ports(
        self, plan: _Plan, now: float
    ) -> tuple[dict[int, int], attrs.AddressErrorCode | None]:
        if plan.token is not None:
            reservation = self.table.ports.redeem(plan.token, now)
            if reservation is None:
                raise RequestError(508, "unknown or expired RESERVATION-TOKEN")
            return {reservation.family: reservation.port}, None
        even = plan.even is not None
        pair = plan.even is not None and plan.even.reserve
        port = self.table.ports.take(plan.family, even=even, pair=pair)
        if port is None:
            raise RequestError(508, "relay port range exhausted")
        ports = {plan.family: port}
        if not plan.dual:
            return ports, None
        if not self.table.ports.supports(FAMILY_IPV6):
            return ports, attrs.AddressErrorCode(FAMILY_IPV6, 440, "Address Family not Supported")
        second = self.table.ports.take(FAMILY_IPV6)
        if second is None:
            return ports, attrs.AddressErrorCode(FAMILY_IPV6, 508, "Insufficient Capacity")
        ports[FAMILY_IPV6] = second
        return ports, None

    def _reserve(
        self, allocation: Allocation, family: int, now: float
    ) -> tuple[bytes, list[Change]]:
        expires_at = now + self.settings.reservation_lifetime
        ip, port = allocation.relays[family]
        reservation = self.table.ports.reserve(family, (ip, port + 1), expires_at)
        changes = self.table.hold_reservation(reservation.token, reservation.relay, expires_at)
        return reservation.token, changes

    def _new_allocation(
        self,
        five_tuple: FiveTuple,
        ports: dict[int, int],
        auth: Authenticated,
        now: float,
        lifetime: int,
    ) -> Allocation:
        relays: dict[int, Address] = {}
        advertised: dict[int, Address] = {}
        for family, port in ports.items():
            relay = self.settings.relay(family)
            assert relay is not None  # ports exist only for configured families
            relays[family] = (relay.local, port)
            advertised[family] = (relay.advertised, port)
        credential = auth.credential
        credentials = Credentials(
            credential.username, credential.user, auth.key, credential.expires_at
        )
        allocation = Allocation(
            five_tuple, relays, advertised, credentials, now + lifetime, created_at=now
        )
        if self.settings.max_bandwidth:
            allocation.bucket = TokenBucket(self.settings.max_bandwidth, now)
        return allocation

    # ------------------------------------------------------------ Refresh

    def refresh(
        self, request: Message, allocation: Allocation, now: float
    ) -> tuple[Message, list[Change]]:
        family = request.get(attrs.RequestedAddressFamily)
        if family is not None and family.value not in allocation.relays:
            raise RequestError(443, f"allocation has no relay of family {family.value}")
        lifetime = desired_lifetime(request.get(attrs.Lifetime), self.settings, allow_zero=True)
        if lifetime == 0:
            if family is not None and len(allocation.relays) > 1:
                changes = self.table.drop_relay(allocation, family.value)
            else:
                changes = self.table.remove(allocation, "deleted")
            return success(request, attrs.Lifetime(0)), changes
        self.table.set_expiry(allocation, now + lifetime)
        return success(request, attrs.Lifetime(lifetime)), []
