"""The pure half of the fleet: snapshots, merging, the 300 target, commands."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turn_relay.fleet.view import (
    Command,
    FleetDataError,
    RelaySnapshot,
    live_revocations,
    merge,
)


def snap(relay_id: str, allocations: int = 0, **kw: object) -> RelaySnapshot:
    values: dict[str, object] = {
        "capacity": 0, "draining": False, "alternates": (f"{relay_id}:3478",), "users": {}
    }  # fmt: skip
    values.update(kw)
    return RelaySnapshot(relay_id, allocations, **values)  # type: ignore[arg-type]


def test_a_snapshot_round_trips_through_json() -> None:
    original = snap("a", 3, capacity=10, users={"alice": 2, "bob": 1}, published_at=12.5)
    assert RelaySnapshot.from_json(original.to_json()) == original


def test_merge_sums_the_siblings_counts_and_leaves_out_our_own() -> None:
    facts = merge(
        "a",
        [snap("a", users={"alice": 5}), snap("b", users={"alice": 1}),
         snap("c", users={"alice": 2, "bob": 1})],
    )  # fmt: skip
    assert facts.remote_users == {"alice": 3, "bob": 1}
    assert [s.relay_id for s in facts.siblings] == ["b", "c"]


def test_the_alternate_is_the_least_loaded_sibling_that_accepts() -> None:
    facts = merge(
        "b",
        [
            snap("a", 40, capacity=100),  # 40 %
            snap("c", 10, capacity=20),  # 50 %
            snap("d", 0, draining=True),  # draining: never
            snap("e", 5, capacity=5),  # full: never
            snap("f", 1, alternates=()),  # nothing to name
        ],
    )
    assert facts.least_loaded_alternate() == "a:3478"
    assert merge("b", [snap("d", draining=True)]).least_loaded_alternate() is None
    assert merge("b", []).least_loaded_alternate() is None


@pytest.mark.parametrize(
    "text",
    [
        "", "null", "[]", '{"v": 2}', '{"v": 1}',
        '{"v":1,"relay_id":"","allocations":0,"capacity":0,"draining":false,"alternates":[],"users":{}}',
        '{"v":1,"relay_id":"a","allocations":-1,"capacity":0,"draining":false,"alternates":[],"users":{}}',
        '{"v":1,"relay_id":"a","allocations":0,"capacity":0,"draining":false,"alternates":[],"users":{"x":true}}',
        '{"v":1,"relay_id":"a","allocations":0,"capacity":0,"draining":false,"alternates":{},"users":{}}',
        '{"v":1,"relay_id":"a","allocations":0,"capacity":0,"draining":false,"alternates":[],"users":{},"published_at":NaN}',
    ],
)  # fmt: skip
def test_a_bad_snapshot_is_refused_by_name(text: str) -> None:
    with pytest.raises(FleetDataError):
        RelaySnapshot.from_json(text)


@given(st.binary(max_size=200))
def test_any_bytes_give_a_snapshot_or_the_one_error(data: bytes) -> None:
    for parse in (RelaySnapshot.from_json, Command.from_json):
        with contextlib.suppress(FleetDataError):
            parse(data)


def test_commands_round_trip_and_target_relays() -> None:
    command = Command("revoke", "*", "alice", until=1_800_000_000.0, origin="a")
    assert Command.from_json(command.to_json()) == command
    assert command.applies_to("b")
    kick = Command("kick", "c", "alice")
    assert kick.applies_to("c") and not kick.applies_to("a")
    with pytest.raises(FleetDataError, match="unknown verb"):
        Command.from_json(Command("explode").to_json())


def test_revocations_end_when_their_time_comes() -> None:
    revoked = {"alice": 100.0, "bob": None, "carol": 50.0}
    assert live_revocations(revoked, 60.0) == {"alice": 100.0, "bob": None}
    assert live_revocations(revoked, 100.0) == {"bob": None}
