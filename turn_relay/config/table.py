"""Typed access to one TOML table, remembering which keys were read so the rest can be refused.

Every refusal is a `ConfigError` whose message starts with the dotted key
(``relay.port_range: min 5 > max 4``): the validation messages of the whole config live here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path

from .model import ConfigError

_SECRET_HINT = "; secrets never go in this file: name a file or an environment variable instead"
_SECRET_WORDS = ("secret", "password", "key", "token")


class Table:
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
        if not math.isfinite(value):
            raise self.fail(key, f"{value} is not a finite number")
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

    def table(self, key: str) -> Table:
        value = self._get(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {value!r}")
        return Table(value, self.name(key))

    def finish(self) -> None:
        for key in sorted(set(self._data) - self._read):
            hint = _SECRET_HINT if any(w in key.lower() for w in _SECRET_WORDS) else ""
            raise self.fail(key, f"unknown key{hint}")


# Shared validators.


def check_ip(table: Table, key: str, value: str) -> IPv4Address | IPv6Address:
    try:
        return ip_address(value)
    except ValueError:
        raise table.fail(key, f"{value!r} is not an IP address") from None


def check_networks(table: Table, key: str) -> tuple[str, ...]:
    networks = table.text_list(key, ())
    for index, text in enumerate(networks):
        try:
            ip_network(text)
        except ValueError as exc:
            raise table.fail(f"{key}[{index}]", f"{text!r}: {exc}") from None
    return networks


def check_env_name(table: Table, key: str) -> str | None:
    name = table.optional_text(key)
    if name is not None and not (name.replace("_", "").isalnum() and not name[0].isdigit()):
        raise table.fail(key, f"{name!r} is not an environment variable name")
    return name


def one_source(table: Table, file_key: str, env_key: str) -> tuple[Path | None, str | None]:
    file, env = table.optional_path(file_key), check_env_name(table, env_key)
    if file is not None and env is not None:
        raise table.fail(file_key, f"set {file_key} or {env_key}, not both")
    return file, env
