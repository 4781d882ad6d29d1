"""``turn-relay serve`` as a process: flags, SIGHUP reloads secrets, SIGTERM stops cleanly;
and the HTTP API serving credentials and the relay's metrics."""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from relay_harness import (
    REALM,
    WireClient,
    echo_peer,
    free_port,
    port_is_free,
    relay_config,
    wait_until_answering,
)

from stun_server.wire import MessageClass, Method
from stun_server.wire import attributes as attrs
from turn_relay.auth.credentials import issue
from turn_relay.config import ApiConfig, Secrets
from turn_relay.shell.server import RelayServer

pytestmark = pytest.mark.asyncio

TURN_RELAY = str(Path(sys.executable).parent / "turn-relay")


def credential(secret: str) -> tuple[str, str]:
    issued = issue(secret, "proc", 600, time.time())
    return issued.username, issued.password


async def test_serve_reloads_on_sighup_and_stops_on_sigterm(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("old-secret\n")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        TURN_RELAY, "serve", "--realm", REALM, "--listen", "127.0.0.1", "--port", str(port),
        "--secret-file", str(secrets), "--allowed-peer", "127.0.0.0/8",
        "--port-range", "24200-24299",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_until_answering(port)
        async with echo_peer() as (peer, _):
            old = await WireClient.over_udp(("127.0.0.1", port), credential("old-secret"))
            relayed = await old.allocate()
            await old.bind(0x4000, peer)
            secrets.write_text("new-secret\n")
            process.send_signal(signal.SIGHUP)
            new = await WireClient.over_udp(("127.0.0.1", port), credential("new-secret"))

            async def new_secret_works() -> bool:
                new.nonce = None
                response = await new.request(Method.ALLOCATE, attrs.RequestedTransport(17))
                return response.cls is MessageClass.SUCCESS

            deadline = time.monotonic() + 5
            while not await new_secret_works():
                assert time.monotonic() < deadline, "SIGHUP did not load the new secret"
                await asyncio.sleep(0.1)
            old.channel_data(0x4000, b"still here")  # the old allocation survived the reload
            assert await old.receive() == b"\x40\x00\x00\x0fecho:still here"
            stale = await WireClient.over_udp(("127.0.0.1", port), credential("old-secret"))
            stale_response = await stale.request(Method.ALLOCATE, attrs.RequestedTransport(17))
            assert stale_response.get(attrs.ErrorCode) == attrs.ErrorCode(401)
            for client in (old, new, stale):
                await client.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert port_is_free(relayed[1]) and port_is_free(port)
        assert process.stderr is not None
        log = (await process.stderr.read()).decode()
        assert "reloaded secrets: 1 REST secret(s)" in log
        assert "relay stopping" in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_refuses_to_start_without_credentials() -> None:
    process = await asyncio.create_subprocess_exec(
        TURN_RELAY, "serve", "--port", str(free_port()), "--port-range", "24200-24299",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert b"no credentials" in output


async def test_api_issues_working_credentials_and_serves_relay_metrics() -> None:
    api_port = free_port()
    config = relay_config()
    url = f"turn:127.0.0.1:{config.listen.udp_port}?transport=udp"
    api = ApiConfig(enabled=True, listen="127.0.0.1", port=api_port, urls=(url,))
    config = replace(config, api=api)
    key = "k" * 20
    server = RelayServer(config, Secrets(rest_secrets=("api-secret",), api_key=key))
    await server.start()
    try:
        base = f"http://127.0.0.1:{api_port}"
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/credentials?user=web", headers=headers) as reply:
                assert reply.status == 200
                ice = await reply.json()
            assert ice["urls"] == [url]
            client = await WireClient.over_udp(
                ("127.0.0.1", config.listen.udp_port), (ice["username"], ice["credential"])
            )
            await client.allocate()
            async with session.get(f"{base}/metrics") as reply:
                text = await reply.text()
            await client.close()
        assert "turnkit_relay_allocations_active 1" in text
        # the 401 that starts every login is a challenge, not a failure
        assert "\nturnkit_relay_auth_challenges_total 1.0\n" in text
        assert "# HELP turnkit_relay_auth_challenges_total " in text
        assert "# HELP turnkit_relay_auth_failures_total " in text
        assert 'turnkit_relay_auth_failures_total{reason="bad-integrity"} 0.0' in text
        assert 'turnkit_relay_stale_nonces_total{reason="stale-nonce"} 0.0' in text
        assert "turnkit_api_credentials_issued_total 1" in text
    finally:
        await server.stop()


async def test_api_from_flags_alone_hands_out_the_listen_address() -> None:
    """``serve --api-port N --api-key-file K`` with no --config and no --public-host: the URLs
    name the (specific) listen address, they work, and the 401 challenge of each healthy login
    is not counted as an auth failure (a user test with Chromium found both wrong)."""
    port, api_port = free_port(), free_port()
    key = "flags-only-api-key-0123"
    with tempfile.TemporaryDirectory() as directory:
        secrets, key_file = Path(directory, "rest-secret"), Path(directory, "api-key")
        secrets.write_text("flags-secret\n")
        key_file.write_text(key + "\n")
        process = await asyncio.create_subprocess_exec(
            TURN_RELAY, "serve", "--realm", REALM, "--listen", "127.0.0.1", "--port", str(port),
            "--secret-file", str(secrets), "--port-range", "24300-24399",
            "--api-port", str(api_port), "--api-key-file", str(key_file),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await wait_until_answering(port)
            base, headers = f"http://127.0.0.1:{api_port}", {"Authorization": f"Bearer {key}"}
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/credentials?user=web", headers=headers) as reply:
                    assert reply.status == 200, await reply.text()
                    ice = await reply.json()
                assert ice["urls"] == [
                    f"turn:127.0.0.1:{port}?transport=udp",
                    f"turn:127.0.0.1:{port}?transport=tcp",
                ]
                good = await WireClient.over_udp(
                    ("127.0.0.1", port), (ice["username"], ice["credential"])
                )
                await good.allocate()
                bad = await WireClient.over_udp(("127.0.0.1", port), (ice["username"], "wrong"))
                refused = await bad.request(Method.ALLOCATE, attrs.RequestedTransport(17))
                assert refused.get(attrs.ErrorCode) == attrs.ErrorCode(401)
                for client in (good, bad):
                    await client.close()
                async with session.get(f"{base}/metrics") as reply:
                    text = await reply.text()
            assert "\nturnkit_relay_auth_challenges_total 2.0\n" in text  # one per login
            assert 'turnkit_relay_auth_failures_total{reason="bad-integrity"} 1.0\n' in text
            failures = [
                line
                for line in text.splitlines()
                if line.startswith("turnkit_relay_auth_failures_total")
                and not line.endswith(" 0.0")
            ]
            assert failures == ['turnkit_relay_auth_failures_total{reason="bad-integrity"} 1.0']
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 10) == 0
            assert process.stderr is not None
            log = (await process.stderr.read()).decode()
            assert f"HTTP API on http://127.0.0.1:{api_port}" in log
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
