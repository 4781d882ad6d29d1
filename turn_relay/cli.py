"""``turn-relay``: mint TURN credentials and run the relay."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from turn_relay import config as relay_config
from turn_relay.config import AuthConfig, ConfigError, Secrets, TurnConfig
from turn_relay.credentials import DEFAULT_SEPARATOR, check_user, issue
from turn_relay.serve_flags import ServeFlags, parse_port_range
from turn_relay.serve_flags import load as load_with_flags

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

_SERVE_HELP = """Run the relay: from a TOML config (see configs/turn_relay.example.toml), from
flags, or both (flags override the file). Without --config the defaults suit a laptop: realm
"turnkit", UDP and TCP on 127.0.0.1:3478, relay sockets on the listen address.

Secrets are read from the files or environment variables named (never from flags). SIGHUP
re-reads them without dropping allocations; SIGTERM stops cleanly. With --check the config and
secrets are validated and nothing is started.

\b
Example:
  turn-relay serve --config /etc/turnkit/turn_relay.toml --workers 4
  turn-relay serve --listen 127.0.0.1 --secret-file ./secrets --allowed-peer 127.0.0.0/8
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


def start_server(config: TurnConfig, secrets: Secrets, **options: Any) -> None:
    """Run the relay until SIGTERM/SIGINT (uvloop when installed).

    ``options``: ``legacy_channels`` and ``log_level`` of `turn_relay.runner.run_relay`.
    """
    from turn_relay.runner import run_relay

    try:
        run_relay(config, secrets, **options)
    except OSError as exc:
        raise click.ClickException(f"cannot start the relay: {exc}") from None


@main.command(help=_SERVE_HELP, short_help="Run the relay (TOML config and/or flags).")
@click.option(
    "--config",
    "config_path",
    envvar="TURNKIT_RELAY_CONFIG",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Relay TOML config; flags below override it.",
)
@click.option(
    "--workers", type=click.IntRange(0, 256), help="Override server.workers (0 = one per core)."
)
@click.option("--check", is_flag=True, help="Validate config and secrets, then exit.")
@click.option("--realm", help="REALM of long-term credentials [default: turnkit].")
@click.option("--public-host", help="Host name for the TURN URLs the HTTP API hands out.")
@click.option("--listen", multiple=True, help="Listen address; repeatable [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), help="UDP and TCP port [default: 3478].")
@click.option("--tls-port", type=click.IntRange(0, 65535), help="TLS port (e.g. 5349).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), help="PEM chain.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM key.")
@click.option("--relay-address", multiple=True, help="Local relay address; one per family.")
@click.option(
    "--external-address",
    multiple=True,
    help="Advertised relay address behind 1:1 NAT: ADVERTISED or LOCAL=ADVERTISED.",
)
@click.option("--port-range", help="Relay ports MIN-MAX [default: 49152-65535].")
@click.option(
    "--secret-file", type=click.Path(dir_okay=False, path_type=Path), help="REST secrets."
)
@click.option("--secret-env", metavar="VAR", help="Environment variable with REST secrets.")
@click.option("--users-file", type=click.Path(dir_okay=False, path_type=Path), help="user:pass.")
@click.option("--allowed-peer", multiple=True, help="CIDR peers may be in; repeatable.")
@click.option("--denied-peer", multiple=True, help="CIDR peers may not be in; repeatable.")
@click.option("--max-allocations-per-user", type=click.IntRange(0), help="486 beyond this.")
@click.option("--max-allocations", type=click.IntRange(0), help="Total allocations (0 = no cap).")
@click.option("--api-port", type=click.IntRange(1, 65535), help="Enable the HTTP API on port.")
@click.option("--api-key-file", type=click.Path(dir_okay=False, path_type=Path), help="API key.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Logging threshold (debug shows why each request was refused).",
)
@click.option(
    "--rfc5766-channels",
    is_flag=True,
    help="Also accept channels 0x5000-0x7FFF (RFC 5766 clients, e.g. turnutils_uclient).",
)
def serve(
    *,
    config_path: Path | None,
    workers: int | None,
    check: bool,
    realm: str | None,
    public_host: str | None,
    listen: tuple[str, ...],
    port: int | None,
    tls_port: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    relay_address: tuple[str, ...],
    external_address: tuple[str, ...],
    port_range: str | None,
    secret_file: Path | None,
    secret_env: str | None,
    users_file: Path | None,
    allowed_peer: tuple[str, ...],
    denied_peer: tuple[str, ...],
    max_allocations_per_user: int | None,
    max_allocations: int | None,
    api_port: int | None,
    api_key_file: Path | None,
    log_level: str,
    rfc5766_channels: bool,
) -> None:
    try:
        flags = ServeFlags(
            realm=realm,
            public_host=public_host,
            listen=listen,
            port=port,
            tls_port=tls_port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            relay_addresses=relay_address,
            external=external_address,
            port_range=None if port_range is None else parse_port_range(port_range),
            secret_file=secret_file,
            secret_env=secret_env,
            users_file=users_file,
            allowed_peers=allowed_peer,
            denied_peers=denied_peer,
            max_allocations_per_user=max_allocations_per_user,
            max_allocations=max_allocations,
            api_port=api_port,
            api_key_file=api_key_file,
        )
        config = load_with_flags(config_path, flags)
    except ValueError as exc:  # ConfigError included
        raise click.ClickException(str(exc)) from None
    if workers is not None:
        config = replace(config, server=replace(config.server, workers=workers))
    try:
        secrets = relay_config.load_secrets(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not (secrets.rest_secrets or secrets.static_users):
        raise click.ClickException(
            "no credentials: give --secret-file/--secret-env/--users-file (or auth.* in --config)"
        )
    if check:
        click.echo(f"{config_path or 'flags'}: OK (realm {config.server.realm!r})")
        return
    options: dict[str, Any] = {}  # only what differs: start_server(config, secrets) stays valid
    if rfc5766_channels:
        options["legacy_channels"] = True
    if log_level != "info":
        options["log_level"] = log_level
    start_server(config, secrets, **options)
