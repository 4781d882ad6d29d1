"""IPv6 and dual-stack through the real shell (skipped where ::1 cannot be bound)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, cast

import pytest
from relay_harness import WireClient, relay_config, running
from turnkit_testing import ipv6_loopback_available

from stun_server.wire import attributes as attrs
from turn_relay.config import ListenConfig, QuotaConfig, RelayConfig
from turn_relay.core.allocation import FAMILY_IPV6, Transport

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback"),
]


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(b"echo:" + data, addr)


async def test_ipv6_client_dual_allocation_and_ipv6_peer() -> None:
    base = relay_config()
    port = base.listen.udp_port
    config = replace(
        base,
        listen=ListenConfig(("127.0.0.1", "::1"), port, port, 0),
        relay=RelayConfig(("127.0.0.1", "::1"), 24000, 24199),
        peer_policy=replace(base.peer_policy, allowed_peers=("127.0.0.0/8", "::1/128")),
    )
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("::1", 0))
    v6_peer = echo.get_extra_info("sockname")[:2]
    async with running(config) as server:
        assert ("::1", port) in server.listening(Transport.UDP)
        client = await WireClient.over_udp(("::1", port))
        relayed = await client.allocate(attrs.AdditionalAddressFamily(FAMILY_IPV6))
        assert relayed[0] == "127.0.0.1"
        assert len(server.relays) == 2
        await client.bind(0x4000, (v6_peer[0], v6_peer[1]))
        client.channel_data(0x4000, b"six")
        assert await client.receive() == b"\x40\x00\x00\x08echo:six"
        client.send_indication((v6_peer[0], v6_peer[1]), b"ind")
        assert await client.receive() == b"\x40\x00\x00\x08echo:ind"  # channel bound: ChannelData
        await client.close()
    echo.close()


async def test_bandwidth_cap_turns_the_fast_path_off() -> None:
    config = replace(relay_config(), quotas=QuotaConfig(max_bandwidth_per_allocation=100_000))
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    peer = echo.get_extra_info("sockname")[:2]
    async with running(config) as server:
        client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        await client.allocate()
        await client.bind(0x4000, peer)
        assert all(not listener.routes for listener in server.udp_listeners.values())
        client.channel_data(0x4000, b"x")
        assert await client.receive() == b"\x40\x00\x00\x06echo:x"
        assert server.core.stats.packets_to_peer == 1 and server.stats.packets_to_peer == 0
        await client.close()
    echo.close()
