"""The sans-I/O TURN relay (RFC 8656): bytes and time in, actions out.

Events (``now`` is the shell's monotonic clock in seconds; REST expiries are checked against
``now + wall_offset``, which the shell keeps equal to Unix time):

- ``receive(data, five_tuple, now)``: a datagram or stream frame from a client;
- ``receive_from_peer(data, relay, peer, now)``: a datagram that reached a relay socket;
- ``handle_timer(now)`` when ``get_timer()`` comes due: expiry of allocations, permissions,
  channels, port reservations;
- ``connection_closed(five_tuple, now)``: a TCP/TLS client went away (its allocation goes too);
- ``relay_failed(relay, now)``: the shell could not bind an ``OpenRelay`` address;
- operator events: ``kick(target, now)`` ends sessions, ``revoke(user, until, now)`` refuses a
  user's credentials (and ends their sessions), ``drain(now)`` refuses new allocations
  (300 Try Alternate with ALTERNATE-SERVER when ``settings.alternates`` names servers, else
  403 Forbidden) while existing ones run on.

Allocations created and deleted, and refused requests, are reported to ``observer`` (a
`turn_relay.core.events.RelayObserver`) on the control path; never per data packet.

Each returns a list of `turn_relay.actions` to run in order. The data path (ChannelData, Send
indications, peer datagrams) never builds a `Message`; control requests go through the codec.

Credential expiry: an expired REST credential is refused at Allocate and at every later request
on the allocation; when a Refresh (or any request) proves it holds the allocation's key but its
credential has expired, the allocation is deleted. coturn only checks expiry at Allocate and
lets allocations outlive their credentials indefinitely through refreshes; here an allocation
outlives its credential by at most one refresh interval (its remaining lifetime, <= max).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from stun_server.wire import (
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    for_transaction,
    parse,
)
from stun_server.wire import attributes as attrs
from turn_relay.auth.authenticate import WRONG_CREDENTIALS, Authenticated, Authenticator, Rejected

from .actions import (
    Action,
    CloseClient,
    CloseRelay,
    OpenRelay,
    PermitDown,
    PermitUp,
    RouteDown,
    RouteUp,
    ToClient,
    ToPeer,
)
from .allocate import AllocateHandler
from .allocation import Address, Allocation, FiveTuple, Transport, family_of
from .events import NullObserver, Refusal, RelayObserver
from .fastpath import (
    DataIndicationEncoder,
    channel_data,
    has_integrity,
    parse_channel_data,
    parse_send_indication,
)
from .peer_policy import PeerPolicy
from .peers import PeerHandler
from .ports import RelayPorts
from .responses import RequestError, Signing, error, finish, success
from .settings import CoreSettings
from .stats import CoreStats
from .table import (
    AllocationAdded,
    AllocationRemoved,
    Change,
    PermissionChange,
    RelayRemoved,
    RelayReserved,
    RouteChange,
    Table,
)

_SEND_INDICATION = b"\x00\x16"
_MAX_BIND_RETRIES = 8
_DONT_FRAGMENT = attrs.DontFragment.TYPE
_REJECTION_CACHE = 256
# Requests a client without credentials is answered 401 for: (type bytes) -> metrics name
_BUDGETED_REQUESTS = {
    b"\x00\x03": "allocate",
    b"\x00\x04": "refresh",
    b"\x00\x08": "create_permission",
    b"\x00\x09": "channel_bind",
}

Handler = Callable[
    [Message, FiveTuple, Authenticated, Allocation | None, float], tuple[Message, list[Change]]
]
# Refresh, CreatePermission, ChannelBind: methods on the requester's own allocation
OwnHandler = Callable[[Message, Allocation, float], tuple[Message, list[Change]]]


class RelayCore:
    def __init__(
        self,
        settings: CoreSettings,
        authenticator: Authenticator,
        policy: PeerPolicy,
        *,
        wall_offset: float = 0.0,
        rng: random.Random | None = None,
        observer: RelayObserver | None = None,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.observer: RelayObserver = observer or NullObserver()
        self.draining = False
        self.wall_offset = wall_offset  # Unix time minus ``now``
        families = {r.family: (settings.port_min, settings.port_max) for r in settings.relays}
        self.table = Table(
            RelayPorts(families, rng),
            max_per_user=settings.max_allocations_per_user,
            max_total=settings.max_allocations,
        )
        self.stats = CoreStats()
        self._allocations = AllocateHandler(settings, self.table)
        self._peers = PeerHandler(settings, self.table, policy)
        self._data_indications = DataIndicationEncoder()
        self._max_channel_byte = settings.max_channel >> 8
        self._last_allocate: tuple[bytes, FiveTuple] | None = None
        # encoded 401/438 answers by (method, code, id(attributes)), without FINGERPRINT
        self._rejections: dict[tuple[int, int, int], tuple[object, bytes]] = {}
        self._bind_retries = 0
        self._handlers: dict[int, Handler] = {
            Method.ALLOCATE: self._on_allocate,
            Method.REFRESH: _on_own_allocation(self._allocations.refresh),
            Method.CREATE_PERMISSION: _on_own_allocation(self._peers.create_permission),
            Method.CHANNEL_BIND: _on_own_allocation(self._peers.channel_bind),
        }

    @property
    def policy(self) -> PeerPolicy:
        return self._peers.policy

    @policy.setter
    def policy(self, policy: PeerPolicy) -> None:
        self._peers.policy = policy

    @property
    def own_addresses(self) -> frozenset[str]:
        """The relay's own IPs: Send indications to them always go through the core."""
        return self._peers.own.addresses

    # ================================================================ events

    def fleet_changed(self, remote_users: Mapping[str, int], alternate: Address | None) -> None:
        """Facts from a fleet's other relays, as the shell last read them: their allocations by
        user (the per-user quota counts them too) and the sibling a full relay sends new clients
        to (300 Try Alternate). Empty and None when there is no fleet or Redis is away."""
        self.table.remote_per_user = remote_users
        self._allocations.alternate = alternate

    def receive(self, data: bytes, five_tuple: FiveTuple, now: float) -> list[Action]:
        """A datagram (UDP) or one frame (TCP/TLS) from the client on ``five_tuple``."""
        if not data:
            return self._drop("empty")
        first = data[0]
        if 0x40 <= first <= self._max_channel_byte:
            return self._channel_data(data, five_tuple, now)
        if first >= 0x40:
            return self._drop("not-stun-or-channel-data")
        if data[:2] == _SEND_INDICATION:
            return self._send_indication(data, five_tuple, now)
        return self._control(data, five_tuple, now)

    def receive_from_peer(
        self, data: bytes, relay: Address, peer: Address, now: float
    ) -> list[Action]:
        """A datagram from ``peer`` to the relay socket bound to ``relay``."""
        allocation = self.table.by_relay.get(relay)
        if allocation is None:
            return self._drop("no-allocation-for-relay")
        five_tuple = allocation.five_tuple
        binding = self.table.routes_in.get((relay, peer))
        if binding is None and not allocation.has_permission(peer[0], now):
            return self._drop("no-permission")  # before the cap: strangers spend no budget
        if allocation.bucket is not None and not allocation.bucket.take(len(data), now):
            return self._drop("bandwidth-cap")
        if binding is not None:
            frame = channel_data(binding.header, data, pad=five_tuple.transport.is_stream)
        else:
            frame = self._data_indications.encode(peer, data)
        if frame is None:
            return self._drop("too-big")
        self.stats.packets_to_client += 1
        self.stats.bytes_to_client += len(data)
        traffic = allocation.traffic
        traffic.packets_to_client += 1
        traffic.bytes_to_client += len(data)
        return [ToClient(five_tuple, frame)]

    def get_timer(self) -> float | None:
        """When ``handle_timer`` should next run, or None when nothing is scheduled."""
        return self.table.next_deadline()

    def handle_timer(self, now: float) -> list[Action]:
        return self._apply(self.table.expire(now), now)

    def connection_closed(self, five_tuple: FiveTuple, now: float) -> list[Action]:
        allocation = self.table.by_five_tuple.get(five_tuple)
        if allocation is None:
            return []
        return self._apply(self.table.remove(allocation, "connection-closed"), now)

    # ================================================================ operator events

    def sessions(self) -> list[Allocation]:
        """The live allocations, oldest first (read them, never change them)."""
        return sorted(self.table.by_five_tuple.values(), key=lambda a: a.created_at)

    def kick(self, target: str, now: float) -> list[Action]:
        """End the session whose id is ``target``, or every session of the user ``target``.

        The allocation is deleted as if it expired (reason ``kicked``): its relay sockets
        close, and the client's next Refresh on the 5-tuple gets 437.
        """
        chosen = [a for a in self.sessions() if target in (a.session_id, a.credentials.user)]
        return self._end(chosen, "kicked", now)

    def revoke(self, user: str, until: float, now: float) -> list[Action]:
        """Refuse ``user``'s credentials until Unix time ``until`` (math.inf: until
        `unrevoke`), with 401 and reason ``revoked``, and end the user's sessions now."""
        self.authenticator.revoked[user] = until
        if until <= now + self.wall_offset:
            return []
        chosen = [a for a in self.sessions() if a.credentials.user == user]
        return self._end(chosen, "revoked", now)

    def unrevoke(self, user: str) -> bool:
        """Lift ``user``'s revocation; False when there was none."""
        return self.authenticator.revoked.pop(user, None) is not None

    def drain(self, now: float) -> list[Action]:
        """Refuse new allocations from now on; existing ones run until they end."""
        del now
        self.draining = True
        return []

    def _end(self, allocations: list[Allocation], reason: str, now: float) -> list[Action]:
        actions: list[Action] = []
        for allocation in allocations:
            actions += self._apply(self.table.remove(allocation, reason), now)
        return actions

    def relay_failed(self, relay: Address, now: float) -> list[Action]:
        """The shell could not bind ``relay``: quarantine the port and redo the Allocate.

        Returns actions that replace whatever followed the failed ``OpenRelay``.
        """
        allocation = self.table.by_relay.get(relay)
        reservation = None if allocation else self.table.ports.find(relay)
        pending = self._last_allocate
        if reservation is not None and pending is not None:
            self.table.ports.cancel(reservation)  # port N+1 is busy: find another pair
            allocation = self.table.by_five_tuple.get(pending[1])
        if allocation is None:
            return []
        actions = self._apply(self.table.remove(allocation, "bind-failed"), now)
        family, port = family_of(relay[0]), relay[1]
        if reservation is not None or self.table.ports.pools[family].take_specific(port):
            self.table.quarantine(family, port, now + self.settings.quarantine)
        if pending is None or pending[1] != allocation.five_tuple:
            return actions
        if self._bind_retries >= _MAX_BIND_RETRIES:
            return actions
        self._bind_retries += 1
        return actions + self.receive(pending[0], pending[1], now)

    def relay_exhausted(self, relay: Address, now: float) -> list[Action]:
        """The shell could not bind ``relay`` for lack of file descriptors (EMFILE, ENFILE).

        Another port would fail the same way, so the Allocate that asked for it is answered
        508 Insufficient Capacity (RFC 8656 section 7.2), signed like its success would have
        been, and the allocation goes. Returns actions that replace whatever followed the
        failed ``OpenRelay``.
        """
        pending = self._last_allocate
        allocation = self.table.by_relay.get(relay)
        if allocation is None and pending is not None:
            reservation = self.table.ports.find(relay)
            if reservation is not None:
                self.table.ports.cancel(reservation)
            allocation = self.table.by_five_tuple.get(pending[1])
        if allocation is None:
            return []
        actions = self._apply(self.table.remove(allocation, "no-socket"), now)
        if pending is None or pending[1] != allocation.five_tuple:
            return actions
        request = parse(pending[0])
        integrity = "sha256" if request.integrity_sha256_offset is not None else "sha1"
        signing = Signing(
            allocation.credentials.key,
            integrity,
            fingerprint=request.has(attrs.Fingerprint),
            software=self.settings.software,
        )
        response = error(request, 508)
        self.stats.error_responses[508] += 1
        return [*actions, ToClient(allocation.five_tuple, finish(response, signing))]

    # ================================================================ data path

    def _channel_data(self, data: bytes, five_tuple: FiveTuple, now: float) -> list[Action]:
        parsed = parse_channel_data(data, self.settings.max_channel)
        if parsed is None:
            return self._drop("bad-channel-data")
        binding = self.table.routes_out.get((five_tuple, parsed[0]))
        if binding is None:
            return self._drop("unbound-channel")
        if self.settings.max_bandwidth and not self._within_cap(five_tuple, parsed[1], now):
            return self._drop("bandwidth-cap")
        self.stats.packets_to_peer += 1
        self.stats.bytes_to_peer += len(parsed[1])
        traffic = binding.traffic
        if traffic is not None:
            traffic.packets_to_peer += 1
            traffic.bytes_to_peer += len(parsed[1])
        return [ToPeer(binding.relay, binding.peer, parsed[1])]

    def _send_indication(self, data: bytes, five_tuple: FiveTuple, now: float) -> list[Action]:
        indication = parse_send_indication(data)
        if indication is None:
            return self._drop("bad-send-indication")
        allocation = self.table.by_five_tuple.get(five_tuple)
        if allocation is None:
            return self._drop("no-allocation")
        peer = indication.peer
        relay = allocation.relay_for(peer[0])
        if relay is None or not allocation.has_permission(peer[0], now):
            return self._drop("no-permission")
        refused = self._peers.own.refusal(self._peers.policy, peer)
        if refused is not None:
            return self._drop(refused)
        if indication.dont_fragment and not self.settings.dont_fragment:
            return self._drop("dont-fragment-unsupported")
        if allocation.bucket is not None and not allocation.bucket.take(
            len(indication.payload), now
        ):
            return self._drop("bandwidth-cap")
        self.stats.packets_to_peer += 1
        self.stats.bytes_to_peer += len(indication.payload)
        allocation.traffic.packets_to_peer += 1
        allocation.traffic.bytes_to_peer += len(indication.payload)
        return [ToPeer(relay, peer, indication.payload, indication.dont_fragment)]

    def _within_cap(self, five_tuple: FiveTuple, payload: bytes, now: float) -> bool:
        allocation = self.table.by_five_tuple.get(five_tuple)
        bucket = None if allocation is None else allocation.bucket
        return bucket is None or bucket.take(len(payload), now)

    def offloaded(self, five_tuple: FiveTuple, octets: int, now: float) -> bool:
        """``octets`` of application data the shell relayed for ``five_tuple``'s allocation
        outside the core (the kernel data path, counted after the fact) are charged to its
        bandwidth cap. False when the allocation is over its cap: its routes should then leave
        the kernel until `within_cap` says it may relay again (the core drops meanwhile)."""
        allocation = self.table.by_five_tuple.get(five_tuple)
        if allocation is None or allocation.bucket is None:
            return True
        return allocation.bucket.spend(octets, now)

    def within_cap(self, five_tuple: FiveTuple, now: float) -> bool:
        """Whether ``five_tuple``'s allocation has repaid what it owed its bandwidth cap."""
        allocation = self.table.by_five_tuple.get(five_tuple)
        bucket = None if allocation is None else allocation.bucket
        return bucket is None or not bucket.in_debt(now)

    def _drop(self, reason: str) -> list[Action]:
        self.stats.dropped[reason] += 1
        return []

    # ================================================================ control path

    def _control(self, data: bytes, five_tuple: FiveTuple, now: float) -> list[Action]:
        if five_tuple.transport is Transport.UDP and self._challenge_spent(data, five_tuple, now):
            self.stats.requests[_BUDGETED_REQUESTS[data[:2]]] += 1
            self.stats.rate_limited += 1
            return []
        try:
            request = parse(data)
        except StunDecodeError:
            return self._drop("malformed-stun")
        if request.cls is not MessageClass.REQUEST:
            return self._drop("not-a-request")
        allocation = self.table.by_five_tuple.get(five_tuple)
        if allocation is not None and request.transaction_id == allocation.last_transaction:
            return [ToClient(five_tuple, allocation.last_response)]
        self.stats.requests[_method_name(request.method)] += 1
        if request.method == Method.BINDING:
            return [ToClient(five_tuple, self._binding(request, five_tuple))]
        handler = self._handlers.get(request.method)
        if handler is None:
            return self._answer(request, five_tuple, error(request, 400), Signing())
        if request.method == Method.ALLOCATE:
            self._note_allocate(data, five_tuple)
            allocation = None
        outcome = self.authenticator.check(
            request,
            five_tuple.client[0],
            now,
            now + self.wall_offset,
            allocation,
            rate_limited=five_tuple.transport is Transport.UDP,
        )
        if isinstance(outcome, Rejected):
            return self._rejected(request, five_tuple, outcome, allocation, now)
        return self._authenticated(request, five_tuple, outcome, handler, now)

    def _challenge_spent(self, data: bytes, five_tuple: FiveTuple, now: float) -> bool:
        """A request that could only be answered with a challenge the budget cannot pay for.

        Checked before parsing, so a flood of unauthenticated requests from a spent source costs
        a header look and an attribute walk each instead of a full decode (issue 11: a 20,000/s
        flood from one address kept the relay busy enough to delay everyone else).
        """
        budget = self.authenticator.limiter
        if budget is None or data[:2] not in _BUDGETED_REQUESTS or has_integrity(data):
            return False
        return budget.spent(five_tuple.client[0], now)

    def _authenticated(
        self,
        request: Message,
        five_tuple: FiveTuple,
        auth: Authenticated,
        handler: Handler,
        now: float,
    ) -> list[Action]:
        lifecycle = request.method in (Method.ALLOCATE, Method.REFRESH)
        signing = Signing(
            auth.key,
            auth.integrity,
            fingerprint=request.has(attrs.Fingerprint),
            software=self.settings.software if lifecycle else None,
        )
        allocation = self.table.by_five_tuple.get(five_tuple)
        try:
            self._check_unknown(request)
            response, changes = handler(request, five_tuple, auth, allocation, now)
        except RequestError as exc:
            reason = exc.reason
            if exc.code == 441:
                self.stats.auth_failures[WRONG_CREDENTIALS] += 1
                reason = WRONG_CREDENTIALS
            self._refused(request, five_tuple, exc.code, reason, now, detail=exc.detail)
            response, changes = error(request, exc.code, *exc.extra), []
        actions = self._apply(changes, now)
        actions.extend(self._answer(request, five_tuple, response, signing))
        return actions

    def _answer(
        self, request: Message, five_tuple: FiveTuple, response: Message, signing: Signing
    ) -> list[Action]:
        return [ToClient(five_tuple, self._encode_answer(request, five_tuple, response, signing))]

    def _encode_answer(
        self, request: Message, five_tuple: FiveTuple, response: Message, signing: Signing
    ) -> bytes:
        if response.cls is MessageClass.ERROR:
            code = response.get(attrs.ErrorCode)
            self.stats.error_responses[code.code if code else 0] += 1
        data = finish(response, signing)
        allocation = self.table.by_five_tuple.get(five_tuple)
        if allocation is not None and signing.key is not None:
            allocation.last_transaction = request.transaction_id
            allocation.last_response = data
        return data

    def _rejected(
        self,
        request: Message,
        five_tuple: FiveTuple,
        rejected: Rejected,
        allocation: Allocation | None,
        now: float,
    ) -> list[Action]:
        if rejected.code == 438:
            self.stats.stale_nonces[rejected.why] += 1
        elif rejected.is_challenge:
            # a challenge is counted when it is sent: a dropped one (and the client's
            # retransmission of the request) would otherwise count twice per login
            self.stats.auth_challenges += rejected.send
        else:
            self.stats.auth_failures[rejected.why] += 1
            if rejected.send:
                self._refused(request, five_tuple, rejected.code, rejected.why, now)
        actions: list[Action] = []
        if rejected.expired_allocation and allocation is not None:
            actions = self._apply(self.table.remove(allocation, "credential-expired"), now)
        if not rejected.send:
            self.stats.rate_limited += 1
            self._refused(request, five_tuple, 0, "rate-limited", now, detail=rejected.why)
            if five_tuple.transport.is_stream:
                actions.append(CloseClient(five_tuple))
            return actions
        fingerprint = request.has(attrs.Fingerprint)
        key = (request.method, rejected.code, id(rejected.attributes))
        cached = self._rejections.get(key)
        if cached is not None and cached[0] is rejected.attributes:
            # the same challenge as a moment ago (the authenticator reuses the tuple while
            # the nonce is the same): only the transaction ID differs
            self.stats.error_responses[rejected.code] += 1
            data = for_transaction(cached[1], request.transaction_id, fingerprint=fingerprint)
            return [*actions, ToClient(five_tuple, data)]
        response = error(request, rejected.code, *rejected.attributes)
        signing = Signing(software=self.settings.software)
        data = self._encode_answer(request, five_tuple, response, signing)
        if len(self._rejections) >= _REJECTION_CACHE:
            self._rejections.clear()
        self._rejections[key] = (rejected.attributes, data)
        if fingerprint:
            data = for_transaction(data, request.transaction_id, fingerprint=True)
        return [*actions, ToClient(five_tuple, data)]

    def _refused(
        self,
        request: Message,
        five_tuple: FiveTuple,
        code: int,
        reason: str,
        now: float,
        *,
        detail: str = "",
    ) -> None:
        username = request.get(attrs.Username)
        refusal = Refusal(
            _method_name(request.method),
            code,
            reason,
            None if username is None else username.value,
            five_tuple.client,
            five_tuple.transport,
            detail,
        )
        self.observer.request_refused(refusal, now)

    def _check_unknown(self, request: Message) -> None:
        """420 for comprehension-required attributes we do not understand (after auth)."""
        unknown = request.unknown_comprehension_required()
        if (
            request.method == Method.ALLOCATE
            and request.has(attrs.DontFragment)
            and not self.settings.dont_fragment
        ):
            unknown.append(_DONT_FRAGMENT)  # RFC 8656 7.2 step 4
        if unknown:
            raise RequestError(420, "unknown attributes", attrs.UnknownAttributes(tuple(unknown)))

    def _note_allocate(self, data: bytes, five_tuple: FiveTuple) -> None:
        pending = self._last_allocate
        if pending is None or pending[0] is not data:
            self._bind_retries = 0
        self._last_allocate = (data, five_tuple)

    def _binding(self, request: Message, five_tuple: FiveTuple) -> bytes:
        signing = Signing(fingerprint=request.has(attrs.Fingerprint))
        unknown = request.unknown_comprehension_required()
        if unknown:
            response = error(request, 420, attrs.UnknownAttributes(tuple(unknown)))
        else:
            response = success(request, attrs.XorMappedAddress(*five_tuple.client))
        return finish(response, signing)

    # ================================================================ method handlers

    def _on_allocate(
        self,
        request: Message,
        five_tuple: FiveTuple,
        auth: Authenticated,
        allocation: Allocation | None,
        now: float,
    ) -> tuple[Message, list[Change]]:
        if allocation is not None:
            raise RequestError(437, "5-tuple already has an allocation")
        if self.draining:
            raise self._draining_refusal()
        return self._allocations.allocate(request, five_tuple, auth, now)

    def _draining_refusal(self) -> RequestError:
        """300 Try Alternate naming the first alternate server (RFC 8489 section 10), or,
        with none configured, 403 Forbidden: an administrative refusal, not the user's quota
        (486) nor the relay's capacity (508), so neither alert fires on a deploy."""
        alternate = self._allocations.alternate  # the fleet's least-loaded sibling
        alternates = self.settings.alternates
        if alternate is None and alternates:
            alternate = alternates[0]
        if alternate is not None:
            server = attrs.AlternateServer(*alternate)
            return RequestError(300, "draining", server, reason="draining")
        return RequestError(403, "draining, no alternate server configured", reason="draining")

    # ================================================================ table changes -> actions

    def _apply(self, changes: list[Change], now: float) -> list[Action]:
        actions: list[Action] = []
        for change in changes:
            if isinstance(change, RouteChange):
                b = change.binding
                route = RouteUp if change.up else RouteDown
                actions.append(route(b.five_tuple, b.number, b.relay, b.peer))
            elif isinstance(change, PermissionChange):
                permit = PermitUp if change.up else PermitDown
                actions.append(permit(change.allocation.five_tuple, change.relay, change.ip))
            elif isinstance(change, AllocationAdded):
                self.stats.allocations_created += 1
                self.observer.allocation_created(change.allocation, now)
                actions += [OpenRelay(relay) for relay in change.allocation.relays.values()]
            elif isinstance(change, AllocationRemoved):
                self.stats.allocations_removed[change.reason] += 1
                self.stats.ended(change.allocation, now)
                self.observer.allocation_deleted(change.allocation, change.reason, now)
                actions += [CloseRelay(relay) for relay in change.allocation.relays.values()]
            elif isinstance(change, RelayRemoved):
                actions.append(CloseRelay(change.relay))
            elif isinstance(change, RelayReserved):
                actions.append(OpenRelay(change.relay))
        return actions


def _on_own_allocation(method: OwnHandler) -> Handler:
    """A Handler that runs ``method`` on the 5-tuple's allocation, once `_owned` allows it."""

    def handle(
        request: Message,
        five_tuple: FiveTuple,
        auth: Authenticated,
        allocation: Allocation | None,
        now: float,
    ) -> tuple[Message, list[Change]]:
        return method(request, _owned(allocation, auth), now)

    return handle


def _owned(allocation: Allocation | None, auth: Authenticated) -> Allocation:
    """RFC 8656 section 5: 437 without an allocation, 441 when another user asks."""
    if allocation is None:
        raise RequestError(437, "no allocation on this 5-tuple")
    if auth.credential.username != allocation.credentials.username:
        raise RequestError(441, "username differs from the allocation's")
    return allocation


_METHOD_NAMES = {int(method): method.name.lower() for method in Method}


def _method_name(method: int) -> str:
    return _METHOD_NAMES.get(method, "unknown")
