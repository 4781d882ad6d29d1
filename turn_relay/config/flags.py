"""``turn-relay serve`` flags: merged over the TOML config (or over an empty one without it).

Flags become the same nested mapping a TOML file decodes to, so `turn_relay.config.parse`
validates both the same way, reports errors by key and fills in the same defaults: flags override
the file, the file overrides the defaults, and the defaults (`turn_relay.config`) are the same
with or without a file: realm "turnkit", listen on 127.0.0.1, relay from the listen address.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from turn_relay.config import (
    DEFAULT_LISTEN_ADDRESSES,
    ConfigError,
    TurnConfig,
    default_relay_addresses,
    parse,
)
from turn_relay.config.reader import not_utf8

Document = dict[str, object]


@dataclass(frozen=True, slots=True)
class ServeFlags:
    realm: str | None = None
    public_host: str | None = None  # host name (or IP) in the URLs the HTTP API hands out
    listen: tuple[str, ...] = ()
    port: int | None = None  # UDP and TCP
    tls_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    relay_addresses: tuple[str, ...] = ()
    external: tuple[str, ...] = ()  # "LOCAL=ADVERTISED" or just "ADVERTISED" (one relay)
    port_range: tuple[int, int] | None = None
    secret_file: Path | None = None
    secret_env: str | None = None
    users_file: Path | None = None
    allowed_peers: tuple[str, ...] = ()
    denied_peers: tuple[str, ...] = ()
    max_allocations_per_user: int | None = None
    max_allocations: int | None = None
    api_port: int | None = None
    api_listen: str | None = None
    api_key_file: Path | None = None
    api_key_env: str | None = None
    rfc5766_channels: bool | None = None
    challenge_rate: float | None = None  # auth.challenge_budget.unproven_rate
    challenge_burst: int | None = None  # auth.challenge_budget.unproven_burst
    proven_challenge_rate: float | None = None  # auth.challenge_budget.proven_rate
    proven_challenge_burst: int | None = None  # auth.challenge_budget.proven_burst
    challenge_proof_lifetime: float | None = None  # auth.challenge_budget.proof_lifetime
    challenge_total_rate: float | None = None  # auth.challenge_budget.total_rate
    workers: int | None = None
    state_dir: Path | None = None
    drain_seconds: int | None = None
    alternates: tuple[str, ...] = ()  # server.alternates
    admin_key_file: Path | None = None
    admin_key_env: str | None = None
    kernel_offload: str | None = None  # offload.mode: off, auto, on


def parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(f"{text!r} is not MIN-MAX, e.g. 49152-65535")
    return int(low), int(high)


def _section(document: Document, name: str) -> dict[str, object]:
    section = document.setdefault(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{name}: expected a table")
    return section


def _put(document: Document, section: str, key: str, value: object) -> None:
    if value is not None and value != ():
        _section(document, section)[key] = list(value) if isinstance(value, tuple) else value


def _put_source(
    document: Document,
    section: str,
    file: tuple[str, str | None],
    env: tuple[str, str | None],
    flag_names: tuple[str, str],
) -> None:
    """A secret's file or environment variable from flags; either replaces both in the file."""
    if file[1] is not None and env[1] is not None:
        raise ConfigError(f"give {flag_names[0]} or {flag_names[1]}, not both")
    for chosen, other in ((file, env), (env, file)):
        if chosen[1] is not None:
            table = _section(document, section)
            table.pop(other[0], None)
            table[chosen[0]] = chosen[1]


def _external(flags: ServeFlags, document: Document) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in flags.external:
        local, sep, advertised = item.partition("=")
        if not sep:
            relays = _relay_addresses(document)
            if len(relays) != 1:
                raise ConfigError(
                    f"--external-address {item}: ADVERTISED alone needs exactly one relay"
                    f" address (have {len(relays)}); use LOCAL=ADVERTISED"
                )
            local, advertised = relays[0], item
        mapping[local.strip()] = advertised.strip()
    return mapping


def _apply(document: Document, flags: ServeFlags) -> None:
    _put(document, "server", "realm", flags.realm)
    _put(document, "server", "public_host", flags.public_host)
    _put(document, "server", "workers", flags.workers)
    _put(document, "server", "state_dir", str(flags.state_dir) if flags.state_dir else None)
    _put(document, "server", "drain_seconds", flags.drain_seconds)
    _put(document, "server", "alternates", flags.alternates)
    _put(document, "listen", "addresses", flags.listen)
    _put(document, "listen", "udp_port", flags.port)
    _put(document, "listen", "tcp_port", flags.port)
    _put(document, "listen", "tls_port", flags.tls_port)
    _put(document, "listen", "tls_cert_file", str(flags.tls_cert) if flags.tls_cert else None)
    _put(document, "listen", "tls_key_file", str(flags.tls_key) if flags.tls_key else None)
    _put(document, "relay", "addresses", flags.relay_addresses)
    if flags.port_range is not None:
        low, high = flags.port_range
        _section(document, "relay")["port_range"] = {"min": low, "max": high}
    _put_source(
        document,
        "auth",
        ("rest_secrets_file", str(flags.secret_file) if flags.secret_file else None),
        ("rest_secrets_env", flags.secret_env),
        ("--secret-file", "--secret-env"),
    )
    _put(document, "auth", "users_file", str(flags.users_file) if flags.users_file else None)
    _put(document, "peer_policy", "allowed_peers", flags.allowed_peers)
    _put(document, "peer_policy", "denied_peers", flags.denied_peers)
    _put(document, "quotas", "max_allocations_per_user", flags.max_allocations_per_user)
    _put(document, "quotas", "max_allocations", flags.max_allocations)
    if flags.api_port is not None:
        _put(document, "api", "enabled", True)
        _put(document, "api", "port", flags.api_port)
    _put(document, "api", "listen", flags.api_listen)
    _put_source(
        document,
        "api",
        ("api_key_file", str(flags.api_key_file) if flags.api_key_file else None),
        ("api_key_env", flags.api_key_env),
        ("--api-key-file", "--api-key-env"),
    )
    _put_source(
        document,
        "api",
        ("admin_key_file", str(flags.admin_key_file) if flags.admin_key_file else None),
        ("admin_key_env", flags.admin_key_env),
        ("--admin-key-file", "--admin-key-env"),
    )
    _put(document, "allocation", "rfc5766_channels", flags.rfc5766_channels)
    _put(document, "offload", "mode", flags.kernel_offload)
    _apply_budget(document, flags)


_OLD_BUDGET_KEYS = {"per_second": "unproven_rate", "burst": "unproven_burst"}


def _apply_budget(document: Document, flags: ServeFlags) -> None:
    given = {
        "unproven_rate": flags.challenge_rate,
        "unproven_burst": flags.challenge_burst,
        "proven_rate": flags.proven_challenge_rate,
        "proven_burst": flags.proven_challenge_burst,
        "proof_lifetime": flags.challenge_proof_lifetime,
        "total_rate": flags.challenge_total_rate,
    }
    given = {key: value for key, value in given.items() if value is not None}
    if not given:
        return
    auth = _section(document, "auth")
    old = auth.pop("unauthorized_limit", None)  # the file's old table, under its new names
    budget = auth.setdefault("challenge_budget", {})
    if not isinstance(budget, dict) or (old is not None and not isinstance(old, dict)):
        raise ConfigError("auth.challenge_budget: expected a table")
    if old is not None:
        budget.update({_OLD_BUDGET_KEYS.get(key, key): value for key, value in old.items()})
    budget.update(given)


def load(config_path: Path | None, flags: ServeFlags) -> TurnConfig:
    """The config file (if any) with ``flags`` applied on top; raises ConfigError."""
    document: Document = {}
    if config_path is not None:
        try:
            document = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{config_path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{config_path}: {not_utf8(exc)}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: TOML syntax: {exc}") from None
    _apply(document, flags)
    external = _external(flags, document)
    if external:
        _section(document, "relay")["external"] = external
    try:
        return parse(document)
    except ConfigError as exc:
        prefix = f"{config_path}: " if config_path is not None else ""
        raise ConfigError(f"{prefix}{exc}") from None


def _relay_addresses(document: Mapping[str, object]) -> list[str]:
    """relay.addresses as the parser will see them (given, or derived from the listen ones)."""
    relay, listen = document.get("relay"), document.get("listen")
    addresses = relay.get("addresses") if isinstance(relay, dict) else None
    if isinstance(addresses, list):
        return [str(a) for a in addresses]
    listening = listen.get("addresses") if isinstance(listen, dict) else None
    if not isinstance(listening, list):
        listening = list(DEFAULT_LISTEN_ADDRESSES)
    try:
        return list(default_relay_addresses([str(a) for a in listening]))
    except ValueError as exc:
        raise ConfigError(f"relay.addresses: {exc}") from None
