"""STUN binding: round-trip time and reflexive address per server, UDP and TCP (TLS for stuns:).

Sends a Binding request to every stun: server over UDP (retransmitted as RFC 8489 says: 500 ms,
then doubling, within --timeout) and over TCP, and to every stuns: server over TLS. Reports the
round-trip time, the reflexive (server-reflexive) address the server saw, whether it differs
from this machine's own address (a NAT is in between) and whether the server supports RFC 5780
(OTHER-ADDRESS). UDP is what WebRTC uses: a UDP failure fails the check; a TCP failure only
warns, since browsers never use STUN over TCP.

\b
Examples:
  rtccheck stun stun:stun.example.com
  rtccheck stun stun:stun.example.com:3478 stuns:stun.example.com:5349 --json
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckContext
from rtccheck.diagnosis import Diagnosis, diagnosed
from rtccheck.explain.transport import explain_failure
from rtccheck.nat import endpoint as canonical_endpoint
from rtccheck.probe import messages
from rtccheck.probe.connect import Connection, ServerEndpoint, Transport, connect
from rtccheck.probe.errors import FailureKind, ProbeError
from rtccheck.probe.messages import BindingAnswer, format_address
from rtccheck.results import CheckResult, JsonValue, Status
from rtccheck.uri import IceServer

CAPABILITY = ("stun",)


@dataclass(frozen=True)
class Probe:
    """One Binding probe: which server, over which transport."""

    server: IceServer
    endpoint: ServerEndpoint

    @property
    def check(self) -> str:
        return f"stun.{self.endpoint.transport}"

    @property
    def required(self) -> bool:
        """A failure fails the check (UDP, TLS for stuns:); TCP only warns."""
        return self.endpoint.transport != "tcp"


@dataclass(frozen=True)
class Answered:
    answer: BindingAnswer
    rtt_s: float
    transmissions: int
    local: tuple[str, int]
    tls_version: str | None


async def run(ctx: CheckContext) -> list[CheckResult]:
    probes = plan(ctx.targets)
    if not probes:
        return [_nothing_to_check()]
    return list(await asyncio.gather(*(run_probe(probe, ctx) for probe in probes)))


def plan(targets: tuple[IceServer, ...]) -> list[Probe]:
    """UDP and TCP for each stun: server, TLS for each stuns: server; duplicates once."""
    probes: list[Probe] = []
    seen: set[tuple[str, int, str]] = set()
    for server in targets:
        if server.is_turn:
            continue
        transports: tuple[Transport, ...] = ("tls",) if server.secure else ("udp", "tcp")
        for transport in transports:
            key = (server.host, server.port, transport)
            if key not in seen:
                seen.add(key)
                probes.append(Probe(server, ServerEndpoint(server.host, server.port, transport)))
    return probes


async def run_probe(probe: Probe, ctx: CheckContext) -> CheckResult:
    try:
        answered = await binding(probe.endpoint, ctx)
    except ProbeError as error:
        return failed(probe, error, ctx.timeout, ca_file=ctx.options.ca_file)
    return passed(probe, answered)


async def binding(endpoint: ServerEndpoint, ctx: CheckContext) -> Answered:
    """One Binding transaction to ``endpoint``; ProbeError when it gets no usable answer."""
    async with connect(
        endpoint, clock=ctx.monotonic, timeout=ctx.timeout, ca_file=ctx.options.ca_file
    ) as connection:
        return await _exchange(connection, ctx.timeout)


async def _exchange(connection: Connection, timeout: float) -> Answered:
    request = messages.encode_plain(messages.binding_request())
    exchange = await connection.client.transact(request, timeout=timeout)
    answer = messages.binding_answer(exchange.response)
    return Answered(
        answer, exchange.rtt_s, exchange.transmissions, connection.local, connection.tls_version
    )


def passed(probe: Probe, answered: Answered) -> CheckResult:
    answer = answered.answer
    mapped = format_address(answer.mapped)
    behind_nat = canonical_endpoint(*answer.mapped) != canonical_endpoint(*answered.local)
    where = "through a NAT" if behind_nat else "no NAT in between"
    details: dict[str, JsonValue] = {
        "mapped_address": mapped,
        "local_address": format_address(answered.local),
        "behind_nat": behind_nat,
        "rfc5780": answer.other_address is not None,
        "other_address": _optional_address(answer.other_address),
        "response_origin": _optional_address(answer.response_origin),
        "software": answer.software,
    }
    if answered.tls_version is not None:
        details["tls_version"] = answered.tls_version
    return CheckResult(
        check=probe.check,
        target=probe.server.uri,
        status=Status.PASS,
        summary=f"{probe.endpoint.label} answered in {answered.rtt_s * 1000:.1f} ms: reflexive "
        f"address {mapped} ({where})",
        metrics={
            "rtt_ms": round(answered.rtt_s * 1000, 2),
            "transmissions": answered.transmissions,
            "mapped_address": mapped,
        },
        details=details,
        capabilities=CAPABILITY if probe.required else (),
    )


def failed(
    probe: Probe, error: ProbeError, timeout: float, *, ca_file: Path | None = None
) -> CheckResult:
    if error.kind is FailureKind.ERROR_RESPONSE:
        diagnosis = _error_answer(probe, error)
    else:
        diagnosis = explain_failure(error, probe.endpoint, timeout, ca_file=ca_file)
    if not probe.required:
        diagnosis = replace(
            diagnosis,
            cause=diagnosis.cause
            + " Browsers use STUN over UDP only, so this matters only for other clients.",
        )
    return diagnosed(
        probe.check,
        probe.server.uri,
        diagnosis,
        status=Status.FAIL if probe.required else Status.WARN,
        metrics={"error_code": error.code} if error.code is not None else {},
        details={"error": str(error)},
        capabilities=CAPABILITY if probe.required else (),
    )


def _error_answer(probe: Probe, error: ProbeError) -> Diagnosis:
    return Diagnosis(
        CauseId.BINDING_REFUSED,
        f"{probe.endpoint.label} answered the Binding request with {error.detail}",
        "The server refused a plain Binding request, which every STUN server must answer "
        "(RFC 8489): it is not a STUN server, or it requires authentication for Binding.",
        "Use a STUN server that answers unauthenticated Binding requests, or check the port.",
    )


def _optional_address(address: tuple[str, int] | None) -> str | None:
    return format_address(address) if address is not None else None


def _nothing_to_check() -> CheckResult:
    return CheckResult(
        check="stun",
        target="-",
        status=Status.SKIP,
        summary="no stun: or stuns: server given (TURN servers are checked by `rtccheck turn`)",
    )
