"""Gather candidates: every host, srflx and relay candidate per server, as Trickle ICE lists them.

One aioice ICE agent per server gathers host candidates on this machine's addresses, a
server-reflexive (srflx) candidate from a STUN server (and from a TURN server over UDP, which
answers Binding requests too) and a relayed candidate from a TURN server over UDP, TCP or TLS
(turns:). Each candidate is listed with type, protocol, address, port, priority and related
address, with the time each server took. A STUN server that yields no srflx candidate, or a
TURN server that yields no relay candidate, fails with the reason (wrong credentials, no
answer, connection refused, untrusted certificate...).

aioice cannot ask stuns: (STUN over TLS) or DTLS TURN servers: those are skipped with a note.
aioice never gathers on loopback; rtccheck does when a server is on loopback or this host has
no other address.

\b
Examples:
  rtccheck gather stun:stun.example.com turn:turn.example.com --secret-file secret.txt
  rtccheck gather turns:turn.example.com:443 --username U --credential P --ca-file ca.pem
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass

from aioice import Candidate

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckContext
from rtccheck.diagnosis import Diagnosis, diagnosed
from rtccheck.explain.turn_diagnosis import no_relay_problem, route_problem, timeout_problem
from rtccheck.ice.agent import (
    AgentSettings,
    HostAddresses,
    IceAgent,
    candidate_view,
    close_agents,
    host_addresses,
    relay_protocol,
    settings_for,
    unsupported_reason,
)
from rtccheck.results import CheckResult, JsonValue, Metrics, Status
from rtccheck.tlsinfo.trust import client_context
from rtccheck.uri import IceServer


@dataclass(frozen=True)
class Gathered:
    candidates: tuple[Candidate, ...]
    elapsed_s: float

    def of_type(self, kind: str) -> list[Candidate]:
        return [c for c in self.candidates if c.type == kind]


async def run(ctx: CheckContext) -> list[CheckResult]:
    hosts = host_addresses(ctx.targets)
    tls = _tls_context(ctx)
    servers = [gather_server(server, hosts, tls, ctx) for server in ctx.targets]
    return list(await asyncio.gather(gather_host(hosts, ctx), *servers))


def _tls_context(ctx: CheckContext) -> ssl.SSLContext | None:
    if any(server.secure and server.is_turn for server in ctx.targets):
        return client_context(ctx.options.ca_file)
    return None


async def gather(settings: AgentSettings, hosts: HostAddresses, ctx: CheckContext) -> Gathered:
    """Run one agent's gathering; candidates are read before the agent is closed."""
    agent = IceAgent(settings, controlling=True, hosts=hosts, gather_timeout=ctx.timeout)
    started = ctx.monotonic()
    try:
        await agent.gather_candidates()
        return Gathered(tuple(agent.local_candidates), ctx.monotonic() - started)
    finally:
        await close_agents([agent], ctx.timeout)


async def gather_host(hosts: HostAddresses, ctx: CheckContext) -> CheckResult:
    gathered = await gather(AgentSettings(), hosts, ctx)
    found = gathered.of_type("host")
    details: dict[str, JsonValue] = {
        "candidates": [candidate_view(c) for c in found],
        "host_addresses": list(hosts.addresses),
        "loopback_reason": hosts.loopback_reason,
    }
    metrics: Metrics = {"host": len(found), "gathering_ms": _ms(gathered.elapsed_s)}
    if not found:
        return diagnosed("gather.host", "local", _no_host_problem(), metrics=metrics)
    addresses = ", ".join(dict.fromkeys(c.host for c in found))
    summary = f"{len(found)} host candidate(s): {addresses}"
    if hosts.loopback_reason is not None:
        summary += f" (loopback included: {hosts.loopback_reason})"
    only_loopback = hosts.only_loopback and hosts.loopback_reason != "a server is on loopback"
    return CheckResult(
        check="gather.host",
        target="local",
        status=Status.WARN if only_loopback else Status.PASS,
        summary=summary,
        metrics=metrics,
        cause_id=CauseId.LOOPBACK_ONLY if only_loopback else None,
        cause="This host has only loopback addresses: peers elsewhere cannot reach it directly."
        if only_loopback
        else None,
        fix="Run rtccheck on a host with a network address." if only_loopback else None,
        details=details,
    )


def _no_host_problem() -> Diagnosis:
    return Diagnosis(
        CauseId.NO_HOST_CANDIDATE,
        "no host candidate: no local address could be used",
        "The agent could not bind a UDP socket on any local address.",
        "Check the host's network configuration (ip address) and local firewall.",
    )


async def gather_server(
    server: IceServer, hosts: HostAddresses, tls: ssl.SSLContext | None, ctx: CheckContext
) -> CheckResult:
    check = "gather.relay" if server.is_turn else "gather.srflx"
    reason = unsupported_reason(server)
    if reason is not None:
        return CheckResult(check, server.uri, Status.SKIP, f"skipped: {reason}")
    if server.is_turn and not server.has_credentials:
        return _no_credentials(check, server)
    unroutable = await route_problem(server) if server.transport == "udp" else None
    if unroutable is not None:
        return diagnosed(check, server.uri, unroutable)
    gathered = await gather(settings_for(server, tls, relay_only=False), hosts, ctx)
    if server.is_turn:
        return await _relay_result(server, gathered, tls, ctx)
    return await _srflx_result(server, gathered, ctx)


def _no_credentials(check: str, server: IceServer) -> CheckResult:
    return CheckResult(
        check,
        server.uri,
        Status.SKIP,
        "skipped: no TURN credentials for this server",
        cause_id=CauseId.NO_CREDENTIALS,
        fix="Give --username/--credential, --secret (REST) or an iceServers entry with both.",
    )


def _figures(gathered: Gathered) -> Metrics:
    counts: Metrics = {kind: len(gathered.of_type(kind)) for kind in ("host", "srflx", "relay")}
    return {"gathering_ms": _ms(gathered.elapsed_s), **counts}


def _details(server: IceServer, gathered: Gathered) -> dict[str, JsonValue]:
    protocol = relay_protocol(server) if server.is_turn else None
    return {
        "candidates": [candidate_view(c, protocol) for c in gathered.candidates],
        "relay_protocol": protocol,
    }


async def _relay_result(
    server: IceServer, gathered: Gathered, tls: ssl.SSLContext | None, ctx: CheckContext
) -> CheckResult:
    metrics, details = _figures(gathered), _details(server, gathered)
    relays = gathered.of_type("relay")
    if not relays:
        problem = await no_relay_problem(server, gathered.elapsed_s, tls, ctx)
        prefixed = problem.prefixed("no relay candidate")
        return diagnosed("gather.relay", server.uri, prefixed, metrics=metrics, details=details)
    relay = relays[0]
    summary = f"relay {relay.host}:{relay.port} over {relay_protocol(server).upper()}"
    if server.transport == "udp" and not gathered.of_type("srflx"):
        return _relay_without_srflx(server, summary, metrics, details)
    srflx = gathered.of_type("srflx")
    if srflx:
        summary += f", srflx {srflx[0].host}:{srflx[0].port}"
    return CheckResult("gather.relay", server.uri, Status.PASS, summary, metrics, details=details)


def _relay_without_srflx(
    server: IceServer, summary: str, metrics: Metrics, details: dict[str, JsonValue]
) -> CheckResult:
    return CheckResult(
        "gather.relay",
        server.uri,
        Status.WARN,
        f"{summary}; but no srflx candidate",
        metrics,
        cause_id=CauseId.NO_SRFLX_CANDIDATE,
        cause="The TURN server allocated a relay but answered no STUN Binding request over UDP, "
        "so clients learn no server-reflexive address from it.",
        fix="Enable STUN on the TURN listener (coturn: remove --no-stun), or list a STUN server.",
        details=details,
    )


async def _srflx_result(server: IceServer, gathered: Gathered, ctx: CheckContext) -> CheckResult:
    metrics, details = _figures(gathered), _details(server, gathered)
    srflx = gathered.of_type("srflx")
    if srflx:
        mapped = ", ".join(f"{c.host}:{c.port}" for c in srflx)
        summary = f"srflx {mapped}"
        return CheckResult(
            "gather.srflx", server.uri, Status.PASS, summary, metrics, details=details
        )
    problem = await _srflx_problem(server, gathered, ctx)
    prefixed = problem.prefixed("no srflx candidate")
    return diagnosed("gather.srflx", server.uri, prefixed, metrics=metrics, details=details)


async def _srflx_problem(server: IceServer, gathered: Gathered, ctx: CheckContext) -> Diagnosis:
    if not [c for c in gathered.of_type("host") if ":" not in c.host]:
        return Diagnosis(
            CauseId.NO_IPV4_HOST_CANDIDATE,
            "no IPv4 host candidate to ask the STUN server from",
            "aioice asks STUN servers from IPv4 host candidates only, and this host has none.",
            "Give the host an IPv4 address.",
        )
    if not await _resolves(server.host):
        return Diagnosis(
            CauseId.DNS_FAILURE,
            f"{server.host} has no IPv4 address",
            "The STUN server's name does not resolve to an IPv4 address.",
            "Fix the DNS name (`rtccheck dns` shows the records).",
        )
    return timeout_problem(server, ctx.timeout)


async def _resolves(host: str) -> bool:
    try:
        await asyncio.get_running_loop().getaddrinfo(host, None, family=socket.AF_INET)
    except OSError:
        return False
    return True


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
