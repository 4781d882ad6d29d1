"""``turn-relay``: mint TURN credentials and (soon) run the relay."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import click

from turn_relay import config as relay_config
from turn_relay.config import AuthConfig, ConfigError, Secrets, TurnConfig
from turn_relay.credentials import DEFAULT_SEPARATOR, check_user, issue

_MAIN_HELP = """TURN relay with time-limited (TURN REST) credentials.

\b
Examples:
  turn-relay credentials --user alice --secret-file /etc/turnkit/rest-secrets \\
      --url 'turn:turn.example.com:3478?transport=udp'
  turn-relay serve --config /etc/turnkit/turn_relay.toml --check
"""

_CREDENTIALS_HELP = """Print one RTCIceServer object as JSON: {"urls", "username", "credential",
"ttl"}, the same shape GET /credentials returns. Wrap it in a list to use it as iceServers.

The secret comes from exactly one of --secret-file (one secret per line, the first one issues),
--secret-env (comma-separated, first issues) or --config (the relay's own auth settings, whose
[api]/[server] settings also provide the URLs when no --url is given).

\b
Example:
  TURN_SECRETS=s3cret turn-relay credentials --user alice --ttl 3600 \\
      --secret-env TURN_SECRETS --url 'turn:turn.example.com:3478?transport=udp'
"""

_SERVE_HELP = """Run the relay described by a TOML config (see configs/turn_relay.example.toml).

Secrets are read from the files or environment variables the config names. With --check the
config and secrets are validated and nothing is started.

\b
Example:
  turn-relay serve --config /etc/turnkit/turn_relay.toml --workers 4
"""


@click.group(help=_MAIN_HELP)
def main() -> None:
    pass


def _load_config(path: Path) -> TurnConfig:
    try:
        return relay_config.load(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _issuing_secret(
    secret_file: Path | None, secret_env: str | None, config: TurnConfig | None
) -> str:
    sources = [s for s in (secret_file, secret_env, config) if s is not None]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --secret-file, --secret-env, --config")
    auth = (
        config.auth
        if config is not None
        else AuthConfig(rest_secrets_file=secret_file, rest_secrets_env=secret_env)
    )
    try:
        secrets = relay_config.load_rest_secrets(auth)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not secrets:
        raise click.ClickException("the config names no REST secret (auth.rest_secrets_*)")
    return secrets[0]


@main.command(help=_CREDENTIALS_HELP, short_help="Print TURN credentials as RTCIceServer JSON.")
@click.option("--user", required=True, help="Application user name (letters, digits, ._@+-).")
@click.option(
    "--ttl", type=click.IntRange(min=1), default=3600, show_default=True, help="Seconds valid."
)
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of REST secrets.",
)
@click.option("--secret-env", metavar="VAR", help="Environment variable holding REST secrets.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Relay TOML config: secrets, separator and URLs from it.",
)
@click.option("--url", "urls", multiple=True, help="TURN/STUN URL to include; repeatable.")
@click.option("--separator", help=f"REST username separator [default: {DEFAULT_SEPARATOR}].")
def credentials(
    *,
    user: str,
    ttl: int,
    secret_file: Path | None,
    secret_env: str | None,
    config_path: Path | None,
    urls: tuple[str, ...],
    separator: str | None,
) -> None:
    config = _load_config(config_path) if config_path is not None else None
    secret = _issuing_secret(secret_file, secret_env, config)
    if separator is None:
        separator = config.auth.separator if config is not None else DEFAULT_SEPARATOR
    try:
        check_user(user, separator)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--user") from None
    if not urls and config is not None:
        urls = relay_config.ice_urls(config)
    if not urls:
        raise click.UsageError("no URL: give --url (repeatable) or a --config that yields URLs")
    credential = issue(secret, user, ttl, time.time(), separator)
    server = {
        "urls": list(urls),
        "username": credential.username,
        "credential": credential.password,
        "ttl": credential.ttl,
    }
    click.echo(json.dumps(server, indent=2))


class NotWiredError(click.ClickException):
    """``serve`` until turn_relay/server.py exists."""


def start_server(config: TurnConfig, secrets: Secrets) -> None:
    """Run the relay until it is stopped.

    Placeholder: the asyncio server (turn_relay/server.py) replaces this body; everything
    before it (config, overrides, secrets) is already wired.
    """
    del config, secrets
    raise NotWiredError(
        "serve: the relay server is not wired yet (turn_relay/server.py comes later); "
        "the config and secrets are valid (--check validates without starting)"
    )


@main.command(help=_SERVE_HELP, short_help="Run the relay from a TOML config.")
@click.option(
    "--config",
    "config_path",
    required=True,
    envvar="TURNKIT_RELAY_CONFIG",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Relay TOML config.",
)
@click.option(
    "--workers", type=click.IntRange(0, 256), help="Override server.workers (0 = one per core)."
)
@click.option("--check", is_flag=True, help="Validate config and secrets, then exit.")
def serve(*, config_path: Path, workers: int | None, check: bool) -> None:
    config = _load_config(config_path)
    if workers is not None:
        config = replace(config, server=replace(config.server, workers=workers))
    try:
        secrets = relay_config.load_secrets(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if check:
        click.echo(f"{config_path}: OK (realm {config.server.realm!r})")
        return
    start_server(config, secrets)
