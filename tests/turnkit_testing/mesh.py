"""Relay-only group calls between real browser pages: a full mesh of N participants.

Each participant is one page (``mesh_peer.html``) with one RTCPeerConnection and data channel per
other participant, ``iceTransportPolicy: "relay"``, signalling through `signaling`. All pages
join first, then start at once (``meshStart``): every pair begins negotiating at the same moment
and its connect time is when the data channel opened on both sides, in milliseconds after the
start. `MeshOutcome.problems` lists every pair that did not connect in time, lost or reordered a
message, or did not select a relay<->relay pair over the expected transport.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from .browsers import Browser, BrowserPage

POLL_INTERVAL = 0.25
MESSAGES = 10


def peer_names(size: int) -> list[str]:
    return [f"p{index}" for index in range(size)]


def expected_messages(sender: str, receiver: str, count: int) -> list[str]:
    return [f"{sender}>{receiver} {i}" for i in range(count)]


@dataclass
class MeshOutcome:
    peers: list[str]
    reports: dict[str, dict[str, Any]]  # peer -> meshReport()
    messages: int
    deadline_ms: float
    user_agents: dict[str, str] = field(default_factory=dict)
    waited: float = 0.0

    def link(self, peer: str, remote: str) -> dict[str, Any] | None:
        for link in self.reports.get(peer, {}).get("links", []):
            if link["remote"] == remote:
                found: dict[str, Any] = link
                return found
        return None

    def pairs(self) -> list[tuple[str, str]]:
        return list(combinations(self.peers, 2))

    def connect_ms(self, a: str, b: str) -> float | None:
        """When the pair's data channel was open on both sides (None: not on both)."""
        ends = [self.link(a, b), self.link(b, a)]
        opened = [end["openedMs"] for end in ends if end is not None]
        if len(opened) < 2 or any(value is None for value in opened):
            return None
        return float(max(opened))

    def connect_times(self) -> list[float | None]:
        return [self.connect_ms(a, b) for a, b in self.pairs()]

    def problems(
        self, relay_protocol: str, relay_ports: tuple[int, int] | None = None
    ) -> list[str]:
        found = [f"{peer}: {error}" for peer in self.peers for error in self._page_errors(peer)]
        for a, b in self.pairs():
            connect = self.connect_ms(a, b)
            if connect is None or connect > self.deadline_ms:
                found.append(f"{a}-{b}: not connected within {self.deadline_ms / 1000:.0f} s "
                             f"({self._state(a, b)}; {self._state(b, a)})")  # fmt: skip
                continue
            for peer, remote in ((a, b), (b, a)):
                found += self._link_problems(peer, remote, relay_protocol, relay_ports)
        return found

    def _page_errors(self, peer: str) -> list[str]:
        errors: list[str] = self.reports.get(peer, {}).get("errors", [])
        return errors

    def link_states(self) -> list[str]:
        """One line per link that lacks its messages: what its page saw of it."""
        return [
            f"  {self._state(peer, remote)}; received {len(link['received'])}, sent "
            f"{link['sent']}, done {link['doneMs']}"
            for a, b in self.pairs()
            for peer, remote in ((a, b), (b, a))
            if (link := self.link(peer, remote)) is not None and link["doneMs"] is None
        ]

    def _state(self, peer: str, remote: str) -> str:
        link = self.link(peer, remote)
        if link is None:
            return f"{peer} has no link to {remote}"
        return (
            f"{peer}: opened {link['openedMs']}, {link['connectionState']}, ice "
            f"{link['iceStates']}, {len(link['candidates'])} candidates, errors "
            f"{link['iceErrors'] + link['errors']}"
        )

    def _link_problems(
        self, peer: str, remote: str, relay_protocol: str, relay_ports: tuple[int, int] | None
    ) -> list[str]:
        link = self.link(peer, remote)
        assert link is not None
        where = f"{peer}->{remote}"
        found = [f"{where}: {error}" for error in link["errors"]]
        expected = expected_messages(remote, peer, self.messages)
        if link["received"][: self.messages] != expected:
            found.append(f"{where}: received {link['received']}, expected {expected}")
        types = {candidate["type"] for candidate in link["candidates"]}
        if types != {"relay"}:
            found.append(f"{where}: gathered candidate types {types}, expected only relay")
        pair = link["selected"]
        if pair is None:
            return [*found, f"{where}: no selected candidate pair"]
        local, other = pair["local"] or {}, pair["remote"] or {}
        if pair["state"] != "succeeded":
            found.append(f"{where}: selected pair {pair['state']}: {pair}")
        if local.get("candidateType") != "relay" or other.get("candidateType") != "relay":
            found.append(f"{where}: selected pair is not relay<->relay: {pair}")
        if local.get("relayProtocol") != relay_protocol:
            found.append(f"{where}: relayProtocol {local.get('relayProtocol')}, "
                         f"expected {relay_protocol}: {pair}")  # fmt: skip
        if relay_ports is not None:
            low, high = relay_ports
            for side in (local, other):
                if not low <= int(side.get("port") or 0) <= high:
                    found.append(f"{where}: relayed port outside {low}-{high}: {pair}")
        return found

    def done(self) -> bool:
        """Every link of every pair has its messages and its selected pair."""
        for a, b in self.pairs():
            for peer, remote in ((a, b), (b, a)):
                link = self.link(peer, remote)
                if link is None or link["doneMs"] is None or link["selected"] is None:
                    return False
                if link["selected"]["state"] != "succeeded":
                    return False
        return True


async def open_pages(browsers: Sequence[Browser], url: str, size: int) -> list[BrowserPage]:
    """``size`` pages of ``url``, spread round-robin over ``browsers``, opened concurrently."""
    opening = (browsers[index % len(browsers)].open_page(url) for index in range(size))
    return list(await asyncio.gather(*opening))


async def close_pages(pages: Sequence[BrowserPage]) -> None:
    for page in pages:
        await page.close()


async def run_mesh(
    pages: Sequence[BrowserPage],
    ice_servers: Mapping[str, list[dict[str, Any]]],
    *,
    room: str,
    messages: int = MESSAGES,
    deadline: float = 30.0,
) -> MeshOutcome:
    """Join every page to ``room``, start them together and wait until every link is done or
    ``deadline`` seconds after the start have passed (plus a little for stats)."""
    peers = peer_names(len(pages))
    outcome = MeshOutcome(peers, {}, messages, deadline * 1000)
    for page, peer in zip(pages, peers, strict=True):
        config = {"room": room, "peer": peer, "peers": peers, "messages": messages,
                  "iceServers": ice_servers[peer]}  # fmt: skip
        outcome.user_agents[peer] = await page.call("meshJoin", config)
    started = time.monotonic()
    await asyncio.gather(*(page.call("meshStart") for page in pages))
    while True:
        await poll(outcome, pages)
        if outcome.done() or time.monotonic() - started > deadline + 2.0:
            break
        await asyncio.sleep(POLL_INTERVAL)
    outcome.waited = time.monotonic() - started
    return outcome


async def poll(outcome: MeshOutcome, pages: Sequence[BrowserPage]) -> None:
    for page, peer in zip(pages, outcome.peers, strict=True):
        outcome.reports[peer] = await page.call("meshReport")


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(share * len(ordered))))
    return ordered[rank - 1]
