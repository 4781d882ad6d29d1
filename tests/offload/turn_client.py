"""A blocking TURN client over one UDP socket, for the offload tests that must step a relay through
expiry and deletion (turnutils_uclient cannot): Allocate with the 401 round trip, CreatePermission,
ChannelBind, Refresh, ChannelData, with REST credentials, through the one codec."""

from __future__ import annotations

import socket
import struct
import time

from stun_server.wire import Message, MessageClass, Method, encode, long_term_key, parse
from stun_server.wire import attributes as attrs
from turn_relay.auth.credentials import issue

Address = tuple[str, int]

IPV6_FAMILY = 0x02


class TurnError(AssertionError):
    pass


class TurnClient:
    def __init__(self, sock: socket.socket, server: Address, secret: str, realm: str) -> None:
        self.sock = sock
        self.server = server
        credential = issue(secret, "offload", 3600, time.time())
        self.username = credential.username
        self.key = long_term_key(credential.username, realm, credential.password)
        self.realm = realm
        self.nonce = ""

    def _exchange(self, request: Message, *, sign: bool = True) -> Message:
        if sign:
            request.add(
                attrs.Username(self.username), attrs.Realm(self.realm), attrs.Nonce(self.nonce)
            )
        data = encode(request, key=self.key) if sign else encode(request)
        deadline = time.monotonic() + 3.0
        self.sock.sendto(data, self.server)
        while time.monotonic() < deadline:
            reply, _ = self.sock.recvfrom(65536)
            if reply[:1] in (b"\x01", b"\x00") and reply[8:20] == request.transaction_id:
                return parse(reply)
        raise TurnError(f"no answer to {request.method!r}")

    def request(self, method: int, *attributes: attrs.AnyAttribute) -> Message:
        response = self._exchange(Message(method, MessageClass.REQUEST, attributes=[*attributes]))
        if response.cls is not MessageClass.SUCCESS:
            code = response.get(attrs.ErrorCode)
            raise TurnError(f"{Method(method).name}: {code}")
        return response

    def allocate(self, *, ipv6: bool = False) -> Address:
        extra: list[attrs.AnyAttribute] = [attrs.RequestedTransport(17)]
        if ipv6:
            extra.append(attrs.RequestedAddressFamily(IPV6_FAMILY))
        challenge = self._exchange(
            Message(Method.ALLOCATE, MessageClass.REQUEST, attributes=list(extra)), sign=False
        )
        nonce = challenge.get(attrs.Nonce)
        assert nonce is not None, challenge
        self.nonce = nonce.value
        response = self.request(Method.ALLOCATE, *extra)
        relayed = response.get(attrs.XorRelayedAddress)
        assert relayed is not None
        return relayed.address

    def permit(self, peer: Address) -> None:
        self.request(Method.CREATE_PERMISSION, attrs.XorPeerAddress(*peer))

    def bind(self, channel: int, peer: Address) -> None:
        self.request(Method.CHANNEL_BIND, attrs.ChannelNumber(channel), attrs.XorPeerAddress(*peer))

    def delete(self) -> None:
        self.request(Method.REFRESH, attrs.Lifetime(0))

    def channel_data(self, channel: int, payload: bytes) -> None:
        self.sock.sendto(struct.pack("!HH", channel, len(payload)) + payload, self.server)
