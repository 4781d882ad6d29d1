"""An ICE restart through ``turn-relay`` in the middle of a relay-only call, data flowing.

Two Chromium participants (the mesh page, one context each) connect relay-only over UDP; the
caller then streams numbered messages every 10 ms on the reliable data channel, calls
``restartIce()`` and renegotiates (new ICE credentials, new offer and answer through the
signalling room), as a mesh app does when the network changes. The call must come back on a
relay<->relay pair gathered with the new credentials, and the callee must get every message, in
order, with some sent before the restart, some while it ran and some after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from browser_relay_kit import (
    RELAY_PORTS,
    challenge_counters,
    loopback_only,
    mesh_relay,
    relay_certificate,
    require,
)
from turnkit_testing.browsers import Chromium, chromium, chromium_available
from turnkit_testing.mesh import close_pages, open_pages, peer_names, run_mesh
from turnkit_testing.signaling import serve_signaling

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

INTERVAL_MS = 10
RESTART_DEADLINE = 15.0  # seconds for the restart to complete
STREAM_AFTER = 0.5  # seconds of messages after it

require(chromium_available())
if not loopback_only():
    pytest.skip("needs a loopback-only network namespace: run under scripts/run-tests.sh",
                allow_module_level=True)  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Chromium]:
    async with chromium() as started:
        yield started


def restarted(state: dict[str, Any], before: dict[str, Any]) -> bool:
    """New local and remote credentials applied, ICE connected again on a pair of the new
    generation (its local candidate carries the new ufrag)."""
    selected = state["selected"]
    return (
        state["ufrag"] != before["ufragBefore"]
        and state["remoteUfrag"] != before["remoteUfragBefore"]
        and state["signalingState"] == "stable"
        and state["iceConnectionState"] in ("connected", "completed")
        and selected is not None
        and selected["state"] == "succeeded"
        and selected["local"]["usernameFragment"] == state["ufrag"]
    )


async def test_ice_restart_keeps_the_data_channel(browser: Chromium, tmp_path: Path) -> None:
    certs = relay_certificate(tmp_path / "tls")
    async with serve_signaling() as url:
        with mesh_relay(tmp_path / "relay", certs) as relay:
            caller, callee = peer_names(2)
            servers = {
                peer: relay.ice_servers(f"restart-{peer}", "udp") for peer in (caller, callee)
            }
            pages = await open_pages([browser], url, 2)
            try:
                connected = await run_mesh(pages, servers, room="restart")
                assert not connected.problems("udp", RELAY_PORTS), connected.problems("udp")
                before_metrics = await relay.metrics()
                await pages[1].call("meshListen", {"remote": caller})
                await pages[0].call("meshStream", {"remote": callee, "intervalMs": INTERVAL_MS})
                await asyncio.sleep(0.3)
                before: dict[str, Any] = {}
                await pages[0].call("meshRestart", {"remote": callee})
                deadline = time.monotonic() + RESTART_DEADLINE
                while True:
                    report = await pages[0].call("meshReport")
                    before = report["links"][0]["restart"]
                    state = await pages[0].call("meshRestartState", {"remote": callee})
                    if restarted(state, before):
                        break
                    assert time.monotonic() < deadline, (
                        f"no restart within {RESTART_DEADLINE} s: {state}; "
                        f"{challenge_counters(await relay.metrics())}"
                    )
                    await asyncio.sleep(0.05)
                completed_at = state["seq"]
                await asyncio.sleep(STREAM_AFTER)
                sent = await pages[0].call("meshStopStream", {"remote": callee})
                deadline = time.monotonic() + 5.0
                while True:
                    stream = (await pages[1].call("meshReport"))["links"][0]["stream"]
                    if len(stream["received"]) >= sent or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)
                caller_stream = (await pages[0].call("meshReport"))["links"][0]["stream"]
                after_metrics = await relay.metrics()
            finally:
                await close_pages(pages)

    called_at = before["calledAtSeq"]
    assert caller_stream["notOpen"] == 0, caller_stream  # the channel never left "open"
    assert stream["received"] == list(range(sent)), (sent, stream["received"])
    assert 0 < called_at < completed_at < sent, (called_at, completed_at, sent)
    old, new = before["before"], state["selected"]
    for pair in (old, new):
        assert pair["local"]["candidateType"] == "relay", pair
        assert pair["remote"]["candidateType"] == "relay", pair
        assert pair["local"]["relayProtocol"] == "udp", pair
    assert new["local"]["usernameFragment"] != old["local"]["usernameFragment"], (old, new)
    # the restart gathered again: both sides allocated anew on the relay
    made = after_metrics["turnkit_relay_allocations_created_total"]
    assert made - before_metrics["turnkit_relay_allocations_created_total"] >= 2, after_metrics
    print(f"ice restart: {sent} messages, restart called at #{called_at}, back at "
          f"#{completed_at}; old pair {old['local']['port']}->{old['remote']['port']}, new "
          f"{new['local']['port']}->{new['remote']['port']}")  # fmt: skip
