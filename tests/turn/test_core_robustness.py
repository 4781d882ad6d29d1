"""Garbage, truncated and mutated input never raises out of the core."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from turn_testkit import PEER, T0, allocated, make_core

from stun_server.wire import Message, MessageClass, Method, encode
from stun_server.wire import attributes as attrs
from turn_relay.core.allocation import Transport
from turn_relay.core.relay import RelayCore

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def live_core() -> tuple[RelayCore, list[bytes]]:
    """A core with an allocation, a permission and a channel, plus valid messages to mutate."""
    core = make_core(legacy_channels=True)
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    samples = [client.last_sent]
    client.refresh(600, now=T0)
    samples.append(client.last_sent)
    send = Message(Method.SEND, MessageClass.INDICATION)
    send.add(attrs.XorPeerAddress(*PEER), attrs.Data(b"payload"))
    samples += [encode(send, fingerprint=True), b"\x40\x00\x00\x03abc\x00"]
    return core, samples


CORE, SAMPLES = live_core()
FIVE_TUPLE = next(iter(CORE.table.by_five_tuple))
RELAY = next(iter(CORE.table.by_relay))


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    CORE.receive(data, FIVE_TUPLE, T0 + 1)
    CORE.receive(data, FIVE_TUPLE._replace(transport=Transport.TCP), T0 + 1)
    CORE.receive_from_peer(data, RELAY, PEER, T0 + 1)


@FUZZ
@given(first=st.sampled_from([0x00, 0x01, 0x40, 0x4F, 0x7F]), rest=st.binary(max_size=120))
def test_plausible_first_bytes(first: int, rest: bytes) -> None:
    CORE.receive(bytes([first]) + rest, FIVE_TUPLE, T0 + 1)


@FUZZ
@given(index=st.integers(0, 3), cut=st.integers(0, 400))
def test_truncated_messages(index: int, cut: int) -> None:
    sample = SAMPLES[index]
    CORE.receive(sample[: cut % (len(sample) + 1)], FIVE_TUPLE, T0 + 1)


@FUZZ
@given(
    index=st.integers(0, 3),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 255)), max_size=6),
)
def test_mutated_messages(index: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(SAMPLES[index])
    for position, xor in flips:
        data[position % len(data)] ^= xor
    CORE.receive(bytes(data), FIVE_TUPLE, T0 + 1)


def test_oversized_datagram() -> None:
    CORE.receive(b"\x00\x01\xff\xfc" + b"\x21\x12\xa4\x42" + bytes(65532 + 12), FIVE_TUPLE, T0 + 1)
    CORE.receive(b"\x40\x00\xff\xff" + bytes(70000), FIVE_TUPLE, T0 + 1)
    CORE.receive_from_peer(bytes(65535), RELAY, PEER, T0 + 1)


def test_the_allocation_survived_the_fuzzing() -> None:
    assert FIVE_TUPLE in CORE.table.by_five_tuple
