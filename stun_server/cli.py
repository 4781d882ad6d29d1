"""``stun-server``: the command line of the STUN server (click)."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

import click

from stun_server import logfmt
from stun_server.config import (
    LOG_LEVELS,
    ConfigError,
    ServerConfig,
    build_config,
    check_files,
    load_file,
    parse_address,
    parse_ip,
)
from stun_server.server import run

EXAMPLES = """\b
Examples:
  # Binding over UDP and TCP on loopback (the default), then ask it:
  stun-server
  turnutils_stunclient -p 3478 127.0.0.1
\b
  # every interface, IPv4 and IPv6, TLS too, one worker per CPU core:
  stun-server --listen 0.0.0.0:3478 --listen [::]:3478 \\
      --tls-cert cert.pem --tls-key key.pem --workers 0
\b
  # RFC 5780 NAT behaviour discovery with a second address (ports 3478 and 3479):
  stun-server --listen 127.0.0.1:3478 --alternate 127.0.0.2
  turnutils_natdiscovery -m -f -p 3478 127.0.0.1
\b
  # from a file (`stun-server example-config` prints a commented one), one flag overriding it:
  stun-server example-config > stun.toml
  stun-server --config stun.toml --log-level debug --log-format json
"""

EXAMPLE_FILE = "stun_server.example.toml"  # shipped in the package; configs/ links to it


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXAMPLES,
    invoke_without_command=True,
    subcommand_metavar="[example-config]",
)
@click.option(
    "--listen",
    "-l",
    multiple=True,
    metavar="IP:PORT",
    help="Address for UDP and TCP (repeatable; [v6]:port for IPv6). Default 127.0.0.1:3478.",
)
@click.option(
    "--alternate",
    multiple=True,
    metavar="IP",
    help="Second IP of this host: enables RFC 5780 (CHANGE-REQUEST, OTHER-ADDRESS, ...) "
    "paired with the first --listen address of its family.",
)
@click.option(
    "--alternate-port", type=int, metavar="PORT", help="RFC 5780 second port [listen port + 1]."
)
@click.option("--tcp/--no-tcp", default=None, help="Also serve TCP on the listen addresses [tcp].")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM certificate (chain): enables TLS.",
)
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM key.")
@click.option("--tls-port", type=int, metavar="PORT", help="TLS port on each listen IP [5349].")
@click.option("--software", metavar="TEXT", help='SOFTWARE attribute; "" leaves it out [turnkit].')
@click.option(
    "--rate-limit",
    type=float,
    metavar="N",
    help="Answers per second per source IP (IPv6: per /64); 0 = unlimited [500].",
)
@click.option("--rate-burst", type=float, metavar="N", help="Rate limit bucket size [2 x rate].")
@click.option(
    "--max-connections",
    type=int,
    metavar="N",
    help="Open TCP + TLS connections per worker; 0 = soft RLIMIT_NOFILE - 256 [0].",
)
@click.option(
    "--max-connections-per-source",
    type=int,
    metavar="N",
    help="Open TCP + TLS connections per source IP (IPv6: per /64) [256].",
)
@click.option(
    "--idle-timeout",
    type=float,
    metavar="SECONDS",
    help="Close a TCP/TLS connection after this long without a complete message [30].",
)
@click.option(
    "--first-message-timeout",
    type=float,
    metavar="SECONDS",
    help="Close a TCP/TLS connection that has not finished TLS and sent one STUN message [5].",
)
@click.option(
    "--workers",
    type=int,
    metavar="N",
    help="Processes sharing the ports with SO_REUSEPORT; 0 = one per CPU core [1].",
)
@click.option(
    "--udp-batch/--no-udp-batch",
    default=None,
    help="Move many datagrams per system call (recvmmsg/sendmmsg, Linux) [udp-batch].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file (`stun-server example-config` prints one); flags override it.",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), help="[info]")
@click.option(
    "--log-format",
    type=click.Choice(logfmt.FORMATS),
    default="text",
    help="Log lines as text (key=value fields) or one JSON object per line [text].",
)
@click.version_option(package_name="turnkit", prog_name="stun-server")
@click.pass_context
def main(ctx: click.Context, /, config_file: Path | None, log_format: str, **flags: Any) -> None:
    """STUN server (RFC 8489 Binding over UDP, TCP and TLS) with RFC 5780 NAT behaviour
    discovery when given a second address.

    It answers Binding requests with XOR-MAPPED-ADDRESS (and FINGERPRINT when asked), 400/420
    to malformed requests, and nothing to anything else. A per-source rate limit keeps it from
    being an amplifier. It logs one line per listener and stops cleanly on SIGINT/SIGTERM.
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        config = _config(config_file, flags)
    except ConfigError as exc:
        click.echo(f"stun-server: error: {exc.text(_FLAGS.get(exc.key, ''))}", err=True)
        sys.exit(2)
    logfmt.configure(config.log_level, log_format)
    sys.exit(run(config))


@main.command("example-config", short_help="Print the example config.")
def example_config() -> None:
    """Print the example config: every key with its default and a comment.

    \b
    Example:
      stun-server example-config > /etc/turnkit/stun_server.toml
      stun-server --config /etc/turnkit/stun_server.toml
    """
    text = resources.files("stun_server").joinpath(EXAMPLE_FILE).read_text(encoding="utf-8")
    click.echo(text, nl=False)


def _config(config_file: Path | None, flags: dict[str, Any]) -> ServerConfig:
    """The checked configuration; every problem is one `ConfigError` naming its file and key."""
    file_values = load_file(config_file) if config_file is not None else {}
    config = build_config(file_values, _flag_values(flags), config_file)
    check_files(config)
    return config


def _flag_values(flags: dict[str, Any]) -> dict[str, Any]:
    """Flags as ServerConfig fields; None (and empty repeatable options) mean "not given"."""
    values = dict(flags)
    listen = values.pop("listen")
    alternate = values.pop("alternate")
    if listen:
        values["listen"] = tuple(parse_address("--listen", text) for text in listen)
    if alternate:
        values["alternate"] = tuple(parse_ip("--alternate", text) for text in alternate)
    if values.get("log_level"):
        values["log_level"] = values["log_level"].lower()
    return values


# the flag that sets each TOML key, named in error messages
_FLAGS = {
    "server.listen": "--listen",
    "server.tcp": "--tcp",
    "server.software": "--software",
    "server.workers": "--workers",
    "server.udp_batch": "--udp-batch",
    "server.log_level": "--log-level",
    "rfc5780.alternate": "--alternate",
    "rfc5780.alternate_port": "--alternate-port",
    "tls.cert": "--tls-cert",
    "tls.key": "--tls-key",
    "tls.port": "--tls-port",
    "limits.rate_limit": "--rate-limit",
    "limits.rate_burst": "--rate-burst",
    "limits.max_connections": "--max-connections",
    "limits.max_connections_per_source": "--max-connections-per-source",
    "limits.idle_timeout": "--idle-timeout",
    "limits.first_message_timeout": "--first-message-timeout",
}
