"""Relay configuration: frozen dataclasses read from TOML, validated with messages naming the key.

Secrets never live in the TOML: it names the file or environment variable that holds them, and
``load_secrets`` reads them (at start and again on SIGHUP). Unknown keys are errors, so a typo, or
a secret pasted into the file, is caught at load time. File paths are not checked for existence
here; the server opens them when it starts.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from types import MappingProxyType

from turn_relay.credentials import DEFAULT_SEPARATOR


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
class RateLimitConfig:  # 401/438 answers per UDP source (IPv6: per /64); a token bucket
    per_second: float = 1.0
    burst: int = 10
    max_sources: int = 65_536


@dataclass(frozen=True, slots=True)
class AuthConfig:
    users_file: Path | None = None  # static users, "user:password" per line
    rest_secrets_file: Path | None = None  # REST secrets, one per line, current first
    rest_secrets_env: str | None = None  # or: an env var with comma-separated secrets
    separator: str = DEFAULT_SEPARATOR
    strict_expiry: bool = True
    nonce_lifetime: float = 600.0
    unauthorized_limit: RateLimitConfig = field(default_factory=RateLimitConfig)


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
    # Empty: derived, see `ice_urls` (server.public_host, else the listen addresses).
    urls: tuple[str, ...] = ()
    default_ttl: int = 3600
    max_ttl: int = 86400


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True  # served at /metrics by the HTTP API
    require_api_key: bool = False


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


@dataclass(frozen=True, slots=True)
class Secrets:
    rest_secrets: tuple[str, ...] = field(default=(), repr=False)  # current (issuing) first
    static_users: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    api_key: str | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------
# Typed access to one TOML table, remembering which keys were read so the rest can be refused.

_SECRET_HINT = "; secrets never go in this file: name a file or an environment variable instead"
_SECRET_WORDS = ("secret", "password", "key", "token")


class _Table:
    def __init__(self, data: Mapping[str, object], path: str) -> None:
        self._data = data
        self._path = path
        self._read: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def keys(self) -> list[str]:
        return list(self._data)

    def has(self, key: str) -> bool:
        return key in self._data

    def _get(self, key: str) -> object:
        self._read.add(key)
        return self._data.get(key)

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.name(key)}: {problem}")

    def text(self, key: str, default: str) -> str:
        value = self.optional_text(key)
        return default if value is None else value

    def optional_text(self, key: str) -> str | None:
        value = self._get(key)
        if value is None or isinstance(value, str):
            return value
        raise self.fail(key, f"expected a string, got {value!r}")

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"at least {minimum}" if maximum is None else f"{minimum}-{maximum}"
            raise self.fail(key, f"{value} is out of range ({bound})")
        return value

    def positive_number(self, key: str, default: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {value!r}")
        if value <= 0:
            raise self.fail(key, f"{value} must be greater than 0")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def text_list(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of strings, got {value!r}")
        return tuple(str(v) for v in value)

    def optional_path(self, key: str) -> Path | None:
        value = self.optional_text(key)
        if value is not None and not value.strip():
            raise self.fail(key, "is empty")
        return None if value is None else Path(value)

    def table(self, key: str) -> _Table:
        value = self._get(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {value!r}")
        return _Table(value, self.name(key))

    def finish(self) -> None:
        for key in sorted(set(self._data) - self._read):
            hint = _SECRET_HINT if any(w in key.lower() for w in _SECRET_WORDS) else ""
            raise self.fail(key, f"unknown key{hint}")


# ---------------------------------------------------------------------------------------------
# Shared validators.


def _check_ip(table: _Table, key: str, value: str) -> IPv4Address | IPv6Address:
    try:
        return ip_address(value)
    except ValueError:
        raise table.fail(key, f"{value!r} is not an IP address") from None


def _check_networks(table: _Table, key: str) -> tuple[str, ...]:
    networks = table.text_list(key, ())
    for index, text in enumerate(networks):
        try:
            ip_network(text)
        except ValueError as exc:
            raise table.fail(f"{key}[{index}]", f"{text!r}: {exc}") from None
    return networks


def _check_env_name(table: _Table, key: str) -> str | None:
    name = table.optional_text(key)
    if name is not None and not (name.replace("_", "").isalnum() and not name[0].isdigit()):
        raise table.fail(key, f"{name!r} is not an environment variable name")
    return name


def _one_source(table: _Table, file_key: str, env_key: str) -> tuple[Path | None, str | None]:
    file, env = table.optional_path(file_key), _check_env_name(table, env_key)
    if file is not None and env is not None:
        raise table.fail(file_key, f"set {file_key} or {env_key}, not both")
    return file, env


# ---------------------------------------------------------------------------------------------
# One parser per section. Every default comes from the dataclasses above.

_SERVER, _LISTEN, _ALLOCATION = ServerConfig(), ListenConfig(), AllocationConfig()
_QUOTAS, _LIMIT, _AUTH, _API = QuotaConfig(), RateLimitConfig(), AuthConfig(), ApiConfig()
_METRICS, _RELAY = MetricsConfig(), RelayConfig(())
DEFAULT_PORT_RANGE = (_RELAY.port_min, _RELAY.port_max)


def _server(table: _Table) -> ServerConfig:
    realm = table.text("realm", _SERVER.realm)
    if not realm:
        raise table.fail("realm", f"is empty (omit it for the default {DEFAULT_REALM!r})")
    if len(realm) > 127 or not realm.isprintable() or '"' in realm or "\\" in realm:
        raise table.fail("realm", f"{realm!r} must be under 128 printable characters, no quotes")
    public_host = table.optional_text("public_host")
    workers = table.integer("workers", _SERVER.workers, 0, 256)
    table.finish()
    return ServerConfig(realm, public_host or None, workers)


def _listen(table: _Table) -> ListenConfig:
    addresses = table.text_list("addresses", _LISTEN.addresses)
    if not addresses:
        raise table.fail("addresses", "needs at least one address")
    for address in addresses:
        _check_ip(table, "addresses", address)
    udp = table.integer("udp_port", _LISTEN.udp_port, 0, 65535)
    tcp = table.integer("tcp_port", _LISTEN.tcp_port, 0, 65535)
    tls = table.integer("tls_port", _LISTEN.tls_port, 0, 65535)
    cert, key = table.optional_path("tls_cert_file"), table.optional_path("tls_key_file")
    table.finish()
    if not (udp or tcp or tls):
        raise table.fail("udp_port", "udp_port, tcp_port and tls_port are all 0: nothing listens")
    if tls and tls == tcp:
        raise table.fail("tls_port", f"{tls} is also listen.tcp_port")
    for name, path in (("tls_cert_file", cert), ("tls_key_file", key)):
        if tls and path is None:
            raise table.fail(name, "required when listen.tls_port is not 0")
    return ListenConfig(addresses, udp, tcp, tls, cert, key)


def _port_range(table: _Table) -> tuple[int, int]:
    ports = table.table("port_range")
    low = ports.integer("min", DEFAULT_PORT_RANGE[0], 1, 65535)
    high = ports.integer("max", DEFAULT_PORT_RANGE[1], 1, 65535)
    ports.finish()
    if low > high:
        raise table.fail("port_range", f"min {low} > max {high}")
    return low, high


def default_relay_addresses(listen: Sequence[str]) -> tuple[str, ...]:
    """relay.addresses when none is given: the first listen address of each family.

    Raises ValueError when a listen address is 0.0.0.0 or ``::``: a relay socket needs the
    concrete address its peers see, which a wildcard listener does not say.
    """
    wildcards = [address for address in listen if ip_address(address).is_unspecified]
    if wildcards:
        raise ValueError(
            f"required when listen.addresses has {' and '.join(wildcards)}: name the concrete"
            " local address(es) relay sockets bind to (--relay-address)"
        )
    chosen: dict[int, str] = {}
    for address in listen:
        chosen.setdefault(ip_address(address).version, address)
    return tuple(chosen.values())


def _relay_addresses(
    table: _Table, listen: ListenConfig, external: Mapping[str, str]
) -> tuple[str, ...]:
    given = table.has("addresses")
    addresses = table.text_list("addresses", ())
    if given and not addresses:
        raise table.fail("addresses", "needs at least one address (or omit the key)")
    if not given:
        try:
            addresses = default_relay_addresses(listen.addresses)
        except ValueError as exc:
            raise table.fail("addresses", str(exc)) from None
    seen: dict[int, str] = {}
    for address in addresses:
        ip = _check_ip(table, "addresses", address)
        if ip.version in seen:
            problem = f"{seen[ip.version]} and {address} are both IPv{ip.version}; one per family"
            raise table.fail("addresses", problem)
        seen[ip.version] = address
        if ip.is_unspecified and address not in external:
            problem = (
                f"{address} is unspecified; bind a concrete address or map it in relay.external"
            )
            raise table.fail("addresses", problem)
    return addresses


def _relay_external(table: _Table) -> dict[str, str]:
    mapping = table.table("external")
    pairs: dict[str, str] = {}
    for local in mapping.keys():  # noqa: SIM118 (a _Table, not a dict)
        advertised = mapping.optional_text(local) or ""
        local_ip = _check_ip(mapping, f'"{local}"', local)
        advertised_ip = _check_ip(mapping, f'"{local}"', advertised)
        if local_ip.version != advertised_ip.version:
            raise mapping.fail(f'"{local}"', f"{advertised} is not the family of {local}")
        pairs[local] = advertised
    mapping.finish()
    return pairs


def _relay(table: _Table, listen: ListenConfig) -> RelayConfig:
    external = _relay_external(table)
    addresses = _relay_addresses(table, listen, external)
    for local in external:
        if local not in addresses:
            raise table.fail("external", f"{local} is not one of relay.addresses")
    low, high = _port_range(table)
    table.finish()
    for port in (listen.udp_port, listen.tcp_port, listen.tls_port):
        if port and low <= port <= high:
            raise table.fail("port_range", f"{low}-{high} includes listener port {port}")
    return RelayConfig(addresses, low, high, MappingProxyType(external))


def _allocation(table: _Table) -> AllocationConfig:
    default = table.integer("default_lifetime", _ALLOCATION.default_lifetime, 1)
    maximum = table.integer("max_lifetime", _ALLOCATION.max_lifetime, 1)
    permission = table.integer("permission_lifetime", _ALLOCATION.permission_lifetime, 1)
    channel = table.integer("channel_lifetime", _ALLOCATION.channel_lifetime, 1)
    rfc5766_channels = table.boolean("rfc5766_channels", _ALLOCATION.rfc5766_channels)
    table.finish()
    if default > maximum:
        raise table.fail("default_lifetime", f"{default} > allocation.max_lifetime {maximum}")
    return AllocationConfig(default, maximum, permission, channel, rfc5766_channels)


def _quotas(table: _Table) -> QuotaConfig:
    quotas = QuotaConfig(
        table.integer("max_allocations_per_user", _QUOTAS.max_allocations_per_user, 0),
        table.integer("max_allocations", _QUOTAS.max_allocations, 0),
        table.integer("max_permissions_per_allocation", _QUOTAS.max_permissions_per_allocation, 0),
        table.integer("max_bandwidth_per_allocation", _QUOTAS.max_bandwidth_per_allocation, 0),
    )
    table.finish()
    return quotas


def _rate_limit(table: _Table) -> RateLimitConfig:
    limit = RateLimitConfig(
        table.positive_number("per_second", _LIMIT.per_second),
        table.integer("burst", _LIMIT.burst, 1),
        table.integer("max_sources", _LIMIT.max_sources, 1),
    )
    table.finish()
    return limit


def _auth(table: _Table) -> AuthConfig:
    users_file = table.optional_path("users_file")
    secrets_file, secrets_env = _one_source(table, "rest_secrets_file", "rest_secrets_env")
    separator = table.text("separator", _AUTH.separator)
    if len(separator) != 1 or separator.isdigit() or not separator.isprintable():
        raise table.fail("separator", f"{separator!r} must be one printable non-digit character")
    strict_expiry = table.boolean("strict_expiry", _AUTH.strict_expiry)
    nonce_lifetime = table.positive_number("nonce_lifetime", _AUTH.nonce_lifetime)
    limit = _rate_limit(table.table("unauthorized_limit"))
    table.finish()
    return AuthConfig(
        users_file, secrets_file, secrets_env, separator, strict_expiry, nonce_lifetime, limit
    )


def _peer_policy(table: _Table) -> PeerPolicyConfig:
    policy = PeerPolicyConfig(
        _check_networks(table, "allowed_peers"), _check_networks(table, "denied_peers")
    )
    table.finish()
    return policy


def _check_urls(table: _Table, urls: tuple[str, ...]) -> None:
    for index, url in enumerate(urls):
        if not url.startswith(("turn:", "turns:", "stun:", "stuns:")):
            raise table.fail(f"urls[{index}]", f"{url!r} must start with turn:, turns: or stun:")


def _api(
    table: _Table, server: ServerConfig, listen: ListenConfig, relay: RelayConfig
) -> ApiConfig:
    enabled = table.boolean("enabled", _API.enabled)
    address = table.text("listen", _API.listen)
    _check_ip(table, "listen", address)
    port = table.integer("port", _API.port, 1, 65535)
    key_file, key_env = _one_source(table, "api_key_file", "api_key_env")
    urls = table.text_list("urls", _API.urls)
    _check_urls(table, urls)
    default_ttl = table.integer("default_ttl", _API.default_ttl, 1)
    max_ttl = table.integer("max_ttl", _API.max_ttl, 1)
    table.finish()
    if default_ttl > max_ttl:
        raise table.fail("default_ttl", f"{default_ttl} > api.max_ttl {max_ttl}")
    if enabled and key_file is None and key_env is None:
        raise table.fail(
            "api_key_file", "set api_key_file or api_key_env when api.enabled (--api-key-file)"
        )
    if enabled and not urls:
        try:
            _url_hosts(server, listen, relay)
        except ValueError as exc:
            raise table.fail("urls", str(exc)) from None
    return ApiConfig(enabled, address, port, key_file, key_env, urls, default_ttl, max_ttl)


def _metrics(table: _Table) -> MetricsConfig:
    metrics = MetricsConfig(
        table.boolean("enabled", _METRICS.enabled),
        table.boolean("require_api_key", _METRICS.require_api_key),
    )
    table.finish()
    return metrics


# ---------------------------------------------------------------------------------------------
# Entry points.


def parse(data: Mapping[str, object]) -> TurnConfig:
    """Validate an already-decoded TOML document."""
    root = _Table(data, "")
    server = _server(root.table("server"))
    listen = _listen(root.table("listen"))
    relay = _relay(root.table("relay"), listen)
    config = TurnConfig(
        server=server,
        relay=relay,
        listen=listen,
        allocation=_allocation(root.table("allocation")),
        quotas=_quotas(root.table("quotas")),
        auth=_auth(root.table("auth")),
        peer_policy=_peer_policy(root.table("peer_policy")),
        api=_api(root.table("api"), server, listen, relay),
        metrics=_metrics(root.table("metrics")),
    )
    root.finish()
    return config


def loads(text: str) -> TurnConfig:
    try:
        return parse(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax: {exc}") from None


def load(path: str | os.PathLike[str]) -> TurnConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    try:
        return loads(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _url_hosts(server: ServerConfig, listen: ListenConfig, relay: RelayConfig) -> tuple[str, ...]:
    """Hosts for derived TURN URLs: server.public_host, else each listen address clients dial.

    A listen address that is also a relay address mapped in relay.external (1:1 NAT) becomes
    its advertised address; any other is dialled as it is, unless it is 0.0.0.0/``::`` (it
    names no address) or another address of its family is behind NAT (clients may not see it).
    Raises ValueError saying what to set instead.
    """
    if server.public_host is not None:
        return (server.public_host,)
    hint = "set server.public_host (--public-host) or api.urls"
    natted = {ip_address(local).version for local in relay.external}
    hosts: list[str] = []
    for address in listen.addresses:
        ip = ip_address(address)
        if address in relay.external:
            hosts.append(relay.external[address])
        elif ip.is_unspecified:
            raise ValueError(
                f"no URL to hand out: listen address {address} is a wildcard, not an address"
                f" clients can dial; {hint}"
            )
        elif ip.version in natted:
            raise ValueError(
                f"no URL to hand out: listen address {address} may be behind the 1:1 NAT of"
                f" relay.external, which does not map it; {hint}"
            )
        else:
            hosts.append(address)
    return tuple(dict.fromkeys(hosts))


def ice_urls(config: TurnConfig) -> tuple[str, ...]:
    """The URLs an RTCIceServer gets: ``api.urls`` if set, else derived.

    Derived: for each host (``server.public_host``, else each listen address, see
    `_url_hosts`), one URL per enabled transport: ``turn:...?transport=udp``,
    ``turn:...?transport=tcp``, ``turns:...?transport=tcp``. Raises ConfigError (naming
    ``api.urls``) when no host can be derived.
    """
    if config.api.urls:
        return config.api.urls
    try:
        hosts = _url_hosts(config.server, config.listen, config.relay)
    except ValueError as exc:
        raise ConfigError(f"api.urls: {exc}") from None
    listen = config.listen
    urls: list[str] = []
    for host in map(_bracketed, hosts):
        candidates = (
            (listen.udp_port, f"turn:{host}:{listen.udp_port}?transport=udp"),
            (listen.tcp_port, f"turn:{host}:{listen.tcp_port}?transport=tcp"),
            (listen.tls_port, f"turns:{host}:{listen.tls_port}?transport=tcp"),
        )
        urls += [url for port, url in candidates if port]
    return tuple(urls)


# ---------------------------------------------------------------------------------------------
# Secrets: read at start and on SIGHUP.


def _meaningful_lines(path: Path, key: str) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{key}: {path}: {exc.strerror or exc}") from None
    lines = ((number, line.strip()) for number, line in enumerate(text.splitlines(), 1))
    return [(number, line) for number, line in lines if line and not line.startswith("#")]


def _from_env(name: str, key: str, environ: Mapping[str, str]) -> list[str]:
    value = environ.get(name)
    if value is None:
        raise ConfigError(f"{key}: environment variable {name} is not set")
    return [part.strip() for part in value.split(",") if part.strip()]


def load_rest_secrets(
    auth: AuthConfig, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The REST secrets named by ``auth`` (empty when none is configured), current first."""
    environ = os.environ if environ is None else environ
    if auth.rest_secrets_file is not None:
        lines = _meaningful_lines(auth.rest_secrets_file, "auth.rest_secrets_file")
        secrets = [line for _, line in lines]
        source = f"auth.rest_secrets_file: {auth.rest_secrets_file}"
    elif auth.rest_secrets_env is not None:
        secrets = _from_env(auth.rest_secrets_env, "auth.rest_secrets_env", environ)
        source = f"auth.rest_secrets_env: {auth.rest_secrets_env}"
    else:
        return ()
    if not secrets:
        raise ConfigError(f"{source} holds no secret")
    return tuple(secrets)


def _static_users(path: Path | None) -> Mapping[str, str]:
    users: dict[str, str] = {}
    if path is None:
        return MappingProxyType(users)
    for number, line in _meaningful_lines(path, "auth.users_file"):
        user, sep, password = line.partition(":")
        if not (sep and user and password):
            raise ConfigError(f"auth.users_file: {path} line {number}: expected user:password")
        users[user] = password
    return MappingProxyType(users)


_MIN_API_KEY_CHARS = 16


def _api_key(api: ApiConfig, environ: Mapping[str, str]) -> str | None:
    if api.api_key_file is not None:
        lines = _meaningful_lines(api.api_key_file, "api.api_key_file")
        key, name = (lines[0][1] if lines else ""), "api.api_key_file"
    elif api.api_key_env is not None:
        key, name = environ.get(api.api_key_env, "").strip(), "api.api_key_env"
    else:
        return None
    if len(key) < _MIN_API_KEY_CHARS:
        raise ConfigError(f"{name}: the API key must be at least {_MIN_API_KEY_CHARS} characters")
    return key


def load_secrets(config: TurnConfig, environ: Mapping[str, str] | None = None) -> Secrets:
    """Read REST secrets, static users and the API key from where the config points.

    Call at start and on SIGHUP; on ConfigError keep the previous Secrets.
    """
    env = os.environ if environ is None else environ
    return Secrets(
        rest_secrets=load_rest_secrets(config.auth, env),
        static_users=_static_users(config.auth.users_file),
        api_key=_api_key(config.api, env) if config.api.enabled else None,
    )
