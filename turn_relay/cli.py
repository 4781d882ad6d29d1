"""``turn-relay``: mint TURN credentials and run the relay."""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import tomli_w

from turn_relay import config as relay_config
from turn_relay.api.admin_client import (
    DEFAULT_API,
    KEY_ENV,
    AdminRequestError,
    AdminTarget,
    describe_until,
    parse_until,
    resolve_target,
    session_lines,
)
from turn_relay.auth.credentials import DEFAULT_SEPARATOR, check_user, issue
from turn_relay.config import AuthConfig, ConfigError, Secrets, TurnConfig
from turn_relay.config.coturn_import import Conversion, convert, point_at_secret_files
from turn_relay.config.flags import ServeFlags, parse_port_range
from turn_relay.config.flags import load as load_with_flags
from turn_relay.config.tls_files import check_config_files, errors, summarize

_MAIN_HELP = """TURN relay with time-limited (TURN REST) credentials.

\b
Examples:
  head -c 24 /dev/urandom | base64 > rest-secret
  turn-relay serve --secret-file rest-secret --allowed-peer 127.0.0.0/8
  turn-relay credentials --user alice --secret-file rest-secret \\
      --url 'turn:127.0.0.1:3478?transport=udp'
  turn-relay example-config > relay.toml     # a commented config to edit

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

_SERVE_HELP = """Run the relay from flags, from a TOML config (`turn-relay example-config`
prints a commented one), or both. Each setting has one default, shown below and used
with or without --config: flags override the file, the file overrides the defaults. With
nothing set the relay suits a laptop: realm "turnkit", UDP and TCP on 127.0.0.1:3478, relay
sockets on 127.0.0.1.

Credentials come from the files or environment variables named, never from flags. SIGHUP
reloads them and the TLS certificate and key without dropping allocations (a bad new
certificate keeps the old one, with a warning); SIGTERM stops cleanly. --check validates the
settings, reads the secrets, loads the TLS certificate and key, prints what would run, and
exits: 2 when the certificate or key is unusable (not PEM, mismatched, expired), with a
warning for one expiring within 14 days and for key or secret files others can read.

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
  # a deployment: write the example config, edit it, validate it, run it
  turn-relay example-config > /etc/turnkit/turn_relay.toml
  turn-relay serve --config /etc/turnkit/turn_relay.toml --check
  turn-relay serve --config /etc/turnkit/turn_relay.toml
"""

_EXAMPLE_CONFIG_HELP = """Print the example relay config: every key with its default and a comment.
No secret is in it; it names the files that hold them.

\b
Example:
  turn-relay example-config > /etc/turnkit/turn_relay.toml
  turn-relay serve --config /etc/turnkit/turn_relay.toml --check
"""

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ConfigProblem(click.ClickException):
    """A config, flag or file error: one line naming the file and key, exit 2 like a usage
    error (click's own exceptions exit 1)."""

    exit_code = 2


@click.group(help=_MAIN_HELP, context_settings=_CONTEXT)
@click.version_option(package_name="turnkit", prog_name="turn-relay")
def main() -> None:
    pass


@main.command("example-config", help=_EXAMPLE_CONFIG_HELP, short_help="Print the example config.")
def example_config() -> None:
    click.echo(relay_config.example_config(), nl=False)


def _load_config(path: Path) -> TurnConfig:
    try:
        return relay_config.load(path)
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None


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
        raise ConfigProblem(str(exc)) from None
    if not secrets:
        raise ConfigProblem("the config names no REST secret (auth.rest_secrets_*)")
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


class _OffloadRequired(click.ClickException):
    """``--kernel-offload on`` and the kernel path cannot run: exit status 2."""

    exit_code = 2


def start_server(config: TurnConfig, secrets: Secrets, **options: Any) -> None:
    """Run the relay until SIGTERM/SIGINT (uvloop when installed).

    ``options``: ``log_level`` of `turn_relay.runner.run_relay`.
    """
    from turn_relay.offload import OffloadUnavailable
    from turn_relay.shell.process import run_relay

    try:
        run_relay(config, secrets, **options)
    except OSError as exc:
        raise click.ClickException(f"cannot start the relay: {exc}") from None
    except OffloadUnavailable as exc:
        raise _OffloadRequired(
            f"cannot start the relay: --kernel-offload on, but {exc.reason}"
        ) from None


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
    cert = listen.tls_cert_file
    if listen.tls_port and cert is not None:
        lines.append(f"tls:     {cert}: {summarize(cert)}")
    offload = config.offload
    if offload.mode != "off":
        where = ", ".join(offload.interfaces) or "the interfaces of the listen and relay addresses"
        lines.append(f"offload: kernel ChannelData path {offload.mode}, on {where}")
    if api.enabled:
        urls = " ".join(relay_config.ice_urls(config))
        lines.append(f"api:     http://{_host_port(api.listen, api.port)} hands out {urls}")
    else:
        lines.append("api:     off")
    return lines


def _check_files(config: TurnConfig) -> None:
    """One stderr line per problem with the TLS pair or a secret file; exit 2 on an error."""
    findings = check_config_files(config, datetime.datetime.now(datetime.UTC))
    for finding in findings:
        click.echo(str(finding), err=True)
    if errors(findings):
        raise click.exceptions.Exit(2)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# Defaults shown in --help: the config's own (turn_relay.config), so both modes agree.
_LISTEN, _QUOTAS = relay_config.ListenConfig(), relay_config.QuotaConfig()
_BUDGET, _SERVER = relay_config.ChallengeBudgetConfig(), relay_config.ServerConfig()
_API, _OFFLOAD = relay_config.ApiConfig(), relay_config.OffloadConfig()
_PORTS = "{}-{}".format(*relay_config.DEFAULT_PORT_RANGE)
_PORT = click.IntRange(0, 65535)
_FILE = click.Path(dir_okay=False, path_type=Path)


class _FinitePositive(click.FloatRange):
    """A float > 0 that is finite: click's FloatRange lets nan and inf through."""

    name = "finite positive number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


_RATE = _FinitePositive(0, min_open=True)


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
    help="Logging threshold. info logs each allocation created and deleted and each refused"
    " request with its reason (repeats aggregated per minute).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text with key=value fields, or one JSON object per line.",
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
    type=_RATE,
    metavar="PER_SECOND",
    help="401/438 answers per second to a UDP source IP (IPv6: /64) that has not authenticated"
    f" recently; more are dropped. [default: {_BUDGET.unproven_rate}]",
)
@click.option(
    "--challenge-burst",
    type=click.IntRange(1),
    metavar="N",
    help=f"401/438 answers such a source may get at once. [default: {_BUDGET.unproven_burst}]",
)
@click.option(
    "--proven-challenge-rate",
    type=_RATE,
    metavar="PER_SECOND",
    help="401/438 answers per second to a UDP source that authenticated within"
    f" --challenge-proof-lifetime (a shared office or CGNAT address). [default:"
    f" {_BUDGET.proven_rate}]",
)
@click.option(
    "--proven-challenge-burst",
    type=click.IntRange(1),
    metavar="N",
    help=f"401/438 answers such a source may get at once. [default: {_BUDGET.proven_burst}]",
)
@click.option(
    "--challenge-proof-lifetime",
    type=_RATE,
    metavar="SECONDS",
    help="How long an authenticated request keeps its source proven."
    f" [default: {_BUDGET.proof_lifetime}]",
)
@click.option(
    "--challenge-total-rate",
    type=_RATE,
    metavar="PER_SECOND",
    help=f"401/438 answers per second over all UDP sources. [default: {_BUDGET.total_rate}]",
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
    "--admin-key-file",
    type=_FILE,
    help="Admin API key (16+ characters, not the API key): sessions, kick, revoke, drain.",
)
@click.option("--admin-key-env", metavar="VAR", help="Environment variable holding the admin key.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for state that survives restarts (revocations); without it, revoke is refused.",
)
@click.option(
    "--drain-seconds",
    type=click.IntRange(0, 86400),
    metavar="N",
    help="On SIGTERM, drain up to N seconds before stopping; 0, the default, stops at once.",
)
@click.option(
    "--alternate-server",
    metavar="IP[:PORT]",
    multiple=True,
    help="Where a draining relay sends new Allocates (300 Try Alternate); repeatable."
    " Without one they get 403.",
)
@click.option(
    "--public-host",
    metavar="NAME",
    help="Host (DNS name or IP) in the TURN URLs the HTTP API hands out. [default: each"
    " --listen address; required when listening on 0.0.0.0 or ::]",
)
@click.option(
    "--kernel-offload",
    type=click.Choice(relay_config.OFFLOAD_MODES),
    help="Forward UDP ChannelData of bound channels in the kernel (eBPF, tc ingress; needs root"
    " or CAP_BPF + CAP_NET_ADMIN and `python -m turn_relay.offload.build`): auto falls back to"
    " userspace with one log line saying why, on refuses to start without it (exit 2)."
    f" [default: {_OFFLOAD.mode}]",
)
def serve(
    *,
    config_path: Path | None,
    check: bool,
    log_level: str,
    log_format: str,
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
    proven_challenge_rate: float | None,
    proven_challenge_burst: int | None,
    challenge_proof_lifetime: float | None,
    challenge_total_rate: float | None,
    allowed_peer: tuple[str, ...],
    denied_peer: tuple[str, ...],
    max_allocations_per_user: int | None,
    max_allocations: int | None,
    workers: int | None,
    api_port: int | None,
    api_key_file: Path | None,
    api_key_env: str | None,
    api_listen: str | None,
    admin_key_file: Path | None,
    admin_key_env: str | None,
    state_dir: Path | None,
    drain_seconds: int | None,
    alternate_server: tuple[str, ...],
    public_host: str | None,
    kernel_offload: str | None,
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
            proven_challenge_rate=proven_challenge_rate,
            proven_challenge_burst=proven_challenge_burst,
            challenge_proof_lifetime=challenge_proof_lifetime,
            challenge_total_rate=challenge_total_rate,
            workers=workers,
            state_dir=state_dir,
            drain_seconds=drain_seconds,
            alternates=alternate_server,
            admin_key_file=admin_key_file,
            admin_key_env=admin_key_env,
            kernel_offload=kernel_offload,
        )
        config = load_with_flags(config_path, flags)
    except ValueError as exc:  # ConfigError included
        raise ConfigProblem(str(exc)) from None
    try:
        secrets = relay_config.load_secrets(config)
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None
    if not (secrets.rest_secrets or secrets.static_users):
        raise ConfigProblem(
            "no credentials: give --secret-file/--secret-env/--users-file (or auth.* in --config)"
        )
    _check_files(config)
    if check:
        click.echo(f"{config_path or 'flags'}: OK (realm {config.server.realm!r})")
        for line in summary(config):
            click.echo(f"  {line}")
        return
    options: dict[str, Any] = {}  # only what differs: start_server(config, secrets) stays valid
    if log_level != "info":
        options["log_level"] = log_level
    if log_format != "text":
        options["log_format"] = log_format
    start_server(config, secrets, **options)


_IMPORT_HELP = """Convert a coturn turnserver.conf into a turn-relay config (TOML, on stdout or
-o FILE). Each option it cannot map is named on stderr, one line each with the reason;
options turn-relay already behaves like (no-loopback-peers, fingerprint, ...) are listed in
the output's header.

Secrets never go into the TOML: static-auth-secret goes to a file "rest-secrets" and user=
lines to a file "users" (mode 0600) in --secrets-dir (default: the directory of -o, else the
current one), which the config names. Existing files are not overwritten.

Exit status: 0 when it wrote a config, 2 when the input cannot be read.

\b
Example:
  turn-relay import-coturn /etc/turnserver.conf -o /etc/turnkit/turn_relay.toml
  turn-relay serve --config /etc/turnkit/turn_relay.toml --check
"""

_SECTION_ORDER = ("server", "listen", "relay", "allocation", "quotas", "auth", "peer_policy")


@main.command(
    "import-coturn", help=_IMPORT_HELP, short_help="Convert a coturn turnserver.conf to TOML."
)
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=_FILE, help="Write the config here instead of stdout.")
@click.option(
    "--secrets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the rest-secrets and users files go. [default: the directory of -o, else .]",
)
def import_coturn(source: Path, output: Path | None, secrets_dir: Path | None) -> None:
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"error: {source}: cannot read it: {getattr(exc, 'strerror', None) or exc}",
                   err=True)  # fmt: skip
        raise click.exceptions.Exit(2) from None
    conversion = convert(text)
    directory = secrets_dir or (output.parent if output is not None else Path())
    rest_secrets = _write_private(directory / "rest-secrets", conversion.rest_secrets)
    users = [f"{name}:{password}" for name, password in conversion.static_users]
    point_at_secret_files(conversion, rest_secrets, _write_private(directory / "users", users))
    for unmapped in conversion.unmapped:
        click.echo(f"{source}: {unmapped}", err=True)
    document = _ordered(conversion)
    try:
        relay_config.parse(document)
    except ConfigError as exc:
        click.echo(f"warning: edit the result before use: {exc}", err=True)
    toml = _import_header(source, conversion) + tomli_w.dumps(document)
    if output is None:
        click.echo(toml, nl=False)
    else:
        output.write_text(toml, encoding="utf-8")


def _write_private(path: Path, lines: list[str]) -> Path | None:
    """``lines`` into a new file only its owner can read; None when there is nothing."""
    if not lines:
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; not overwriting it (--secrets-dir)") from None
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write("".join(f"{line}\n" for line in lines))
    click.echo(f"wrote {len(lines)} secret line(s) to {path} (mode 0600)", err=True)
    return path.resolve()


def _ordered(conversion: Conversion) -> dict[str, Any]:
    sections = sorted(conversion.document, key=lambda s: (*_SECTION_ORDER, s).index(s))
    return {section: conversion.document[section] for section in sections}


def _import_header(source: Path, conversion: Conversion) -> str:
    lines = [f"# turn-relay config converted from {source} (turn-relay import-coturn)."]
    if conversion.already:
        lines.append("# Already how turn-relay behaves, so not written below:")
        lines += [f"#   {option.where()}" for option in conversion.already]
    if conversion.unmapped:
        lines.append(f"# Not mapped: {len(conversion.unmapped)} option(s), listed on stderr.")
    return "\n".join(lines) + "\n\n"


# ==================================================================== admin verbs


class _Admin:
    """The admin API as the verbs below use it: errors become click's."""

    def __init__(self, target: AdminTarget) -> None:
        self.target = target

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return self.target.call(method, path, body)
        except AdminRequestError as exc:
            raise click.ClickException(str(exc)) from None


def admin_options(command: Callable[..., None]) -> Callable[..., None]:
    """--api, --admin-key-file, --admin-key-env and --config, resolved into ``target``."""

    @click.option(
        "--api", metavar="URL", help=f"The relay's HTTP service. [default: {DEFAULT_API}]"
    )
    @click.option(
        "--admin-key-file", type=click.Path(dir_okay=False, path_type=Path), help="Admin key file."
    )
    @click.option("--admin-key-env", metavar="VAR", help=f"Env var with the key [{KEY_ENV}].")
    @click.option(
        "--config",
        "config_path",
        envvar="TURNKIT_RELAY_CONFIG",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Relay TOML config: the API address and admin key source from it.",
    )
    @functools.wraps(command)
    def wrapper(
        api: str | None,
        admin_key_file: Path | None,
        admin_key_env: str | None,
        config_path: Path | None,
        **rest: Any,
    ) -> None:
        config = _load_config(config_path) if config_path is not None else None
        try:
            target = resolve_target(api, admin_key_file, admin_key_env, config)
        except AdminRequestError as exc:
            raise click.UsageError(str(exc)) from None
        command(target=_Admin(target), **rest)

    return wrapper


_API_EPILOG = """
The relay's HTTP service must be on (--api-port, or api.enabled) with an admin key
(--admin-key-file / api.admin_key_file), which is not the credentials API key.
"""


@main.command(
    short_help="List sessions (allocations) with their traffic.",
    epilog=_API_EPILOG,
)
@click.option("--user", help="Only this user's sessions (the REST user part).")
@click.option("--json", "as_json", is_flag=True, help="JSON list instead of a table.")
@admin_options
def sessions(*, target: _Admin, user: str | None, as_json: bool) -> None:
    """List the relay's sessions: user, client address and transport, relayed address,
    peers and permissions, bytes and packets both ways, age.

    \b
    Example:
      turn-relay sessions --config /etc/turnkit/turn_relay.toml --user alice --json
    """
    path = "/admin/sessions" + (f"?user={user}" if user else "")
    found = target.call("GET", path)["sessions"]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for line in session_lines(found):
        click.echo(line)


@main.command(short_help="End a user's sessions, or one session.", epilog=_API_EPILOG)
@click.argument("target_name", metavar="USER|SESSION")
@admin_options
def kick(*, target: _Admin, target_name: str) -> None:
    """End every session of USER, or the one SESSION (its id, the relayed ip:port that
    `turn-relay sessions` shows). The client's next Refresh fails with 437; a client with a
    valid credential may allocate again (revoke the user to stop that).

    \b
    Examples:
      turn-relay kick alice --config /etc/turnkit/turn_relay.toml
      turn-relay kick 203.0.113.5:49160 --admin-key-file admin-key
    """
    ended = target.call("POST", "/admin/kick", {"target": target_name})["ended"]
    click.echo(f"ended {ended} session(s) of {target_name}")


@main.command(short_help="Refuse a user's credentials, and end their sessions.")
@click.argument("user")
@click.option(
    "--until",
    metavar="TIME",
    help="When the revocation ends: Unix seconds, ISO 8601 (UTC) or a duration (12h, 7d)."
    " [default: until `turn-relay unrevoke`]",
)
@admin_options
def revoke(*, target: _Admin, user: str, until: str | None) -> None:
    """Refuse USER's credentials (401, logged with reason "revoked") before they expire, and
    end USER's sessions now. Revocations persist across restarts (server.state_dir).

    \b
    Examples:
      turn-relay revoke mallory --until 24h --config /etc/turnkit/turn_relay.toml
      turn-relay revoke mallory --until 2030-01-01T00:00
    """
    try:
        moment = None if until is None else parse_until(until, time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from None
    answer = target.call("POST", "/admin/revoke", {"user": user, "until": moment})
    click.echo(
        f"revoked {user} {describe_until(answer['until'])}; ended {answer['ended']} session(s)"
    )


@main.command(short_help="Lift a user's revocation.", epilog=_API_EPILOG)
@click.argument("user")
@admin_options
def unrevoke(*, target: _Admin, user: str) -> None:
    """Accept USER's credentials again.

    \b
    Example:
      turn-relay unrevoke mallory --config /etc/turnkit/turn_relay.toml
    """
    target.call("POST", "/admin/unrevoke", {"user": user})
    click.echo(f"{user} may log in again")


@main.command(short_help="Stop taking new allocations, then exit.", epilog=_API_EPILOG)
@click.option(
    "--seconds",
    type=click.FloatRange(0),
    help="Deadline for the existing allocations. [default: server.drain_seconds, else"
    " allocation.max_lifetime]",
)
@admin_options
def drain(*, target: _Admin, seconds: float | None) -> None:
    """Drain the relay for a deploy: new Allocates get 300 Try Alternate (server.alternates)
    or 403, /healthz answers 503 {"status": "draining"}, existing allocations run until
    they end or the deadline, then the relay exits cleanly.

    \b
    Example:
      turn-relay drain --seconds 300 --config /etc/turnkit/turn_relay.toml
    """
    status = target.call("POST", "/admin/drain", {"seconds": seconds})
    click.echo(f"draining: {status['sessions']} session(s) left")


@main.command(short_help="Uptime, sessions, workers, offload and reload state.")
@click.option("--json", "as_json", is_flag=True, help="The full status as JSON.")
@admin_options
def status(*, target: _Admin, as_json: bool) -> None:
    """Show the relay's uptime, sessions (by transport), workers, kernel offload state,
    whether it drains, and the last reload.

    \b
    Example:
      turn-relay status --config /etc/turnkit/turn_relay.toml
    """
    found = target.call("GET", "/admin/status")
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    by_transport = ", ".join(f"{k} {v}" for k, v in found["sessions_by_transport"].items())
    reload = found["reload"]
    reloaded = "never" if not reload else ("ok" if reload["ok"] else f"failed: {reload['error']}")
    click.echo(f"uptime:   {found['uptime']:.0f}s")
    click.echo(f"sessions: {found['sessions']}" + (f" ({by_transport})" if by_transport else ""))
    click.echo(f"workers:  {found['workers_answering']} of {found['workers']} answering")
    click.echo(f"offload:  {found['offload']}")
    click.echo(f"draining: {'yes' if found['draining'] else 'no'}")
    click.echo(f"reload:   {reloaded}")


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
