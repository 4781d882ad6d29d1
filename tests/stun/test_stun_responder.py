"""The sans-I/O Binding responder: every branch, with exact expectations."""

from __future__ import annotations

import struct

import pytest
from stun_testkit import (
    COOKIE,
    TID,
    binding_request,
    raw_message,
    software_tlv,
    tlv,
    xor_mapped_v4,
)

from stun_server.responder import (
    BindingResponder,
    Datagram,
    ResponderConfig,
    Rfc5780Addresses,
    StreamAnswer,
)
from stun_server.wire import Message, MessageClass, Method, encode, parse
from stun_server.wire import attributes as attrs
from stun_server.wire.integrity import fingerprint as crc

LOCAL = ("127.0.0.1", 3478)
CLIENT = ("192.0.2.7", 40000)
QUAD = Rfc5780Addresses("127.0.0.1", "127.0.0.2", 3478, 3479)


def responder(**overrides: object) -> BindingResponder:
    settings: dict[str, object] = {"rate_limit": 0}
    settings.update(overrides)
    return BindingResponder(ResponderConfig(**settings))  # type: ignore[arg-type]


def answer(
    data: bytes,
    *,
    r: BindingResponder | None = None,
    local: tuple[str, int] = LOCAL,
    remote: tuple[str, int] = CLIENT,
) -> list[Datagram]:
    return (r or responder()).receive_datagram(data, local, remote, 0.0)


def only(data: bytes, **kwargs: object) -> Datagram:
    datagrams = answer(data, **kwargs)  # type: ignore[arg-type]
    assert len(datagrams) == 1, datagrams
    return datagrams[0]


def error_code(message: Message) -> int:
    error = message.get(attrs.ErrorCode)
    assert error is not None
    return error.code


# ---------------------------------------------------------------- success


def test_plain_request_gets_the_exact_response_bytes() -> None:
    reply = only(raw_message(0x0001))
    body = xor_mapped_v4("192.0.2.7", 40000) + software_tlv("turnkit")
    expected = struct.pack("!HH", 0x0101, len(body)) + COOKIE + TID + body
    assert reply == Datagram(expected, LOCAL, CLIENT)


def test_fingerprint_is_added_when_the_request_had_one() -> None:
    reply = only(binding_request(fingerprint=True)).data
    body = xor_mapped_v4("192.0.2.7", 40000) + software_tlv("turnkit")
    head = struct.pack("!HH", 0x0101, len(body) + 8) + COOKIE + TID
    assert reply == head + body + struct.pack("!HHI", 0x8028, 4, crc(head + body))
    assert parse(reply).has(attrs.Fingerprint)


def test_no_fingerprint_when_the_request_had_none() -> None:
    assert not parse(only(binding_request()).data).has(attrs.Fingerprint)


def test_request_software_is_accepted_and_ours_is_sent() -> None:
    request = binding_request(attrs.Software("some client 1.0"), fingerprint=True)
    response = parse(only(request).data)
    assert response.attributes[:2] == [
        attrs.XorMappedAddress("192.0.2.7", 40000),
        attrs.Software("turnkit"),
    ]


def test_software_can_be_left_out() -> None:
    response = parse(only(binding_request(), r=responder(software=None)).data)
    assert response.attributes == [attrs.XorMappedAddress("192.0.2.7", 40000)]


def test_ipv6_client_gets_ipv6_xor_mapped_address() -> None:
    response = parse(only(binding_request(), remote=("2001:db8::9", 5000)).data)
    assert response.get(attrs.XorMappedAddress) == attrs.XorMappedAddress("2001:db8::9", 5000)


def test_v4_mapped_client_is_reported_as_ipv4() -> None:
    response = parse(only(binding_request(), remote=("::ffff:192.0.2.1", 7)).data)
    assert response.get(attrs.XorMappedAddress) == attrs.XorMappedAddress("192.0.2.1", 7)


def test_unknown_comprehension_optional_attribute_is_ignored() -> None:
    request = binding_request(attrs.UnknownAttribute(0x8123, b"abcd"))
    response = parse(only(request).data)
    assert response.cls == MessageClass.SUCCESS


def test_message_integrity_is_ignored_by_this_unauthenticated_server() -> None:
    message = Message(Method.BINDING, MessageClass.REQUEST, TID, [attrs.Username("u")])
    request = encode(message, key=b"k", fingerprint=True)
    assert parse(only(request).data).cls == MessageClass.SUCCESS


def test_padding_bytes_of_any_value_are_accepted() -> None:
    request = raw_message(0x0001, tlv(attrs.Software.TYPE, b"abc", padding=b"\x20"))
    assert parse(only(request).data).cls == MessageClass.SUCCESS


# ---------------------------------------------------------------- silence


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"hello world, not stun at all", id="text"),
        pytest.param(b"\x00\x01\x00\x00" + COOKIE + TID[:11], id="19 bytes"),
        pytest.param(b"\x00\x01\x00\x00\x21\x12\xa4\x43" + TID, id="wrong cookie"),
        pytest.param(raw_message(0x0001)[:-1] + b"", id="short header"),
        pytest.param(b"\x40\x01\x00\x00" + COOKIE + TID, id="first bits 01"),
        pytest.param(b"\xc0\x01\x00\x00" + COOKIE + TID, id="first bits 11"),
        pytest.param(
            raw_message(0x0001, b"")[:2] + b"\x00\x04" + raw_message(0x0001)[4:], id="length>"
        ),
        pytest.param(raw_message(0x0001, software_tlv("abc"))[:-4], id="length<"),
        pytest.param(raw_message(0x0001, b"\x80\x22\x00\x01ab"), id="length%4"),
        pytest.param(raw_message(0x0101, xor_mapped_v4("1.2.3.4", 5)), id="success response"),
        pytest.param(raw_message(0x0111), id="error response"),
        pytest.param(raw_message(0x0011), id="binding indication"),
        pytest.param(raw_message(0x0003), id="allocate request"),
        pytest.param(raw_message(0x0004), id="refresh request"),
        pytest.param(raw_message(0x0016, tlv(0x0012, b"\x00" * 8)), id="send indication"),
        pytest.param(b"\x40\x00\x00\x04data", id="channel data"),
        pytest.param(b"\x00\x01\x00\x08" + b"\x00" * 16 + b"\x80\x28\x00\x04abcd", id="rfc3489"),
    ],
)
def test_silence_for_anything_but_a_binding_request(data: bytes) -> None:
    assert answer(data) == []


def test_silence_for_a_wrong_fingerprint() -> None:
    request = bytearray(binding_request(fingerprint=True))
    request[-1] ^= 0xFF
    assert answer(bytes(request)) == []


def test_silence_for_a_wrong_fingerprint_even_with_a_malformed_attribute() -> None:
    body = tlv(attrs.Software.TYPE, b"\xff\xfe") + tlv(0x8028, b"\x00\x00\x00\x00")
    assert answer(raw_message(0x0001, body)) == []


def test_silence_does_not_spend_rate_limit_tokens() -> None:
    r = responder(rate_limit=1, rate_burst=1)
    for _ in range(10):
        assert r.receive_datagram(b"garbage", LOCAL, CLIENT, 0.0) == []
    assert len(r.receive_datagram(binding_request(), LOCAL, CLIENT, 0.0)) == 1


# ---------------------------------------------------------------- 400 and 420


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(tlv(attrs.Software.TYPE, b"\xff\xfe\xfd"), id="software not utf-8"),
        pytest.param(tlv(attrs.Software.TYPE, b"x" * 764), id="software too long"),
        pytest.param(tlv(0x0020, b"\x00\x01\x00"), id="xor address too short"),
        pytest.param(tlv(0x0003, b"\x00\x00"), id="change-request 2 bytes"),
        pytest.param(tlv(0x0009, b"\x00\x00\x09\x00"), id="error code class 9"),
        pytest.param(b"\x80\x22\x00\x10abcd", id="attribute overruns"),
        pytest.param(tlv(0x8028, b"\x00" * 4) + software_tlv("after"), id="fingerprint not last"),
    ],
)
def test_malformed_binding_request_gets_400(body: bytes) -> None:
    reply = only(raw_message(0x0001, body))
    response = parse(reply.data)
    assert (response.method, response.cls) == (Method.BINDING, MessageClass.ERROR)
    assert response.transaction_id == TID
    assert response.attributes == [attrs.ErrorCode(400, "Bad Request"), attrs.Software("turnkit")]
    assert (reply.local_addr, reply.remote_addr) == (LOCAL, CLIENT)


def test_400_carries_fingerprint_when_the_request_had_a_valid_one() -> None:
    body = tlv(attrs.Software.TYPE, b"\xff\xfe")
    head = struct.pack("!HH", 0x0001, len(body) + 8) + COOKIE + TID
    request = head + body + struct.pack("!HHI", 0x8028, 4, crc(head + body))
    response = parse(only(request).data)
    assert error_code(response) == 400
    assert response.has(attrs.Fingerprint)


def test_unknown_comprehension_required_attributes_get_420_listing_each_once() -> None:
    request = binding_request(
        attrs.UnknownAttribute(0x7F01, b"x"),
        attrs.UnknownAttribute(0x0030, b""),
        attrs.UnknownAttribute(0x7F01, b"y"),
        attrs.UnknownAttribute(0xC001, b"optional"),
        fingerprint=True,
    )
    response = parse(only(request).data)
    assert response.cls == MessageClass.ERROR
    assert response.attributes[:3] == [
        attrs.ErrorCode(420, "Unknown Attribute"),
        attrs.UnknownAttributes((0x7F01, 0x0030)),
        attrs.Software("turnkit"),
    ]
    assert response.has(attrs.Fingerprint)


@pytest.mark.parametrize(
    ("attribute", "code"),
    [
        (attrs.ChangeRequest(change_ip=True, change_port=True), 0x0003),
        (attrs.ChangeRequest(), 0x0003),
        (attrs.ResponsePort(5000), 0x0027),
        (attrs.Padding(b"\x00" * 8), 0x0026),
    ],
)
def test_without_a_second_address_rfc5780_requests_get_420(
    attribute: attrs.AnyAttribute, code: int
) -> None:
    response = parse(only(binding_request(attribute)).data)
    assert error_code(response) == 420
    assert response.get(attrs.UnknownAttributes) == attrs.UnknownAttributes((code,))


def test_without_a_second_address_no_rfc5780_attributes_are_advertised() -> None:
    response = parse(only(binding_request()).data)
    assert not response.has(attrs.OtherAddress)
    assert not response.has(attrs.ResponseOrigin)
    assert not response.has(attrs.MappedAddress)


# ---------------------------------------------------------------- RFC 5780


def nat_responder(**overrides: object) -> BindingResponder:
    return responder(rfc5780=(QUAD,), **overrides)


def test_rfc5780_quad_lists_the_four_sockets() -> None:
    assert QUAD.sockets() == (
        ("127.0.0.1", 3478),
        ("127.0.0.1", 3479),
        ("127.0.0.2", 3478),
        ("127.0.0.2", 3479),
    )
    assert nat_responder().rfc5780_sockets == QUAD.sockets()


def test_rfc5780_plain_request_advertises_other_address_and_origin() -> None:
    reply = only(binding_request(), r=nat_responder())
    assert (reply.local_addr, reply.remote_addr) == (LOCAL, CLIENT)
    assert parse(reply.data).attributes == [
        attrs.XorMappedAddress("192.0.2.7", 40000),
        attrs.MappedAddress("192.0.2.7", 40000),
        attrs.ResponseOrigin("127.0.0.1", 3478),
        attrs.OtherAddress("127.0.0.2", 3479),
        attrs.Software("turnkit"),
    ]


@pytest.mark.parametrize(
    ("received_on", "change_ip", "change_port", "answered_from", "other"),
    [
        (("127.0.0.1", 3478), False, False, ("127.0.0.1", 3478), ("127.0.0.2", 3479)),
        (("127.0.0.1", 3478), True, False, ("127.0.0.2", 3478), ("127.0.0.2", 3479)),
        (("127.0.0.1", 3478), False, True, ("127.0.0.1", 3479), ("127.0.0.2", 3479)),
        (("127.0.0.1", 3478), True, True, ("127.0.0.2", 3479), ("127.0.0.2", 3479)),
        (("127.0.0.2", 3478), True, False, ("127.0.0.1", 3478), ("127.0.0.1", 3479)),
        (("127.0.0.2", 3479), True, True, ("127.0.0.1", 3478), ("127.0.0.1", 3478)),
        (("127.0.0.1", 3479), False, True, ("127.0.0.1", 3478), ("127.0.0.2", 3478)),
    ],
)
def test_change_request_is_answered_from_the_socket_of_rfc5780_table_1(
    received_on: tuple[str, int],
    change_ip: bool,
    change_port: bool,
    answered_from: tuple[str, int],
    other: tuple[str, int],
) -> None:
    request = binding_request(attrs.ChangeRequest(change_ip, change_port), fingerprint=True)
    reply = only(request, r=nat_responder(), local=received_on)
    assert (reply.local_addr, reply.remote_addr) == (answered_from, CLIENT)
    response = parse(reply.data)
    assert response.get(attrs.ResponseOrigin) == attrs.ResponseOrigin(*answered_from)
    assert response.get(attrs.OtherAddress) == attrs.OtherAddress(*other)
    assert response.has(attrs.Fingerprint)


def test_response_port_sends_to_that_port_of_the_same_ip() -> None:
    reply = only(binding_request(attrs.ResponsePort(6000)), r=nat_responder())
    assert (reply.local_addr, reply.remote_addr) == (LOCAL, ("192.0.2.7", 6000))
    assert parse(reply.data).get(attrs.XorMappedAddress) == attrs.XorMappedAddress(*CLIENT)


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param((attrs.ResponsePort(6000), attrs.Padding(b"\x00" * 16)), id="with padding"),
        pytest.param((attrs.ResponsePort(0),), id="port 0"),
    ],
)
def test_bad_response_port_gets_400(attributes: tuple[attrs.AnyAttribute, ...]) -> None:
    reply = only(binding_request(*attributes), r=nat_responder())
    assert (reply.local_addr, reply.remote_addr) == (LOCAL, CLIENT)
    assert error_code(parse(reply.data)) == 400


@pytest.mark.parametrize(
    ("request_padding", "max_padding", "expected"),
    [(16, 1500, 16), (13, 1500, 16), (1500, 1500, 1500), (4000, 1500, 1500), (9, 6, 4)],
)
def test_padding_mirrors_the_request_length_rounded_and_bounded(
    request_padding: int, max_padding: int, expected: int
) -> None:
    request = binding_request(attrs.Padding(b"p" * request_padding))
    response = parse(only(request, r=nat_responder(max_padding=max_padding)).data)
    padding = response.get(attrs.Padding)
    assert padding is not None
    assert len(padding.value) == expected
    assert response.attributes[-1] == padding


def test_socket_outside_the_quad_has_no_rfc5780() -> None:
    r = nat_responder()
    v6_local = ("::1", 3478)
    reply = only(binding_request(attrs.ChangeRequest(True, True)), r=r, local=v6_local)
    assert error_code(parse(reply.data)) == 420
    plain = parse(only(binding_request(), r=r, local=v6_local).data)
    assert not plain.has(attrs.OtherAddress)


def test_rfc5780_ipv6_client_gets_ipv6_mapped_addresses() -> None:
    remote = ("2001:db8::1", 9)
    response = parse(only(binding_request(), r=nat_responder(), remote=remote).data)
    assert response.get(attrs.MappedAddress) == attrs.MappedAddress(*remote)
    assert response.get(attrs.XorMappedAddress) == attrs.XorMappedAddress(*remote)


@pytest.mark.parametrize(
    "arguments",
    [
        ("127.0.0.1", "::2", 1, 2),
        ("127.0.0.1", "127.0.0.1", 1, 2),
        ("0.0.0.0", "127.0.0.2", 1, 2),
        ("127.0.0.1", "127.0.0.2", 5, 5),
        ("127.0.0.1", "127.0.0.2", 0, 2),
        ("127.0.0.1", "127.0.0.2", 1, 65536),
    ],
)
def test_rfc5780_addresses_are_validated(arguments: tuple[str, str, int, int]) -> None:
    with pytest.raises(ValueError):
        Rfc5780Addresses(*arguments)


def test_rfc5780_addresses_are_canonical() -> None:
    quad = Rfc5780Addresses("2001:db8:0::1", "2001:db8::0:2", 1, 2)
    assert (quad.primary_ip, quad.alternate_ip) == ("2001:db8::1", "2001:db8::2")


@pytest.mark.parametrize(
    "settings",
    [
        {"rate_limit": -1},
        {"max_padding": 70000},
        {"rfc5780": (QUAD, Rfc5780Addresses("127.0.0.3", "127.0.0.4", 1, 2))},
    ],
)
def test_responder_config_is_validated(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ResponderConfig(**settings)  # type: ignore[arg-type]


# ---------------------------------------------------------------- streams


def test_stream_message_gets_the_same_answer_as_a_datagram() -> None:
    r = responder()
    request = binding_request(fingerprint=True)
    assert r.receive_stream_message(request, LOCAL, CLIENT) == StreamAnswer(
        only(request).data, True
    )


@pytest.mark.parametrize(
    "frame",
    [b"\x40\x00\x00\x04data", b"\x00\x01\x00\x00" + b"\x00" * 16, b"\x00\x01"],
)
def test_stream_garbage_closes_the_connection(frame: bytes) -> None:
    assert responder().receive_stream_message(frame, LOCAL, CLIENT) == StreamAnswer(None, False)


def test_stream_indication_is_ignored_but_keeps_the_connection() -> None:
    answer_ = responder().receive_stream_message(raw_message(0x0011), LOCAL, CLIENT)
    assert answer_ == StreamAnswer(None, True)


def test_stream_change_request_gets_420_even_with_a_second_address() -> None:
    request = binding_request(attrs.ChangeRequest(True, False))
    reply, keep_open = nat_responder().receive_stream_message(request, LOCAL, CLIENT)
    assert keep_open
    assert reply is not None
    assert error_code(parse(reply)) == 420


def test_stream_malformed_request_gets_400() -> None:
    request = raw_message(0x0001, tlv(attrs.Software.TYPE, b"\xff"))
    reply, keep_open = responder().receive_stream_message(request, LOCAL, CLIENT)
    assert keep_open
    assert reply is not None
    assert error_code(parse(reply)) == 400


# ---------------------------------------------------------------- rate limit


def test_rate_limit_allows_a_burst_then_refills_with_time() -> None:
    r = responder(rate_limit=2, rate_burst=3)
    request = binding_request()

    def answered(now: float, client: tuple[str, int] = CLIENT) -> bool:
        return bool(r.receive_datagram(request, LOCAL, client, now))

    assert [answered(100.0) for _ in range(4)] == [True, True, True, False]
    assert not answered(100.4)  # 0.8 tokens
    assert answered(100.5)  # 1.0 token
    assert not answered(100.5)
    assert answered(100.5, ("192.0.2.8", 1))  # another source has its own bucket
    assert [answered(200.0) for _ in range(4)] == [True, True, True, False]


def test_rate_limit_applies_to_error_responses_too() -> None:
    r = responder(rate_limit=1, rate_burst=1)
    bad = raw_message(0x0001, tlv(attrs.Software.TYPE, b"\xff"))
    assert len(r.receive_datagram(bad, LOCAL, CLIENT, 0.0)) == 1
    assert r.receive_datagram(bad, LOCAL, CLIENT, 0.0) == []


def test_rate_limit_zero_means_unlimited() -> None:
    r = responder(rate_limit=0)
    assert all(r.receive_datagram(binding_request(), LOCAL, CLIENT, 0.0) for _ in range(5000))


def test_responses_are_never_much_larger_than_requests() -> None:
    """Amplification bound (IPv4): +40 bytes plain, +80 with RFC 5780; PADDING is mirrored."""
    r = nat_responder()
    request = binding_request()
    assert len(only(request).data) - len(request) <= 40
    assert len(only(request, r=r).data) - len(request) <= 80
    padded = binding_request(attrs.Padding(b"\x00" * 1400))
    assert len(only(padded, r=r).data) - len(padded) <= 80
