"""Hypothesis strategies for the wire codec: one per attribute class, and whole messages."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from stun_server.wire import Message, MessageClass, Method, encode
from stun_server.wire import attributes as attrs

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
transaction_ids = st.binary(min_size=12, max_size=12)
ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
# Text within the codec's decode limits (763 bytes; USERNAME 513): <= 100 chars <= 400 bytes.
texts = st.text(max_size=100)
error_codes = st.integers(300, 699)
algorithm_entries = st.tuples(u16, st.binary(max_size=12))


def _address(cls: Any) -> st.SearchStrategy[Any]:
    return st.builds(cls, ips, u16)


def _fixed_bytes(cls: Any) -> st.SearchStrategy[Any]:
    lengths = cls.LENGTHS
    if lengths is None:
        return st.builds(cls, st.binary(max_size=64))
    return st.sampled_from(lengths).flatmap(lambda n: st.binary(min_size=n, max_size=n).map(cls))


ATTRIBUTE_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    attrs.MappedAddress: _address(attrs.MappedAddress),
    attrs.AlternateServer: _address(attrs.AlternateServer),
    attrs.ResponseOrigin: _address(attrs.ResponseOrigin),
    attrs.OtherAddress: _address(attrs.OtherAddress),
    attrs.XorMappedAddress: _address(attrs.XorMappedAddress),
    attrs.XorPeerAddress: _address(attrs.XorPeerAddress),
    attrs.XorRelayedAddress: _address(attrs.XorRelayedAddress),
    attrs.Username: st.builds(attrs.Username, texts),
    attrs.Realm: st.builds(attrs.Realm, texts),
    attrs.Nonce: st.builds(attrs.Nonce, texts),
    attrs.Software: st.builds(attrs.Software, texts),
    attrs.AlternateDomain: st.builds(attrs.AlternateDomain, texts),
    attrs.Data: _fixed_bytes(attrs.Data),
    attrs.MessageIntegrity: _fixed_bytes(attrs.MessageIntegrity),
    attrs.MessageIntegritySha256: _fixed_bytes(attrs.MessageIntegritySha256),
    attrs.Userhash: _fixed_bytes(attrs.Userhash),
    attrs.ReservationToken: _fixed_bytes(attrs.ReservationToken),
    attrs.Padding: _fixed_bytes(attrs.Padding),
    attrs.Lifetime: st.builds(attrs.Lifetime, u32),
    attrs.Priority: st.builds(attrs.Priority, u32),
    attrs.ConnectionId: st.builds(attrs.ConnectionId, u32),
    attrs.Fingerprint: st.builds(attrs.Fingerprint, u32),
    attrs.IceControlled: st.builds(attrs.IceControlled, u64),
    attrs.IceControlling: st.builds(attrs.IceControlling, u64),
    attrs.DontFragment: st.just(attrs.DontFragment()),
    attrs.UseCandidate: st.just(attrs.UseCandidate()),
    attrs.ErrorCode: st.builds(attrs.ErrorCode, error_codes, texts),
    attrs.AddressErrorCode: st.builds(attrs.AddressErrorCode, u8, error_codes, texts),
    attrs.UnknownAttributes: st.builds(
        attrs.UnknownAttributes, st.lists(u16, max_size=8).map(tuple)
    ),
    attrs.ChannelNumber: st.builds(attrs.ChannelNumber, u16),
    attrs.RequestedTransport: st.builds(attrs.RequestedTransport, u8),
    attrs.RequestedAddressFamily: st.builds(attrs.RequestedAddressFamily, u8),
    attrs.AdditionalAddressFamily: st.builds(attrs.AdditionalAddressFamily, u8),
    attrs.EvenPort: st.builds(attrs.EvenPort, st.booleans()),
    attrs.ChangeRequest: st.builds(attrs.ChangeRequest, st.booleans(), st.booleans()),
    attrs.ResponsePort: st.builds(attrs.ResponsePort, u16),
    attrs.Icmp: st.builds(attrs.Icmp, st.integers(0, 0x7F), st.integers(0, 0x1FF), u32),
    attrs.PasswordAlgorithm: st.builds(attrs.PasswordAlgorithm, u16, st.binary(max_size=12)),
    attrs.PasswordAlgorithms: st.builds(
        attrs.PasswordAlgorithms, st.lists(algorithm_entries, max_size=4).map(tuple)
    ),
}

# encode() computes these itself from key/fingerprint, so they never appear in a body.
INTEGRITY_CLASSES: tuple[type[Any], ...] = (
    attrs.MessageIntegrity,
    attrs.MessageIntegritySha256,
    attrs.Fingerprint,
)

unknown_attribute_types = u16.filter(lambda t: t not in attrs.REGISTRY)
unknown_attributes = st.builds(
    attrs.UnknownAttribute, unknown_attribute_types, st.binary(max_size=32)
)
body_attributes = st.one_of(
    *(s for cls, s in ATTRIBUTE_STRATEGIES.items() if cls not in INTEGRITY_CLASSES),
    unknown_attributes,
)
methods = st.one_of(st.sampled_from(Method), st.integers(0, 0xFFF))
classes = st.sampled_from(MessageClass)


@st.composite
def messages(draw: st.DrawFn, max_attributes: int = 12) -> Message:
    attributes: list[attrs.AnyAttribute] = draw(st.lists(body_attributes, max_size=max_attributes))
    repeat: bool = draw(st.booleans())
    if attributes and repeat:  # repeat some attributes verbatim, anywhere
        extra: list[attrs.AnyAttribute] = draw(st.lists(st.sampled_from(attributes), max_size=3))
        attributes = draw(st.permutations(attributes + extra))
    return Message(draw(methods), draw(classes), draw(transaction_ids), attributes)


keys = st.binary(min_size=1, max_size=32)
integrity_modes = st.sampled_from(["sha1", "sha256", "both"])


@st.composite
def encoded_messages(draw: st.DrawFn) -> bytes:
    """Valid wire messages, some with MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT."""
    message = draw(messages(max_attributes=6))
    key = draw(st.one_of(st.none(), keys))
    return encode(
        message,
        key=key,
        integrity=draw(integrity_modes),
        fingerprint=draw(st.booleans()),
    )
