"""One leg's aiortc peer connection: configuration, signaling, selected pair, data channels.

aiortc does not trickle its own candidates (its SDP carries all of them after gathering) but
accepts trickled ones from a browser with ``addIceCandidate``. It reaches TURN over TLS through
aioice with ``ssl.create_default_context()``; for a private CA (``--ca-file``) the context is
put on the gatherer's aioice connection before gathering, as rtccheck's data check does.

aiortc 1.16 cannot restart ICE: there is no ``restartIce()``, `RTCIceTransport.start` runs once
(a second call returns at once), the gatherer's ufrag and password are fixed for its life and a
remote description with new ICE credentials is not applied to the running aioice connection
(its checks would be refused as a wrong USERNAME). `ICE_RESTART_UNSUPPORTED` says so in reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from typing import Any

from aioice import Candidate
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

ICE_RESTART_UNSUPPORTED = (
    "aiortc 1.16 (the CLI party) cannot restart ICE: no restartIce(), RTCIceTransport.start() "
    "runs once and new ICE credentials in a renegotiation are not applied"
)
PROBE_LABEL = "probe"
CONTROL_LABEL = "control"


@dataclass(frozen=True)
class LegConfig:
    """What the leader tells the follower in its offer, and how both configure the leg."""

    name: str
    policy: str  # "all" or "relay"
    urls: tuple[str, ...]  # stun: and turn(s): URLs of this leg
    relay_protocol: str | None  # "udp", "tcp" or "tls" for the leg's TURN URL

    def as_message(self) -> dict[str, Any]:
        return {"policy": self.policy, "urls": list(self.urls)}


def relay_protocol_of(url: str) -> str:
    if url.startswith("turns:"):
        return "tls"
    return "tcp" if url.endswith("transport=tcp") else "udp"


def rtc_configuration(config: LegConfig, username: str, credential: str) -> RTCConfiguration:
    servers = [
        RTCIceServer(urls=url, username=username, credential=credential)
        if url.startswith("turn")
        else RTCIceServer(urls=url)
        for url in config.urls
    ]
    policy = RTCIceTransportPolicy.RELAY if config.policy == "relay" else RTCIceTransportPolicy.ALL
    # never None: aiortc would then ask a public STUN server of its own choosing
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


@dataclass
class LegConnection:
    config: LegConfig
    pc: RTCPeerConnection
    channels: dict[str, RTCDataChannel] = field(default_factory=dict)
    channel_ready: asyncio.Event = field(default_factory=asyncio.Event)
    tls: ssl.SSLContext | None = None

    @classmethod
    def create(
        cls, config: LegConfig, username: str, credential: str, tls: ssl.SSLContext | None
    ) -> LegConnection:
        pc = RTCPeerConnection(rtc_configuration(config, username, credential))
        leg = cls(config, pc, tls=tls)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            leg._add_channel(channel)

        return leg

    def open_channels(self) -> None:
        """The leader's two channels: unreliable unordered probes, a reliable control one."""
        self._add_channel(self.pc.createDataChannel(PROBE_LABEL, ordered=False, maxRetransmits=0))
        self._add_channel(self.pc.createDataChannel(CONTROL_LABEL))
        self._apply_tls()

    def _add_channel(self, channel: RTCDataChannel) -> None:
        self.channels[channel.label] = channel

        def opened() -> None:
            if all(
                label in self.channels and self.channels[label].readyState == "open"
                for label in (PROBE_LABEL, CONTROL_LABEL)
            ):
                self.channel_ready.set()

        channel.on("open", opened)
        if channel.readyState == "open":
            opened()

    def _apply_tls(self) -> None:
        sctp = self.pc.sctp
        if self.tls is None or sctp is None or self.config.relay_protocol != "tls":
            return
        connection = sctp.transport.transport.iceGatherer._connection
        # aioice types turn_ssl as bool and hands it to loop.create_connection(ssl=)
        connection.turn_ssl = self.tls  # type: ignore[assignment]

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        self._apply_tls()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    async def add_candidate(self, candidate: object) -> None:
        """A trickled candidate (``{candidate, sdpMid, sdpMLineIndex}``); None (or an empty
        ``candidate``) ends them, as browsers do."""
        if not isinstance(candidate, dict) or not candidate.get("candidate"):
            with contextlib.suppress(ValueError):  # already ended
                await self.pc.addIceCandidate(None)
            return
        text = str(candidate["candidate"]).removeprefix("candidate:")
        try:
            parsed = candidate_from_sdp(text)
        except (ValueError, IndexError):
            return
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        with contextlib.suppress(ValueError):  # after end-of-candidates: ignored
            await self.pc.addIceCandidate(parsed)

    def gathered(self) -> list[str]:
        sctp = self.pc.sctp
        if sctp is None:
            return []
        gatherer = sctp.transport.transport.iceGatherer
        return sorted({c.type for c in gatherer.getLocalCandidates()})

    def selected_pair(self) -> dict[str, Any] | None:
        sctp = self.pc.sctp
        if sctp is None:
            return None
        nominated = sctp.transport.transport._connection._nominated
        pair = nominated.get(1)
        if pair is None:
            return None
        return {
            "local": self._view(pair.local_candidate),
            "remote": self._view(pair.remote_candidate),
        }

    def _view(self, candidate: Candidate) -> dict[str, Any]:
        # both ends of a leg reach the relay over the leg's transport
        relay = self.config.relay_protocol if candidate.type == "relay" else None
        return {
            "type": candidate.type,
            "protocol": candidate.transport.lower(),
            "relay_protocol": relay,
            "address": candidate.host,
            "port": candidate.port,
        }

    async def close(self) -> None:
        await self.pc.close()
