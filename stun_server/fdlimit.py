"""RLIMIT_NOFILE: raise the soft limit to the hard one at start-up.

systemd (and many shells) start services with a soft limit of 1024 descriptors while the hard
limit is far higher; a server holding one descriptor per connection should use what it is
allowed. Shared by `stun_server` and `turn_relay`.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NofileChange:
    before: int
    after: int
    hard: int
    error: str = ""

    def describe(self) -> str:
        hard = "unlimited" if self.hard == resource.RLIM_INFINITY else str(self.hard)
        if self.error:
            return f"RLIMIT_NOFILE soft {self.before} (hard {hard}): cannot raise: {self.error}"
        if self.after == self.before:
            return f"RLIMIT_NOFILE soft {self.after} (hard {hard}), already at the hard limit"
        return f"RLIMIT_NOFILE soft raised from {self.before} to {self.after} (hard {hard})"


# an unlimited hard limit cannot be the soft one; Linux caps descriptors at fs.nr_open anyway
_UNLIMITED_SOFT = 1 << 20


def raise_nofile_limit() -> NofileChange:
    """Set the soft RLIMIT_NOFILE to the hard limit; what it was and became."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_SOFT if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft >= target:
        return NofileChange(soft, soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        return NofileChange(soft, soft, hard, str(exc))
    return NofileChange(soft, target, hard)


def nofile_soft_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _UNLIMITED_SOFT if soft == resource.RLIM_INFINITY else soft
