"""The ``[rendezvous]`` section: signaling rooms for two-party peer tests on the HTTP API.

On when a pairing secret is named (a file, or an environment variable; never a flag value and
never the API key). ``rtccheck pair`` signs room tokens with the same secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .model import ConfigError, RendezvousConfig
from .table import Table, one_source

_MIN_PAIRING_SECRET_CHARS = 16


_DEFAULTS = RendezvousConfig()


def parse_rendezvous(table: Table, api_enabled: bool) -> RendezvousConfig:
    secrets_file, secrets_env = one_source(table, "pairing_secrets_file", "pairing_secrets_env")
    config = RendezvousConfig(
        pairing_secrets_file=secrets_file,
        pairing_secrets_env=secrets_env,
        max_room_ttl=table.integer("max_room_ttl", _DEFAULTS.max_room_ttl, 30, 86400),
        max_rooms=table.integer("max_rooms", _DEFAULTS.max_rooms, 1, 100_000),
        max_message_bytes=table.integer(
            "max_message_bytes", _DEFAULTS.max_message_bytes, 1024, 1 << 20
        ),
        messages_per_second=table.positive_number(
            "messages_per_second", _DEFAULTS.messages_per_second
        ),
        message_burst=table.integer("message_burst", _DEFAULTS.message_burst, 1, 100_000),
        joins_per_minute=table.integer("joins_per_minute", _DEFAULTS.joins_per_minute, 1),
        turn_ttl=table.integer("turn_ttl", _DEFAULTS.turn_ttl, 60, 86400),
    )
    table.finish()
    if config.enabled and not api_enabled:
        raise table.fail("pairing_secrets_file", "the rendezvous needs api.enabled (--api-port)")
    return config


def load_pairing_secrets(
    config: RendezvousConfig, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The pairing secrets (empty when the rendezvous is off), the signing one first."""
    environ = os.environ if environ is None else environ
    if config.pairing_secrets_file is not None:
        name, path = "rendezvous.pairing_secrets_file", config.pairing_secrets_file
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{name}: {path}: {exc.strerror or exc}") from None
        secrets = [line.strip() for line in text.splitlines()]
    elif config.pairing_secrets_env is not None:
        name = "rendezvous.pairing_secrets_env"
        value = environ.get(config.pairing_secrets_env)
        if value is None:
            variable = config.pairing_secrets_env
            raise ConfigError(f"{name}: environment variable {variable} is not set")
        secrets = [part.strip() for part in value.split(",")]
    else:
        return ()
    secrets = [s for s in secrets if s and not s.startswith("#")]
    if not secrets:
        raise ConfigError(f"{name}: holds no secret")
    if any(len(secret) < _MIN_PAIRING_SECRET_CHARS for secret in secrets):
        shortest = _MIN_PAIRING_SECRET_CHARS
        raise ConfigError(f"{name}: every secret must be at least {shortest} characters")
    return tuple(secrets)
