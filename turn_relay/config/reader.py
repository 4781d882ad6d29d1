"""Reading a relay config from TOML: one parser per section, then the entry points.

Every default comes from the dataclasses of `turn_relay.config.model`: the parser falls back to
them for every key a file omits.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from ipaddress import ip_address
from pathlib import Path
from types import MappingProxyType

from .model import (
    DEFAULT_PORT_RANGE,
    DEFAULT_REALM,
    OFFLOAD_MODES,
    AllocationConfig,
    ApiConfig,
    AuthConfig,
    ChallengeBudgetConfig,
    CheckConfig,
    ConfigError,
    FleetConfig,
    ListenConfig,
    MetricsConfig,
    OffloadConfig,
    PeerPolicyConfig,
    QuotaConfig,
    RelayConfig,
    ServerConfig,
    TurnConfig,
)
from .rendezvous import parse_rendezvous
from .table import Table, check_ip, check_networks, one_source
from .urls import url_hosts

_SERVER, _LISTEN, _ALLOCATION = ServerConfig(), ListenConfig(), AllocationConfig()
_QUOTAS, _BUDGET, _AUTH, _API = QuotaConfig(), ChallengeBudgetConfig(), AuthConfig(), ApiConfig()
_METRICS = MetricsConfig()
_OFFLOAD = OffloadConfig()
_CHECK = CheckConfig()


def _server(table: Table) -> ServerConfig:
    realm = table.text("realm", _SERVER.realm)
    if not realm:
        raise table.fail("realm", f"is empty (omit it for the default {DEFAULT_REALM!r})")
    if len(realm) > 127 or not realm.isprintable() or '"' in realm or "\\" in realm:
        raise table.fail("realm", f"{realm!r} must be under 128 printable characters, no quotes")
    public_host = table.optional_text("public_host")
    workers = table.integer("workers", _SERVER.workers, 0, 256)
    state_dir = table.optional_path("state_dir")
    drain_seconds = table.integer("drain_seconds", _SERVER.drain_seconds, 0, 86400)
    alternates = tuple(
        _alternate(table, f"alternates[{index}]", text)
        for index, text in enumerate(table.text_list("alternates", ()))
    )
    table.finish()
    return ServerConfig(
        realm,
        public_host or None,
        workers,
        state_dir=state_dir,
        drain_seconds=drain_seconds,
        alternates=alternates,
    )


def _alternate(table: Table, key: str, text: str) -> tuple[str, int]:
    """``"203.0.113.9"``, ``"203.0.113.9:3478"`` or ``"[2001:db8::9]:3478"`` (default 3478)."""
    host, port = text, _LISTEN.udp_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _alternate_port(table, key, rest)
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        port = _alternate_port(table, key, ":" + rest)
    check_ip(table, key, host)
    return host, port


def _alternate_port(table: Table, key: str, rest: str) -> int:
    digits = rest[1:] if rest.startswith(":") else ""
    if not (digits.isdigit() and 1 <= int(digits) <= 65535):
        raise table.fail(key, f"{rest!r} is not :PORT (1-65535)")
    return int(digits)


def _listen(table: Table) -> ListenConfig:
    addresses = table.text_list("addresses", _LISTEN.addresses)
    if not addresses:
        raise table.fail("addresses", "needs at least one address")
    for address in addresses:
        check_ip(table, "addresses", address)
    udp = table.integer("udp_port", _LISTEN.udp_port, 0, 65535)
    tcp = table.integer("tcp_port", _LISTEN.tcp_port, 0, 65535)
    tls = table.integer("tls_port", _LISTEN.tls_port, 0, 65535)
    cert, key = table.optional_path("tls_cert_file"), table.optional_path("tls_key_file")
    max_streams = table.integer("max_stream_connections", _LISTEN.max_stream_connections, 1)
    per_source = table.integer(
        "max_stream_connections_per_source", _LISTEN.max_stream_connections_per_source, 1
    )
    setup_timeout = table.positive_number("stream_setup_timeout", _LISTEN.stream_setup_timeout)
    table.finish()
    if not (udp or tcp or tls):
        raise table.fail("udp_port", "udp_port, tcp_port and tls_port are all 0: nothing listens")
    if tls and tls == tcp:
        raise table.fail("tls_port", f"{tls} is also listen.tcp_port")
    for name, path in (("tls_cert_file", cert), ("tls_key_file", key)):
        if tls and path is None:
            raise table.fail(name, "required when listen.tls_port is not 0")
        if not tls and path is not None:
            problem = "given but listen.tls_port is 0: set it (--tls-port) or drop this"
            raise table.fail(name, problem)
    return ListenConfig(addresses, udp, tcp, tls, cert, key, max_streams, per_source, setup_timeout)


def _port_range(table: Table) -> tuple[int, int]:
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
    table: Table, listen: ListenConfig, external: Mapping[str, str]
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
        ip = check_ip(table, "addresses", address)
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


def _relay_external(table: Table) -> dict[str, str]:
    mapping = table.table("external")
    pairs: dict[str, str] = {}
    for local in mapping.keys():  # noqa: SIM118 (a Table, not a dict)
        advertised = mapping.optional_text(local) or ""
        local_ip = check_ip(mapping, f'"{local}"', local)
        advertised_ip = check_ip(mapping, f'"{local}"', advertised)
        if local_ip.version != advertised_ip.version:
            raise mapping.fail(f'"{local}"', f"{advertised} is not the family of {local}")
        pairs[local] = advertised
    mapping.finish()
    return pairs


def _relay(table: Table, listen: ListenConfig) -> RelayConfig:
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


def _allocation(table: Table) -> AllocationConfig:
    default = table.integer("default_lifetime", _ALLOCATION.default_lifetime, 1)
    maximum = table.integer("max_lifetime", _ALLOCATION.max_lifetime, 1)
    permission = table.integer("permission_lifetime", _ALLOCATION.permission_lifetime, 1)
    channel = table.integer("channel_lifetime", _ALLOCATION.channel_lifetime, 1)
    rfc5766_channels = table.boolean("rfc5766_channels", _ALLOCATION.rfc5766_channels)
    table.finish()
    if default > maximum:
        raise table.fail("default_lifetime", f"{default} > allocation.max_lifetime {maximum}")
    return AllocationConfig(default, maximum, permission, channel, rfc5766_channels)


def _quotas(table: Table) -> QuotaConfig:
    quotas = QuotaConfig(
        table.integer("max_allocations_per_user", _QUOTAS.max_allocations_per_user, 0),
        table.integer("max_allocations", _QUOTAS.max_allocations, 0),
        table.integer("max_permissions_per_allocation", _QUOTAS.max_permissions_per_allocation, 0),
        table.integer("max_bandwidth_per_allocation", _QUOTAS.max_bandwidth_per_allocation, 0),
    )
    table.finish()
    return quotas


BUDGET_KEYS = (
    "unproven_rate",
    "unproven_burst",
    "proven_rate",
    "proven_burst",
    "proof_lifetime",
    "total_rate",
    "max_sources",
)


def _challenge_budget(table: Table) -> ChallengeBudgetConfig:
    budget = ChallengeBudgetConfig(
        table.positive_number("unproven_rate", _BUDGET.unproven_rate),
        table.integer("unproven_burst", _BUDGET.unproven_burst, 1),
        table.positive_number("proven_rate", _BUDGET.proven_rate),
        table.integer("proven_burst", _BUDGET.proven_burst, 1),
        table.positive_number("proof_lifetime", _BUDGET.proof_lifetime),
        table.positive_number("total_rate", _BUDGET.total_rate),
        table.integer("max_sources", _BUDGET.max_sources, 1),
    )
    table.finish()
    return budget


def _old_unauthorized_limit(table: Table) -> ChallengeBudgetConfig:
    """``[auth.unauthorized_limit]`` (one bucket per source) as it was: it now sets the
    unproven sources' bucket of `ChallengeBudgetConfig`."""
    budget = ChallengeBudgetConfig(
        unproven_rate=table.positive_number("per_second", _BUDGET.unproven_rate),
        unproven_burst=table.integer("burst", _BUDGET.unproven_burst, 1),
        max_sources=table.integer("max_sources", _BUDGET.max_sources, 1),
    )
    table.finish()
    return budget


def _budget_of(table: Table) -> ChallengeBudgetConfig:
    if table.has("unauthorized_limit") and table.has("challenge_budget"):
        raise table.fail(
            "unauthorized_limit",
            "replaced by auth.challenge_budget (" + ", ".join(BUDGET_KEYS) + "); give only that",
        )
    if table.has("unauthorized_limit"):
        return _old_unauthorized_limit(table.table("unauthorized_limit"))
    return _challenge_budget(table.table("challenge_budget"))


def _auth(table: Table) -> AuthConfig:
    users_file = table.optional_path("users_file")
    secrets_file, secrets_env = one_source(table, "rest_secrets_file", "rest_secrets_env")
    separator = table.text("separator", _AUTH.separator)
    if len(separator) != 1 or separator.isdigit() or not separator.isprintable():
        raise table.fail("separator", f"{separator!r} must be one printable non-digit character")
    strict_expiry = table.boolean("strict_expiry", _AUTH.strict_expiry)
    nonce_lifetime = table.positive_number("nonce_lifetime", _AUTH.nonce_lifetime)
    budget = _budget_of(table)
    table.finish()
    return AuthConfig(
        users_file, secrets_file, secrets_env, separator, strict_expiry, nonce_lifetime, budget
    )


def _peer_policy(table: Table) -> PeerPolicyConfig:
    policy = PeerPolicyConfig(
        check_networks(table, "allowed_peers"), check_networks(table, "denied_peers")
    )
    table.finish()
    return policy


def _check_urls(table: Table, urls: tuple[str, ...]) -> None:
    for index, url in enumerate(urls):
        if not url.startswith(("turn:", "turns:", "stun:", "stuns:")):
            raise table.fail(f"urls[{index}]", f"{url!r} must start with turn:, turns: or stun:")


def _api(table: Table, server: ServerConfig, listen: ListenConfig, relay: RelayConfig) -> ApiConfig:
    enabled = table.boolean("enabled", _API.enabled)
    address = table.text("listen", _API.listen)
    check_ip(table, "listen", address)
    port = table.integer("port", _API.port, 1, 65535)
    key_file, key_env = one_source(table, "api_key_file", "api_key_env")
    admin_file, admin_env = one_source(table, "admin_key_file", "admin_key_env")
    urls = table.text_list("urls", _API.urls)
    _check_urls(table, urls)
    default_ttl = table.integer("default_ttl", _API.default_ttl, 1)
    max_ttl = table.integer("max_ttl", _API.max_ttl, 1)
    tls_cert, tls_key = table.optional_path("tls_cert_file"), table.optional_path("tls_key_file")
    table.finish()
    if (tls_cert is None) != (tls_key is None):
        raise table.fail("tls_cert_file", "set api.tls_cert_file and api.tls_key_file together")
    if default_ttl > max_ttl:
        raise table.fail("default_ttl", f"{default_ttl} > api.max_ttl {max_ttl}")
    if enabled and key_file is None and key_env is None:
        raise table.fail(
            "api_key_file", "set api_key_file or api_key_env when api.enabled (--api-key-file)"
        )
    if enabled and not urls:
        try:
            url_hosts(server, listen, relay)
        except ValueError as exc:
            raise table.fail("urls", str(exc)) from None
    return ApiConfig(
        enabled,
        address,
        port,
        key_file,
        key_env,
        admin_file,
        admin_env,
        urls,
        default_ttl,
        max_ttl,
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
    )


def _metrics(table: Table) -> MetricsConfig:
    metrics = MetricsConfig(
        table.boolean("enabled", _METRICS.enabled),
        table.boolean("require_api_key", _METRICS.require_api_key),
    )
    table.finish()
    return metrics


_FLEET = FleetConfig()


def _fleet(table: Table, listen: ListenConfig, server: ServerConfig) -> FleetConfig:
    url = table.optional_text("redis_url")
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise table.fail("redis_url", f"{url!r}: expected redis://, rediss:// or unix://")
    if url is not None and "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        raise table.fail(
            "redis_url", "holds a password; name redis_password_file or redis_password_env"
        )
    password_file, password_env = one_source(table, "redis_password_file", "redis_password_env")
    relay_id = table.optional_text("relay_id")
    if relay_id is not None and not relay_id.strip():
        raise table.fail("relay_id", "is empty")
    advertise = tuple(
        _alternate(table, f"advertise[{index}]", text)
        for index, text in enumerate(table.text_list("advertise", ()))
    )
    fleet = FleetConfig(
        redis_url=url,
        redis_password_file=password_file,
        redis_password_env=password_env,
        relay_id=relay_id or (listen.addresses[0] if url else None),
        advertise=advertise,
        heartbeat=table.positive_number("heartbeat", _FLEET.heartbeat),
        ttl=table.positive_number("ttl", _FLEET.ttl),
        sessions_interval=table.positive_number("sessions_interval", _FLEET.sessions_interval),
        prefix=table.text("prefix", _FLEET.prefix),
    )
    if fleet.ttl <= fleet.heartbeat:
        raise table.fail("ttl", f"{fleet.ttl} must be longer than heartbeat {fleet.heartbeat}")
    if not fleet.prefix:
        raise table.fail("prefix", "is empty")
    if fleet.enabled and server.workers != 1:
        raise table.fail(
            "redis_url", "a fleet member runs one process: set server.workers = 1 (--workers 1)"
        )
    table.finish()
    return fleet


def _offload(table: Table) -> OffloadConfig:
    mode = table.text("mode", _OFFLOAD.mode)
    if mode not in OFFLOAD_MODES:
        raise table.fail("mode", f"{mode!r} is not one of {', '.join(OFFLOAD_MODES)}")
    offload = OffloadConfig(
        mode, table.optional_path("object_file"), table.text_list("interfaces", ())
    )
    table.finish()
    return offload


def _check(table: Table, server: ServerConfig, api: ApiConfig) -> CheckConfig:
    secrets_file, secrets_env = one_source(table, "link_secrets_file", "link_secrets_env")
    public_url = table.optional_text("public_url")
    if public_url is not None and not public_url.startswith(("https://", "http://")):
        raise table.fail("public_url", f"{public_url!r} must start with https:// or http://")
    check = CheckConfig(
        link_secrets_file=secrets_file,
        link_secrets_env=secrets_env,
        link_ttl=table.integer("link_ttl", _CHECK.link_ttl, 60, 30 * 86400),
        credential_ttl=table.integer("credential_ttl", _CHECK.credential_ttl, 60, 86400),
        public_url=public_url.rstrip("/") if public_url else None,
        page_loads_per_minute=table.integer(
            "page_loads_per_minute", _CHECK.page_loads_per_minute, 1
        ),
        uploads_per_minute=table.integer("uploads_per_minute", _CHECK.uploads_per_minute, 1),
    )
    table.finish()
    key = "link_secrets_file" if secrets_file is not None else "link_secrets_env"
    if check.enabled and not api.enabled:
        raise table.fail(key, "the check page needs api.enabled (--api-port)")
    if check.enabled and server.state_dir is None:
        raise table.fail(key, "the check page needs server.state_dir (reports)")
    return check


# Entry points.


def parse(data: Mapping[str, object]) -> TurnConfig:
    """Validate an already-decoded TOML document."""
    root = Table(data, "")
    server = _server(root.table("server"))
    listen = _listen(root.table("listen"))
    relay = _relay(root.table("relay"), listen)
    api = _api(root.table("api"), server, listen, relay)
    config = TurnConfig(
        server=server,
        relay=relay,
        listen=listen,
        allocation=_allocation(root.table("allocation")),
        quotas=_quotas(root.table("quotas")),
        auth=_auth(root.table("auth")),
        peer_policy=_peer_policy(root.table("peer_policy")),
        api=api,
        metrics=_metrics(root.table("metrics")),
        fleet=_fleet(root.table("fleet"), listen, server),
        offload=_offload(root.table("offload")),
        rendezvous=parse_rendezvous(root.table("rendezvous"), api.enabled),
        check=_check(root.table("check"), server, api),
    )
    root.finish()
    return config


def not_utf8(exc: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"


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
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {not_utf8(exc)}") from None
    try:
        return loads(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
