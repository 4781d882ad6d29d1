"""aioice's TURN client (an independent implementation) against ``turn-relay``: it allocates,
binds a channel, exchanges data with a UDP peer and deletes its allocation, over UDP and TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aioice.turn import create_turn_endpoint
from turn_interop_kit import Relay, relay_process

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    with relay_process(tmp_path_factory.mktemp("aioice")) as running:
        yield running


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.sources: set[tuple[str, int]] = set()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.sources.add((addr[0], addr[1]))
        self.transport.sendto(b"echo:" + data, addr)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_aioice_turn_client_exchanges_data(relay: Relay, transport: str) -> None:
    loop = asyncio.get_running_loop()
    echo_transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    peer = echo_transport.get_extra_info("sockname")[:2]
    ice = relay.credentials("aioice")
    turn, inbox = await create_turn_endpoint(
        Inbox,
        server_addr=("127.0.0.1", relay.port),
        username=ice["username"],
        password=ice["credential"],
        transport=transport,
    )
    try:
        relayed = turn.get_extra_info("sockname")
        assert relayed[0] == "127.0.0.1" and 25000 <= relayed[1] <= 25999
        for index in range(50):
            turn.sendto(b"message %d" % index, peer)
            data, source = await asyncio.wait_for(inbox.queue.get(), 5)
            assert data == b"echo:message %d" % index
            assert tuple(source[:2]) == tuple(peer)
        assert echo.sources == {tuple(relayed)}  # the peer only ever saw the relayed address
    finally:
        turn.close()
        await asyncio.sleep(0.3)  # let aioice delete its allocation (Refresh lifetime 0)
        echo_transport.close()


@pytest.mark.asyncio
async def test_aioice_wrong_password_is_refused(relay: Relay) -> None:
    ice = relay.credentials("aioice")
    with pytest.raises(Exception) as failure:
        await create_turn_endpoint(
            Inbox,
            server_addr=("127.0.0.1", relay.port),
            username=ice["username"],
            password="wrong",
            transport="udp",
        )
    assert "401" in str(failure.value)


def test_relay_log_has_no_errors(relay: Relay) -> None:
    log_path = Path(relay.secret_file).parent / "turn-relay.log"
    assert " ERROR " not in log_path.read_text()
