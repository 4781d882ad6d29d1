"""Peer-policy audit: which forbidden peer addresses the relay accepts (report only).

For each TURN server (one transport per server), allocates a relay and asks for a permission
(CreatePermission, one request per address) to addresses a public relay must refuse: loopback,
the cloud metadata service 169.254.169.254, RFC 1918 and carrier-NAT ranges, multicast, and
IPv6 forms that embed them (::ffff:127.0.0.1, 64:ff9b::7f00:1, 6to4, Teredo ...). An accepted
permission means a client could make the relay send packets into the server's own network.
No data is ever sent to these addresses, and the allocation is deleted at the end. IPv6 peers
are tried on an IPv6 allocation when the IPv4 one refuses them for their family (443).

A relay that itself listens on loopback is a lab (a test bench, CI): it must accept loopback
peers for its own clients to reach each other, so plain loopback peers (127.0.0.1, ::1)
accepted there warn (loopback-peers-lab) instead of failing. Every other forbidden peer still
fails, the IPv4-mapped and other embedded forms of loopback too.

\b
Examples:
  rtccheck policy turn:turn.example.com --secret-file /etc/turnkit/rest-secret
  rtccheck policy turn:turn.example.com --username U --credential P --require policy
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckContext, CheckOptions
from rtccheck.checks.turn import Target, explain, new_session, plan
from rtccheck.forbidden_peers import FORBIDDEN_PEERS, PEER_PORT, ForbiddenPeer
from rtccheck.probe.auth import AuthCache
from rtccheck.probe.connect import connect
from rtccheck.probe.errors import FailureKind, ProbeError
from rtccheck.probe.messages import FAMILY_IPV4, FAMILY_IPV6
from rtccheck.probe.turn import TurnSession, allocation
from rtccheck.results import CheckResult, JsonValue, Status

CAPABILITY = ("policy",)
#: CreatePermission requests in flight at once on one allocation
CONCURRENCY = 4
#: peers a relay listening on loopback may accept: a lab setting, not a hole
LAB_PEERS = frozenset({"127.0.0.1", "::1"})


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNTESTED = "untested"
    ERROR = "error"


@dataclass(frozen=True)
class PeerOutcome:
    peer: ForbiddenPeer
    verdict: Verdict
    code: int | None = None
    detail: str = ""


def outcome_of(peer: ForbiddenPeer, error: ProbeError | None) -> PeerOutcome:
    """What a CreatePermission answer says about the relay's policy for ``peer``."""
    if error is None:
        return PeerOutcome(peer, Verdict.ACCEPTED, detail="permission granted")
    if error.kind is not FailureKind.ERROR_RESPONSE:
        return PeerOutcome(peer, Verdict.ERROR, detail=str(error))
    if error.code in (400, 403):
        return PeerOutcome(peer, Verdict.REFUSED, error.code, error.detail)
    if error.code in (440, 443):
        return PeerOutcome(peer, Verdict.UNTESTED, error.code, error.detail)
    return PeerOutcome(peer, Verdict.ERROR, error.code, error.detail)


async def run(ctx: CheckContext) -> list[CheckResult]:
    settings = ctx.options
    targets = one_per_server(plan(ctx.targets)[0])
    if not targets:
        return [_nothing_to_check()]
    return list(await asyncio.gather(*(audit(t, ctx, settings) for t in targets)))


def one_per_server(targets: list[Target]) -> list[Target]:
    chosen: dict[tuple[str, int], Target] = {}
    for target in targets:
        chosen.setdefault((target.server.host, target.server.port), target)
    return list(chosen.values())


@dataclass(frozen=True)
class Auditor:
    """One server's audit: where, with what, and the realm/nonce its sessions share."""

    target: Target
    ctx: CheckContext
    settings: CheckOptions
    cache: AuthCache = field(default_factory=AuthCache)

    async def permissions(self, peers: tuple[ForbiddenPeer, ...], family: int) -> list[PeerOutcome]:
        """Allocate (IPv4 or IPv6 relay), ask a permission per peer, delete the allocation."""
        return (await self.audit(peers, family))[0]

    async def audit(
        self, peers: tuple[ForbiddenPeer, ...], family: int
    ) -> tuple[list[PeerOutcome], str]:
        """The outcomes, and the address the relay was reached at."""
        ctx = self.ctx
        async with connect(
            self.target.endpoint,
            clock=ctx.monotonic,
            timeout=ctx.timeout,
            ca_file=self.settings.ca_file,
        ) as connection:
            session = new_session(connection, self.target, ctx.timeout, self.cache)
            async with allocation(session, family=family):
                return await ask_permissions(session, peers), connection.remote[0]


async def audit(target: Target, ctx: CheckContext, settings: CheckOptions) -> CheckResult:
    auditor = Auditor(target, ctx, settings)
    try:
        outcomes, relay_host = await auditor.audit(FORBIDDEN_PEERS, FAMILY_IPV4)
    except ProbeError as error:
        return _not_audited(target, error, ctx)
    family_refused = tuple(o.peer for o in outcomes if o.verdict is Verdict.UNTESTED)
    if family_refused:
        outcomes = await _retry_on_ipv6(auditor, outcomes, family_refused)
    return policy_result(target, outcomes, relay_host if is_loopback(relay_host) else None)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def ask_permissions(
    session: TurnSession, peers: tuple[ForbiddenPeer, ...]
) -> list[PeerOutcome]:
    """One CreatePermission per peer, a few at a time; never any data. After a timeout the
    remaining peers are not asked (the server stopped answering: waiting for each would only
    add timeouts)."""
    gate = asyncio.Semaphore(CONCURRENCY)
    timed_out: list[ProbeError] = []

    async def ask(peer: ForbiddenPeer) -> PeerOutcome:
        async with gate:
            if timed_out:
                return PeerOutcome(
                    peer, Verdict.ERROR, detail="not asked: the server stopped answering"
                )
            try:
                await session.create_permission([(peer.address, PEER_PORT)])
            except ProbeError as error:
                if error.kind is FailureKind.TIMEOUT:
                    timed_out.append(error)
                return outcome_of(peer, error)
            return outcome_of(peer, None)

    return list(await asyncio.gather(*(ask(peer) for peer in peers)))


async def _retry_on_ipv6(
    auditor: Auditor, outcomes: list[PeerOutcome], peers: tuple[ForbiddenPeer, ...]
) -> list[PeerOutcome]:
    """Peers refused for their family (443) on the IPv4 relay, tried on an IPv6 one."""
    try:
        again = await auditor.permissions(peers, FAMILY_IPV6)
    except ProbeError as error:
        note = f"no IPv6 allocation to test them on ({error.detail or error.kind.value})"
        again = [PeerOutcome(peer, Verdict.UNTESTED, error.code, note) for peer in peers]
    retried = {outcome.peer: outcome for outcome in again}
    return [retried.get(outcome.peer, outcome) for outcome in outcomes]


def policy_result(
    target: Target, outcomes: list[PeerOutcome], lab_host: str | None = None
) -> CheckResult:
    """The audit's verdict; ``lab_host`` is the relay's own loopback address, when it has one."""
    accepted = [o for o in outcomes if o.verdict is Verdict.ACCEPTED]
    untested = [o for o in outcomes if o.verdict in (Verdict.UNTESTED, Verdict.ERROR)]
    refused = [o for o in outcomes if o.verdict is Verdict.REFUSED]
    metrics: dict[str, float | int | str | None] = {
        "accepted": len(accepted),
        "refused": len(refused),
        "untested": len(untested),
    }
    details: dict[str, JsonValue] = {
        "peers": [_peer_detail(o) for o in outcomes],
        "accepted": [o.peer.address for o in accepted],
    }
    lab = [o for o in accepted if lab_host is not None and o.peer.address in LAB_PEERS]
    if lab_host is not None:
        details["lab"] = {"relay_address": lab_host, "accepted": [o.peer.address for o in lab]}
    forbidden = [o for o in accepted if o not in lab]
    if forbidden:
        return _accepts_forbidden(target, forbidden, metrics, details)
    if lab:
        assert lab_host is not None
        return _lab_loopback(
            target, lab, relay_host=lab_host, refused=len(refused), metrics=metrics, details=details
        )
    summary = f"the relay refuses all {len(refused)} forbidden peer addresses tried"
    if untested:
        summary += f" ({len(untested)} could not be tried: see details)"
    return CheckResult(
        check="policy.peers",
        target=target.server.uri,
        status=Status.PASS,
        summary=summary,
        metrics=metrics,
        details=details,
        capabilities=CAPABILITY,
    )


def _accepts_forbidden(
    target: Target,
    accepted: list[PeerOutcome],
    metrics: dict[str, float | int | str | None],
    details: dict[str, JsonValue],
) -> CheckResult:
    listed = ", ".join(f"{o.peer.address} ({o.peer.label})" for o in accepted[:6])
    more = f" and {len(accepted) - 6} more" if len(accepted) > 6 else ""
    return CheckResult(
        check="policy.peers",
        target=target.server.uri,
        status=Status.FAIL,
        summary=f"the relay wrongly accepts {len(accepted)} forbidden peer addresses: "
        f"{listed}{more}",
        metrics=metrics,
        cause_id=CauseId.FORBIDDEN_PEERS_ACCEPTED,
        cause="Any client with credentials can make this relay send packets to these "
        "addresses: into the server's own host and network (internal services, the cloud "
        "metadata service), bypassing firewalls (SSRF through TURN).",
        fix="Deny them in the relay's peer policy: turn-relay denies them by default (check "
        "allowed_peers); coturn needs denied-peer-ip for RFC 1918/100.64/169.254 ranges, "
        "no allow-loopback-peers, and a version that canonicalises IPv4-mapped peers.",
        details=details,
        capabilities=CAPABILITY,
    )


def _lab_loopback(
    target: Target,
    lab: list[PeerOutcome],
    *,
    relay_host: str,
    refused: int,
    metrics: dict[str, float | int | str | None],
    details: dict[str, JsonValue],
) -> CheckResult:
    listed = ", ".join(o.peer.address for o in lab)
    return CheckResult(
        check="policy.peers",
        target=target.server.uri,
        status=Status.WARN,
        summary=f"lab setting: the relay accepts loopback peers ({listed}), as it listens on "
        f"loopback itself ({relay_host}); it refuses the other {refused} forbidden peers tried",
        metrics=metrics,
        cause_id=CauseId.LOOPBACK_PEERS_LAB,
        cause="A relay on loopback serves clients on the same host, which reach each other "
        "through loopback peers; on a relay reachable from elsewhere the same setting lets "
        "clients into the host's own services.",
        fix="Nothing for a lab. On a public relay deny loopback peers (turn-relay: drop "
        "127.0.0.0/8 and ::1 from allowed_peers; coturn: no allow-loopback-peers).",
        details=details,
        capabilities=CAPABILITY,
    )


def _peer_detail(outcome: PeerOutcome) -> dict[str, JsonValue]:
    return {
        "address": outcome.peer.address,
        "label": outcome.peer.label,
        "verdict": outcome.verdict.value,
        "code": outcome.code,
        "detail": outcome.detail,
    }


def _not_audited(target: Target, error: ProbeError, ctx: CheckContext) -> CheckResult:
    diagnosis = explain(target, error, None, ctx)
    return CheckResult(
        check="policy.peers",
        target=target.server.uri,
        status=Status.SKIP,
        summary=f"cannot audit: no allocation ({diagnosis.summary}); see the turn check",
        cause_id=diagnosis.cause_id,
        details={"error": str(error)},
    )


def _nothing_to_check() -> CheckResult:
    return CheckResult(
        check="policy",
        target="-",
        status=Status.SKIP,
        summary="no turn: or turns: server given to audit",
    )
