"""The relay's configuration model: frozen dataclasses, whose defaults are the only defaults.

`turn_relay.config.reader` fills them from TOML, `turn_relay.config.flags` from command-line flags
over a file. Secrets never live in the model's TOML: it names the file or environment variable
that holds them, and `turn_relay.config.secrets` reads them into `Secrets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from turn_relay.auth.credentials import DEFAULT_SEPARATOR


class ConfigError(ValueError):
    """A bad value; the message starts with the dotted key, e.g. ``relay.port_range: ...``."""


# Defaults: the dataclass defaults below are the only ones. The TOML parser falls back to them
# for every key a file omits, and `turn-relay serve --help` shows them, so a file, flags and
# flags over a file all start from the same values.
DEFAULT_REALM = "turnkit"
DEFAULT_LISTEN_ADDRESSES = ("127.0.0.1",)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    realm: str = DEFAULT_REALM
    public_host: str | None = None  # DNS name (or IP) put into generated TURN URLs
    workers: int = 1  # 0 = one per CPU core
    # Where the relay keeps what must survive a restart (revocations.sqlite3, the check
    # page's reports.sqlite3); None: nowhere: `turn-relay revoke` is refused rather than
    # forgotten at the next start, and the check page is off.
    state_dir: Path | None = None
    # SIGTERM drains for this long first (no new allocations, /healthz 503) before stopping;
    # 0 stops at once. `turn-relay drain` drains without a signal.
    drain_seconds: int = 0
    # (ip, port) servers a draining relay names in 300 Try Alternate; empty: 403
    alternates: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Listener:
    transport: str  # "udp", "tcp" or "tls"
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class ListenConfig:
    addresses: tuple[str, ...] = DEFAULT_LISTEN_ADDRESSES
    udp_port: int = 3478  # 0 disables the transport
    tcp_port: int = 3478
    tls_port: int = 0
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # TCP/TLS client connections. The relay lowers both caps to what its file descriptor
    # limit allows (each connection may hold a relay socket too): see docs/operations.md.
    max_stream_connections: int = 20_000
    max_stream_connections_per_source: int = 2_000  # one IP (IPv6: /64), e.g. an office
    stream_setup_timeout: float = 10.0  # seconds a connection may live without an allocation

    def listeners(self) -> tuple[Listener, ...]:
        ports = (("udp", self.udp_port), ("tcp", self.tcp_port), ("tls", self.tls_port))
        return tuple(
            Listener(transport, address, port)
            for transport, port in ports
            if port
            for address in self.addresses
        )


@dataclass(frozen=True, slots=True)
class RelayConfig:
    # Local addresses relay sockets bind to, at most one per family. Default (in the parser):
    # the listen addresses, which must then be concrete (see `default_relay_addresses`).
    addresses: tuple[str, ...]
    port_min: int = 49152
    port_max: int = 65535
    external: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def advertised(self, address: str) -> str:
        """The address clients are told (XOR-RELAYED-ADDRESS) for local relay ``address``."""
        return self.external.get(address, address)

    def own_addresses(self) -> tuple[str, ...]:
        """Local and advertised relay addresses: peers the peer policy always lets through."""
        return tuple(dict.fromkeys((*self.addresses, *self.external.values())))


@dataclass(frozen=True, slots=True)
class AllocationConfig:
    default_lifetime: int = 600
    max_lifetime: int = 3600
    permission_lifetime: int = 300  # RFC 8656 fixes 300 s; change only for tests
    channel_lifetime: int = 600  # RFC 8656 fixes 600 s; change only for tests
    # Accept channel numbers 0x4000-0x7FFF (RFC 5766) instead of 0x4000-0x4FFF (RFC 8656):
    # coturn's turnutils_uclient still picks numbers above 0x4FFF.
    rfc5766_channels: bool = False


@dataclass(frozen=True, slots=True)
class QuotaConfig:  # 0 = unlimited everywhere
    max_allocations_per_user: int = 100
    max_allocations: int = 0
    max_permissions_per_allocation: int = 64
    max_bandwidth_per_allocation: int = 0  # bytes per second


@dataclass(frozen=True, slots=True)
class ChallengeBudgetConfig:
    """401/438 answers over UDP (`turn_relay.auth.challenge`): token buckets per source IP
    (IPv6: per /64), large for sources that authenticated within ``proof_lifetime`` seconds,
    small for the others, plus one cap over all sources (burst: one second's worth)."""

    unproven_rate: float = 5.0  # per second, to a source that has not authenticated
    unproven_burst: int = 20
    proven_rate: float = 200.0  # per second, to a source that authenticated recently
    proven_burst: int = 1000
    proof_lifetime: float = 600.0  # seconds an authenticated request keeps its source proven
    total_rate: float = 5000.0  # per second, over all sources
    max_sources: int = 65_536  # buckets (and proofs) kept


@dataclass(frozen=True, slots=True)
class AuthConfig:
    users_file: Path | None = None  # static users, "user:password" per line
    rest_secrets_file: Path | None = None  # REST secrets, one per line, current first
    rest_secrets_env: str | None = None  # or: an env var with comma-separated secrets
    separator: str = DEFAULT_SEPARATOR
    strict_expiry: bool = True
    nonce_lifetime: float = 600.0
    challenge_budget: ChallengeBudgetConfig = field(default_factory=ChallengeBudgetConfig)


@dataclass(frozen=True, slots=True)
class PeerPolicyConfig:
    allowed_peers: tuple[str, ...] = ()
    denied_peers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiConfig:
    enabled: bool = False
    listen: str = "127.0.0.1"
    port: int = 8080
    api_key_file: Path | None = None
    api_key_env: str | None = None
    # The admin API's own key (sessions, kick, revoke, drain, status); never the API key
    admin_key_file: Path | None = None
    admin_key_env: str | None = None
    # Empty: derived, see `ice_urls` (server.public_host, else the listen addresses).
    urls: tuple[str, ...] = ()
    default_ttl: int = 3600
    max_ttl: int = 86400
    # HTTPS for the API (the check page is opened by browsers on the internet); may name the
    # same files as listen.tls_cert_file/tls_key_file. None: plain HTTP.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """The check page (`turn-relay link`, ``/check/<token>``): on when a link secret is named."""

    link_secrets_file: Path | None = None  # one secret per line, the first one signs links
    link_secrets_env: str | None = None  # or: an env var with comma-separated secrets
    link_ttl: int = 86400  # how long a link minted by `turn-relay link` stays valid
    credential_ttl: int = 900  # the page's TURN credentials
    # The API as users' browsers reach it, e.g. https://turn.example.com:8443; None: derived
    # from server.public_host (else api.listen), api.port and whether the API has TLS.
    public_url: str | None = None
    page_loads_per_minute: int = 30  # per source address (IPv6: per /64); 429 beyond
    uploads_per_minute: int = 6

    @property
    def enabled(self) -> bool:
        return self.link_secrets_file is not None or self.link_secrets_env is not None


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True  # served at /metrics by the HTTP API
    require_api_key: bool = False


OFFLOAD_MODES = ("off", "auto", "on")


@dataclass(frozen=True, slots=True)
class OffloadConfig:
    """The kernel data path for UDP ChannelData (`turn_relay.offload`).

    ``mode``: "off" (userspace only), "auto" (the kernel when it can, else userspace and one log
    line saying why), "on" (the kernel or the relay does not start). Off by default: attaching
    to the host's interfaces puts channel traffic past the host firewall, so it is a choice.
    ``object_file``: the built eBPF object (default: ``$TURNKIT_OFFLOAD_OBJECT``, else where
    ``python -m turn_relay.offload.build`` puts it). ``interfaces``: where to attach (default:
    the interfaces holding the listen and relay addresses).
    """

    mode: str = "off"
    object_file: Path | None = None
    interfaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RendezvousConfig:
    """Signaling rooms for peer tests (`turn_relay.config.rendezvous`); on with a secret."""

    pairing_secrets_file: Path | None = None  # one secret per line, the first one signs
    pairing_secrets_env: str | None = None  # or: an env var with comma-separated secrets
    max_room_ttl: int = 1800  # seconds a room lives at most, whatever its token says
    max_rooms: int = 256  # live rooms and remembered ended ones together
    max_message_bytes: int = 16384  # one signaling message (an SDP with candidates: ~5 KiB)
    messages_per_second: float = 20.0  # per party, a token bucket ...
    message_burst: int = 200  # ... of this size (trickled candidates come in bursts)
    joins_per_minute: int = 30  # joins and code look-ups per source address (IPv6: per /64)
    turn_ttl: int = 1800  # the per-room TURN credentials handed to both parties

    @property
    def enabled(self) -> bool:
        return self.pairing_secrets_file is not None or self.pairing_secrets_env is not None


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """Several relays as one service through a shared Redis (empty redis_url: no fleet)."""

    redis_url: str | None = None  # redis://host:port/db, no password: see the two below
    redis_password_file: Path | None = None
    redis_password_env: str | None = None
    relay_id: str | None = None  # unique in the fleet; default: the first listen address
    # where siblings send clients when they are full or draining (300 ALTERNATE-SERVER): this
    # relay's address as clients dial it; empty = never named
    advertise: tuple[tuple[str, int], ...] = ()
    heartbeat: float = 0.5  # seconds between publishing and reading the fleet
    ttl: float = 3.0  # a relay silent this long drops out
    # seconds between publishes of the session registry (one record per allocation, so slower
    # than the heartbeat): how stale `turn-relay sessions` may be for the other relays
    sessions_interval: float = 5.0
    prefix: str = "turnkit"  # Redis key prefix: one Redis can hold several fleets

    @property
    def enabled(self) -> bool:
        return self.redis_url is not None


@dataclass(frozen=True, slots=True)
class TurnConfig:
    server: ServerConfig
    relay: RelayConfig
    listen: ListenConfig = field(default_factory=ListenConfig)
    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    quotas: QuotaConfig = field(default_factory=QuotaConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    peer_policy: PeerPolicyConfig = field(default_factory=PeerPolicyConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    offload: OffloadConfig = field(default_factory=OffloadConfig)
    rendezvous: RendezvousConfig = field(default_factory=RendezvousConfig)
    check: CheckConfig = field(default_factory=CheckConfig)


@dataclass(frozen=True, slots=True)
class Secrets:
    rest_secrets: tuple[str, ...] = field(default=(), repr=False)  # current (issuing) first
    static_users: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    api_key: str | None = field(default=None, repr=False)
    admin_key: str | None = field(default=None, repr=False)
    redis_password: str | None = field(default=None, repr=False)
    pairing_secrets: tuple[str, ...] = field(default=(), repr=False)  # signing one first
    check_link_secrets: tuple[str, ...] = field(default=(), repr=False)  # signing one first


_RELAY = RelayConfig(())
DEFAULT_PORT_RANGE = (_RELAY.port_min, _RELAY.port_max)
