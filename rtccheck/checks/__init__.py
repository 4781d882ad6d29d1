"""The check families rtccheck runs, in report order; each is one sub-command.

To add a check: write ``rtccheck/checks/<name>.py`` (a docstring whose first line is the
summary, then details and examples; and ``async def run(ctx: CheckContext) ->
list[CheckResult]``), then replace its ``pending(...)`` line below with ``Family("<name>",
<name>)`` (or add such a line). The CLI makes the sub-command and ``all`` runs it.
"""

from __future__ import annotations

from rtccheck.checks import credentials, dns
from rtccheck.checks.base import Check, CheckContext, CheckOptions, Family, Nameserver, pending

FAMILIES: tuple[Family, ...] = (
    Family("credentials", credentials, needs_targets=False),
    Family("dns", dns),
    pending("stun", "STUN binding: round-trip time and reflexive address per server, UDP and TCP"),
    pending("turn", "TURN allocation per server and transport (UDP, TCP, TLS), errors explained"),
    pending("tls", "TLS for turns: servers: host name match, chain, expiry, protocol version"),
    pending("gather", "Candidate gathering: every host, srflx and relay candidate per server"),
    pending("data", "Real data through each relay and the direct path: RTT, loss, throughput"),
    pending("nat", "NAT behaviour (RFC 5780): mapping, filtering, hairpinning, verdict"),
    pending("policy", "Peer-policy audit: which forbidden peer addresses the relay accepts"),
)

__all__ = ["FAMILIES", "Check", "CheckContext", "CheckOptions", "Family", "Nameserver", "by_name"]


def by_name(name: str) -> Family:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise KeyError(name)
