"""Settings of the network probes (stun, turn, nat, policy) beyond the shared CheckOptions.

`probe_settings` builds them from the CheckOptions fields of the same names (the CLI's
``--ca-file``, ``--expect-relay-address``, ``--expect-relay-ports``, ``--nat-lifetime`` and
``--nat-lifetime-max``); tests may pass a ProbeSettings directly.
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
    """ProbeSettings from the CheckOptions fields of the same names."""
    return ProbeSettings(
        ca_file=options.ca_file,
        expect_relay_address=options.expect_relay_address,
        expect_relay_ports=options.expect_relay_ports,
        nat_lifetime=options.nat_lifetime,
        nat_lifetime_max_s=options.nat_lifetime_max_s or DEFAULT_LIFETIME_MAX_S,
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
