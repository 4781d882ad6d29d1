"""Whatever bytes arrive, the responder answers with a list (maybe empty) and never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from stun_testkit import binding_request

from stun_server.responder import BindingResponder, ResponderConfig, Rfc5780Addresses
from stun_server.wire import MessageClass, parse
from stun_server.wire import attributes as attrs

QUAD = Rfc5780Addresses("127.0.0.1", "127.0.0.2", 3478, 3479)
RESPONDERS = [
    BindingResponder(ResponderConfig(rate_limit=0, rfc5780=(QUAD,)), fast_path=fast)
    for fast in (True, False)
]
SEEDS = [
    binding_request(),
    binding_request(fingerprint=True),
    binding_request(attrs.Software("x"), attrs.ChangeRequest(True, True), fingerprint=True),
    binding_request(attrs.ResponsePort(9), attrs.Padding(b"\x00" * 12)),
    binding_request(attrs.UnknownAttribute(0x0042, b"abc")),
]


def check(data: bytes) -> None:
    for responder in RESPONDERS:
        for datagram in responder.receive_datagram(data, QUAD.sockets()[0], ("10.1.1.1", 5), 0.0):
            response = parse(datagram.data)  # whatever we send is well-formed STUN
            assert response.cls in (MessageClass.SUCCESS, MessageClass.ERROR)
            assert response.transaction_id == data[8:20]
        reply, _ = responder.receive_stream_message(data, ("127.0.0.1", 3478), ("10.1.1.1", 5))
        if reply is not None:
            parse(reply)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=1000, deadline=None)
@given(
    seed=st.sampled_from(SEEDS),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4),
    cut=st.integers(0, 10_000),
)
def test_mutated_requests(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    check(bytes(data[: max(cut % (len(data) + 1), 0)]) if cut % 3 == 0 else bytes(data))
