"""``turn-relay serve`` flags: merged over the TOML config (or over defaults without one).

Flags become the same nested mapping a TOML file decodes to, so `turn_relay.config.parse`
validates both the same way and reports errors by key. Without ``--config`` the defaults are
loopback-friendly: realm "turnkit", listen on 127.0.0.1, relay from the listen address.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

from .config import ConfigError, TurnConfig, parse

DEFAULT_REALM = "turnkit"
DEFAULT_LISTEN = "127.0.0.1"

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
    api_key_file: Path | None = None


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


def _external(flags: ServeFlags, relays: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in flags.external:
        local, sep, advertised = item.partition("=")
        if not sep:
            if len(relays) != 1:
                raise ConfigError("--external-address: use LOCAL=ADVERTISED with several relays")
            local, advertised = relays[0], item
        mapping[local.strip()] = advertised.strip()
    return mapping


def _apply(document: Document, flags: ServeFlags) -> None:
    _put(document, "server", "realm", flags.realm)
    _put(document, "server", "public_host", flags.public_host)
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
    _put(
        document, "auth", "rest_secrets_file", str(flags.secret_file) if flags.secret_file else None
    )
    _put(document, "auth", "rest_secrets_env", flags.secret_env)
    _put(document, "auth", "users_file", str(flags.users_file) if flags.users_file else None)
    _put(document, "peer_policy", "allowed_peers", flags.allowed_peers)
    _put(document, "peer_policy", "denied_peers", flags.denied_peers)
    _put(document, "quotas", "max_allocations_per_user", flags.max_allocations_per_user)
    _put(document, "quotas", "max_allocations", flags.max_allocations)
    if flags.api_port is not None:
        _put(document, "api", "enabled", True)
        _put(document, "api", "port", flags.api_port)
    _put(document, "api", "api_key_file", str(flags.api_key_file) if flags.api_key_file else None)


def _default_relays(document: Document) -> None:
    """Without relay.addresses, relay from each concrete listen address (one per family)."""
    relay = _section(document, "relay")
    if relay.get("addresses"):
        return
    listen = _section(document, "listen").get("addresses") or [DEFAULT_LISTEN]
    chosen: dict[int, str] = {}
    for text in listen if isinstance(listen, list) else []:
        address = ip_address(str(text))
        if not address.is_unspecified:
            chosen.setdefault(address.version, str(address))
    if not chosen:
        raise ConfigError(
            "relay.addresses: required when listening on 0.0.0.0/:: (--relay-address)"
        )
    relay["addresses"] = list(chosen.values())


def load(config_path: Path | None, flags: ServeFlags) -> TurnConfig:
    """The config file (if any) with ``flags`` applied on top; raises ConfigError."""
    document: Document = {}
    if config_path is not None:
        try:
            document = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{config_path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: TOML syntax: {exc}") from None
    else:
        _section(document, "server")["realm"] = DEFAULT_REALM
        _section(document, "listen")["addresses"] = [DEFAULT_LISTEN]
    _apply(document, flags)
    if config_path is None:
        _default_relays(document)
    external = _external(flags, list(_relay_addresses(document)))
    if external:
        _section(document, "relay")["external"] = external
    try:
        return parse(document)
    except ConfigError as exc:
        prefix = f"{config_path}: " if config_path is not None else ""
        raise ConfigError(f"{prefix}{exc}") from None


def _relay_addresses(document: Mapping[str, object]) -> list[str]:
    relay = document.get("relay")
    addresses = relay.get("addresses") if isinstance(relay, dict) else None
    return [str(a) for a in addresses] if isinstance(addresses, list) else []
