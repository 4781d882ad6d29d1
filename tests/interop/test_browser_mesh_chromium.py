"""Relay-only group calls in headless Chromium through ``turn-relay`` with its default settings.

A mesh of 2, 4 and 6 participants from one address (127.0.0.1): one page per participant (its
own browser context) holding one RTCPeerConnection per other participant, signalling through a
WebSocket room on loopback, ``iceTransportPolicy: "relay"``. Every pair must open its data
channel within 30 s of the start, exchange its messages in order and select a relay<->relay
candidate pair over the URL's transport (udp, tcp, tls). A fresh relay per mesh, so one mesh's
challenges do not spend the next one's budget. Runs in a loopback-only namespace
(scripts/run-tests.sh).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from browser_relay_kit import (
    TRANSPORTS,
    challenge_counters,
    group_call,
    loopback_only,
    mesh_relay,
    relay_certificate,
    require,
)
from turnkit_testing.browsers import Chromium, chromium, chromium_available
from turnkit_testing.signaling import serve_signaling
from turnkit_testing.tls import CertFiles

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SIZES = (2, 4, 6)

require(chromium_available())
if not loopback_only():
    pytest.skip("needs a loopback-only network namespace: run under scripts/run-tests.sh",
                allow_module_level=True)  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return relay_certificate(tmp_path_factory.mktemp("mesh-tls"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(
    certs: CertFiles, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Chromium]:
    from browser_relay_kit import MeshRelay

    spki = MeshRelay(0, 0, 0, certs, Path()).spki_sha256()
    async with chromium(extra_args=[f"--ignore-certificate-errors-spki-list={spki}"]) as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def signaling() -> AsyncIterator[str]:
    async with serve_signaling() as url:
        yield url


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("size", SIZES)
async def test_chromium_relay_only_mesh(
    browser: Chromium,
    signaling: str,
    certs: CertFiles,
    tmp_path: Path,
    size: int,
    transport: str,
) -> None:
    with mesh_relay(tmp_path / "relay", certs) as relay:
        room = f"chromium-{size}-{transport}"
        call = await group_call([browser], signaling, relay, size, transport, room=room)
        assert not call.problems(), call.explain(relay)
    # every participant allocated once per other participant (Chromium: one per connection)
    assert call.grew("turnkit_relay_allocations_created_total") >= size * (size - 1), call.after
    times = call.outcome.connect_times()
    print(
        f"chromium {browser.version} mesh of {size} over {transport}: waited "
        f"{call.outcome.waited:.1f} s; pair connect ms {[round(t or -1) for t in times]}"
    )
    print(f"  relay counters {challenge_counters(call.after)}")
