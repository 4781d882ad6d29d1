"""Secrets: REST secrets, static users and the API key, read at start and on SIGHUP."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from .model import ApiConfig, AuthConfig, CheckConfig, ConfigError, FleetConfig, Secrets, TurnConfig
from .reader import not_utf8
from .rendezvous import load_pairing_secrets


def _meaningful_lines(path: Path, key: str) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{key}: {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{key}: {path}: {not_utf8(exc)}") from None
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
    return _key(api.api_key_file, api.api_key_env, "api.api_key", environ)


def _admin_key(api: ApiConfig, environ: Mapping[str, str], api_key: str | None) -> str | None:
    key = _key(api.admin_key_file, api.admin_key_env, "api.admin_key", environ)
    if key is not None and key == api_key:
        raise ConfigError("api.admin_key_file: the admin key must differ from the API key")
    return key


def _key(file: Path | None, env: str | None, prefix: str, environ: Mapping[str, str]) -> str | None:
    if file is not None:
        lines = _meaningful_lines(file, f"{prefix}_file")
        key, name = (lines[0][1] if lines else ""), f"{prefix}_file"
    elif env is not None:
        key, name = environ.get(env, "").strip(), f"{prefix}_env"
    else:
        return None
    if len(key) < _MIN_API_KEY_CHARS:
        what = "admin key" if prefix == "api.admin_key" else "API key"
        raise ConfigError(f"{name}: the {what} must be at least {_MIN_API_KEY_CHARS} characters")
    return key


_MIN_LINK_SECRET_CHARS = 16


def load_check_link_secrets(
    check: CheckConfig, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The check-link secrets (empty when the check page is off), the signing one first."""
    environ = os.environ if environ is None else environ
    if check.link_secrets_file is not None:
        name = "check.link_secrets_file"
        secrets = [line for _, line in _meaningful_lines(check.link_secrets_file, name)]
    elif check.link_secrets_env is not None:
        name = "check.link_secrets_env"
        secrets = _from_env(check.link_secrets_env, name, environ)
    else:
        return ()
    if not secrets:
        raise ConfigError(f"{name}: holds no secret")
    if any(len(secret) < _MIN_LINK_SECRET_CHARS for secret in secrets):
        raise ConfigError(f"{name}: every secret must be at least {_MIN_LINK_SECRET_CHARS} chars")
    return tuple(secrets)


def load_secrets(config: TurnConfig, environ: Mapping[str, str] | None = None) -> Secrets:
    """Read REST secrets, static users and the API key from where the config points.

    Call at start and on SIGHUP; on ConfigError keep the previous Secrets.
    """
    env = os.environ if environ is None else environ
    api_key = _api_key(config.api, env) if config.api.enabled else None
    return Secrets(
        rest_secrets=load_rest_secrets(config.auth, env),
        static_users=_static_users(config.auth.users_file),
        api_key=api_key,
        admin_key=_admin_key(config.api, env, api_key) if config.api.enabled else None,
        redis_password=_redis_password(config.fleet, env),
        pairing_secrets=load_pairing_secrets(config.rendezvous, env),
        check_link_secrets=load_check_link_secrets(config.check, env),
    )


def _redis_password(fleet: FleetConfig, environ: Mapping[str, str]) -> str | None:
    if fleet.redis_password_file is not None:
        lines = _meaningful_lines(fleet.redis_password_file, "fleet.redis_password_file")
        if not lines:
            raise ConfigError(f"fleet.redis_password_file: {fleet.redis_password_file} is empty")
        return lines[0][1]
    if fleet.redis_password_env is not None:
        value = environ.get(fleet.redis_password_env, "").strip()
        if not value:
            raise ConfigError(
                f"fleet.redis_password_env: environment variable {fleet.redis_password_env}"
                " is not set"
            )
        return value
    return None
