"""The struct-built fast path answers exactly as the codec path does, byte for byte."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from stun_testkit import raw_message, tlv

from stun_server.responder import BindingResponder, ResponderConfig, Rfc5780Addresses
from stun_server.wire import Message, MessageClass, Method, encode
from stun_server.wire import attributes as attrs

QUAD = Rfc5780Addresses("127.0.0.1", "127.0.0.2", 3478, 3479)
QUAD_SOCKETS = QUAD.sockets()
OTHER_SOCKETS = (("127.0.0.1", 9999), ("::1", 3478))

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
mapped_v4 = st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}")
client_ips = st.one_of(ipv4, ipv6, mapped_v4)
ports = st.integers(min_value=0, max_value=65535)
software = st.one_of(st.none(), st.text(max_size=40).filter(lambda t: len(t.encode()) <= 128))
request_software = st.one_of(
    st.none(), st.text(max_size=60), st.integers(300, 400).map(lambda n: "é" * n)
)  # "é" is 2 bytes: 600-800 bytes straddle SOFTWARE's 763-byte limit


def responders(value: str | None, fast: bool) -> BindingResponder:
    config = ResponderConfig(software=value, rate_limit=0, rfc5780=(QUAD,))
    return BindingResponder(config, fast_path=fast)


@settings(max_examples=400, deadline=None)
@given(
    transaction_id=st.binary(min_size=12, max_size=12),
    client_ip=client_ips,
    client_port=ports,
    our_software=software,
    their_software=request_software,
    fingerprint=st.booleans(),
    local=st.sampled_from(QUAD_SOCKETS + OTHER_SOCKETS),
)
def test_fast_path_is_byte_identical_to_the_codec_path(
    transaction_id: bytes,
    client_ip: str,
    client_port: int,
    our_software: str | None,
    their_software: str | None,
    fingerprint: bool,
    local: tuple[str, int],
) -> None:
    attributes = [attrs.Software(their_software)] if their_software is not None else []
    message = Message(Method.BINDING, MessageClass.REQUEST, transaction_id, list(attributes))
    request = encode(message, fingerprint=fingerprint)
    remote = (client_ip, client_port)
    fast = responders(our_software, True).receive_datagram(request, local, remote, 0.0)
    full = responders(our_software, False).receive_datagram(request, local, remote, 0.0)
    assert fast == full
    assert len(fast) == 1
    too_long = their_software is not None and len(their_software.encode()) > 763
    assert fast[0].data[:2] == (b"\x01\x11" if too_long else b"\x01\x01")


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=64).map(lambda b: b[: len(b) - len(b) % 4]), fp=st.booleans())
def test_fast_and_codec_paths_agree_on_arbitrary_bodies(body: bytes, fp: bool) -> None:
    request = raw_message(0x0001, body)
    if fp:
        request = raw_message(0x0001, body + tlv(0x8028, b"\x00\x00\x00\x00"))
    for local in (QUAD_SOCKETS[0], OTHER_SOCKETS[0]):
        fast = responders("x", True).receive_datagram(request, local, ("10.0.0.1", 5), 0.0)
        full = responders("x", False).receive_datagram(request, local, ("10.0.0.1", 5), 0.0)
        assert fast == full


def test_fast_path_serves_the_plain_cases() -> None:
    r = responders("turnkit", True)
    for request in (
        encode(Message(Method.BINDING, MessageClass.REQUEST)),
        encode(Message(Method.BINDING, MessageClass.REQUEST), fingerprint=True),
        encode(Message(Method.BINDING, MessageClass.REQUEST, attributes=[attrs.Software("a")])),
    ):
        assert r._fast_reply(request, ("10.0.0.1", 5), None) is not None


def test_fast_path_declines_what_it_does_not_handle() -> None:
    r = responders("turnkit", True)
    declined = [
        raw_message(0x0001, tlv(attrs.ChangeRequest.TYPE, b"\x00" * 4)),
        raw_message(0x0001, tlv(0x8028, b"\x00" * 4)),  # wrong FINGERPRINT
        raw_message(0x0001, tlv(attrs.Software.TYPE, b"\xff")),
        raw_message(0x0003),
        b"\x00\x01\x00\x00" + b"\x00" * 16,
    ]
    for request in declined:
        assert r._fast_reply(request, ("10.0.0.1", 5), None) is None


def test_client_address_cache_stays_bounded() -> None:
    r = responders(None, True)
    request = encode(Message(Method.BINDING, MessageClass.REQUEST))
    for index in range(10_000):
        ip = str(ipaddress.IPv4Address(0x0A000000 + index))
        assert r.receive_datagram(request, OTHER_SOCKETS[0], (ip, 1), 0.0)
    assert len(r._peers) <= 4096
