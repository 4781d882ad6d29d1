"""Relay-only group calls in headless Firefox ESR through ``turn-relay`` with its default settings.

Firefox is a second, independent TURN client (its own ICE and TURN stack). The same mesh as
test_browser_mesh_chromium.py: one window per participant, one RTCPeerConnection per other
participant, ``iceTransportPolicy: "relay"``, meshes of 2 and 4 from 127.0.0.1 over UDP, TCP and
TLS; every pair within 30 s, messages in order, a relay<->relay pair over the URL's transport.
For ``turns:`` the relay's test CA is trusted in the fresh profile's own NSS database
(certutil), so Firefox checks the chain and the name as it would for any server; the URL names
``localhost``, because Firefox ESR 153 gathers nothing, and reports no candidate error, for
``turns:`` with an IP address.
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
from turnkit_testing import free_port
from turnkit_testing.browsers import Firefox, firefox, firefox_available
from turnkit_testing.signaling import serve_signaling
from turnkit_testing.tls import CertFiles

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SIZES = (2, 4)

require(firefox_available())
if not loopback_only():
    pytest.skip("needs a loopback-only network namespace: run under scripts/run-tests.sh",
                allow_module_level=True)  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return relay_certificate(tmp_path_factory.mktemp("mesh-tls"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(
    certs: CertFiles, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Firefox]:
    workdir = tmp_path_factory.mktemp("firefox")
    async with firefox(workdir=workdir, marionette_port=free_port(), trusted_ca=certs.ca) as ff:
        yield ff


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def signaling() -> AsyncIterator[str]:
    async with serve_signaling() as url:
        yield url


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("size", SIZES)
async def test_firefox_relay_only_mesh(
    browser: Firefox, signaling: str, certs: CertFiles, tmp_path: Path, size: int, transport: str
) -> None:
    with mesh_relay(tmp_path / "relay", certs) as relay:
        room = f"firefox-{size}-{transport}"
        call = await group_call(
            [browser], signaling, relay, size, transport, room=room, tls_host="localhost"
        )
        assert not call.problems(), call.explain(relay)
    assert call.grew("turnkit_relay_allocations_created_total") >= size * (size - 1), call.after
    times = call.outcome.connect_times()
    rounded = [round(t or -1) for t in times]
    waited = call.outcome.waited
    print(f"firefox {browser.version} mesh of {size} over {transport}: waited {waited:.1f} s")
    print(f"  pair connect ms {rounded}")
    print(f"  relay counters {challenge_counters(call.after)}")
