"""The check page's ``relay_observed`` with one worker process and with two: the HTTP API runs
in the parent when there are workers, each allocation lives in the worker its client's 5-tuple
reached, so the parent asks every worker what it saw of the test (`turn-relay serve` through
its CLI, a report uploaded as the page would, read back over the API)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from relay_harness import WireClient, echo_peer
from test_relay_admin import API_KEY, relay_process
from turnkit_testing.report_documents import report

from stun_server.wire import MessageClass
from turn_relay.auth.links import mint
from turn_relay.reports.result_id import new_result_id

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
LINK_SECRET = "check-workers-link-secret-0123456789"
CLIENTS = 4


def check_config(directory: Path) -> Path:
    (directory / "link-secrets").write_text(LINK_SECRET + "\n")
    config = directory / "check.toml"
    config.write_text(
        f'[check]\nlink_secrets_file = "{directory / "link-secrets"}"\n'
        'public_url = "http://127.0.0.1:8443"\n'
    )
    return config


async def get_json(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as reply:
        assert reply.status == 200, await reply.text()
        found: dict[str, Any] = await reply.json()
        return found


def source_port(client: WireClient) -> int:
    assert client.udp is not None
    port: int = client.udp.get_extra_info("sockname")[1]
    return port


@pytest.mark.parametrize("workers", [1, 2])
async def test_relay_observed_names_every_allocation_of_the_test(
    tmp_path: Path, workers: int
) -> None:
    config = check_config(tmp_path)
    extra = ("--config", str(config), "--workers", str(workers))
    async with relay_process(tmp_path, *extra) as relay, echo_peer() as (peer, _):
        test_id = new_result_id()
        token = mint(LINK_SECRET, test_id, int(time.time()) + 600, None, time.time())
        page = await get_json(f"{relay.api}/check/{token}/config")
        credential = (page["username"], page["credential"])
        clients = [
            await WireClient.over_udp(("127.0.0.1", relay.port), credential) for _ in range(CLIENTS)
        ]
        ports = sorted(source_port(client) for client in clients)
        try:
            for index, client in enumerate(clients):
                await client.allocate()
                assert (await client.bind(0x4000, peer)).cls is MessageClass.SUCCESS
                client.channel_data(0x4000, b"check-%d" % index)
                assert (await client.receive())[4:] == b"echo:check-%d" % index
            body = json.dumps(report(source="browser")).encode()
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{relay.api}/check/{token}/report", data=body) as reply,
            ):
                assert reply.status == 200, await reply.text()
                stored = await reply.json()
        finally:
            for client in clients:
                await client.close()
        headers = {"Authorization": f"Bearer {API_KEY}"}
        found = await get_json(f"{relay.api}/reports/{stored['id']}", headers)
    observed = found["report"]["relay_observed"]
    assert observed["test_id"] == test_id
    allocations = observed["allocations"]
    assert sorted(a["client_port"] for a in allocations) == ports
    assert {a["transport"] for a in allocations} == {"udp"}
    assert all(a["bytes_to_peers"] == a["bytes_from_peers"] - 5 > 0 for a in allocations)
