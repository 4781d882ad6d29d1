"""Real-socket helpers for the relay shell tests: configs on free ports and a wire-codec client.

The client is deliberately small and built on `stun_server.wire` (the relay's own codec), so the
interop tests with aioice, aiortc and coturn stay the independent check.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import turnkit_testing

from stun_server.wire import (
    Message,
    MessageClass,
    Method,
    encode,
    long_term_key,
    parse,
    stream_frame_length,
)
from stun_server.wire import attributes as attrs
from turn_relay.auth.credentials import issue
from turn_relay.config import (
    AllocationConfig,
    AuthConfig,
    ChallengeBudgetConfig,
    ListenConfig,
    PeerPolicyConfig,
    RelayConfig,
    Secrets,
    ServerConfig,
    TurnConfig,
)
from turn_relay.core.allocation import Address
from turn_relay.shell.server import RelayServer

# shared with every tier; kept under these names for the relay tests
free_port = turnkit_testing.free_port
write_self_signed = turnkit_testing.self_signed_certificate

REALM = "relay.test"
SECRET = "harness-secret"
RELAY_PORTS = (24000, 24199)  # below Linux's ephemeral range, so client sockets never collide
TIMEOUT = 3.0


def relay_config(
    *,
    port: int | None = None,
    tls_port: int = 0,
    cert: Path | None = None,
    key: Path | None = None,
    allocation: AllocationConfig | None = None,
    ports: tuple[int, int] = RELAY_PORTS,
) -> TurnConfig:
    port = port or free_port()
    return TurnConfig(
        server=ServerConfig(REALM),
        relay=RelayConfig(("127.0.0.1",), ports[0], ports[1]),
        listen=ListenConfig(("127.0.0.1",), port, port, tls_port, cert, key),
        allocation=allocation or AllocationConfig(),
        auth=AuthConfig(
            challenge_budget=ChallengeBudgetConfig(unproven_rate=1000.0, unproven_burst=1000)
        ),
        peer_policy=PeerPolicyConfig(allowed_peers=("127.0.0.0/8",)),
    )


@contextlib.asynccontextmanager
async def running(config: TurnConfig, **kwargs: Any) -> AsyncIterator[RelayServer]:
    server = RelayServer(config, Secrets(rest_secrets=(SECRET,)), **kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def insecure_client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, inbox: asyncio.Queue[bytes]) -> None:
        self.inbox = inbox

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.inbox.put_nowait(data)


@dataclass
class WireClient:
    """A TURN client over UDP or a stream; every received frame lands in ``inbox``."""

    server: Address
    username: str
    password: str
    inbox: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    nonce: str | None = None
    udp: asyncio.DatagramTransport | None = None
    writer: asyncio.StreamWriter | None = None
    reader_task: asyncio.Task[None] | None = None

    @classmethod
    def credentials(cls, server: Address, ttl: int = 600) -> tuple[str, str]:
        credential = issue(SECRET, "harness", ttl, time.time())
        return credential.username, credential.password

    @classmethod
    async def over_udp(
        cls, server: Address, credential: tuple[str, str] | None = None
    ) -> WireClient:
        client = cls(server, *(credential or cls.credentials(server)))
        loop = asyncio.get_running_loop()
        client.udp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(client.inbox), remote_addr=server
        )
        return client

    @classmethod
    async def over_stream(cls, server: Address, tls: ssl.SSLContext | None = None) -> WireClient:
        client = cls(server, *cls.credentials(server))
        reader, client.writer = await asyncio.open_connection(*server, ssl=tls)
        client.reader_task = asyncio.create_task(client._read_frames(reader))
        return client

    async def _read_frames(self, reader: asyncio.StreamReader) -> None:
        buffer = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                self.inbox.put_nowait(b"")  # EOF marker
                return
            buffer += chunk
            while (size := stream_frame_length(buffer)) is not None and len(buffer) >= size:
                self.inbox.put_nowait(buffer[:size])
                buffer = buffer[size:]

    @property
    def local(self) -> Address:
        if self.udp is not None:
            host, port = self.udp.get_extra_info("sockname")[:2]
        else:
            assert self.writer is not None
            host, port = self.writer.get_extra_info("sockname")[:2]
        return (host, port)

    @property
    def key(self) -> bytes:
        return long_term_key(self.username, REALM, self.password)

    def send_raw(self, data: bytes) -> None:
        if self.udp is not None:
            self.udp.sendto(data)
        else:
            assert self.writer is not None
            self.writer.write(data)

    async def receive(self, timeout: float = TIMEOUT) -> bytes:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def exchange(self, request: Message, *, sign: bool = True) -> Message:
        if sign:
            assert self.nonce is not None
            request.add(attrs.Username(self.username), attrs.Realm(REALM), attrs.Nonce(self.nonce))
            self.send_raw(encode(request, key=self.key))
        else:
            self.send_raw(encode(request))
        deadline = time.monotonic() + TIMEOUT
        while True:
            data = await self.receive(max(0.01, deadline - time.monotonic()))
            if data and data[0] < 0x40:
                message = parse(data)
                if message.transaction_id == request.transaction_id:
                    return message

    async def request(self, method: int, *attributes: attrs.AnyAttribute) -> Message:
        if self.nonce is None:
            challenge = await self.exchange(
                Message(
                    Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)]
                ),
                sign=False,
            )
            nonce = challenge.get(attrs.Nonce)
            assert nonce is not None, challenge
            self.nonce = nonce.value
        return await self.exchange(
            Message(method, MessageClass.REQUEST, attributes=list(attributes))
        )

    async def allocate(self, *extra: attrs.AnyAttribute) -> Address:
        response = await self.request(Method.ALLOCATE, attrs.RequestedTransport(17), *extra)
        relayed = response.get(attrs.XorRelayedAddress)
        assert relayed is not None, response
        return relayed.address

    async def permit(self, peer: Address) -> Message:
        return await self.request(Method.CREATE_PERMISSION, attrs.XorPeerAddress(*peer))

    async def bind(self, channel: int, peer: Address) -> Message:
        return await self.request(
            Method.CHANNEL_BIND, attrs.ChannelNumber(channel), attrs.XorPeerAddress(*peer)
        )

    async def refresh(self, lifetime: int) -> Message:
        return await self.request(Method.REFRESH, attrs.Lifetime(lifetime))

    def send_indication(self, peer: Address, data: bytes) -> None:
        message = Message(Method.SEND, MessageClass.INDICATION)
        message.add(attrs.XorPeerAddress(*peer), attrs.Data(data))
        self.send_raw(encode(message))

    def channel_data(self, channel: int, payload: bytes, *, pad: bool = False) -> None:
        padding = b"\x00" * ((-len(payload)) % 4) if pad else b""
        self.send_raw(
            channel.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload + padding
        )

    async def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        if self.reader_task is not None:
            self.reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self.reader_task


class EchoPeer(asyncio.DatagramProtocol):
    """A UDP peer that answers every datagram with ``b"echo:" + data``."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[tuple[bytes, Address]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append((data, (addr[0], addr[1])))
        assert self.transport is not None
        self.transport.sendto(b"echo:" + data, addr)


@contextlib.asynccontextmanager
async def echo_peer(ip: str = "127.0.0.1") -> AsyncIterator[tuple[Address, EchoPeer]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(EchoPeer, local_addr=(ip, 0))
    try:
        host, port = transport.get_extra_info("sockname")[:2]
        yield (host, port), protocol
    finally:
        transport.close()


async def eventually(condition: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def wait_until_answering(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Until a turn-relay process on ``host``:``port`` answers a Binding over UDP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = await WireClient.over_udp((host, port))
        try:
            await client.exchange(Message(Method.BINDING, MessageClass.REQUEST), sign=False)
            return
        except TimeoutError:
            pass
        finally:
            await client.close()
    raise AssertionError("turn-relay did not start")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
