"""STUN server configuration: a frozen dataclass from TOML, validated with messages naming the key.

`load_file(path)` reads ``configs/stun_server.example.toml``-shaped files into field values,
`build_config(file_values, flag_values)` lays command-line flags over them and validates the
result. Every error is a `ConfigError` whose message starts with the dotted TOML key
(``limits.rate_limit: ...``); unknown keys are errors too, so typos do not pass silently.
"""

from __future__ import annotations

import ipaddress
import math
import ssl
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from stun_server.limits import DEFAULT_FIRST_MESSAGE_TIMEOUT, DEFAULT_PER_SOURCE
from stun_server.responder import (
    DEFAULT_MAX_PADDING,
    DEFAULT_SOFTWARE,
    Address,
    ResponderConfig,
    Rfc5780Addresses,
)

DEFAULT_PORT = 3478
DEFAULT_TLS_PORT = 5349
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_SOFTWARE_BYTES = 128  # RFC 8489 allows 763; a long SOFTWARE only adds amplification


class ConfigError(ValueError):
    """A bad configuration value: ``[file: ]key: why`` (key empty for a file-level error)."""

    def __init__(self, key: str, why: str, file: Path | None = None) -> None:
        self.key, self.why, self.file = key, why, file
        super().__init__(self.text())

    def text(self, flag: str = "") -> str:
        """One line; ``flag`` names the command-line flag that sets the key, if any."""
        where = f"{self.file}: " if self.file is not None else ""
        key = f"{self.key} ({flag})" if flag and self.key else self.key
        return f"{where}{key}: {self.why}" if key else f"{where}{self.why}"

    def in_file(self, file: Path) -> ConfigError:
        return ConfigError(self.key, self.why, file)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: tuple[Address, ...] = (("127.0.0.1", DEFAULT_PORT),)
    alternate: tuple[str, ...] = ()  # second IPs for RFC 5780, at most one per family
    alternate_port: int | None = None  # None: the primary port + 1
    tcp: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_port: int | None = None  # None: DEFAULT_TLS_PORT; giving it without tls.cert is an error
    software: str = DEFAULT_SOFTWARE
    rate_limit: float = 500.0  # answers per second per source IP (IPv6: /64); 0 = unlimited
    rate_burst: float | None = None  # None: twice rate_limit
    max_sources: int = 65_536
    max_padding: int = DEFAULT_MAX_PADDING
    max_connections: int = 0  # TCP + TLS connections per worker; 0: from RLIMIT_NOFILE
    max_connections_per_source: int = DEFAULT_PER_SOURCE  # per IPv4 address / IPv6 /64
    idle_timeout: float = 30.0  # seconds between complete messages before a close
    first_message_timeout: float = DEFAULT_FIRST_MESSAGE_TIMEOUT  # TLS handshake + first message
    workers: int = 1  # 0 = one per CPU core
    udp_batch: bool = True  # recvmmsg/sendmmsg where available; False: one datagram per call
    log_level: str = "info"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    @property
    def tls_listen_port(self) -> int:
        return self.tls_port if self.tls_port is not None else DEFAULT_TLS_PORT

    def rfc5780_addresses(self) -> tuple[Rfc5780Addresses, ...]:
        """RFC 5780 quads: each alternate IP with the first listen address of its family."""
        return tuple(self._quad_for(alternate) for alternate in self.alternate)

    def _quad_for(self, alternate: str) -> Rfc5780Addresses:
        version = ipaddress.ip_address(alternate).version
        ip, port = next(a for a in self.listen if ipaddress.ip_address(a[0]).version == version)
        other_port = self.alternate_port if self.alternate_port is not None else port + 1
        return Rfc5780Addresses(ip, alternate, port, other_port)

    def responder_config(self) -> ResponderConfig:
        return ResponderConfig(
            software=self.software or None,
            rate_limit=self.rate_limit,
            rate_burst=self.rate_burst if self.rate_burst is not None else 2 * self.rate_limit,
            max_sources=self.max_sources,
            max_padding=self.max_padding,
            rfc5780=self.rfc5780_addresses(),
        )


# ---------------------------------------------------------------- validation


def _fail(key: str, why: str) -> ConfigError:
    return ConfigError(key, why)


def _validate(config: ServerConfig) -> None:
    if not config.listen:
        raise _fail("server.listen", "needs at least one address")
    _validate_tls(config)
    if len(config.software.encode()) > MAX_SOFTWARE_BYTES:
        raise _fail("server.software", f"longer than {MAX_SOFTWARE_BYTES} bytes")
    if config.log_level not in LOG_LEVELS:
        raise _fail("server.log_level", f"{config.log_level!r} is not one of {LOG_LEVELS}")
    _validate_numbers(config)
    _validate_rfc5780(config)


def _validate_tls(config: ServerConfig) -> None:
    if config.tls_port is not None:
        _check_port("tls.port", config.tls_port)
    if (config.tls_cert is None) != (config.tls_key is None):
        raise _fail("tls.cert", "tls.cert and tls.key go together")
    if config.tls_port is not None and config.tls_cert is None:
        raise _fail("tls.port", "needs tls.cert and tls.key (without them no TLS is served)")


def check_files(config: ServerConfig) -> None:
    """The files the configuration names can be read and used (the TLS certificate and key)."""
    for key, path in (("tls.cert", config.tls_cert), ("tls.key", config.tls_key)):
        if path is not None:
            _check_readable(key, path)
    if config.tls_cert is not None and config.tls_key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(config.tls_cert, config.tls_key)
        except (ssl.SSLError, OSError, ValueError) as exc:
            why = f"{config.tls_cert} with {config.tls_key}: not a usable PEM certificate and key"
            raise _fail("tls.cert", f"{why} ({getattr(exc, 'reason', None) or exc})") from exc


def _check_readable(key: str, path: Path) -> None:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise _fail(key, f"{path}: cannot read: {exc.strerror or exc}") from exc


# float fields and their keys: NaN and infinity are refused for each (NaN passes every <, >)
_FLOAT_KEYS = {
    "rate_limit": "limits.rate_limit",
    "rate_burst": "limits.rate_burst",
    "idle_timeout": "limits.idle_timeout",
    "first_message_timeout": "limits.first_message_timeout",
}


def _validate_finite(config: ServerConfig) -> None:
    for field_name, key in _FLOAT_KEYS.items():
        value = getattr(config, field_name)
        if value is not None and not math.isfinite(value):
            raise _fail(key, f"{value} is not a finite number")


def _validate_numbers(config: ServerConfig) -> None:
    _validate_finite(config)
    if config.rate_limit < 0:
        raise _fail("limits.rate_limit", "must be >= 0 (0 = unlimited)")
    if config.rate_burst is not None and config.rate_burst < 1:
        raise _fail("limits.rate_burst", "must be >= 1")
    if config.max_sources < 1:
        raise _fail("limits.max_sources", "must be >= 1")
    if not 0 <= config.max_padding <= 65000:
        raise _fail("limits.max_padding", "must be within 0-65000 bytes")
    if config.max_connections < 0:
        raise _fail("limits.max_connections", "must be >= 1 (0 = from RLIMIT_NOFILE)")
    if config.max_connections_per_source < 1:
        raise _fail("limits.max_connections_per_source", "must be >= 1")
    if config.idle_timeout <= 0:
        raise _fail("limits.idle_timeout", "must be > 0 seconds")
    if config.first_message_timeout <= 0:
        raise _fail("limits.first_message_timeout", "must be > 0 seconds")
    if config.workers < 0:
        raise _fail("server.workers", "must be >= 0 (0 = one per CPU core)")
    if config.workers != 1 and any(port == 0 for _, port in config.listen):
        raise _fail("server.workers", "several workers need fixed ports, not port 0")


def _validate_rfc5780(config: ServerConfig) -> None:
    if config.alternate_port is not None:
        _check_port("rfc5780.alternate_port", config.alternate_port)
    versions = [ipaddress.ip_address(ip).version for ip in config.alternate]
    if len(versions) != len(set(versions)):
        raise _fail("rfc5780.alternate", "at most one alternate address per family")
    for alternate, version in zip(config.alternate, versions, strict=True):
        primary = [a for a in config.listen if ipaddress.ip_address(a[0]).version == version]
        if not primary:
            raise _fail("rfc5780.alternate", f"no IPv{version} listen address to pair with")
        if primary[0][1] == 0:
            raise _fail("rfc5780.alternate", "needs a fixed listen port, not port 0")
        if ipaddress.ip_address(primary[0][0]).is_unspecified:
            raise _fail("rfc5780.alternate", f"{primary[0][0]} is a wildcard; listen on an IP")
        try:
            config._quad_for(alternate)
        except ValueError as exc:
            raise _fail("rfc5780.alternate", str(exc)) from exc


def _check_port(key: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise _fail(key, f"port {port} outside 0-65535")


# ---------------------------------------------------------------- value parsers


def parse_address(key: str, text: str, default_port: int = DEFAULT_PORT) -> Address:
    """``127.0.0.1:3478``, ``[::1]:3478``, ``::1`` or ``127.0.0.1`` (default port)."""
    host, port_text = _split_host_port(text)
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError as exc:
        raise _fail(key, f"{text!r}: {host!r} is not an IP address") from exc
    if port_text is None:
        return (ip, default_port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise _fail(key, f"{text!r}: port {port_text!r} is not within 0-65535")
    return (ip, int(port_text))


def _split_host_port(text: str) -> tuple[str, str | None]:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None


def parse_ip(key: str, text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError as exc:
        raise _fail(key, f"{text!r} is not an IP address") from exc


def _expect(key: str, value: object, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) and kind is not bool:
        raise _fail(key, f"expected {what}, got {value!r}")
    if not isinstance(value, kind):
        raise _fail(key, f"expected {what}, got {value!r}")
    return value


def _strings(key: str, value: object) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _fail(key, f"expected a string or a list of strings, got {value!r}")
    return items


def _listen(key: str, value: object) -> tuple[Address, ...]:
    return tuple(parse_address(key, item) for item in _strings(key, value))


def _alternates(key: str, value: object) -> tuple[str, ...]:
    return tuple(parse_ip(key, item) for item in _strings(key, value))


def _int(key: str, value: object) -> int:
    return int(_expect(key, value, int, "an integer"))


def _float(key: str, value: object) -> float:
    number = float(_expect(key, value, (int, float), "a number"))
    if not math.isfinite(number):
        raise _fail(key, f"{value} is not a finite number")
    return number


def _bool(key: str, value: object) -> bool:
    return bool(_expect(key, value, bool, "true or false"))


def _str(key: str, value: object) -> str:
    return str(_expect(key, value, str, "a string"))


def _path(key: str, value: object) -> Path:
    return Path(_str(key, value))


def _log_level(key: str, value: object) -> str:
    return _str(key, value).lower()


_Parser = Callable[[str, object], object]

# TOML section -> key -> (ServerConfig field, parser)
_SCHEMA: dict[str, dict[str, tuple[str, _Parser]]] = {
    "server": {
        "listen": ("listen", _listen),
        "tcp": ("tcp", _bool),
        "software": ("software", _str),
        "workers": ("workers", _int),
        "udp_batch": ("udp_batch", _bool),
        "log_level": ("log_level", _log_level),
    },
    "rfc5780": {
        "alternate": ("alternate", _alternates),
        "alternate_port": ("alternate_port", _int),
    },
    "tls": {
        "cert": ("tls_cert", _path),
        "key": ("tls_key", _path),
        "port": ("tls_port", _int),
    },
    "limits": {
        "rate_limit": ("rate_limit", _float),
        "rate_burst": ("rate_burst", _float),
        "max_sources": ("max_sources", _int),
        "max_padding": ("max_padding", _int),
        "max_connections": ("max_connections", _int),
        "max_connections_per_source": ("max_connections_per_source", _int),
        "idle_timeout": ("idle_timeout", _float),
        "first_message_timeout": ("first_message_timeout", _float),
    },
}


def parse_table(table: Mapping[str, object]) -> dict[str, Any]:
    """Field values from a TOML document (already decoded); unknown keys are errors."""
    values: dict[str, Any] = {}
    for section, body in table.items():
        schema = _SCHEMA.get(section)
        if schema is None:
            raise _fail(section, f"unknown section (known: {', '.join(_SCHEMA)})")
        if not isinstance(body, Mapping):
            raise _fail(section, "expected a table")
        for key, raw in body.items():
            dotted = f"{section}.{key}"
            if key not in schema:
                raise _fail(dotted, f"unknown key (known: {', '.join(schema)})")
            field_name, parser = schema[key]
            values[field_name] = parser(dotted, raw)
    return values


def load_file(path: Path) -> dict[str, Any]:
    """Field values from the TOML file at ``path``; errors name the file (and the key)."""
    table = read_toml(path)
    try:
        return parse_table(table)
    except ConfigError as exc:
        raise exc.in_file(path) from None


def read_toml(path: Path) -> dict[str, Any]:
    """The decoded TOML document at ``path``, or a one-line `ConfigError` naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError("", f"cannot read: {exc.strerror or exc}", path) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        why = f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        raise ConfigError("", why, path) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML: {exc}", path) from None


_FIELD_NAMES = frozenset(f.name for f in fields(ServerConfig))


_FIELD_OF_KEY = {
    f"{section}.{key}": field_name
    for section, keys in _SCHEMA.items()
    for key, (field_name, _) in keys.items()
}


def build_config(
    file_values: Mapping[str, Any] | None = None,
    flag_values: Mapping[str, Any] | None = None,
    file: Path | None = None,
) -> ServerConfig:
    """The configuration: defaults, then the file's values, then flags that were given.

    An error about a key whose value came from ``file`` (no flag overriding it) names the file.
    """
    flags = {k: v for k, v in (flag_values or {}).items() if v is not None}
    merged = {**(file_values or {}), **flags}
    unknown = set(merged) - _FIELD_NAMES
    if unknown:
        raise ConfigError("", f"unknown settings: {', '.join(sorted(unknown))}")
    try:
        return ServerConfig(**merged)
    except ConfigError as exc:
        field_name = _FIELD_OF_KEY.get(exc.key)
        if file is not None and field_name in (file_values or {}) and field_name not in flags:
            raise exc.in_file(file) from None
        raise
