"""Which checks a run includes: ``--only FAMILY[,..]`` and ``--skip FAMILY|CHECK[,..]``.

A skipped family is not run at all. A skipped check (``policy.peers``, ``turn.relay-data``) runs
with its family, but its results are reported as ``skip`` ("deselected with --skip"), test no
capability and fail nothing: a gate can leave out one check it knows does not apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rtccheck.results import CheckResult, Status

#: every check id a family reports (docs/rtccheck-json.md's check catalogue; a test keeps both
#: equal)
CHECK_IDS: tuple[str, ...] = (
    "credentials.present",
    "credentials.username",
    "credentials.expiry",
    "credentials.password",
    "credentials.clock",
    "dns.resolve",
    "dns.srv",
    "stun.udp",
    "stun.tcp",
    "stun.tls",
    "turn.allocate",
    "turn.relay-address",
    "turn.relay-data",
    "turn.auth",
    "turn.release",
    "tls.handshake",
    "gather.host",
    "gather.srflx",
    "gather.relay",
    "data.relay",
    "data.direct",
    "nat.behaviour",
    "policy.peers",
)


class SelectionError(ValueError):
    """An ``--only``/``--skip`` name that is no family or check."""


@dataclass(frozen=True)
class Selection:
    families: tuple[str, ...]
    skipped_checks: frozenset[str] = frozenset()

    def apply(self, results: Sequence[CheckResult]) -> list[CheckResult]:
        """Results of deselected checks turned into skips."""
        return [_deselected(r) if r.check in self.skipped_checks else r for r in results]


def select(available: Sequence[str], only: Sequence[str], skip: Sequence[str]) -> Selection:
    """The families to run and the checks to deselect; unknown names raise SelectionError."""
    wanted = _names(only)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise SelectionError(
            f"--only: unknown check family {unknown[0]!r}; families: {', '.join(available)}"
        )
    skipped = _names(skip)
    for name in skipped:
        if name not in available and name not in CHECK_IDS:
            raise SelectionError(
                f"--skip: {name!r} is neither a check family ({', '.join(available)}) nor a "
                f"check ({', '.join(CHECK_IDS)})"
            )
    families = tuple(
        name for name in available if (not wanted or name in wanted) and name not in skipped
    )
    if not families:
        raise SelectionError("--only/--skip leave no check family to run")
    return Selection(families, frozenset(name for name in skipped if name in CHECK_IDS))


def _names(values: Sequence[str]) -> list[str]:
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if name and name not in names:
                names.append(name)
    return names


def _deselected(result: CheckResult) -> CheckResult:
    return replace(
        result,
        status=Status.SKIP,
        summary=f"deselected with --skip {result.check} (it found: {result.status.value}, "
        f"{result.summary})",
        cause_id=None,
        cause=None,
        fix=None,
        capabilities=(),
    )
