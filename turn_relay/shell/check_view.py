"""What the relay itself saw of each check-page test: its allocations, bytes each way, errors.

The check page's credentials are issued for the TURN user ``check-<test id>``, so an allocation
belongs to a test when its credentials' user says so. The server tells this view when a relay
socket opens or closes and, for watched allocations only, how many bytes went to and came from
peers; it keeps those allocations off the fast path (`watches`), so every byte passes the
shell where it is counted. Error responses (401, 438, 403, ...) are counted per 5-tuple for
every client in a small bounded table, because the first 401 of a login comes before the
allocation (and the test id) exists.

Bounded: at most `MAX_TESTS_KEPT` allocation records (the oldest go first) and
`MAX_ERROR_TUPLES` 5-tuples with error counts. A record outlives its allocation by
`KEEP_AFTER_CLOSE_S`, because the page uploads its report after its calls have hung up.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from turn_relay.api.check_settings import test_id_of
from turn_relay.core.allocation import Address, Allocation, FiveTuple

MAX_TESTS_KEPT = 2048
MAX_ERROR_TUPLES = 4096
KEEP_AFTER_CLOSE_S = 900.0
_STUN_ERROR_CLASS = 0x0110


@dataclass(slots=True)
class ObservedAllocation:
    test_id: str
    five_tuple: FiveTuple
    relayed: Address | None
    errors: Counter[int]
    bytes_to_peers: int = 0
    bytes_from_peers: int = 0
    closed_at: float | None = None
    relays: set[Address] = field(default_factory=set)

    def document(self) -> dict[str, Any]:
        client, server = self.five_tuple.client, self.five_tuple.server
        return {
            "transport": self.five_tuple.transport.value,
            "client_address": client[0],
            "client_port": client[1],
            "server_address": server[0],
            "server_port": server[1],
            "relayed_address": self.relayed[0] if self.relayed else None,
            "relayed_port": self.relayed[1] if self.relayed else None,
            "bytes_to_peers": self.bytes_to_peers,
            "bytes_from_peers": self.bytes_from_peers,
            "errors_answered": [
                {"code": code, "count": count} for code, count in sorted(self.errors.items())
            ],
        }


def error_code(data: bytes) -> int | None:
    """The ERROR-CODE of a STUN error response, read in place; None for anything else."""
    if len(data) < 20 or data[0] >= 0x40:
        return None
    if (int.from_bytes(data[0:2], "big") & _STUN_ERROR_CLASS) != _STUN_ERROR_CLASS:
        return None
    offset, end = 20, min(len(data), 20 + int.from_bytes(data[2:4], "big"))
    while offset + 4 <= end:
        kind = int.from_bytes(data[offset : offset + 2], "big")
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        if kind == 0x0009 and length >= 4 and offset + 8 <= end:
            return data[offset + 6] % 8 * 100 + data[offset + 7]
        offset += 4 + (length + 3) // 4 * 4
    return None


class CheckView:
    def __init__(self) -> None:
        self._by_relay: dict[Address, ObservedAllocation] = {}
        self._by_tuple: dict[FiveTuple, ObservedAllocation] = {}
        self._records: OrderedDict[int, ObservedAllocation] = OrderedDict()
        self._errors: OrderedDict[FiveTuple, Counter[int]] = OrderedDict()

    # ------------------------------------------------------------ fed by the server

    def relay_opened(self, allocation: Allocation | None, relay: Address) -> None:
        if allocation is None:
            return
        test_id = test_id_of(allocation.credentials.user)
        if test_id is None:
            return
        record = self._by_tuple.get(allocation.five_tuple)
        if record is None or record.closed_at is not None:
            errors = self._errors.get(allocation.five_tuple, Counter())
            advertised = next(iter(allocation.advertised.values()), None)
            record = ObservedAllocation(test_id, allocation.five_tuple, advertised, errors)
            self._by_tuple[allocation.five_tuple] = record
            self._records[id(record)] = record
            while len(self._records) > MAX_TESTS_KEPT:
                self._forget(self._records.popitem(last=False)[1])
        record.relays.add(relay)
        self._by_relay[relay] = record

    def relay_closed(self, relay: Address, now: float) -> None:
        record = self._by_relay.pop(relay, None)
        if record is not None:
            record.relays.discard(relay)
            if not record.relays:
                record.closed_at = now
                self._by_tuple.pop(record.five_tuple, None)

    def watches(self, five_tuple: FiveTuple) -> bool:
        return five_tuple in self._by_tuple

    def watches_relay(self, relay: Address) -> bool:
        return relay in self._by_relay

    def to_peer(self, relay: Address, size: int) -> None:
        record = self._by_relay.get(relay)
        if record is not None:
            record.bytes_to_peers += size

    def from_peer(self, relay: Address, size: int) -> None:
        record = self._by_relay.get(relay)
        if record is not None:
            record.bytes_from_peers += size

    def answered(self, five_tuple: FiveTuple, data: bytes) -> None:
        code = error_code(data)
        if code is None:
            return
        record = self._by_tuple.get(five_tuple)
        errors = self._errors.pop(five_tuple, None)
        if errors is None:
            errors = record.errors if record is not None else Counter()
        errors[code] += 1
        self._errors[five_tuple] = errors
        while len(self._errors) > MAX_ERROR_TUPLES:
            self._errors.popitem(last=False)

    # ------------------------------------------------------------ read by the API

    def observed(self, test_id: str, now: float) -> list[dict[str, Any]]:
        """The allocations of ``test_id`` seen so far (closed ones for a while after)."""
        for record in [r for r in self._records.values() if self._stale(r, now)]:
            self._records.pop(id(record), None)
            self._forget(record)
        return [r.document() for r in self._records.values() if r.test_id == test_id]

    def _stale(self, record: ObservedAllocation, now: float) -> bool:
        return record.closed_at is not None and now - record.closed_at > KEEP_AFTER_CLOSE_S

    def _forget(self, record: ObservedAllocation) -> None:
        if self._by_tuple.get(record.five_tuple) is record:
            del self._by_tuple[record.five_tuple]
        for relay in record.relays:
            self._by_relay.pop(relay, None)
