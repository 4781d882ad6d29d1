"""Both roles of a peer test: the leader runs the legs, the follower answers them.

The protocol (shared with the browser party, turn_relay/api/static/peer/peer.js), over the
relay's rendezvous room:

1. Each party sends ``{"type": "ready", "party": {"kind", "agent", "can_restart_ice"}}`` once
   it knows the other is there (the follower at once, the leader on ``peer-joined``).
2. For each leg the leader sends ``{"type": "offer", "leg", "sdp", "policy", "urls"}``; the
   follower builds a peer connection with that policy and those URLs (and the room's TURN
   credentials) and answers ``{"type": "answer", "leg", "sdp"}``; both trickle
   ``{"type": "candidate", "leg", "candidate": {candidate, sdpMid, sdpMLineIndex} | null}``.
   The legs connect at the same time; they measure one at a time (`measure`).
3. When a leg is over the leader sends ``{"type": "result", "leg", "done": true}``; the
   follower answers with what it saw (``gathered``, its ``pair``) and closes that leg.
4. The leader sends ``{"type": "result", "final": true, "legs": [...], "parties": {...}}``; the
   relay answers both with ``{"type": "verdict", ...}`` (see `turn_relay.api.peer_verdict`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import aiohttp

from .connection import ICE_RESTART_UNSUPPORTED, LegConfig, LegConnection, relay_protocol_of
from .measure import Echo, measure
from .signaling import Message, PeerTestError, Rendezvous, next_message

RELAY_LEGS = ("relay-udp", "relay-tcp", "relay-tls")
FOLLOWER_REPORT_WAIT_S = 3.0
VERDICT_WAIT_S = 15.0


@dataclass(frozen=True)
class PeerOptions:
    relay: str
    leg_timeout: float = 12.0
    wait_for_peer: float = 300.0
    pings: int = 50
    ping_interval: float = 0.01
    bulk_s: float = 0.3
    tls: ssl.SSLContext | None = None


@dataclass
class PeerOutcome:
    role: str
    room: str
    verdict: Message | None = None
    legs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def api_connector(tls: ssl.SSLContext | None) -> aiohttp.TCPConnector:
    """The relay's API (an https:// one signed by a private CA: ``tls`` trusts it)."""
    return aiohttp.TCPConnector(ssl=tls if tls is not None else True)


def party_description() -> dict[str, Any]:
    versions = {}
    for package in ("turnkit", "aiortc"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    agent = f"rtccheck {versions['turnkit']} (aiortc {versions['aiortc']})"
    return {"kind": "cli", "agent": agent, "can_restart_ice": False}


async def run_peer(token: str, options: PeerOptions) -> PeerOutcome:
    """Join the room of ``token`` and take part until the verdict (or an error)."""
    async with aiohttp.ClientSession(connector=api_connector(options.tls)) as session:
        rendezvous = await Rendezvous.join(session, options.relay, token)
        outcome = PeerOutcome(rendezvous.role, str(rendezvous.joined.get("room")))
        try:
            if rendezvous.role == "leader":
                await _lead(rendezvous, options, outcome)
            else:
                await _follow(rendezvous, options, outcome)
        except PeerTestError as error:
            outcome.error = str(error)
        finally:
            await rendezvous.close()
        return outcome


def _credentials(joined: Message) -> tuple[str, str]:
    servers = joined.get("ice_servers") or []
    if not servers:
        raise PeerTestError("the relay handed out no TURN credentials (no REST secret?)")
    return str(servers[0]["username"]), str(servers[0]["credential"])


# ------------------------------------------------------------------ leader


def plan_legs(joined: Message) -> list[LegConfig]:
    legs: dict[str, str] = dict(joined.get("legs") or {})
    stun = tuple(joined.get("stun_urls") or ())
    turn_udp = (legs["relay-udp"],) if "relay-udp" in legs else ()
    planned = [LegConfig("all", "all", stun + turn_udp, "udp" if turn_udp else None)]
    planned += [
        LegConfig(name, "relay", (legs[name],), relay_protocol_of(legs[name]))
        for name in RELAY_LEGS
        if name in legs
    ]
    return planned


async def _wait_for_follower(rendezvous: Rendezvous, options: PeerOptions) -> Message:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.wait_for_peer
    while True:
        message = await rendezvous.control_message(max(deadline - loop.time(), 0.01))
        if message.get("type") == "ready" and isinstance(message.get("party"), dict):
            return dict(message["party"])
        if message.get("type") == "peer-joined":
            await rendezvous.send({"type": "ready", "party": party_description()})
        elif message.get("type") == "peer-left":
            raise PeerTestError("the other party left before the test started")


async def _lead(rendezvous: Rendezvous, options: PeerOptions, outcome: PeerOutcome) -> None:
    follower = await _wait_for_follower(rendezvous, options)
    credentials = _credentials(rendezvous.joined)
    measuring = asyncio.Lock()
    legs = plan_legs(rendezvous.joined)
    results = await asyncio.gather(
        *(_lead_leg(rendezvous, leg, credentials, options, measuring) for leg in legs)
    )
    outcome.legs = [*results, _restart_skipped(follower)]
    _raise_if_peer_left(rendezvous)
    parties = {"leader": party_description(), "follower": follower}
    await rendezvous.send(
        {"type": "result", "final": True, "legs": outcome.legs, "parties": parties}
    )
    outcome.verdict = await _verdict(rendezvous)


def _restart_skipped(follower: Message) -> dict[str, Any]:
    reason = ICE_RESTART_UNSUPPORTED
    if follower.get("kind") == "cli":
        reason += " (both parties are CLI parties)"
    return {"leg": "ice-restart", "status": "skipped", "error": reason}


def _raise_if_peer_left(rendezvous: Rendezvous) -> None:
    while not rendezvous.control.empty():
        item = rendezvous.control.get_nowait()
        if isinstance(item, dict) and item.get("type") == "peer-left":
            raise PeerTestError("the other party left in the middle of the test")
        if not isinstance(item, dict):
            raise PeerTestError(f"the rendezvous connection ended: {item.reason}")


async def _verdict(rendezvous: Rendezvous) -> Message:
    while True:
        message = await rendezvous.control_message(VERDICT_WAIT_S)
        if message.get("type") == "verdict":
            return message
        if message.get("type") == "peer-left":
            continue  # the verdict goes to whoever is still there


@dataclass
class _LeaderInbox:
    """A leg's messages on the leader's side, after the answer: candidates and the follower's
    report."""

    leg: LegConnection
    report: asyncio.Future[Message]

    async def pump(self, rendezvous: Rendezvous, name: str) -> None:
        queue = rendezvous.leg_queue(name)
        while True:
            message = await next_message(queue, 3600, "the other party")
            if message.get("type") == "candidate":
                await self.leg.add_candidate(message.get("candidate"))
            elif message.get("type") == "result" and not self.report.done():
                self.report.set_result(message)


async def _lead_leg(
    rendezvous: Rendezvous,
    config: LegConfig,
    credentials: tuple[str, str],
    options: PeerOptions,
    measuring: asyncio.Lock,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    leg = LegConnection.create(config, *credentials, options.tls)
    inbox = _LeaderInbox(leg, loop.create_future())
    pump: asyncio.Task[None] | None = None
    result: dict[str, Any] = {"leg": config.name, "url": _leg_url(config), "status": "failed"}
    started = loop.time()
    try:
        async with asyncio.timeout(options.leg_timeout):
            leg.open_channels()
            sdp = await leg.offer()
            offer = {"type": "offer", "leg": config.name, "sdp": sdp, **config.as_message()}
            await rendezvous.send(offer)
            answer = await next_message(rendezvous.leg_queue(config.name), 3600, "the follower")
            await leg.accept_answer(str(answer.get("sdp", "")))
            pump = asyncio.create_task(inbox.pump(rendezvous, config.name))
            await leg.channel_ready.wait()
        result["connect_ms"] = round((loop.time() - started) * 1000, 1)
        result["pair"] = leg.selected_pair()
        async with measuring:
            measured = await measure(leg, options.pings, options.ping_interval, options.bulk_s)
        result.update(measured.metrics())
        result["status"] = "connected" if measured.pings_received else "failed"
        result["error"] = measured.error or (None if measured.pings_received else "no data")
    except TimeoutError:
        result["error"] = f"no connection within {options.leg_timeout:g} s"
    except PeerTestError as error:
        result["error"] = str(error)
    finally:
        result["gathered"] = {"leader": leg.gathered()}
        follower = await _follower_report(rendezvous, config.name, inbox, pump)
        if follower is not None:
            result["gathered"]["follower"] = follower.get("gathered") or []
        await leg.close()
    return result


def _leg_url(config: LegConfig) -> str | None:
    turn = [url for url in config.urls if url.startswith("turn")]
    return turn[0] if turn and config.policy == "relay" else None


async def _follower_report(
    rendezvous: Rendezvous, name: str, inbox: _LeaderInbox, pump: asyncio.Task[None] | None
) -> Message | None:
    if pump is None:
        pump = asyncio.create_task(inbox.pump(rendezvous, name))
    try:
        with contextlib.suppress(PeerTestError):
            await rendezvous.send({"type": "result", "leg": name, "done": True})
        async with asyncio.timeout(FOLLOWER_REPORT_WAIT_S):
            return await asyncio.shield(inbox.report)
    except TimeoutError:
        return None
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, PeerTestError):
            await pump


# ------------------------------------------------------------------ follower


@dataclass
class _FollowerLeg:
    leg: LegConnection
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    pending: list[object] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


async def _follow(rendezvous: Rendezvous, options: PeerOptions, outcome: PeerOutcome) -> None:
    await rendezvous.send({"type": "ready", "party": party_description()})
    credentials = _credentials(rendezvous.joined)
    legs: dict[str, _FollowerLeg] = {}
    try:
        while True:
            message = await rendezvous.control_message(options.wait_for_peer)
            kind = message.get("type")
            if kind == "verdict":
                outcome.verdict = message
                return
            if kind == "peer-left":
                raise PeerTestError("the other party left in the middle of the test")
            await _follower_message(rendezvous, message, legs, credentials, options)
    finally:
        for entry in legs.values():
            if entry.task is not None:
                entry.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.task
            await entry.leg.close()


async def _follower_message(
    rendezvous: Rendezvous,
    message: Message,
    legs: dict[str, _FollowerLeg],
    credentials: tuple[str, str],
    options: PeerOptions,
) -> None:
    kind, name = message.get("type"), message.get("leg")
    if not isinstance(name, str):
        return
    entry = legs.get(name)
    if kind == "offer" and entry is None:
        config = _offered_config(name, message)
        entry = legs[name] = _FollowerLeg(LegConnection.create(config, *credentials, options.tls))
        echo = Echo(asyncio.get_running_loop().time)
        entry.leg.pc.on("datachannel", echo.attach)
        entry.task = asyncio.create_task(_answer(rendezvous, entry, str(message.get("sdp", ""))))
    elif kind == "candidate" and entry is not None:
        if entry.answered.is_set():
            await entry.leg.add_candidate(message.get("candidate"))
        else:
            entry.pending.append(message.get("candidate"))
    elif kind == "result" and message.get("done") and entry is not None:
        report = {
            "type": "result",
            "leg": name,
            "side": "follower",
            "gathered": entry.leg.gathered(),
            "pair": entry.leg.selected_pair(),
        }
        await rendezvous.send(report)
        await entry.leg.close()


def _offered_config(name: str, message: Message) -> LegConfig:
    urls = tuple(str(url) for url in message.get("urls") or () if isinstance(url, str))
    turn = [url for url in urls if url.startswith("turn")]
    policy = "relay" if message.get("policy") == "relay" else "all"
    return LegConfig(name, policy, urls, relay_protocol_of(turn[0]) if turn else None)


async def _answer(rendezvous: Rendezvous, entry: _FollowerLeg, offer_sdp: str) -> None:
    sdp = await entry.leg.answer(offer_sdp)
    await rendezvous.send({"type": "answer", "leg": entry.leg.config.name, "sdp": sdp})
    entry.answered.set()
    for candidate in entry.pending:
        await entry.leg.add_candidate(candidate)
    entry.pending.clear()
