"""The check families rtccheck runs, in report order; each is one sub-command.

To add a check: write ``rtccheck/checks/<name>.py`` (a docstring whose first line is the
summary, then details and examples; and ``async def run(ctx: CheckContext) ->
list[CheckResult]``), then replace its ``pending(...)`` line below with ``Family("<name>",
<name>)`` (or add such a line). The CLI makes the sub-command and ``all`` runs it.
"""

from __future__ import annotations

from rtccheck.checks import credentials, data, dns, gather, nat, policy, stun, tls, turn
from rtccheck.checks.base import Check, CheckContext, CheckOptions, Family, Nameserver

FAMILIES: tuple[Family, ...] = (
    Family("credentials", credentials, needs_targets=False),
    Family("dns", dns),
    Family("stun", stun),
    Family("turn", turn),
    Family("tls", tls),
    Family("gather", gather),
    Family("data", data),
    Family("nat", nat),
    Family("policy", policy),
)

__all__ = ["FAMILIES", "Check", "CheckContext", "CheckOptions", "Family", "Nameserver", "by_name"]


def by_name(name: str) -> Family:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise KeyError(name)
