"""Operator events into the sans-I/O core: kick, revoke, drain; and what its observer hears
(allocations created and deleted with their traffic, refused requests with their reason)."""

from __future__ import annotations

import math
from typing import Any

from turn_testkit import (
    PEER,
    T0,
    Client,
    CloseRelay,
    allocated,
    error_code,
    make_core,
    of_type,
    wall,
)

from stun_server.wire import MessageClass
from stun_server.wire import attributes as attrs
from turn_relay.core.allocation import Allocation
from turn_relay.core.events import Refusal
from turn_relay.core.relay import RelayCore


class Heard:
    """A RelayObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.deleted: list[tuple[str, str, float, int, int]] = []
        self.refused: list[Refusal] = []

    def allocation_created(self, allocation: Allocation, now: float) -> None:
        self.created.append(allocation.credentials.user)

    def allocation_deleted(self, allocation: Allocation, reason: str, now: float) -> None:
        traffic = allocation.traffic
        self.deleted.append(
            (
                allocation.credentials.user,
                reason,
                now - allocation.created_at,
                traffic.bytes_to_peer,
                traffic.bytes_to_client,
            )
        )

    def request_refused(self, refusal: Refusal, now: float) -> None:
        self.refused.append(refusal)


def observed_core(**overrides: Any) -> tuple[RelayCore, Heard]:
    core = make_core(**overrides)
    heard = Heard()
    core.observer = heard
    return core, heard


def test_created_and_deleted_with_duration_and_bytes_each_way() -> None:
    core, heard = observed_core()
    client = allocated(core)
    assert client.bind(0x4000, PEER, now=T0 + 1).cls is MessageClass.SUCCESS
    client.channel_data(0x4000, b"12345", now=T0 + 2)
    core.receive_from_peer(b"abc", client.relay(), PEER, T0 + 3)
    assert client.refresh(0, now=T0 + 30).cls is MessageClass.SUCCESS
    assert heard.created == ["alice"]
    assert heard.deleted == [("alice", "deleted", 30.0, 5, 3)]
    assert core.stats.allocation_lifetime.counts[1] == 1  # 10 s < 30 s <= 60 s
    assert core.stats.allocation_bytes_to_peer.total == 5


def test_a_wrong_password_is_refused_with_its_reason_user_and_source() -> None:
    core, heard = observed_core()
    client = Client.rest(core, T0)
    client.password = "not-the-password"
    assert error_code(client.allocate(now=T0)) == 401
    assert heard.refused == [
        Refusal(
            "allocate", 401, "bad-integrity", client.username, client.five_tuple.client,
            client.five_tuple.transport,
        )
    ]  # fmt: skip


def test_the_challenge_every_login_starts_with_is_no_refusal() -> None:
    core, heard = observed_core()
    allocated(core)
    assert heard.refused == []


def test_a_denied_peer_is_refused_as_peer_denied_with_the_peer_named() -> None:
    core, heard = observed_core(allowed_peers=())
    client = allocated(core)
    assert error_code(client.permit(("10.1.2.3", 5000), now=T0)) == 403
    (refusal,) = heard.refused
    assert (refusal.method, refusal.code, refusal.reason) == (
        "create_permission",
        403,
        "peer-denied",
    )
    assert refusal.detail.startswith("peer 10.1.2.3: ")


def test_kick_by_user_ends_the_allocation_and_the_next_refresh_gets_437() -> None:
    core, heard = observed_core()
    alice = allocated(core)
    bob = allocated(core, user="bob", port=40001)
    relay = alice.relay()
    actions = core.kick("alice", T0 + 5)
    assert actions == [CloseRelay(relay)]
    assert heard.deleted[0][:2] == ("alice", "kicked")
    assert error_code(alice.refresh(600, now=T0 + 6)) == 437
    assert bob.refresh(600, now=T0 + 6).cls is MessageClass.SUCCESS
    assert core.stats.allocations_removed["kicked"] == 1


def test_kick_by_session_id_ends_only_that_session() -> None:
    core, _ = observed_core()
    first = allocated(core)
    second = allocated(core, port=40001)
    session, relay = core.table.by_five_tuple[second.five_tuple].session_id, second.relay()
    assert session == f"{relay[0]}:{relay[1]}"
    assert of_type(core.kick(session, T0 + 1), CloseRelay) == [CloseRelay(relay)]
    assert [a.five_tuple for a in core.sessions()] == [first.five_tuple]
    assert core.kick("nobody", T0 + 1) == []


def test_revoke_refuses_a_valid_credential_with_reason_revoked_and_ends_sessions() -> None:
    core, heard = observed_core()
    relay = allocated(core).relay()
    actions = core.revoke("alice", math.inf, T0 + 1)
    assert of_type(actions, CloseRelay) == [CloseRelay(relay)]
    assert heard.deleted[0][:2] == ("alice", "revoked")
    again = Client.rest(core, T0 + 2, port=40002)  # a fresh, valid credential
    assert error_code(again.allocate(now=T0 + 2)) == 401
    assert [(r.code, r.reason) for r in heard.refused] == [(401, "revoked")]
    assert core.stats.auth_failures["revoked"] == 1
    allocated(core, T0 + 3, user="bob", port=40003)  # others are unaffected (it asserts)


def test_a_revocation_until_a_time_runs_out_and_unrevoke_lifts_one() -> None:
    core, _ = observed_core()
    core.revoke("alice", wall(T0 + 100), T0)
    assert error_code(Client.rest(core, T0 + 50).allocate(now=T0 + 50)) == 401
    allocated(core, T0 + 100, port=40001)  # the revocation ended at T0 + 100 (it asserts)
    core.revoke("carol", math.inf, T0 + 100)
    assert core.unrevoke("carol") and not core.unrevoke("carol")
    allocated(core, T0 + 101, user="carol", port=40002)


def test_drain_refuses_new_allocations_with_403_and_keeps_the_old_ones() -> None:
    core, heard = observed_core()
    old = allocated(core)
    assert core.drain(T0 + 1) == []
    new = Client.rest(core, T0 + 2, port=40001)
    assert error_code(new.allocate(now=T0 + 2)) == 403
    assert heard.refused[-1].reason == "draining"
    assert old.refresh(600, now=T0 + 3).cls is MessageClass.SUCCESS
    assert old.bind(0x4000, PEER, now=T0 + 3).cls is MessageClass.SUCCESS


def test_drain_with_alternates_answers_300_with_the_first_alternate_server() -> None:
    core, _ = observed_core(alternates=(("203.0.113.9", 3478), ("203.0.113.10", 3478)))
    core.drain(T0)
    response = Client.rest(core, T0).allocate(now=T0)
    assert error_code(response) == 300
    assert response.get(attrs.AlternateServer) == attrs.AlternateServer("203.0.113.9", 3478)
