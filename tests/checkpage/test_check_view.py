"""The shell's view of check-page tests: which allocations belong to a test, bytes, errors."""

from __future__ import annotations

from stun_server.wire.attributes import ErrorCode, Nonce, Realm
from stun_server.wire.message import Message, MessageClass, Method, encode
from turn_relay.core.allocation import Allocation, Credentials, FiveTuple, Transport
from turn_relay.shell import check_view
from turn_relay.shell.check_view import CheckView, error_code

CLIENT = FiveTuple(("198.51.100.7", 40000), ("203.0.113.1", 3478), Transport.UDP)
RELAY = ("203.0.113.1", 50000)


def allocation(user: str, five_tuple: FiveTuple = CLIENT) -> Allocation:
    return Allocation(
        five_tuple=five_tuple,
        relays={1: RELAY},
        advertised={1: RELAY},
        credentials=Credentials(f"1700000000:{user}", user, b"k", 1_700_000_000),
        expires_at=600.0,
    )


def error_response(code: int, method: Method = Method.ALLOCATE) -> bytes:
    message = Message(
        method, MessageClass.ERROR, attributes=[ErrorCode(code), Realm("r"), Nonce("n")]
    )
    return encode(message)


def test_error_codes_are_read_from_error_responses_only() -> None:
    success = encode(Message(Method.ALLOCATE, MessageClass.SUCCESS))
    assert [error_code(error_response(c)) for c in (401, 438, 403, 508)] == [401, 438, 403, 508]
    assert error_code(success) is None
    assert error_code(b"\x40\x00\x00\x04data") is None  # ChannelData
    assert error_code(error_response(401)[:24]) is None  # cut short


def test_a_test_allocation_is_observed_with_its_errors_and_bytes() -> None:
    view = CheckView()
    view.answered(CLIENT, error_response(401))  # the challenge, before the allocation exists
    view.relay_opened(allocation("check-7KQ2M9XD"), RELAY)
    view.answered(CLIENT, error_response(438, Method.REFRESH))
    view.to_peer(RELAY, 100)
    view.from_peer(RELAY, 90)
    assert view.watches(CLIENT) and view.watches_relay(RELAY)
    view.relay_closed(RELAY, now=10.0)
    assert not view.watches(CLIENT)
    assert view.observed("7KQ2M9XD", now=20.0) == [
        {
            "transport": "udp",
            "client_address": "198.51.100.7",
            "client_port": 40000,
            "server_address": "203.0.113.1",
            "server_port": 3478,
            "relayed_address": "203.0.113.1",
            "relayed_port": 50000,
            "bytes_to_peers": 100,
            "bytes_from_peers": 90,
            "errors_answered": [{"code": 401, "count": 1}, {"code": 438, "count": 1}],
        }
    ]
    assert view.observed("7KQ2M9XD", now=10.0 + check_view.KEEP_AFTER_CLOSE_S + 1) == []


def test_other_users_are_not_watched() -> None:
    view = CheckView()
    view.relay_opened(allocation("alice"), RELAY)
    view.to_peer(RELAY, 100)
    assert not view.watches(CLIENT)
    assert view.observed("alice", now=0.0) == []


def test_the_records_are_bounded(monkeypatch: object) -> None:
    view = CheckView()
    keep = check_view.MAX_TESTS_KEPT
    for index in range(keep + 5):
        five_tuple = FiveTuple(("198.51.100.7", 1000 + index), CLIENT.server, Transport.UDP)
        view.relay_opened(allocation("check-7KQ2M9XD", five_tuple), ("203.0.113.1", 20000 + index))
    assert len(view.observed("7KQ2M9XD", now=0.0)) == keep
