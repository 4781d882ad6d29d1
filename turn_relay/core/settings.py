"""What the sans-I/O core needs to know about its deployment (the config layer builds it)."""

from __future__ import annotations

from dataclasses import dataclass

from .allocation import family_of


@dataclass(frozen=True, slots=True)
class RelayAddress:
    """A local address relay sockets bind to, and the address clients are told (1:1 NAT)."""

    local: str
    advertised: str

    @property
    def family(self) -> int:
        return family_of(self.local)


@dataclass(frozen=True, slots=True)
class CoreSettings:
    relays: tuple[RelayAddress, ...]  # at most one per family
    port_min: int = 49152
    port_max: int = 65535
    default_lifetime: int = 600
    max_lifetime: int = 3600
    permission_lifetime: int = 300
    channel_lifetime: int = 600
    max_allocations_per_user: int = 0  # 0 = unlimited
    max_allocations: int = 0
    max_permissions_per_allocation: int = 0
    max_bandwidth: int = 0  # bytes per second per allocation, both directions; 0 = no cap
    reservation_lifetime: float = 30.0  # RFC 8656 7.2: hold an EVEN-PORT R=1 port >= 30 s
    quarantine: float = 60.0  # how long a port the shell failed to bind stays out of the pool
    dont_fragment: bool = False  # the shell can send with DF set (DONT-FRAGMENT supported)
    # RFC 8656 channels are 0x4000-0x4FFF and 0x5000+ is reserved (dropped). RFC 5766 allowed
    # 0x4000-0x7FFF and some clients (coturn's turnutils_uclient) still pick from all of it.
    legacy_channels: bool = False
    software: str | None = "turnkit"
    # where a draining relay sends new Allocates (300 Try Alternate), first one named
    alternates: tuple[tuple[str, int], ...] = ()
    # The relay's client-facing listeners (UDP, TCP, TLS): never a peer, whatever the policy
    # says. An unspecified address (0.0.0.0, ::) stands for every relay address of its family.
    listeners: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        families = [relay.family for relay in self.relays]
        if len(set(families)) != len(families):
            raise ValueError("at most one relay address per address family")
        if not 1 <= self.default_lifetime <= self.max_lifetime:
            raise ValueError("need 1 <= default_lifetime <= max_lifetime")

    @property
    def max_channel(self) -> int:
        return 0x7FFF if self.legacy_channels else 0x4FFF

    def relay(self, family: int) -> RelayAddress | None:
        return next((relay for relay in self.relays if relay.family == family), None)
