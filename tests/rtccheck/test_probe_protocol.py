"""rtccheck's STUN/TURN client, protocol logic only: no sockets anywhere in this file.

Retransmission schedule, request builders and response interpretation, the long-term auth dance,
stream framing, error translation, and StunClient's matching driven through a fake channel.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from rtccheck.probe import messages
from rtccheck.probe.auth import (
    ALGORITHM_MD5,
    ALGORITHM_SHA256,
    Attempt,
    AuthCache,
    Credentials,
    Decision,
    LongTermAuth,
)
from rtccheck.probe.client import StunClient
from rtccheck.probe.errors import FailureKind, ProbeError, from_os_error
from rtccheck.probe.retransmit import transmission_waits
from rtccheck.probe.transport import Address, StreamDeframer
from rtccheck.probe.turn import relayed_data
from stun_server.wire import (
    Message,
    MessageClass,
    Method,
    encode,
    encode_channel_data,
    long_term_key,
    parse,
    verify_integrity,
)
from stun_server.wire import attributes as attrs

CREDS = Credentials("1700003600:alice", "secret-password")


# ---------------------------------------------------------------- retransmission


def test_udp_schedule_is_rfc8489_cut_at_the_timeout() -> None:
    assert transmission_waits(5.0) == [0.5, 1.0, 2.0, 1.5]
    assert sum(transmission_waits(5.0)) == pytest.approx(5.0)
    assert transmission_waits(0.4) == [0.4]


def test_full_udp_schedule_is_seven_transmissions_in_39_5_seconds() -> None:
    waits = transmission_waits(100.0)
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 8.0]
    assert sum(waits) == pytest.approx(39.5)


def test_streams_send_once_and_wait_the_whole_timeout() -> None:
    assert transmission_waits(3.0, reliable=True) == [3.0]
    assert transmission_waits(0) == []


# ---------------------------------------------------------------- builders and answers


def _answer(request: Message, cls: MessageClass, *attributes: attrs.AnyAttribute) -> Message:
    response = Message(request.method, cls, request.transaction_id, list(attributes))
    return parse(encode(response))


def test_binding_request_carries_rfc5780_attributes_only_when_asked() -> None:
    plain = parse(messages.encode_plain(messages.binding_request()))
    assert plain.method == Method.BINDING and plain.cls is MessageClass.REQUEST
    assert not plain.has(attrs.ChangeRequest) and plain.has(attrs.Fingerprint)
    change = messages.binding_request(change_ip=True, change_port=True, response_port=4000)
    decoded = parse(messages.encode_plain(change))
    assert decoded.get(attrs.ChangeRequest) == attrs.ChangeRequest(True, True)
    assert decoded.get(attrs.ResponsePort) == attrs.ResponsePort(4000)


def test_binding_answer_reads_xor_mapped_and_rfc5780_addresses() -> None:
    request = messages.binding_request()
    response = _answer(
        request,
        MessageClass.SUCCESS,
        attrs.XorMappedAddress("203.0.113.9", 40000),
        attrs.OtherAddress("198.51.100.2", 3479),
        attrs.ResponseOrigin("198.51.100.1", 3478),
        attrs.Software("test"),
    )
    answer = messages.binding_answer(response)
    assert answer.mapped == ("203.0.113.9", 40000)
    assert answer.other_address == ("198.51.100.2", 3479)
    assert answer.response_origin == ("198.51.100.1", 3478)
    assert answer.software == "test"


def test_binding_answer_falls_back_to_mapped_address_and_needs_one() -> None:
    request = messages.binding_request()
    old = _answer(request, MessageClass.SUCCESS, attrs.MappedAddress("192.0.2.1", 1))
    assert messages.binding_answer(old).mapped == ("192.0.2.1", 1)
    with pytest.raises(ProbeError) as caught:
        messages.binding_answer(_answer(request, MessageClass.SUCCESS))
    assert caught.value.kind is FailureKind.MALFORMED


def test_error_answers_raise_with_code_reason_and_alternate_server() -> None:
    request = messages.allocate_request()
    response = _answer(
        request,
        MessageClass.ERROR,
        attrs.ErrorCode(300, "Try Alternate"),
        attrs.AlternateServer("192.0.2.7", 3478),
    )
    with pytest.raises(ProbeError) as caught:
        messages.allocate_answer(response, after_challenge=True)
    error = caught.value
    assert error.kind is FailureKind.ERROR_RESPONSE and error.code == 300
    assert error.after_challenge
    assert "ALTERNATE-SERVER 192.0.2.7:3478" in error.detail


def test_nul_padding_in_reason_phrases_is_dropped() -> None:
    request = messages.allocate_request()
    response = _answer(
        request, MessageClass.ERROR, attrs.ErrorCode(440, "Unsupported address family\x00\x00")
    )
    with pytest.raises(ProbeError) as caught:
        messages.raise_for_error(response, after_challenge=False)
    assert caught.value.detail == "440 Unsupported address family"


def test_allocate_request_asks_for_a_udp_relay_and_reads_the_answer() -> None:
    request = messages.allocate_request(lifetime=300)
    decoded = parse(encode(request))
    assert decoded.get(attrs.RequestedTransport) == attrs.RequestedTransport(17)
    assert decoded.get(attrs.Lifetime) == attrs.Lifetime(300)
    assert not decoded.has(attrs.RequestedAddressFamily)
    ipv6 = parse(encode(messages.allocate_request(family=messages.FAMILY_IPV6)))
    assert ipv6.get(attrs.RequestedAddressFamily) == attrs.RequestedAddressFamily(2)
    response = _answer(
        request,
        MessageClass.SUCCESS,
        attrs.XorRelayedAddress("203.0.113.5", 50000),
        attrs.XorMappedAddress("198.51.100.9", 1234),
        attrs.Lifetime(600),
    )
    answer = messages.allocate_answer(response, after_challenge=True)
    assert answer.relayed == ("203.0.113.5", 50000) and answer.lifetime_s == 600
    assert answer.mapped == ("198.51.100.9", 1234)
    with pytest.raises(ProbeError):
        messages.allocate_answer(_answer(request, MessageClass.SUCCESS), after_challenge=True)


def test_refresh_zero_and_permission_and_channel_requests() -> None:
    refresh = parse(encode(messages.refresh_request(0)))
    assert refresh.method == Method.REFRESH and refresh.get(attrs.Lifetime) == attrs.Lifetime(0)
    permission = parse(
        encode(messages.create_permission_request([("192.0.2.1", 9), ("192.0.2.2", 9)]))
    )
    assert [p.ip for p in permission.get_all(attrs.XorPeerAddress)] == ["192.0.2.1", "192.0.2.2"]
    bind = parse(encode(messages.channel_bind_request(0x4001, ("192.0.2.1", 5000))))
    assert bind.get(attrs.ChannelNumber) == attrs.ChannelNumber(0x4001)


def test_relayed_data_reads_data_indications_and_channel_data() -> None:
    indication = Message(Method.DATA, MessageClass.INDICATION)
    indication.add(attrs.XorPeerAddress("192.0.2.1", 7), attrs.Data(b"hi"))
    found = relayed_data(encode(indication))
    assert found is not None and found.data == b"hi" and found.peer == ("192.0.2.1", 7)
    channel = relayed_data(encode_channel_data(0x4000, b"yo", pad=True))
    assert channel is not None and channel.data == b"yo" and channel.channel == 0x4000
    assert relayed_data(b"\xff garbage") is None
    assert relayed_data(messages.send_indication(("192.0.2.1", 7), b"x")) is None


# ---------------------------------------------------------------- auth dance


def _challenge(request: Message, *extra: attrs.AnyAttribute, code: int = 401) -> Message:
    return _answer(
        request,
        MessageClass.ERROR,
        attrs.ErrorCode(code),
        attrs.Realm("example.org"),
        attrs.Nonce("nonce-1"),
        *extra,
    )


def test_first_request_is_plain_then_signed_after_the_401_challenge() -> None:
    auth, attempt = LongTermAuth(CREDS), Attempt()
    first = messages.allocate_request()
    plain = parse(auth.encode(first, attempt))
    first_signed = attempt.signed
    assert auth.decide(_challenge(first), attempt) is Decision.RETRY
    signed = parse(auth.encode(messages.allocate_request(), attempt))
    assert plain.integrity_offset is None and not first_signed
    assert attempt.signed
    assert signed.get(attrs.Username) == attrs.Username(CREDS.username)
    assert signed.get(attrs.Realm) == attrs.Realm("example.org")
    assert signed.get(attrs.Nonce) == attrs.Nonce("nonce-1")
    key = long_term_key(CREDS.username, "example.org", CREDS.password)
    assert verify_integrity(signed, key)
    assert not signed.has(attrs.PasswordAlgorithm)


def test_a_401_to_a_signed_request_is_final() -> None:
    auth, attempt = LongTermAuth(CREDS), Attempt()
    request = messages.allocate_request()
    auth.decide(_challenge(request), attempt)
    auth.encode(messages.allocate_request(), attempt)
    assert auth.decide(_challenge(request), attempt) is Decision.GIVE_UP


def test_438_retries_once_with_the_new_nonce_then_gives_up() -> None:
    auth, attempt = LongTermAuth(CREDS), Attempt()
    request = messages.allocate_request()
    auth.decide(_challenge(request), attempt)
    auth.encode(messages.allocate_request(), attempt)
    stale = _answer(request, MessageClass.ERROR, attrs.ErrorCode(438), attrs.Nonce("nonce-2"))
    assert auth.decide(stale, attempt) is Decision.RETRY
    assert auth.nonce == "nonce-2"
    again = parse(auth.encode(messages.allocate_request(), attempt))
    assert again.get(attrs.Nonce) == attrs.Nonce("nonce-2")
    assert auth.decide(stale, attempt) is Decision.GIVE_UP


def test_cached_realm_and_nonce_sign_the_first_request_of_a_new_session() -> None:
    first, attempt = LongTermAuth(CREDS), Attempt()
    request = messages.allocate_request()
    first.decide(_challenge(request), attempt)
    cache = AuthCache()
    cache.remember("192.0.2.1", first)
    second, fresh = LongTermAuth(CREDS), Attempt()
    cache.seed("192.0.2.1", second)
    signed = parse(second.encode(messages.allocate_request(), fresh))
    assert fresh.signed and signed.get(attrs.Nonce) == attrs.Nonce("nonce-1")
    other = LongTermAuth(Credentials("someone-else", "pw"))
    cache.seed("192.0.2.1", other)
    assert not other.ready


def test_a_401_to_a_cached_nonce_is_one_more_challenge_not_a_refusal() -> None:
    cache = AuthCache()
    learned, attempt = LongTermAuth(CREDS), Attempt()
    learned.decide(_challenge(messages.allocate_request()), attempt)
    cache.remember("192.0.2.1", learned)
    auth, fresh = LongTermAuth(CREDS), Attempt()
    cache.seed("192.0.2.1", auth)
    request = messages.allocate_request()
    auth.encode(request, fresh)
    assert auth.decide(_challenge(request), fresh) is Decision.RETRY
    auth.encode(messages.allocate_request(), fresh)
    assert auth.decide(_challenge(request), fresh) is Decision.GIVE_UP


def test_without_credentials_the_challenge_only_teaches_the_realm() -> None:
    auth, attempt = LongTermAuth(None), Attempt()
    request = messages.allocate_request()
    auth.encode(request, attempt)
    assert auth.decide(_challenge(request), attempt) is Decision.GIVE_UP
    assert auth.realm == "example.org" and not auth.ready


def test_a_challenge_without_nonce_cannot_be_answered() -> None:
    auth, attempt = LongTermAuth(CREDS), Attempt()
    request = messages.allocate_request()
    bad = _answer(request, MessageClass.ERROR, attrs.ErrorCode(401), attrs.Realm("r"))
    assert auth.decide(bad, attempt) is Decision.GIVE_UP


def test_other_errors_are_not_retried() -> None:
    auth, attempt = LongTermAuth(CREDS), Attempt()
    request = messages.allocate_request()
    for code in (403, 437, 441, 486, 508):
        response = _answer(request, MessageClass.ERROR, attrs.ErrorCode(code))
        assert auth.decide(response, attempt) is Decision.GIVE_UP


def test_sha256_is_chosen_when_the_server_offers_password_algorithms() -> None:
    auth, attempt = LongTermAuth(CREDS), Attempt()
    request = messages.allocate_request()
    offered = attrs.PasswordAlgorithms(((ALGORITHM_MD5, b""), (ALGORITHM_SHA256, b"")))
    assert auth.decide(_challenge(request, offered), attempt) is Decision.RETRY
    assert auth.algorithm == ALGORITHM_SHA256
    signed = parse(auth.encode(messages.allocate_request(), attempt))
    assert signed.get(attrs.PasswordAlgorithm) == attrs.PasswordAlgorithm(ALGORITHM_SHA256)
    assert signed.get(attrs.PasswordAlgorithms) == offered
    key = long_term_key(CREDS.username, "example.org", CREDS.password, algorithm="sha256")
    assert verify_integrity(signed, key)


def test_response_integrity_is_checked_with_the_learned_key() -> None:
    auth, attempt = LongTermAuth(CREDS), Attempt()
    request = messages.allocate_request()
    auth.decide(_challenge(request), attempt)
    assert auth.key is not None
    good = parse(encode(Message(Method.ALLOCATE, MessageClass.SUCCESS), key=auth.key))
    forged = parse(encode(Message(Method.ALLOCATE, MessageClass.SUCCESS), key=b"x" * 16))
    assert auth.verifies(good) is True
    assert auth.verifies(forged) is False
    assert auth.verifies(parse(encode(Message(Method.ALLOCATE, MessageClass.SUCCESS)))) is None


# ---------------------------------------------------------------- framing and errors


def test_deframer_cuts_stun_and_padded_channel_data_across_reads() -> None:
    stun = messages.encode_plain(messages.binding_request())
    channel = encode_channel_data(0x4000, b"abcde", pad=True)
    stream = stun + channel + stun
    deframer = StreamDeframer()
    frames = []
    for index in range(0, len(stream), 7):
        frames += deframer.feed(stream[index : index + 7])
    assert frames == [stun, channel, stun]


def test_deframer_refuses_a_stream_that_is_not_stun() -> None:
    with pytest.raises(ProbeError) as caught:
        StreamDeframer().feed(b"\xff\xfe not a STUN stream")
    assert caught.value.kind is FailureKind.MALFORMED


def test_deframer_gives_up_on_an_endless_frame() -> None:
    deframer = StreamDeframer()
    assert deframer.feed(b"\x40\x00\xff\xff") == []
    with pytest.raises(ProbeError):
        for _ in range(200):
            deframer.feed(b"\x00" * 1024)


def test_os_and_tls_errors_become_failure_kinds() -> None:
    mismatch = ssl.SSLCertVerificationError("hostname mismatch")
    mismatch.verify_code, mismatch.verify_message = 62, "Hostname mismatch"
    untrusted = ssl.SSLCertVerificationError("self-signed")
    untrusted.verify_code, untrusted.verify_message = 18, "self-signed certificate"
    expired = ssl.SSLCertVerificationError("expired")
    expired.verify_code, expired.verify_message = 10, "certificate has expired"
    cases = {
        mismatch: FailureKind.TLS_NAME_MISMATCH,
        untrusted: FailureKind.TLS_UNTRUSTED,
        expired: FailureKind.TLS_EXPIRED,
        ssl.SSLError(1, "wrong version"): FailureKind.TLS_HANDSHAKE,
        ConnectionRefusedError(111, "refused"): FailureKind.REFUSED,
        TimeoutError(): FailureKind.TIMEOUT,
        OSError(101, "Network is unreachable"): FailureKind.UNREACHABLE,
        ConnectionResetError(104, "reset"): FailureKind.CLOSED,
    }
    for error, kind in cases.items():
        assert from_os_error(error).kind is kind, error


# ---------------------------------------------------------------- StunClient with a fake channel


class FakeChannel:
    """Records what the client sends; the test plays the server."""

    def __init__(self, reliable: bool = False) -> None:
        self.reliable = reliable
        self.sent: list[tuple[bytes, Address | None]] = []
        self.local_address = ("192.0.2.10", 5000)

    def send(self, data: bytes, destination: Address | None = None) -> None:
        self.sent.append((data, destination))

    def close(self) -> None:
        return None


def _client(reliable: bool = False) -> tuple[StunClient, FakeChannel]:
    client = StunClient(clock=asyncio.get_running_loop().time)
    channel = FakeChannel(reliable)
    client.attach(channel)
    return client, channel


def _success_for(request: bytes) -> bytes:
    message = parse(request)
    response = Message(message.method, MessageClass.SUCCESS, message.transaction_id)
    return encode(response.add(attrs.XorMappedAddress("198.51.100.4", 999)))


@pytest.mark.asyncio
async def test_client_retransmits_over_udp_and_matches_by_transaction_id() -> None:
    client, channel = _client()
    request = messages.encode_plain(messages.binding_request())

    async def answer_third_transmission() -> None:
        while len(channel.sent) < 3:
            await asyncio.sleep(0.01)
        other = messages.encode_plain(messages.binding_request())
        client.frame_received(_success_for(other), ("192.0.2.1", 3478))  # someone else's
        client.frame_received(_success_for(request), ("192.0.2.2", 3479))

    server = asyncio.create_task(answer_third_transmission())
    exchange = await client.transact(request, timeout=5.0, destination=("192.0.2.1", 3478))
    await server
    assert exchange.transmissions == 3
    assert exchange.source == ("192.0.2.2", 3479)  # an RFC 5780 answer from elsewhere
    assert messages.binding_answer(exchange.response).mapped == ("198.51.100.4", 999)
    assert all(destination == ("192.0.2.1", 3478) for _, destination in channel.sent)
    assert client.unsolicited.qsize() == 1  # the stray answer


@pytest.mark.asyncio
async def test_client_times_out_within_the_timeout_and_sends_once_on_streams() -> None:
    client, channel = _client(reliable=True)
    request = messages.encode_plain(messages.binding_request())
    with pytest.raises(ProbeError) as caught:
        await client.transact(request, timeout=0.2)
    assert caught.value.kind is FailureKind.TIMEOUT
    assert len(channel.sent) == 1


@pytest.mark.asyncio
async def test_channel_failure_ends_pending_transactions() -> None:
    client, _ = _client()
    request = messages.encode_plain(messages.binding_request())
    task = asyncio.create_task(client.transact(request, timeout=5.0))
    await asyncio.sleep(0.01)
    client.channel_failed(ProbeError(FailureKind.REFUSED, "port unreachable"))
    with pytest.raises(ProbeError) as caught:
        await task
    assert caught.value.kind is FailureKind.REFUSED
    with pytest.raises(ProbeError):
        await client.transact(request, timeout=1.0)


@pytest.mark.asyncio
async def test_requests_and_data_go_to_the_unsolicited_queue() -> None:
    client, _ = _client()
    request = messages.encode_plain(messages.binding_request())
    client.frame_received(request, ("192.0.2.9", 1))  # a hairpinned request of our own
    client.frame_received(encode_channel_data(0x4000, b"x"), ("192.0.2.9", 1))
    first = await client.next_unsolicited(0.1)
    second = await client.next_unsolicited(0.1)
    assert first is not None and first.data == request
    assert second is not None and second.data.startswith(b"\x40\x00")
    assert await client.next_unsolicited(0.01) is None
