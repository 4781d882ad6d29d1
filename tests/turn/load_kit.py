"""Many UDP TURN clients in one thread, for the soak and secret-rotation tests.

Each `Client` has its own socket and at most one transaction in flight (retransmitted as RFC 8489
section 6.2.1 says: RTO 500 ms, doubling, 7 transmissions). `Load.transact` runs one request on
every client at once and returns their answers; `Load.data_round` sends one numbered payload
from every client (ChannelData or a Send indication) to the `echo` socket, which the same loop
answers, and waits until every echo came back. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from process_kit import REALM, RTO, TRANSMISSIONS, udp_socket

from stun_server.wire import Message, MessageClass, Method, encode, long_term_key, parse
from stun_server.wire import attributes as attrs
from stun_server.wire.channel_data import encode_channel_data, parse_channel_data
from stun_server.wire.errors import StunDecodeError
from turn_relay.auth.credentials import issue

Address = tuple[str, int]
CHANNEL = 0x4000
RECEIVE_BUFFER = 8 << 20  # the echo socket's: a whole round of a thousand clients fits


@dataclass
class Client:
    sock: socket.socket
    index: int  # in its `Load`
    username: str = ""
    key: bytes = b""
    nonce: str = ""
    relayed: Address | None = None
    channel: bool = False  # data as ChannelData (after a ChannelBind), else Send indications
    pending: bytes = b""  # the request in flight
    transaction: bytes = b""
    sent: int = 0
    next_at: float = 0.0
    answer: Message | None = None
    echoed: set[int] = field(default_factory=set)

    def log_in(self, secret: str, user: str, ttl: int, now_wall: float) -> None:
        credential = issue(secret, user, ttl, now_wall)
        self.username = credential.username
        self.key = long_term_key(credential.username, REALM, credential.password)

    def signed(self, method: int, *attributes: attrs.AnyAttribute) -> Message:
        return Message(
            Method(method),
            MessageClass.REQUEST,
            attributes=[
                *attributes,
                attrs.Username(self.username),
                attrs.Realm(REALM),
                attrs.Nonce(self.nonce),
            ],
        )

    def start(self, request: Message) -> None:
        self.pending = encode(request, key=self.key if request.get(attrs.Username) else None)
        self.transaction = request.transaction_id
        self.sent, self.next_at, self.answer = 0, 0.0, None

    def send_due(self, server: Address, now: float) -> None:
        if self.answer is not None or self.sent >= TRANSMISSIONS or now < self.next_at:
            return
        self.sock.sendto(self.pending, server)
        self.next_at = now + RTO * (2**self.sent)
        self.sent += 1

    def payload(self, number: int) -> bytes:
        return f"{self.index}:{number}:".encode() + b"x" * 100

    def data(self, peer: Address, payload: bytes) -> bytes:
        if self.channel:
            return encode_channel_data(CHANNEL, payload)
        return encode(
            Message(
                Method.SEND,
                MessageClass.INDICATION,
                attributes=[attrs.XorPeerAddress(*peer), attrs.Data(payload)],
            )
        )

    def received(self, data: bytes) -> None:
        if data[:1] and data[0] & 0xC0 == 0x40:
            with contextlib.suppress(StunDecodeError):
                self._echo(parse_channel_data(data)[1])
            return
        try:
            message = parse(data)
        except StunDecodeError:
            return
        if message.method == Method.DATA and message.cls is MessageClass.INDICATION:
            payload = message.get(attrs.Data)
            if payload is not None:
                self._echo(payload.value)
        elif message.transaction_id == self.transaction and self.answer is None:
            self.answer = message
            nonce = message.get(attrs.Nonce)
            if nonce is not None:
                self.nonce = nonce.value
            relayed = message.get(attrs.XorRelayedAddress)
            if relayed is not None:
                self.relayed = (relayed.ip, relayed.port)

    def _echo(self, payload: bytes) -> None:
        self.echoed.add(int(payload.split(b":")[1]))


def error_code(message: Message | None) -> int | None:
    if message is None:
        return None
    code = message.get(attrs.ErrorCode)
    return None if code is None else code.code


class Load:
    """Clients of one relay plus the echo peer, all in one selector loop."""

    def __init__(self, server: Address, count: int = 0) -> None:
        self.server = server
        self.selector = selectors.DefaultSelector()
        self.echo = udp_socket()
        self.echo.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.echo.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RECEIVE_BUFFER)
        self.selector.register(self.echo, selectors.EVENT_READ, None)
        self.peer: Address = self.echo.getsockname()
        self.clients: list[Client] = []
        self.echoes = 0
        self.add(count)

    def add(self, count: int) -> list[Client]:
        first = len(self.clients)
        added = [Client(udp_socket(), first + n) for n in range(count)]
        for client in added:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
            self.selector.register(client.sock, selectors.EVENT_READ, client)
        self.clients += added
        return added

    def close(self) -> None:
        for client in self.clients:
            self.selector.unregister(client.sock)
            client.sock.close()
        self.selector.close()
        self.echo.close()

    def transact(
        self,
        clients: Sequence[Client],
        request: Callable[[Client], Message],
        *,
        timeout: float = 20.0,
        in_flight: int = 200,
    ) -> list[Message | None]:
        """``request(client)`` on each client, ``in_flight`` at a time; their answers."""
        waiting = list(reversed(clients))
        active: list[Client] = []
        deadline = time.monotonic() + timeout
        while (waiting or active) and time.monotonic() < deadline:
            while waiting and len(active) < in_flight:
                client = waiting.pop()
                client.start(request(client))
                active.append(client)
            now = time.monotonic()
            for client in active:
                client.send_due(self.server, now)
            self.poll(0.005)
            active = [c for c in active if c.answer is None and c.sent < TRANSMISSIONS]
        return [client.answer for client in clients]

    def data_round(
        self,
        clients: Sequence[Client],
        number: int,
        *,
        timeout: float = 5.0,
        batch: int = 100,
        meanwhile: Callable[[], object] | None = None,
    ) -> int:
        """Send payload ``number`` from every client, wait for the echoes; how many came back.

        ``meanwhile()`` runs once the first batch is out, while the rest is in flight."""
        for start in range(0, len(clients), batch):
            for client in clients[start : start + batch]:
                assert client.relayed is not None
                client.sock.sendto(client.data(self.peer, client.payload(number)), self.server)
            if meanwhile is not None and start == 0:
                meanwhile()
            self.poll(0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(number in c.echoed for c in clients):
            self.poll(0.005)
        return sum(1 for client in clients if number in client.echoed)

    def poll(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout=timeout):
            with contextlib.suppress(BlockingIOError):
                while True:
                    data, source = key.fileobj.recvfrom(65536)  # type: ignore[union-attr]
                    if key.data is None:
                        self.echo.sendto(data, source)  # the peer: echo to the relayed address
                        self.echoes += 1
                    else:
                        key.data.received(data)


def allocate_all(load: Load, clients: Sequence[Client], lifetime: int = 600) -> None:
    """Allocate (401, then signed), then ChannelBind or CreatePermission towards the echo peer
    (even clients use a channel); every answer must be a success. The first client goes alone:
    its login proves the source address, whose challenge budget then serves the crowd."""
    if len(clients) > 1:
        allocate_all(load, clients[:1], lifetime)
        clients = clients[1:]
    unsigned = load.transact(
        clients, lambda c: Message(Method.ALLOCATE, MessageClass.REQUEST, attributes=[
            attrs.RequestedTransport(17)])
    )  # fmt: skip
    assert codes(unsigned) == [401] * len(clients), Counter(codes(unsigned))
    allocated = load.transact(
        clients,
        lambda c: c.signed(Method.ALLOCATE, attrs.RequestedTransport(17), attrs.Lifetime(lifetime)),
    )
    assert codes(allocated) == [None] * len(clients)
    for client in clients:
        client.channel = client.index % 2 == 0
    permitted = load.transact(clients, lambda c: permit(c, load.peer))
    assert codes(permitted) == [None] * len(clients)


def permit(client: Client, peer: Address) -> Message:
    if client.channel:
        return client.signed(
            Method.CHANNEL_BIND, attrs.ChannelNumber(CHANNEL), attrs.XorPeerAddress(*peer)
        )
    return client.signed(Method.CREATE_PERMISSION, attrs.XorPeerAddress(*peer))


def refresh(lifetime: int) -> Callable[[Client], Message]:
    return lambda client: client.signed(Method.REFRESH, attrs.Lifetime(lifetime))


def codes(answers: Sequence[Message | None]) -> list[int | str | None]:
    """Each answer's error code, None for a success, "lost" for no answer."""
    return ["lost" if a is None else error_code(a) for a in answers]
