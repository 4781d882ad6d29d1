"""One failure, one cause: later results failing for a cause already reported point to it.

An expired credential makes credentials.expiry, turn.allocate, gather.relay and data.relay fail
alike; only the first of them explains the cause and fix, the others say ``see <check>`` (and
name it in ``see``). Two results share a root cause when they have the same ``cause_id`` and a
server in common (a credentials result names every URI using the credential).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from rtccheck.results import CheckResult, Status

#: statuses whose cause is worth linking (a pass has none)
LINKED = (Status.FAIL, Status.WARN, Status.SKIP)


def link_repeated_causes(results: Sequence[CheckResult]) -> list[CheckResult]:
    """The results in order, each repeat of an earlier result's cause pointing to that one."""
    firsts: list[CheckResult] = []
    linked: list[CheckResult] = []
    for result in results:
        first = _first_with_cause(result, firsts)
        if first is None:
            if result.cause_id is not None and result.status in LINKED:
                firsts.append(result)
            linked.append(result)
        else:
            linked.append(_pointing_to(result, first))
    return linked


def servers_of(result: CheckResult) -> frozenset[str]:
    """The servers a result is about: its target, or every URI of a credentials result."""
    return frozenset(part.strip() for part in result.target.split(", "))


def _first_with_cause(result: CheckResult, firsts: Sequence[CheckResult]) -> CheckResult | None:
    if result.cause_id is None or result.status not in LINKED:
        return None
    for first in firsts:
        same = first.cause_id == result.cause_id and first.check != result.check
        if same and servers_of(first) & servers_of(result) and first.target != "-":
            return first
    return None


def _pointing_to(result: CheckResult, first: CheckResult) -> CheckResult:
    where = f"{first.check} ({first.target})"
    return replace(
        result,
        cause=f"The same cause as {where}, reported there with its fix.",
        fix=f"see {first.check}",
        see=where,
    )
