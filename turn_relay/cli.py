"""``turn-relay``: mint TURN credentials and run the relay."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from turn_relay import config as relay_config
from turn_relay.auth.credentials import DEFAULT_SEPARATOR, check_user, issue
from turn_relay.config import AuthConfig, ConfigError, Secrets, TurnConfig
from turn_relay.config.flags import ServeFlags, parse_port_range
from turn_relay.config.flags import load as load_with_flags

_MAIN_HELP = """TURN relay with time-limited (TURN REST) credentials.

\b
Examples:
  head -c 24 /dev/urandom | base64 > rest-secret
  turn-relay serve --secret-file rest-secret --allowed-peer 127.0.0.0/8
  turn-relay credentials --user alice --secret-file rest-secret \\
      --url 'turn:127.0.0.1:3478?transport=udp'

`turn-relay serve --help` has more (the HTTP API, a deployment config).
"""

_CREDENTIALS_HELP = """Print one RTCIceServer object as JSON: {"urls", "username", "credential",
"ttl"}, the same shape GET /credentials returns. Wrap it in a list to use it as iceServers.

The secret comes from exactly one of --secret-file (one secret per line, the first one issues),
--secret-env (comma-separated, first issues) or --config (the relay's own auth settings, whose
api.urls, server.public_host or listen addresses also provide the URLs when no --url is given).

\b
Example:
  TURN_SECRETS=s3cret turn-relay credentials --user alice --ttl 3600 \\
      --secret-env TURN_SECRETS --url 'turn:turn.example.com:3478?transport=udp'
"""

_SERVE_HELP = """Run the relay from flags, from a TOML config (see
configs/turn_relay.example.toml), or both. Each setting has one default, shown below and used
with or without --config: flags override the file, the file overrides the defaults. With
nothing set the relay suits a laptop: realm "turnkit", UDP and TCP on 127.0.0.1:3478, relay
sockets on 127.0.0.1.

Credentials come from the files or environment variables named, never from flags. SIGHUP
reloads them without dropping allocations; SIGTERM stops cleanly. --check validates the
settings, reads the secrets, prints what would run, and exits.

\b
Examples:
  # on a laptop: make a REST secret, relay to peers on loopback
  head -c 24 /dev/urandom | base64 > rest-secret
  turn-relay serve --secret-file rest-secret --allowed-peer 127.0.0.0/8

\b
  # plus the HTTP API for an app's backend, handing out turn:127.0.0.1:3478 URLs
  head -c 24 /dev/urandom | base64 > api-key
  turn-relay serve --secret-file rest-secret --api-port 8080 --api-key-file api-key
  curl -H "Authorization: Bearer $(cat api-key)" 'http://127.0.0.1:8080/credentials?user=alice'

\b
  # a deployment: copy and edit configs/turn_relay.example.toml, validate it, run it
  turn-relay serve --config /etc/turnkit/turn_relay.toml --check
  turn-relay serve --config /etc/turnkit/turn_relay.toml
"""

_CONTEXT = {"max_content_width": 100}


@click.group(help=_MAIN_HELP, context_settings=_CONTEXT)
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
        try:
            urls = relay_config.ice_urls(config)
        except ConfigError as exc:
            raise click.UsageError(
                f"no URL: give --url (repeatable), or in --config: {exc}"
            ) from None
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

    ``options``: ``log_level`` of `turn_relay.runner.run_relay`.
    """
    from turn_relay.shell.process import run_relay

    try:
        run_relay(config, secrets, **options)
    except OSError as exc:
        raise click.ClickException(f"cannot start the relay: {exc}") from None


def summary(config: TurnConfig) -> list[str]:
    """What `serve` would run, one aspect a line (printed by --check)."""
    listen, relay, api = config.listen, config.relay, config.api
    listeners = ", ".join(
        f"{x.transport} {_host_port(x.address, x.port)}" for x in listen.listeners()
    )
    relays = ", ".join(
        a if relay.advertised(a) == a else f"{a} (advertised {relay.advertised(a)})"
        for a in relay.addresses
    )
    rfc5766 = config.allocation.rfc5766_channels
    channels = "0x4000-0x7FFF (RFC 5766)" if rfc5766 else "0x4000-0x4FFF (RFC 8656)"
    lines = [
        f"listen:  {listeners}",
        f"relay:   {relays}, ports {relay.port_min}-{relay.port_max}, channels {channels}",
    ]
    if api.enabled:
        urls = " ".join(relay_config.ice_urls(config))
        lines.append(f"api:     http://{_host_port(api.listen, api.port)} hands out {urls}")
    else:
        lines.append("api:     off")
    return lines


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# Defaults shown in --help: the config's own (turn_relay.config), so both modes agree.
_LISTEN, _QUOTAS = relay_config.ListenConfig(), relay_config.QuotaConfig()
_LIMIT, _SERVER = relay_config.RateLimitConfig(), relay_config.ServerConfig()
_API = relay_config.ApiConfig()
_PORTS = "{}-{}".format(*relay_config.DEFAULT_PORT_RANGE)
_PORT = click.IntRange(0, 65535)
_FILE = click.Path(dir_okay=False, path_type=Path)


@main.command(help=_SERVE_HELP, short_help="Run the relay (flags and/or a TOML config).")
@click.option(
    "--config",
    "config_path",
    envvar="TURNKIT_RELAY_CONFIG",
    show_envvar=True,
    type=_FILE,
    help="Relay TOML config; the flags below override it.",
)
@click.option("--check", is_flag=True, help="Validate, read the secrets, print a summary, exit.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Logging threshold (debug shows why each request was refused).",
)
@click.option(
    "--realm", metavar="NAME", help=f"REALM of long-term credentials. [default: {_SERVER.realm}]"
)
@click.option(
    "--listen",
    metavar="ADDRESS",
    multiple=True,
    help="Address clients reach the relay on; repeatable."
    f" [default: {', '.join(_LISTEN.addresses)}]",
)
@click.option(
    "--port", type=_PORT, metavar="PORT", help=f"UDP and TCP port. [default: {_LISTEN.udp_port}]"
)
@click.option(
    "--tls-port",
    type=_PORT,
    metavar="PORT",
    help=f"TLS port, e.g. 5349; needs --tls-cert, --tls-key. [default: {_LISTEN.tls_port} = off]",
)
@click.option("--tls-cert", type=_FILE, help="TLS certificate chain (PEM).")
@click.option("--tls-key", type=_FILE, help="TLS private key (PEM).")
@click.option(
    "--relay-address",
    metavar="ADDRESS",
    multiple=True,
    help="Local address relay sockets bind to; one per family, repeatable. [default: the first"
    " --listen address of each family; required when listening on 0.0.0.0 or ::]",
)
@click.option(
    "--external-address",
    metavar="[LOCAL=]ADVERTISED",
    multiple=True,
    help="Relay address clients are told behind 1:1 NAT; LOCAL= picks the relay address when"
    " there are several. Repeatable.",
)
@click.option("--port-range", metavar="MIN-MAX", help=f"Relay socket ports. [default: {_PORTS}]")
@click.option(
    "--rfc5766-channels/--rfc8656-channels",
    default=None,
    help="Accept channel numbers 0x4000-0x7FFF as RFC 5766 did (coturn's turnutils_uclient"
    " uses them), or only RFC 8656's 0x4000-0x4FFF. [default: --rfc8656-channels]",
)
@click.option("--secret-file", type=_FILE, help="REST secrets, one per line; the first issues.")
@click.option("--secret-env", metavar="VAR", help="Environment variable: REST secrets, a,b,...")
@click.option("--users-file", type=_FILE, help="Static users, one user:password per line.")
@click.option(
    "--challenge-rate",
    type=click.FloatRange(0, min_open=True),
    metavar="PER_SECOND",
    help="401/438 answers per second to one UDP source IP (IPv6: /64); more are dropped."
    f" [default: {_LIMIT.per_second}]",
)
@click.option(
    "--challenge-burst",
    type=click.IntRange(1),
    metavar="N",
    help=f"401/438 answers one UDP source IP may get at once. [default: {_LIMIT.burst}]",
)
@click.option(
    "--allowed-peer",
    metavar="CIDR",
    multiple=True,
    help="Re-open a peer range the built-in deny list closes (e.g. 127.0.0.0/8); repeatable.",
)
@click.option(
    "--denied-peer",
    metavar="CIDR",
    multiple=True,
    help="Deny a peer range too; beats --allowed-peer; repeatable.",
)
@click.option(
    "--max-allocations-per-user",
    type=click.IntRange(0),
    metavar="N",
    help="Allocations per user, 486 beyond (0 = no cap)."
    f" [default: {_QUOTAS.max_allocations_per_user}]",
)
@click.option(
    "--max-allocations",
    type=click.IntRange(0),
    metavar="N",
    help=f"Allocations in total (0 = no cap). [default: {_QUOTAS.max_allocations}]",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 256),
    metavar="N",
    help=f"Worker processes (0 = one per core). [default: {_SERVER.workers}]",
)
@click.option(
    "--api-port",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Serve the HTTP API (GET /credentials, /healthz, /metrics) on --api-listen"
    ":PORT. Needs --api-key-file or --api-key-env; the URLs it hands out name --public-host,"
    " else each --listen address.",
)
@click.option("--api-key-file", type=_FILE, help="HTTP API key (16+ characters), first line.")
@click.option(
    "--api-key-env",
    metavar="VAR",
    help="Environment variable holding the HTTP API key (instead of --api-key-file).",
)
@click.option(
    "--api-listen",
    metavar="ADDRESS",
    help=f"Address the HTTP API listens on. [default: {_API.listen}]",
)
@click.option(
    "--public-host",
    metavar="NAME",
    help="Host (DNS name or IP) in the TURN URLs the HTTP API hands out. [default: each"
    " --listen address; required when listening on 0.0.0.0 or ::]",
)
def serve(
    *,
    config_path: Path | None,
    check: bool,
    log_level: str,
    realm: str | None,
    listen: tuple[str, ...],
    port: int | None,
    tls_port: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    relay_address: tuple[str, ...],
    external_address: tuple[str, ...],
    port_range: str | None,
    rfc5766_channels: bool | None,
    secret_file: Path | None,
    secret_env: str | None,
    users_file: Path | None,
    challenge_rate: float | None,
    challenge_burst: int | None,
    allowed_peer: tuple[str, ...],
    denied_peer: tuple[str, ...],
    max_allocations_per_user: int | None,
    max_allocations: int | None,
    workers: int | None,
    api_port: int | None,
    api_key_file: Path | None,
    api_key_env: str | None,
    api_listen: str | None,
    public_host: str | None,
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
            api_listen=api_listen,
            api_key_file=api_key_file,
            api_key_env=api_key_env,
            rfc5766_channels=rfc5766_channels,
            challenge_rate=challenge_rate,
            challenge_burst=challenge_burst,
            workers=workers,
        )
        config = load_with_flags(config_path, flags)
    except ValueError as exc:  # ConfigError included
        raise click.ClickException(str(exc)) from None
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
        for line in summary(config):
            click.echo(f"  {line}")
        return
    options: dict[str, Any] = {}  # only what differs: start_server(config, secrets) stays valid
    if log_level != "info":
        options["log_level"] = log_level
    start_server(config, secrets, **options)


_LINK_HELP = """Mint a check link: a signed, expiring URL of the relay's check page to send to a
user who cannot connect. Their browser tests UDP, TCP and TLS through this relay, shows them a plain
verdict and uploads a report that `rtccheck report ID` reads back.

The link is signed with the first check-link secret the config names (check.link_secrets_file
or check.link_secrets_env, never a flag or the API key) and is valid for --ttl seconds (default
check.link_ttl); the URL is on check.public_url, else on server.public_host and the API's port.
Prints the URL and the result id the user will read back (the report is stored under it).

\b
Examples:
  turn-relay link --config /etc/turnkit/turn_relay.toml --note 'ticket 4711'
  turn-relay link --config relay.toml --ttl 3600 --signaling wss://app.example.com/ws --json
"""


@main.command(help=_LINK_HELP, short_help="Mint a check-page link for a user.")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The relay's TOML config (check-link secret, API URL).",
)
@click.option("--ttl", type=click.IntRange(min=60), help="Seconds valid [default: check.link_ttl].")
@click.option("--note", help="Shown on the page and kept in the link, e.g. a ticket number.")
@click.option("--signaling", metavar="URL", help="The app's ws:/wss: URL the page also checks.")
@click.option("--json", "as_json", is_flag=True, help="Print {url, result_id, expires_at} JSON.")
def link(
    *,
    config_path: Path,
    ttl: int | None,
    note: str | None,
    signaling: str | None,
    as_json: bool,
) -> None:
    from turn_relay.auth.links import LinkError, mint
    from turn_relay.config.secrets import load_check_link_secrets
    from turn_relay.config.urls import api_base_url
    from turn_relay.reports.result_id import new_result_id

    config = _load_config(config_path)
    try:
        secrets = load_check_link_secrets(config.check)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not secrets:
        raise click.ClickException(
            f"{config_path}: no check-link secret (set check.link_secrets_file or _env)"
        )
    now = time.time()
    expires_at = int(now) + (ttl or config.check.link_ttl)
    result_id = new_result_id()
    try:
        token = mint(secrets[0], result_id, expires_at, note, now, signaling=signaling)
    except LinkError as exc:
        raise click.BadParameter(str(exc)) from None
    url = f"{api_base_url(config)}/check/{token}"
    if as_json:
        click.echo(json.dumps({"url": url, "result_id": result_id, "expires_at": expires_at}))
        return
    click.echo(url)
    click.echo(f"result id: {result_id[:4]}-{result_id[4:]} (rtccheck report {result_id})")
