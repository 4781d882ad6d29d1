"""STUN/TURN requests rtccheck sends and what their answers mean: pure, no sockets.

Builders return `Message` objects (the auth layer signs and encodes them); interpreters take a
parsed response and return plain dataclasses, raising `ProbeError` for error responses and for
success responses that lack what the method must return.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtccheck.probe.errors import FailureKind, ProbeError
from stun_server.wire import PROTOCOL_UDP, Message, MessageClass, Method, encode
from stun_server.wire import attributes as attrs

Address = tuple[str, int]

FAMILY_IPV4 = 0x01
FAMILY_IPV6 = 0x02


def binding_request(
    *, change_ip: bool = False, change_port: bool = False, response_port: int | None = None
) -> Message:
    """A Binding request; CHANGE-REQUEST and RESPONSE-PORT only when asked (RFC 5780)."""
    message = Message(Method.BINDING, MessageClass.REQUEST)
    if change_ip or change_port:
        message.add(attrs.ChangeRequest(change_ip=change_ip, change_port=change_port))
    if response_port is not None:
        message.add(attrs.ResponsePort(response_port))
    return message


def encode_plain(message: Message) -> bytes:
    """An unauthenticated request on the wire, with FINGERPRINT (RFC 8489 section 7.3)."""
    return encode(message, fingerprint=True)


@dataclass(frozen=True)
class BindingAnswer:
    """What a Binding success response told: the reflexive address and RFC 5780 extras."""

    mapped: Address
    other_address: Address | None = None
    response_origin: Address | None = None
    software: str | None = None


def binding_answer(response: Message) -> BindingAnswer:
    raise_for_error(response, after_challenge=False)
    mapped = _mapped_address(response)
    if mapped is None:
        raise ProbeError(FailureKind.MALFORMED, "Binding success without a mapped address")
    other = response.get(attrs.OtherAddress)
    origin = response.get(attrs.ResponseOrigin)
    software = response.get(attrs.Software)
    return BindingAnswer(
        mapped=mapped,
        other_address=other.address if other else None,
        response_origin=origin.address if origin else None,
        software=software.value if software else None,
    )


def _mapped_address(response: Message) -> Address | None:
    xor = response.get(attrs.XorMappedAddress)
    if xor is not None:
        return xor.address
    plain = response.get(attrs.MappedAddress)  # RFC 3489 servers
    return plain.address if plain is not None else None


def raise_for_error(response: Message, *, after_challenge: bool) -> None:
    """Raise ProbeError(ERROR_RESPONSE) for an error response; do nothing for a success."""
    if response.cls is MessageClass.SUCCESS:
        return
    if response.cls is not MessageClass.ERROR:
        raise ProbeError(FailureKind.MALFORMED, f"answer of class {response.cls.name}")
    error = response.get(attrs.ErrorCode)
    if error is None:
        raise ProbeError(FailureKind.MALFORMED, "error response without ERROR-CODE")
    reason = error.reason.replace("\x00", "").strip()  # coturn pads some reasons with NULs
    detail = f"{error.code} {reason}".strip()
    alternate = response.get(attrs.AlternateServer)
    if alternate is not None:
        detail += f" (ALTERNATE-SERVER {format_address(alternate.address)})"
    raise ProbeError(
        FailureKind.ERROR_RESPONSE,
        detail,
        code=error.code,
        reason=reason,
        after_challenge=after_challenge,
    )


# ---------------------------------------------------------------- TURN requests


def allocate_request(*, lifetime: int | None = None, family: int = FAMILY_IPV4) -> Message:
    """Allocate a UDP relay (the only relay transport WebRTC uses) of the given family."""
    message = Message(Method.ALLOCATE, MessageClass.REQUEST)
    message.add(attrs.RequestedTransport(PROTOCOL_UDP))
    if family != FAMILY_IPV4:
        message.add(attrs.RequestedAddressFamily(family))
    if lifetime is not None:
        message.add(attrs.Lifetime(lifetime))
    return message


def refresh_request(lifetime: int) -> Message:
    """Refresh; lifetime 0 deletes the allocation (RFC 8656 section 7)."""
    return Message(Method.REFRESH, MessageClass.REQUEST).add(attrs.Lifetime(lifetime))


def create_permission_request(peers: list[Address]) -> Message:
    message = Message(Method.CREATE_PERMISSION, MessageClass.REQUEST)
    for host, port in peers:
        message.add(attrs.XorPeerAddress(host, port))
    return message


def channel_bind_request(channel: int, peer: Address) -> Message:
    message = Message(Method.CHANNEL_BIND, MessageClass.REQUEST)
    return message.add(attrs.ChannelNumber(channel), attrs.XorPeerAddress(*peer))


def send_indication(peer: Address, data: bytes) -> bytes:
    message = Message(Method.SEND, MessageClass.INDICATION)
    message.add(attrs.XorPeerAddress(*peer), attrs.Data(data))
    return encode(message)


@dataclass(frozen=True)
class AllocateAnswer:
    relayed: Address
    mapped: Address | None
    lifetime_s: int
    software: str | None = None


def allocate_answer(response: Message, *, after_challenge: bool) -> AllocateAnswer:
    raise_for_error(response, after_challenge=after_challenge)
    relayed = response.get(attrs.XorRelayedAddress)
    lifetime = response.get(attrs.Lifetime)
    if relayed is None or lifetime is None:
        raise ProbeError(
            FailureKind.MALFORMED, "Allocate success without XOR-RELAYED-ADDRESS or LIFETIME"
        )
    software = response.get(attrs.Software)
    return AllocateAnswer(
        relayed=relayed.address,
        mapped=_mapped_address(response),
        lifetime_s=lifetime.value,
        software=software.value if software else None,
    )


def refresh_answer(response: Message, *, after_challenge: bool) -> int:
    """The lifetime granted (0 when the allocation was deleted)."""
    raise_for_error(response, after_challenge=after_challenge)
    lifetime = response.get(attrs.Lifetime)
    return lifetime.value if lifetime is not None else 0


def data_indication(message: Message) -> tuple[Address, bytes] | None:
    """(peer, data) of a Data indication, or None for anything else."""
    if message.method != Method.DATA or message.cls is not MessageClass.INDICATION:
        return None
    peer = message.get(attrs.XorPeerAddress)
    data = message.get(attrs.Data)
    if peer is None or data is None:
        return None
    return peer.address, data.value


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
