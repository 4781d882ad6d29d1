"""Four browsers behind one NAT (one public address) in a relay-only group call through turn-relay.

A lab of its own: one port-restricted cone site with four client namespaces behind one public
address (203.0.113.14). In ``inet``: our turn-relay on 203.0.113.1 with its default settings
(the lab's ranges allowed as peers) and the signalling relay (`turnkit_testing.signaling`, a
process). In each client namespace: its own headless Chromium (``ip netns exec``, driven over
Playwright's pipe), one participant page each. The four form a full mesh (six pairs, twelve
allocations, all from one public address): every pair within 30 s, messages in order, a
relay<->relay pair over UDP, and every relay candidate's mapped address is the NAT's public one.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import pytest_asyncio
from turnkit_testing.browsers import Chromium, chromium, chromium_available
from turnkit_testing.mesh import close_pages, open_pages, peer_names, run_mesh

from turn_relay.auth.credentials import issue

from .lab import Lab, NatType, Site, unavailable_reason, venv_script

pytestmark = [pytest.mark.natlab, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SECRET = "natlab-group-call"
RELAY_PORT = 3478
SIGNALING_PORT = 8080
BROWSERS = 4  # separate hosts behind one NAT, one Chromium each
LAB_PEERS = ("203.0.113.0/24", "198.51.100.0/24", "198.18.0.0/15", "100.64.0.0/10")
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def office() -> Iterator[Lab]:
    """One NAT site with four clients (its own lab: the shared one has one client per site)."""
    reason = unavailable_reason() or chromium_available()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with Lab([NatType.PORT_RESTRICTED], clients_per_site=BROWSERS) as lab:
        yield lab


@pytest.fixture(scope="module")
def servers(office: Lab) -> Iterator[str]:
    """turn-relay and the signalling relay in ``inet``; yields the page URL."""
    secret_file = office.workdir / "group-call-secret"
    secret_file.write_text(SECRET + "\n")
    relay = office.popen(office.inet, [
        venv_script("turn-relay"), "serve", "--listen", office.server_addr,
        "--port", str(RELAY_PORT), "--relay-address", office.server_addr,
        "--secret-file", str(secret_file),
        *(arg for net in LAB_PEERS for arg in ("--allowed-peer", net)),
    ], name="turn-relay-group-call")  # fmt: skip
    signaling = office.popen(
        office.inet,
        [sys.executable, "-m", "turnkit_testing.signaling", "--host", office.server_addr,
         "--port", str(SIGNALING_PORT), "--lifetime", "300"],
        name="signaling", env={**os.environ, "PYTHONPATH": str(TESTS)},
    )  # fmt: skip
    try:
        office.wait_listening(office.inet, RELAY_PORT, addr=office.server_addr)
        office.wait_listening(office.inet, SIGNALING_PORT, proto="tcp", addr=office.server_addr)
        yield f"http://{office.server_addr}:{SIGNALING_PORT}/"
    finally:
        office.stop(signaling)
        office.stop(relay)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browsers(
    office: Lab, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[Chromium]]:
    site = office.sites[NatType.PORT_RESTRICTED]
    workdir = tmp_path_factory.mktemp("office-browsers")
    async with AsyncExitStack() as stack:
        started = [
            await stack.enter_async_context(
                chromium(
                    command_prefix=office.command(client, []),
                    workdir=workdir,
                    reachable_hosts=(office.server_addr,),
                )
            )
            for client in site.clients
        ]
        yield started


def office_site(lab: Lab) -> Site:
    return lab.sites[NatType.PORT_RESTRICTED]


async def test_four_browsers_behind_one_nat_call_through_the_relay(
    office: Lab, servers: str, browsers: list[Chromium]
) -> None:
    site = office_site(office)
    assert len({client.addr for client in site.clients}) == BROWSERS  # four separate hosts
    url = f"turn:{office.server_addr}:{RELAY_PORT}?transport=udp"
    ice = {}
    for peer in peer_names(BROWSERS):
        credential = issue(SECRET, f"office-{peer}", ttl=600, now=time.time())
        ice[peer] = [{"urls": [url], "username": credential.username,
                      "credential": credential.password}]  # fmt: skip
    pages = await asyncio.wait_for(open_pages(browsers, servers, BROWSERS), 60)
    try:
        outcome = await run_mesh(pages, ice, room="office")
    finally:
        await close_pages(pages)
    problems = outcome.problems("udp")
    relay_log = office.read_log(next(iter(office.processes())))
    assert not problems, "\n".join([*problems, f"connect ms {outcome.connect_times()}",
                                    relay_log[-2000:]])  # fmt: skip
    # the NAT's own record: all four hosts reached the relay, each seen as the one public address
    flows = office.run(site.router, ["conntrack", "-L", "-p", "udp", "--dport", str(RELAY_PORT)],
                       check=True).stdout.splitlines()  # fmt: skip
    inside, seen_as = set(), set()
    for flow in flows:
        fields = [part.partition("=") for part in flow.split() if "=" in part]
        sources = [value for key, _, value in fields if key == "src"]
        targets = [value for key, _, value in fields if key == "dst"]
        inside.add(sources[0])
        seen_as.add(targets[1])  # the reply's destination: the address the relay answered
    assert inside == {client.addr for client in site.clients}, flows
    assert seen_as == {site.public_addr}, flows
    print(f"office of {BROWSERS} behind {site.public_addr}: pair connect ms "
          f"{[round(t or -1) for t in outcome.connect_times()]}")  # fmt: skip
