"""Two aiortc RTCPeerConnections, relay-only, with credentials minted by ``turn-relay
credentials``, open a data channel through ``turn-relay`` and echo messages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)
from turn_interop_kit import Relay, relay_process

pytestmark = pytest.mark.interop

MESSAGES = 20


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    with relay_process(tmp_path_factory.mktemp("aiortc")) as running:
        yield running


def relay_only(ice: dict[str, Any]) -> RTCConfiguration:
    server = RTCIceServer(urls=ice["urls"], username=ice["username"], credential=ice["credential"])
    return RTCConfiguration(iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY)


def candidate_types(sdp: str) -> set[str]:
    return {line.split(" typ ")[1].split()[0] for line in sdp.splitlines() if " typ " in line}


@pytest.mark.asyncio
async def test_data_channel_echo_through_the_relay(relay: Relay) -> None:
    caller = RTCPeerConnection(relay_only(relay.credentials("caller")))
    callee = RTCPeerConnection(relay_only(relay.credentials("callee")))
    echoed: asyncio.Queue[str] = asyncio.Queue()
    opened = asyncio.Event()

    @callee.on("datachannel")
    def on_datachannel(channel: RTCDataChannel) -> None:
        @channel.on("message")
        def on_message(message: Any) -> None:
            channel.send(f"echo:{message}")

    channel = caller.createDataChannel("echo")

    @channel.on("open")
    def on_open() -> None:
        opened.set()

    @channel.on("message")
    def on_message(message: Any) -> None:
        echoed.put_nowait(str(message))

    try:
        await caller.setLocalDescription(await caller.createOffer())
        assert caller.localDescription is not None
        assert candidate_types(caller.localDescription.sdp) == {"relay"}
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        assert callee.localDescription is not None
        assert candidate_types(callee.localDescription.sdp) == {"relay"}
        await caller.setRemoteDescription(callee.localDescription)
        await asyncio.wait_for(opened.wait(), 20)
        for index in range(MESSAGES):
            channel.send(f"hello {index}")
            assert await asyncio.wait_for(echoed.get(), 10) == f"echo:hello {index}"
    finally:
        await caller.close()
        await callee.close()
