"""NAT behaviour (RFC 5780): mapping, filtering, hairpinning, verdict.

Probes the NAT between this machine and the internet with a STUN server that supports RFC 5780
(two addresses: OTHER-ADDRESS in its answers), as turnutils_natdiscovery and Trickle ICE users
would, and says what it means for calls: mapping behaviour (tests I-III), filtering behaviour
(CHANGE-REQUEST tests), hairpinning, port preservation, the classic name (full cone,
restricted, port-restricted, symmetric) and a verdict: with which peers direct calls work,
whether TURN is needed and over which transport. Without RFC 5780, a second stun: server at
another IP still tells whether the mapping depends on the destination. When no server answers
over UDP, TCP and TLS on port 443 are tried, to say which transport gets out. The first stun:
server given (or turn: server, which answers Binding too) is the primary. The mapping lifetime
is estimated only when asked, since it takes minutes.

\b
Examples:
  rtccheck nat stun:stun.example.com
  rtccheck nat stun:stun1.example.com stun:stun2.example.net --json
"""

from __future__ import annotations

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckContext
from rtccheck.nat import (
    ClassicName,
    MappingBehavior,
    NatClassification,
    NatObservations,
    TransportAdvice,
    TurnNeed,
    classify,
)
from rtccheck.nat_probe import NatProbeSettings, NatServer, NatTrace, observe
from rtccheck.probe.connect import ServerEndpoint
from rtccheck.results import CheckResult, JsonValue, Metrics, Status
from rtccheck.uri import IceServer

#: servers used: the primary and one more for the two-server fallback
MAX_SERVERS = 2
_FINE = (TurnNeed.ONLY_FOR_PEERS_WITHOUT_UDP, TurnNeed.FOR_SYMMETRIC_PEERS)


async def run(ctx: CheckContext) -> list[CheckResult]:
    settings = ctx.options
    servers = udp_servers(ctx.targets)
    if not servers:
        return [_nothing_to_check()]
    probe = NatProbeSettings(
        timeout=ctx.timeout,
        lifetime=settings.nat_lifetime,
        lifetime_max_s=settings.nat_lifetime_max_s,
        tls_endpoints=tls_endpoints(ctx.targets),
    )
    observations, trace = await observe(servers, probe, ctx.monotonic)
    return [nat_result(servers[0].uri, observations, classify(observations), trace)]


def udp_servers(targets: tuple[IceServer, ...]) -> list[NatServer]:
    """stun: servers first, then turn: servers over UDP; at most two, distinct host:port."""
    ordered = [t for t in targets if t.scheme == "stun"]
    ordered += [t for t in targets if t.scheme == "turn" and t.transport == "udp"]
    servers: list[NatServer] = []
    for target in ordered:
        if all((s.host, s.port) != (target.host, target.port) for s in servers):
            servers.append(NatServer(target.uri, target.host, target.port))
    return servers[:MAX_SERVERS]


def tls_endpoints(targets: tuple[IceServer, ...]) -> tuple[ServerEndpoint, ...]:
    return tuple(ServerEndpoint(t.host, t.port, "tls") for t in targets if t.secure)


def nat_result(
    target: str, observations: NatObservations, result: NatClassification, trace: NatTrace
) -> CheckResult:
    status, cause_id, fix = judge(result)
    return CheckResult(
        check="nat.behaviour",
        target=trace.primary or target,
        status=status,
        summary=_summary(result),
        metrics=_metrics(observations, result, trace),
        cause_id=cause_id,
        cause=result.verdict if status is not Status.PASS else None,
        fix=fix,
        details=_details(observations, result, trace),
    )


def judge(result: NatClassification) -> tuple[Status, CauseId | None, str | None]:
    """(status, cause_id, fix): fine, a risk for calls (warn), or nothing reachable (fail)."""
    if result.classic_name is ClassicName.UDP_BLOCKED:
        if result.transport in (TransportAdvice.NONE, TransportAdvice.UNKNOWN):
            return Status.FAIL, CauseId.NO_SERVER_REACHABLE, _NOTHING_FIX
        return Status.WARN, CauseId.UDP_BLOCKED, _UDP_BLOCKED_FIX
    if result.turn_need in _FINE:
        return Status.PASS, None, None
    if result.mapping in (MappingBehavior.UNKNOWN,) or result.turn_need is TurnNeed.UNKNOWN:
        return Status.WARN, CauseId.NAT_UNKNOWN, _UNKNOWN_FIX
    if result.mapping in (MappingBehavior.NO_NAT, MappingBehavior.ENDPOINT_INDEPENDENT):
        return Status.WARN, CauseId.RESTRICTIVE_FILTERING, _TURN_FIX
    return Status.WARN, CauseId.SYMMETRIC_NAT, _TURN_FIX


_TURN_FIX = (
    "Give every client a TURN server (UDP plus TCP/TLS on 443); on networks you run, prefer "
    "NATs with endpoint-independent mapping (RFC 4787), e.g. no 'random' port allocation."
)
_UDP_BLOCKED_FIX = (
    "Offer TURN over TCP and over TLS on port 443 (turn:host:3478?transport=tcp, "
    "turns:host:443) to clients on this network, or let UDP out of the firewall."
)
_NOTHING_FIX = (
    "Check that the STUN server is up and that this network lets UDP (or at least TCP/TLS "
    "on 443) out."
)
_UNKNOWN_FIX = (
    "Probe a server with RFC 5780 support (two IP addresses, e.g. stun-server --alternate, "
    "coturn with two listening addresses) or give two stun: servers at different IPs."
)


def _summary(result: NatClassification) -> str:
    if result.classic_name is ClassicName.UDP_BLOCKED:
        return f"UDP blocked; TURN transport that works: {result.transport.value}"
    return (
        f"{result.classic_name.value}: mapping {result.mapping.value}, filtering "
        f"{result.filtering.value}, hairpinning {result.hairpinning.value}"
    )


def _metrics(obs: NatObservations, result: NatClassification, trace: NatTrace) -> Metrics:
    return {
        "mapping": result.mapping.value,
        "filtering": result.filtering.value,
        "hairpinning": result.hairpinning.value,
        "port_preservation": result.port_preservation.value,
        "classic_name": result.classic_name.value,
        "method": result.method.value,
        "turn_need": result.turn_need.value,
        "transport": result.transport.value,
        "mapped_address": _text(obs.mapped),
        "rtt_ms": trace.rtt_ms,
        "mapping_lifetime_s": obs.mapping_lifetime_s,
    }


def _details(
    obs: NatObservations, result: NatClassification, trace: NatTrace
) -> dict[str, JsonValue]:
    details: dict[str, JsonValue] = {
        "verdict": result.verdict,
        "direct_with": list(result.direct_with),
        "direct_maybe_with": list(result.direct_maybe_with),
        "direct_not_with": list(result.direct_not_with),
        "notes": list(result.notes),
        "observations": _observations(obs),
        "second_server": trace.second,
        "probe_errors": dict(trace.errors),
    }
    if trace.lifetime_bounds_s is not None:
        low, high = trace.lifetime_bounds_s
        details["mapping_lifetime_bounds_s"] = [low, high]
    return details


def _observations(obs: NatObservations) -> dict[str, JsonValue]:
    return {
        "local": [_text(address) for address in obs.local],
        "udp_answered": obs.udp_answered,
        "tcp_answered": obs.tcp_answered,
        "tls_443_answered": obs.tls_443_answered,
        "mapped": _text(obs.mapped),
        "other_address": _text(obs.other_address),
        "mapped_alternate_address": _text(obs.mapped_alternate_address),
        "mapped_alternate_both": _text(obs.mapped_alternate_both),
        "answered_change_ip_and_port": obs.answered_change_ip_and_port,
        "answered_change_port": obs.answered_change_port,
        "hairpin": obs.hairpin,
        "mapped_second_server": _text(obs.mapped_second_server),
    }


def _text(address: tuple[str, int] | None) -> str | None:
    if address is None:
        return None
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _nothing_to_check() -> CheckResult:
    return CheckResult(
        check="nat",
        target="-",
        status=Status.SKIP,
        summary="no stun: (or turn: over UDP) server given to probe the NAT with",
    )
