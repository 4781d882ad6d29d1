"""Real data through each TURN relay and on the direct path: RTT, loss, throughput.

For each TURN server URI (UDP, TCP or TLS to the server), two aioice ICE agents in this process,
both forced to relay-only (iceTransportPolicy "relay"), allocate on that server, run ICE through
it and exchange data: --packets pings 2 ms apart (RTT p50/p95, loss), then a 0.3 s burst of
1200-byte packets (throughput, echoed both ways). The selected candidate pair is reported and
must be relay on both ends: that proves the relay carried the data. Two agents with host (and
srflx) candidates measure the direct path the same way, unless the app's RTCConfiguration
(--ice-config) sets iceTransportPolicy "relay": a browser then never uses the direct path, so
data.direct is reported as not applicable.

A path that fails says why: no relay candidate (with the allocation error), checks failing
through the relay (the relay's peer policy refuses the other agent's relayed address, or a
firewall drops relayed traffic), or no data coming back. Agents connect concurrently; the
measurements run one path at a time so they do not compete for the CPU.

\b
Examples:
  rtccheck data turn:turn.example.com turns:turn.example.com:443 --secret-file secret.txt
  rtccheck data --ice-config ice.json --packets 300 --require data-relay
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from aioice import Candidate

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckContext
from rtccheck.diagnosis import Diagnosis, diagnosed
from rtccheck.explain.turn_diagnosis import no_relay_problem, permission_problem, route_problem
from rtccheck.ice.agent import (
    AgentSettings,
    HostAddresses,
    IceAgent,
    candidate_view,
    close_agents,
    exchange_descriptions,
    host_addresses,
    relay_protocol,
    selected_pair,
    settings_for,
    unsupported_reason,
)
from rtccheck.ice.exchange import Measurement, measure
from rtccheck.results import CheckResult, JsonValue, Metrics, Status
from rtccheck.tlsinfo.trust import client_context
from rtccheck.uri import IceServer

WARN_LOSS_PCT = 2.0
FAIL_LOSS_PCT = 50.0
DIRECT_TYPES = ("host", "srflx", "prflx")


@dataclass(frozen=True)
class DataPath:
    """One path to measure: relay-only through ``server``, or direct when it is None."""

    check: str
    target: str
    settings: AgentSettings
    server: IceServer | None = None
    tls: ssl.SSLContext | None = None

    @property
    def capability(self) -> str:
        return "data-relay" if self.server is not None else "data-direct"

    @property
    def label(self) -> str:
        if self.server is None:
            return "direct"
        return f"relay over {relay_protocol(self.server).upper()}"


@dataclass(frozen=True)
class Agents:
    caller: IceAgent
    responder: IceAgent


async def run(ctx: CheckContext) -> list[CheckResult]:
    hosts = host_addresses(ctx.targets)
    tls = client_context(ctx.options.ca_file) if any(s.secure for s in ctx.targets) else None
    turn_servers = [server for server in ctx.targets if server.is_turn]
    skipped = {server.uri: _skipped(server) for server in turn_servers}
    paths = [relay_path(s, tls) for s in turn_servers if skipped[s.uri] is None]
    not_applicable = []
    if ctx.options.relay_only:
        not_applicable.append(_direct_not_applicable())
    else:
        paths.append(await direct_path(ctx.targets))
    measuring = asyncio.Lock()
    measured = await asyncio.gather(*(check_path(p, hosts, measuring, ctx) for p in paths))
    skips = [result for result in skipped.values() if result is not None]
    return skips + list(measured) + not_applicable


def _direct_not_applicable() -> CheckResult:
    return CheckResult(
        "data.direct",
        "direct",
        Status.SKIP,
        'not applicable: the app\'s RTCConfiguration sets iceTransportPolicy "relay", so it '
        "never uses the direct path",
        cause_id=CauseId.NOT_APPLICABLE_RELAY_POLICY,
        details={"not_applicable": True, "ice_transport_policy": "relay"},
    )


def _skipped(server: IceServer) -> CheckResult | None:
    reason = unsupported_reason(server)
    if reason is None and server.has_credentials:
        return None
    return CheckResult(
        "data.relay",
        server.uri,
        Status.SKIP,
        f"skipped: {reason or 'no TURN credentials for this server'}",
        cause_id=None if reason else CauseId.NO_CREDENTIALS,
        fix=None if reason else "Give --username/--credential, --secret or an iceServers entry.",
    )


def relay_path(server: IceServer, tls: ssl.SSLContext | None) -> DataPath:
    settings = settings_for(server, tls, relay_only=True)
    return DataPath("data.relay", server.uri, settings, server, tls)


async def direct_path(targets: tuple[IceServer, ...]) -> DataPath:
    """Host candidates, plus srflx from the first STUN server aioice can ask and reach."""
    stun = [s for s in targets if s.scheme == "stun" and unsupported_reason(s) is None]
    for server in stun:
        if await route_problem(server) is None:
            settings = AgentSettings(stun_server=(server.host, server.port))
            return DataPath("data.direct", "direct", settings)
    return DataPath("data.direct", "direct", AgentSettings())


async def check_path(
    path: DataPath, hosts: HostAddresses, measuring: asyncio.Lock, ctx: CheckContext
) -> CheckResult:
    agents = Agents(
        IceAgent(path.settings, controlling=True, hosts=hosts, gather_timeout=ctx.timeout),
        IceAgent(path.settings, controlling=False, hosts=hosts, gather_timeout=ctx.timeout),
    )
    try:
        return await _connect_and_measure(path, agents, measuring, ctx)
    finally:
        await close_agents([agents.caller, agents.responder], ctx.timeout)


async def _connect_and_measure(
    path: DataPath, agents: Agents, measuring: asyncio.Lock, ctx: CheckContext
) -> CheckResult:
    started = ctx.monotonic()
    await asyncio.gather(agents.caller.gather_candidates(), agents.responder.gather_candidates())
    missing = await _missing_candidates(path, agents, ctx.monotonic() - started, ctx)
    if missing is not None:
        return _failed(path, missing, {}, {"gathered": _gathered(path, agents)})
    await exchange_descriptions(agents.caller, agents.responder)
    connected = await _connect(agents, ctx.timeout)
    connect_ms = round((ctx.monotonic() - started) * 1000, 1)
    pair = selected_pair(agents.caller) if connected else None
    if pair is None:
        problem = await _no_connectivity(path, agents, ctx)
        details: dict[str, JsonValue] = {"gathered": _gathered(path, agents)}
        return _failed(path, problem, {"connect_ms": connect_ms}, details)
    async with measuring:
        measurement = await measure(
            agents.caller, agents.responder, ctx.monotonic, ctx.options.packets
        )
    return verdict(path, pair, measurement, connect_ms)


async def _connect(agents: Agents, timeout: float) -> bool:
    """Run ICE on both agents; False when either fails or the timeout passes."""
    try:
        async with asyncio.timeout(timeout):
            return await _connect_both(agents)
    except TimeoutError:
        return False


async def _connect_both(agents: Agents) -> bool:
    failed = False
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(agents.caller.connect())
            group.create_task(agents.responder.connect())
    except* ConnectionError:
        failed = True
    return not failed


def _gathered(path: DataPath, agents: Agents) -> list[JsonValue]:
    protocol = relay_protocol(path.server) if path.server is not None else None
    return [
        candidate_view(candidate, protocol)
        for agent in (agents.caller, agents.responder)
        for candidate in agent.local_candidates
    ]


async def _missing_candidates(
    path: DataPath, agents: Agents, gathering_s: float, ctx: CheckContext
) -> Diagnosis | None:
    if path.server is None:
        if agents.caller.candidates_of_type("host") and agents.responder.candidates_of_type("host"):
            return None
        return Diagnosis(
            CauseId.NO_HOST_CANDIDATE,
            "no host candidate: no local address could be used",
            "The agents could not bind a UDP socket on any local address.",
            "Check the host's network configuration and local firewall.",
        )
    if all(agent.candidates_of_type("relay") for agent in (agents.caller, agents.responder)):
        return None
    problem = await no_relay_problem(path.server, gathering_s, path.tls, ctx)
    return problem.prefixed("no relay candidate")


async def _no_connectivity(path: DataPath, agents: Agents, ctx: CheckContext) -> Diagnosis:
    if path.server is None:
        return Diagnosis(
            CauseId.ICE_CHECKS_FAILED,
            "ICE connectivity checks between the host candidates failed",
            "Both agents have host candidates but no check got through: a local firewall "
            "drops UDP between local ports.",
            "Allow UDP between local addresses (e.g. nft/iptables rules on lo or the LAN).",
        )
    peer = agents.responder.candidates_of_type("relay")[0]
    refused = await permission_problem(path.server, path.tls, (peer.host, peer.port), ctx)
    if refused is not None:
        return refused
    return Diagnosis(
        CauseId.RELAY_DATA_LOST,
        "allocation works but no data flows through the relay",
        f"The relay accepted a permission for the other agent's relayed address {peer.host}, "
        "but no connectivity check came through: a firewall drops relayed traffic (the relay "
        "port range), or the relay does not forward between its own allocations.",
        "Open the relay port range (UDP) in the firewall and check the relay's log for the "
        "peer address.",
    )


def verdict(
    path: DataPath, pair: tuple[Candidate, Candidate], measured: Measurement, connect_ms: float
) -> CheckResult:
    metrics = _metrics(measured, connect_ms)
    details = _details(path, pair, measured)
    local, remote = pair
    if not _pair_fits(path, local, remote):
        return _failed(path, _wrong_pair(path, local, remote), metrics, details)
    if measured.pings_received == 0:
        return _failed(path, _no_data(path, measured), metrics, details)
    summary = _summary(path, pair, measured)
    if measured.loss_pct >= FAIL_LOSS_PCT:
        return _failed(path, _heavy_loss(summary, measured), metrics, details)
    status = Status.WARN if measured.loss_pct > WARN_LOSS_PCT else Status.PASS
    return CheckResult(
        path.check,
        path.target,
        status,
        summary,
        metrics,
        cause_id=CauseId.PACKET_LOSS if status is Status.WARN else None,
        cause=_loss_cause(path) if status is Status.WARN else None,
        fix="Look for congestion or a rate limit on the path." if status is Status.WARN else None,
        details=details,
        capabilities=(path.capability,),
    )


def _pair_fits(path: DataPath, local: Candidate, remote: Candidate) -> bool:
    if path.server is not None:
        return local.type == "relay" and remote.type == "relay"
    return local.type in DIRECT_TYPES and remote.type in DIRECT_TYPES


def _summary(path: DataPath, pair: tuple[Candidate, Candidate], measured: Measurement) -> str:
    local, remote = pair
    p50, p95 = measured.rtt_ms(0.5), measured.rtt_ms(0.95)
    return (
        f"{path.label}: {local.type} {local.host}:{local.port} <-> {remote.type} "
        f"{remote.host}:{remote.port}; RTT p50 {p50:.2f} ms p95 {p95:.2f} ms, "
        f"loss {measured.loss_pct:.1f}%, {measured.throughput_mbps:.1f} Mbit/s"
    )


def _metrics(measured: Measurement, connect_ms: float) -> Metrics:
    p50, p95 = measured.rtt_ms(0.5), measured.rtt_ms(0.95)
    return {
        "rtt_p50_ms": round(p50, 3) if p50 is not None else None,
        "rtt_p95_ms": round(p95, 3) if p95 is not None else None,
        "loss_pct": round(measured.loss_pct, 2),
        "throughput_mbps": round(measured.throughput_mbps, 2),
        "burst_loss_pct": round(measured.burst_loss_pct, 2),
        "packets_sent": measured.pings_sent,
        "packets_received": measured.pings_received,
        "connect_ms": connect_ms,
    }


def _details(
    path: DataPath, pair: tuple[Candidate, Candidate], measured: Measurement
) -> dict[str, JsonValue]:
    protocol = relay_protocol(path.server) if path.server is not None else None
    local, remote = pair
    return {
        "selected_pair": {
            "local": candidate_view(local, protocol),
            "remote": candidate_view(remote, protocol),
        },
        "relay_protocol": protocol,
        "burst_packets_sent": measured.burst_sent,
        "burst_packets_received": measured.burst_received,
        "burst_s": round(measured.burst_s, 3),
        "error": measured.error,
    }


def _failed(
    path: DataPath, problem: Diagnosis, metrics: Metrics, details: dict[str, JsonValue]
) -> CheckResult:
    return diagnosed(
        path.check,
        path.target,
        problem,
        metrics=metrics,
        details=details,
        capabilities=(path.capability,),
    )


def _wrong_pair(path: DataPath, local: Candidate, remote: Candidate) -> Diagnosis:
    return Diagnosis(
        CauseId.WRONG_CANDIDATE_PAIR,
        f"ICE selected {local.type} -> {remote.type}, not the {path.label} path",
        "The agents connected on a pair this path does not test.",
        "Report this as a bug in rtccheck with the command line used.",
    )


def _no_data(path: DataPath, measured: Measurement) -> Diagnosis:
    lost = f" ({measured.error})" if measured.error else ""
    where = "through the relay" if path.server is not None else "on the direct path"
    return Diagnosis(
        CauseId.NO_DATA,
        f"ICE connected {where} but none of {measured.pings_sent} packets came back{lost}",
        "Connectivity checks passed, yet data packets are lost: the relay drops ChannelData "
        "or Send indications, or a middlebox filters data but not STUN.",
        "Check the relay's log and any firewall between client, relay and peer.",
    )


def _heavy_loss(summary: str, measured: Measurement) -> Diagnosis:
    return Diagnosis(
        CauseId.HEAVY_PACKET_LOSS,
        summary,
        f"{measured.loss_pct:.0f}% of the packets were lost: calls on this path break up.",
        "Look for congestion, a rate limit or a lossy link on the path.",
    )


def _loss_cause(path: DataPath) -> str:
    where = "the relay" if path.server is not None else "the direct path"
    return f"Some packets through {where} were lost: audio and video will glitch."
