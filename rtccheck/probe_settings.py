"""Settings of the network probes (stun, turn, nat, policy) beyond the shared CheckOptions.

The CLI does not have flags for these yet. `probe_settings` reads CheckOptions fields of the
same names when they exist (so adding ``expect_relay_address`` etc. to CheckOptions and the CLI
is all it takes); until then the defaults apply, and tests pass a ProbeSettings directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtccheck.checks.base import CheckOptions

#: how long the mapping-lifetime estimate may take at most, when asked for
DEFAULT_LIFETIME_MAX_S = 120.0


@dataclass(frozen=True)
class ProbeSettings:
    #: the only CA certificates (PEM) to trust for turns:/stuns: (None: the system's store)
    ca_file: Path | None = None
    #: the relayed address the TURN servers should hand out (public/advertised IP)
    expect_relay_address: str | None = None
    #: the relay port range the servers are configured with, inclusive
    expect_relay_ports: tuple[int, int] | None = None
    #: estimate how long NAT mappings live (takes up to nat_lifetime_max_s)
    nat_lifetime: bool = False
    nat_lifetime_max_s: float = DEFAULT_LIFETIME_MAX_S


def probe_settings(options: CheckOptions) -> ProbeSettings:
    """ProbeSettings from CheckOptions fields of the same names, where present."""
    ca_file = getattr(options, "ca_file", None)
    ports = getattr(options, "expect_relay_ports", None)
    return ProbeSettings(
        ca_file=Path(ca_file) if ca_file else None,
        expect_relay_address=getattr(options, "expect_relay_address", None),
        expect_relay_ports=parse_port_range(ports) if isinstance(ports, str) else ports,
        nat_lifetime=bool(getattr(options, "nat_lifetime", False)),
        nat_lifetime_max_s=float(
            getattr(options, "nat_lifetime_max_s", None) or DEFAULT_LIFETIME_MAX_S
        ),
    )


def parse_port_range(text: str) -> tuple[int, int]:
    """``"49152-65535"`` -> (49152, 65535); ValueError with a hint otherwise."""
    low, dash, high = text.strip().partition("-")
    if not dash or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(f"{text!r} is not a port range MIN-MAX, e.g. 49152-65535")
    first, last = int(low), int(high)
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"{text!r}: need 1 <= MIN <= MAX <= 65535")
    return first, last
