"""Long-term credentials in the core: challenge, 400/401/438/441, SHA-256, REST expiry."""

from __future__ import annotations

from turn_testkit import (
    REALM,
    SECRET,
    T0,
    Client,
    CloseRelay,
    allocated,
    error_code,
    five_tuple,
    make_core,
    of_type,
    responses,
    wall,
)

from stun_server.wire import Message, MessageClass, Method, encode, long_term_key, verify_integrity
from stun_server.wire import attributes as attrs
from turn_relay.auth.challenge import ChallengeBudget, Rate
from turn_relay.auth.credentials import issue
from turn_relay.auth.longterm import LongTermAuth


def allocate_request() -> Message:
    return Message(Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)])


def test_unauthenticated_request_gets_401_with_realm_nonce_and_algorithms() -> None:
    client = Client.rest(make_core(), T0)
    challenge = client.exchange(allocate_request(), T0, sign=False)
    assert error_code(challenge) == 401
    assert challenge.get(attrs.Realm) == attrs.Realm(REALM)
    nonce = challenge.get(attrs.Nonce)
    assert nonce is not None and nonce.value.startswith("obMatJos2")
    assert challenge.get(attrs.PasswordAlgorithms) == attrs.PasswordAlgorithms(((2, b""), (1, b"")))
    assert challenge.integrity_offset is None and challenge.integrity_sha256_offset is None


def test_signed_request_without_nonce_is_400() -> None:
    client = Client.rest(make_core(), T0)
    request = allocate_request().add(attrs.Username(client.username), attrs.Realm(REALM))
    data = encode(request, key=client.key)
    (response,) = responses(client.send(data, T0))
    assert error_code(response) == 400


def test_wrong_password_is_401_after_the_challenge() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    client.password = "not-the-password"
    response = client.allocate(now=T0)
    assert error_code(response) == 401
    assert response.has(attrs.Nonce) and response.has(attrs.Realm)
    assert len(core.table) == 0


def test_wrong_secret_is_401() -> None:
    core = make_core()
    credential = issue("another-secret", "alice", 3600, wall(T0))
    client = Client(core, five_tuple(), credential.username, credential.password)
    assert error_code(client.allocate(now=T0)) == 401


def test_wrong_realm_is_401() -> None:
    client = Client.rest(make_core(), T0)
    client.learn_nonce(T0)
    request = allocate_request()
    request.add(
        attrs.Username(client.username), attrs.Realm("other"), attrs.Nonce(client.nonce or "")
    )
    key = long_term_key(client.username, "other", client.password)
    (response,) = responses(client.send(encode(request, key=key), T0))
    assert error_code(response) == 401


def test_static_user_authenticates() -> None:
    core = make_core()
    client = Client(core, five_tuple(), "bob", "bobpass")
    assert client.allocate(now=T0).cls is MessageClass.SUCCESS


def test_unknown_static_user_is_401() -> None:
    client = Client(make_core(), five_tuple(), "mallory", "bobpass")
    assert error_code(client.allocate(now=T0)) == 401


def test_expired_rest_credential_is_401_at_allocate() -> None:
    core = make_core()
    client = Client.rest(core, T0 - 7200, ttl=3600)  # expired an hour ago
    assert error_code(client.allocate(now=T0)) == 401
    assert core.stats.auth_failures["expired"] == 1


def test_stale_nonce_is_438_with_a_fresh_nonce() -> None:
    core = make_core(nonce_lifetime=600.0)
    client = Client.rest(core, T0)
    client.learn_nonce(T0)
    old = client.nonce
    request = allocate_request()
    response = client.exchange(request, T0 + 601)
    assert error_code(response) == 438
    fresh = response.get(attrs.Nonce)
    assert fresh is not None and fresh.value != old
    assert response.has(attrs.Realm)
    client.nonce = fresh.value
    assert client.exchange(allocate_request(), T0 + 601).cls is MessageClass.SUCCESS


def test_nonce_of_another_client_address_is_438() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    client.learn_nonce(T0)
    client.five_tuple = client.five_tuple._replace(client=("127.0.0.2", 40000))
    assert error_code(client.exchange(allocate_request(), T0)) == 438


def test_refresh_with_stale_nonce_is_438_then_succeeds() -> None:
    client = allocated(make_core())
    response = client.exchange(
        Message(Method.REFRESH, MessageClass.REQUEST, attributes=[attrs.Lifetime(600)]), T0 + 700
    )
    assert error_code(response) == 438
    assert client.refresh(600, now=T0 + 700).cls is MessageClass.SUCCESS


def test_sha256_password_algorithm_and_integrity() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    client.sha256 = True
    response = client.allocate(now=T0)
    assert response.cls is MessageClass.SUCCESS
    assert response.integrity_sha256_offset is not None
    assert response.integrity_offset is None
    assert verify_integrity(response, client.key)


def test_md5_key_with_message_integrity_sha256() -> None:
    client = Client.rest(make_core(), T0)
    client.learn_nonce(T0)
    request = allocate_request()
    request.add(
        attrs.Username(client.username), attrs.Realm(REALM), attrs.Nonce(client.nonce or "")
    )
    (response,) = responses(client.send(encode(request, key=client.key, integrity="sha256"), T0))
    assert response.cls is MessageClass.SUCCESS
    assert response.integrity_sha256_offset is not None


def test_password_algorithms_not_matching_what_we_offered_is_400() -> None:
    client = Client.rest(make_core(), T0)
    client.learn_nonce(T0)
    request = allocate_request()
    request.add(
        attrs.Username(client.username),
        attrs.Realm(REALM),
        attrs.Nonce(client.nonce or ""),
        attrs.PasswordAlgorithms(((1, b""),)),
        attrs.PasswordAlgorithm(1),
    )
    (response,) = responses(client.send(encode(request, key=client.key), T0))
    assert error_code(response) == 400


def test_password_algorithm_without_algorithms_is_400() -> None:
    client = Client.rest(make_core(), T0)
    client.learn_nonce(T0)
    request = allocate_request()
    request.add(
        attrs.Username(client.username),
        attrs.Realm(REALM),
        attrs.Nonce(client.nonce or ""),
        attrs.PasswordAlgorithm(2),
    )
    (response,) = responses(client.send(encode(request, key=client.key), T0))
    assert error_code(response) == 400


def test_401_challenges_are_rate_limited_per_source() -> None:
    core = make_core(limiter=ChallengeBudget(unproven=Rate(1.0, 3)))
    client = Client.rest(core, T0)
    answered = [bool(responses(client.send(encode(allocate_request()), T0))) for _ in range(5)]
    assert answered == [True, True, True, False, False]
    assert core.stats.rate_limited == 2
    assert responses(client.send(encode(allocate_request()), T0 + 1.5))  # refilled


def test_rest_secret_rotation_accepts_old_and_new() -> None:
    core = make_core(secrets=("new", SECRET))
    old = Client.rest(core, T0, port=40000)  # issued with SECRET
    assert old.allocate(now=T0).cls is MessageClass.SUCCESS
    credential = issue("new", "alice", 600, wall(T0))
    new = Client(core, five_tuple(40001), credential.username, credential.password)
    assert new.allocate(now=T0).cls is MessageClass.SUCCESS


def test_replacing_auth_keeps_allocations() -> None:
    core = make_core()
    client = allocated(core)
    core.authenticator.auth = LongTermAuth(REALM, rest_secrets=("rotated", SECRET))
    assert client.refresh(600, now=T0 + 10).cls is MessageClass.SUCCESS
    assert len(core.table) == 1


def test_other_username_on_the_allocation_is_441() -> None:
    core = make_core()
    client = allocated(core)
    intruder = Client(core, client.five_tuple, "bob", "bobpass", nonce=client.nonce)
    response = intruder.refresh(600, now=T0 + 1)
    assert error_code(response) == 441
    assert verify_integrity(response, intruder.key)
    assert core.stats.auth_failures["wrong-credentials"] == 1
    assert len(core.table) == 1


def test_refresh_with_expired_credential_fails_and_deletes_the_allocation() -> None:
    core = make_core()
    client = allocated(core, T0)
    credential_ttl_end = T0 + 3600
    relay = client.relay()
    response = client.refresh(600, now=credential_ttl_end + 1)
    assert error_code(response) == 401
    assert len(core.table) == 0
    assert of_type(client.actions, CloseRelay) == [CloseRelay(relay)]
    assert core.stats.allocations_removed["credential-expired"] == 1
    assert error_code(client.refresh(600, now=credential_ttl_end + 2)) in (401, 437)


def test_create_permission_with_expired_credential_also_deletes() -> None:
    core = make_core()
    client = allocated(core, T0)
    assert error_code(client.permit(("127.0.0.1", 9), now=T0 + 3601)) == 401
    assert len(core.table) == 0


def test_forged_refresh_with_expired_username_does_not_delete() -> None:
    core = make_core()
    client = allocated(core, T0)
    forger = Client(core, client.five_tuple, client.username, "guess", nonce=client.nonce)
    assert error_code(forger.refresh(600, now=T0 + 3601)) == 401
    assert len(core.table) == 1  # only a request proving the allocation's key deletes it


def test_unexpired_credential_refreshes_normally() -> None:
    client = allocated(make_core(), T0)
    response = client.refresh(600, now=T0 + 3000)
    assert response.cls is MessageClass.SUCCESS
    assert response.get(attrs.Lifetime) == attrs.Lifetime(600)


def test_stream_clients_are_not_rate_limited_for_challenges() -> None:
    """The 401 limiter is against reflection from spoofed UDP sources; TCP proved its source."""
    from turn_relay.core.allocation import Transport

    core = make_core(limiter=ChallengeBudget(unproven=Rate(1.0, 1)))
    client = Client.rest(core, T0)
    client.five_tuple = five_tuple(transport=Transport.TCP)
    for _ in range(5):
        answers = responses(client.send(encode(allocate_request()), T0))
        assert [a.get(attrs.ErrorCode).code for a in answers] == [401]  # type: ignore[union-attr]


def test_udp_challenges_beyond_the_burst_are_dropped() -> None:
    core = make_core(limiter=ChallengeBudget(unproven=Rate(1.0, 1)))
    client = Client.rest(core, T0)
    assert responses(client.send(encode(allocate_request()), T0))
    assert client.send(encode(allocate_request()), T0) == []
