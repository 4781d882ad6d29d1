"""TURN allocation per server and transport (UDP, TCP, TLS), errors explained.

For every turn:/turns: server, over the URI's transport (turn: UDP or ?transport=tcp, turns:
TLS), runs what a WebRTC client does: an Allocate without credentials, the 401 challenge, the
Allocate with USERNAME/REALM/NONCE/MESSAGE-INTEGRITY (once more after a 438 Stale Nonce). It
reports the relayed address and whether peers can reach it, explains any error answered (401
after the challenge: wrong password or secret, expired REST username, clock skew; 403, 437,
438, 441, 442, 486, 508 ...) and transport failures (timeouts, refused connections, TLS name
or trust errors). With the allocation in place a second one is made and data is sent between
the two through the relay (Send indication, ChannelBind + ChannelData, and back). Every
allocation is deleted again (Refresh with lifetime 0).

\b
Examples:
  rtccheck turn turn:turn.example.com --secret-file /etc/turnkit/rest-secret
  rtccheck turn 'turn:turn.example.com?transport=tcp' turns:turn.example.com:443 \\
      --username 1700000000:alice --credential '...'
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckContext, CheckOptions
from rtccheck.diagnosis import Diagnosis, diagnosed
from rtccheck.explain.transport import explain_failure
from rtccheck.explain.turn_errors import (
    Rejected,
    explain_error,
    explain_rejected_credentials,
    explain_unauthorized,
)
from rtccheck.probe.auth import AuthCache, Credentials
from rtccheck.probe.connect import Connection, ServerEndpoint, connect
from rtccheck.probe.errors import FailureKind, ProbeError
from rtccheck.probe.messages import AllocateAnswer, format_address
from rtccheck.probe.turn import TurnSession, allocation
from rtccheck.relay_loop import Leg, LoopOutcome, is_forbidden, run_loop
from rtccheck.relay_sanity import judge_relay
from rtccheck.results import CheckResult, JsonValue, Metrics, Status
from rtccheck.uri import IceServer


@dataclass(frozen=True)
class Target:
    server: IceServer
    endpoint: ServerEndpoint

    @property
    def capability(self) -> tuple[str, ...]:
        return (f"relay-{self.endpoint.transport}",)

    @property
    def credentials(self) -> Credentials | None:
        server = self.server
        if server.username is None or server.credential is None:
            return None
        return Credentials(server.username, server.credential)


async def run(ctx: CheckContext) -> list[CheckResult]:
    settings = ctx.options  # expected relay address and port range, CA file
    targets, skipped = plan(ctx.targets)
    if not targets and not skipped:
        return [_nothing_to_check()]
    cache = AuthCache()  # one 401 challenge per server and user, not one per allocation
    groups = await asyncio.gather(
        *(check_in_turn(group, ctx, settings, cache) for group in by_host(targets))
    )
    found = {id(target): results for group in groups for target, results in group}
    return skipped + [result for target in targets for result in found[id(target)]]


def by_host(targets: list[Target]) -> list[list[Target]]:
    """Targets grouped by server host: one server's transports are checked one after the
    other (at most two allocations at once per server and user: quotas are often small)."""
    groups: dict[str, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.server.host, []).append(target)
    return list(groups.values())


async def check_in_turn(
    group: list[Target], ctx: CheckContext, settings: CheckOptions, cache: AuthCache
) -> list[tuple[Target, list[CheckResult]]]:
    return [(target, await check_target(target, ctx, settings, cache)) for target in group]


def plan(servers: tuple[IceServer, ...]) -> tuple[list[Target], list[CheckResult]]:
    """One target per distinct TURN URI; turns: over UDP (DTLS) is reported as skipped."""
    targets: list[Target] = []
    skipped: list[CheckResult] = []
    seen: set[tuple[str, int, str, str | None]] = set()
    for server in servers:
        if not server.is_turn:
            continue
        if server.secure and server.transport == "udp":
            skipped.append(_dtls_skipped(server))
            continue
        endpoint = ServerEndpoint(
            server.host, server.port, "tls" if server.secure else server.transport
        )
        key = (server.host, server.port, endpoint.transport, server.username)
        if key not in seen:
            seen.add(key)
            targets.append(Target(server, endpoint))
    return targets, skipped


async def check_target(
    target: Target, ctx: CheckContext, settings: CheckOptions, cache: AuthCache
) -> list[CheckResult]:
    session: TurnSession | None = None
    try:
        async with connect(
            target.endpoint, clock=ctx.monotonic, timeout=ctx.timeout, ca_file=settings.ca_file
        ) as connection:
            session = new_session(connection, target, ctx.timeout, cache)
            return await _allocated(target, session, connection, ctx, settings)
    except ProbeError as error:
        return [allocation_failed(target, error, session, ctx)]


def new_session(
    connection: Connection, target: Target, timeout: float, cache: AuthCache | None = None
) -> TurnSession:
    return TurnSession(
        connection.client,
        target.credentials,
        timeout=timeout,
        reliable=target.endpoint.transport != "udp",
        cache=cache,
        server=target.server.host,
    )


async def _allocated(
    target: Target,
    session: TurnSession,
    connection: Connection,
    ctx: CheckContext,
    settings: CheckOptions,
) -> list[CheckResult]:
    async with allocation(session) as answer:
        sanity = relay_result(target, answer, connection.remote[0], settings)
        if sanity.status is Status.PASS:
            data = await relay_data_result(target, session, answer, ctx, settings)
        else:
            data = _loop_not_tried(target)
    results = [allocated_result(target, answer, session, connection), sanity, data]
    if session.log.unauthenticated_success:
        results.append(_open_relay(target))
    if session.log.released is False:
        results.append(_not_released(target))
    return results


# ---------------------------------------------------------------- success


def allocated_result(
    target: Target, answer: AllocateAnswer, session: TurnSession, connection: Connection
) -> CheckResult:
    exchange = session.allocate_exchange
    rtt_ms = round(exchange.rtt_s * 1000, 2) if exchange is not None else None
    relayed = format_address(answer.relayed)
    details: dict[str, JsonValue] = {
        "relayed_address": relayed,
        "mapped_address": format_address(answer.mapped) if answer.mapped else None,
        "realm": session.auth.realm,
        "password_algorithm": "sha256" if session.auth.algorithm == 2 else "md5",
        "software": answer.software,
        "tls_version": connection.tls_version,
        "released": session.log.released,
        "response_integrity_failures": session.log.integrity_failures,
        "requests": list(session.log.requests),
    }
    return CheckResult(
        check="turn.allocate",
        target=target.server.uri,
        status=Status.PASS,
        summary=f"{target.endpoint.label}: relay {relayed} allocated"
        + (f" in {rtt_ms:g} ms" if rtt_ms is not None else "")
        + f" (lifetime {answer.lifetime_s} s)"
        + (", deleted again" if session.log.released else ""),
        metrics={
            "rtt_ms": rtt_ms,
            "lifetime_s": answer.lifetime_s,
            "relayed_address": relayed,
        },
        details=details,
        capabilities=target.capability,
    )


def relay_result(
    target: Target, answer: AllocateAnswer, server_ip: str, settings: CheckOptions
) -> CheckResult:
    judgement = judge_relay(
        answer.relayed,
        server_ip,
        expect_address=settings.expect_relay_address,
        expect_ports=settings.expect_relay_ports,
    )
    metrics: Metrics = {"relayed_address": format_address(answer.relayed)}
    if judgement.diagnosis is not None:
        return diagnosed(
            "turn.relay-address",
            target.server.uri,
            judgement.diagnosis,
            status=judgement.status,
            metrics=metrics,
        )
    return CheckResult(
        check="turn.relay-address",
        target=target.server.uri,
        status=judgement.status,
        summary=judgement.summary,
        metrics=metrics,
    )


# ---------------------------------------------------------------- data through the relay


async def relay_data_result(
    target: Target,
    first: TurnSession,
    first_answer: AllocateAnswer,
    ctx: CheckContext,
    settings: CheckOptions,
) -> CheckResult:
    try:
        async with connect(
            target.endpoint, clock=ctx.monotonic, timeout=ctx.timeout, ca_file=settings.ca_file
        ) as connection:
            second = new_session(connection, target, ctx.timeout, first.cache)
            async with allocation(second) as second_answer:
                outcome = await run_loop(
                    Leg(first, first_answer.relayed),
                    Leg(second, second_answer.relayed),
                    timeout=ctx.timeout,
                    clock=ctx.monotonic,
                )
    except ProbeError as error:
        return _loop_failed(target, error)
    return _loop_result(target, outcome)


def _loop_result(target: Target, outcome: LoopOutcome) -> CheckResult:
    metrics: Metrics = {"rtt_ms": round(outcome.rtt_s * 1000, 2) if outcome.rtt_s else None}
    details: dict[str, JsonValue] = {
        "send_indication": outcome.send_indication,
        "channel_data": outcome.channel_data,
        "reply": outcome.reply,
    }
    if outcome.complete:
        return CheckResult(
            check="turn.relay-data",
            target=target.server.uri,
            status=Status.PASS,
            summary="data relayed between two allocations: Send indication, ChannelData and "
            "the reply all arrived",
            metrics=metrics,
            details=details,
        )
    return CheckResult(
        check="turn.relay-data",
        target=target.server.uri,
        status=Status.WARN,
        summary="the relay granted the permissions but did not deliver all data between two "
        "of its own allocations",
        metrics=metrics,
        cause_id=CauseId.RELAY_DATA_LOST,
        cause="Data sent from one relayed address to another was lost: a firewall on the "
        "server drops traffic to the relay ports, or (behind 1:1 NAT) the server's NAT does "
        "not hairpin packets to its own public address, in which case real peers may still "
        "work.",
        fix="Open the relay port range in the server's firewall; run `rtccheck data` to test "
        "real calls through the relay.",
        details=details,
    )


def _loop_not_tried(target: Target) -> CheckResult:
    return CheckResult(
        check="turn.relay-data",
        target=target.server.uri,
        status=Status.SKIP,
        summary="not tried: the relayed address is not usable (see turn.relay-address), and "
        "rtccheck sends data only to relayed addresses that passed",
        cause_id=CauseId.RELAY_ADDRESS_UNUSABLE,
    )


def _loop_failed(target: Target, error: ProbeError) -> CheckResult:
    if is_forbidden(error):
        return CheckResult(
            check="turn.relay-data",
            target=target.server.uri,
            status=Status.SKIP,
            summary=f"the relay refuses its own relayed address as a peer ({error.detail}); "
            "data through the relay not tested here",
            cause_id=CauseId.RELAY_PEER_FORBIDDEN,
        )
    return CheckResult(
        check="turn.relay-data",
        target=target.server.uri,
        status=Status.WARN,
        summary=f"a second allocation or its permissions failed: {error}",
        cause_id=CauseId.RELAY_LOOP_FAILED,
        cause="The relay allocated once but failed the second allocation or a permission "
        "request (a per-user quota of one, or a transient error).",
        fix="Look at the error above and the server's log.",
        details={"error": str(error)},
    )


# ---------------------------------------------------------------- failures


def allocation_failed(
    target: Target, error: ProbeError, session: TurnSession | None, ctx: CheckContext
) -> CheckResult:
    diagnosis = explain(target, error, session, ctx)
    no_credentials = diagnosis.cause_id is CauseId.NO_CREDENTIALS
    details: dict[str, JsonValue] = {
        "error": str(error),
        "realm": session.auth.realm if session is not None else None,
        "requests": list(session.log.requests) if session is not None else [],
    }
    return CheckResult(
        check="turn.allocate",
        target=target.server.uri,
        status=Status.SKIP if no_credentials else Status.FAIL,
        summary=_failure_summary(target, error, diagnosis),
        metrics={"error_code": error.code} if error.code is not None else {},
        cause_id=diagnosis.cause_id,
        cause=diagnosis.cause,
        fix=diagnosis.fix,
        details=details,
        capabilities=() if no_credentials else target.capability,
    )


def _failure_summary(target: Target, error: ProbeError, diagnosis: Diagnosis) -> str:
    """Answers get the endpoint in front; transport failures name it already."""
    if error.kind is FailureKind.ERROR_RESPONSE:
        return f"{target.endpoint.label}: {diagnosis.summary}"
    return diagnosis.summary


def explain(
    target: Target, error: ProbeError, session: TurnSession | None, ctx: CheckContext
) -> Diagnosis:
    if error.kind is not FailureKind.ERROR_RESPONSE or error.code is None:
        ca_file = ctx.options.ca_file
        return explain_failure(error, target.endpoint, ctx.timeout, ca_file=ca_file)
    realm = session.auth.realm if session is not None else None
    if error.code == 401 and error.after_challenge and target.server.username is not None:
        rejected = Rejected(
            target.server.username, target.server.credential, realm, target.server.uri
        )
        return explain_rejected_credentials(rejected, ctx.options, ctx.now())
    if error.code == 401:
        return explain_unauthorized(realm, target.credentials is not None)
    return explain_error(error.code, error.detail, "Allocate")


def _open_relay(target: Target) -> CheckResult:
    return CheckResult(
        check="turn.auth",
        target=target.server.uri,
        status=Status.FAIL,
        summary="the server allocated a relay without asking for credentials",
        cause_id=CauseId.OPEN_RELAY,
        cause="An unauthenticated Allocate succeeded: anyone can use this server as an open "
        "relay (a proxy into its network and a traffic amplifier).",
        fix="Require long-term credentials (turn-relay does always; coturn: lt-cred-mech or "
        "use-auth-secret, and no no-auth).",
    )


def _not_released(target: Target) -> CheckResult:
    return CheckResult(
        check="turn.release",
        target=target.server.uri,
        status=Status.WARN,
        summary="the allocation could not be deleted (Refresh with lifetime 0 failed)",
        cause_id=CauseId.RELEASE_FAILED,
        cause="The server did not confirm the deletion; the relay port stays taken until the "
        "allocation expires.",
        fix="Look at the server's log for the Refresh request.",
    )


def _dtls_skipped(server: IceServer) -> CheckResult:
    return CheckResult(
        check="turn.allocate",
        target=server.uri,
        status=Status.SKIP,
        summary="turns: over UDP (DTLS) is not supported by rtccheck; browsers do not use it "
        "either",
    )


def _nothing_to_check() -> CheckResult:
    return CheckResult(
        check="turn",
        target="-",
        status=Status.SKIP,
        summary="no turn: or turns: server given",
    )
