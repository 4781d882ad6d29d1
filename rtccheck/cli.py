"""rtccheck: check STUN/TURN servers the way WebRTC uses them, and explain every failure.

Give servers as stun:, stuns:, turn: or turns: URIs (RFC 7064/7065), as an RTCConfiguration
JSON file (--ice-config) or through a credential service (--credentials-url). Without a
sub-command every available check runs (the same as `rtccheck all`).

Exit status: 0 every check passed (warnings allowed); 1 a check failed or a --require was not
met; 2 bad usage or configuration.

\b
Examples:
  rtccheck turn:turn.example.com --secret-file /etc/turnkit/rest-secret
  rtccheck --ice-config ice.json --json > report.json
  rtccheck turns:turn.example.com:443 --username U --credential P --require relay-tls
  rtccheck credentials --username 1700000000:alice
  rtccheck dns stun:stun.example.com turn:turn.example.com
  rtccheck turn turn:turn.example.com --secret-file rest-secret \\
      --expect-relay-address 203.0.113.10 --expect-relay-ports 49152-65535
  rtccheck nat stun:stun.example.com --nat-lifetime --nat-lifetime-max 300
  rtccheck signaling wss://app.example.com/ws
  rtccheck report 7KQ2-M9XD --state-dir /var/lib/turn-relay
  rtccheck pair --relay https://turn.example.com:8443 --secret-file pairing-secret
  rtccheck peer 7KQ2-M9XD --relay https://turn.example.com:8443 --require relay-tls
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from rtccheck.checks import FAMILIES, CheckContext, CheckOptions, Family
from rtccheck.checks.base import DEFAULT_LIFETIME_MAX_S, DEFAULT_MAX_TTL_S
from rtccheck.credential_service import ServerClock
from rtccheck.inputs import InputError, InputSpec, gather_inputs, target_info
from rtccheck.junit import write_junit
from rtccheck.option_values import (
    check_ca_file,
    check_output_path,
    parse_nameserver,
    parse_port_range,
    parse_server_date,
    read_secret_file,
)
from rtccheck.pair_command import pair_command
from rtccheck.peer_command import peer_command
from rtccheck.render import make_console, progress_display, render_report
from rtccheck.report_commands import report_command, reports_command
from rtccheck.requirements import CAPABILITIES, parse_requirements
from rtccheck.results import ExitCode, Report, build_report, report_to_json
from rtccheck.root_causes import link_repeated_causes
from rtccheck.runner import run_families
from rtccheck.selection import Selection, SelectionError, select
from rtccheck.signaling_command import signaling_command

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
DEFAULT_COMMAND = "all"


@dataclass(frozen=True)
class Runtime:
    """The clocks a run uses; tests pass their own through click's ``obj``."""

    now: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class Settings:
    spec: InputSpec
    options: CheckOptions
    required: tuple[str, ...]
    timeout: float
    json_output: bool
    junit: Path | None
    json_file: Path | None = None
    selection: Selection | None = None


class ConfigError(click.ClickException):
    """Unusable configuration (bad file, bad URI, conflicting options): exit status 2."""

    exit_code = int(ExitCode.USAGE)


class DefaultCommandGroup(click.Group):
    """A group that runs ``all`` when the first argument is not a sub-command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help", "--version"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


def tool_version() -> str:
    try:
        return metadata.version("turnkit")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@click.group("rtccheck", cls=DefaultCommandGroup, help=__doc__, context_settings=CONTEXT_SETTINGS)
@click.version_option(tool_version(), prog_name="rtccheck")
def main() -> None:
    """Entry point; the help text is the module docstring."""


REQUIRE_HELP = "Fail unless these are shown (comma-separated, repeatable): " + ", ".join(
    CAPABILITIES
)

_SHARED_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    click.argument("uris", nargs=-1, metavar="[URI]..."),
    click.option("--username", help="TURN username for the URIs given as arguments."),
    click.option(
        "--credential",
        envvar="RTCCHECK_CREDENTIAL",
        help="TURN password [env RTCCHECK_CREDENTIAL].",
    ),
    click.option(
        "--secret",
        envvar="RTCCHECK_SECRET",
        help="TURN REST shared secret: mints credentials for TURN servers that have none and "
        "checks the ones given [env RTCCHECK_SECRET].",
    ),
    click.option(
        "--secret-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Read the REST secret from this file (keeps it out of the process list).",
    ),
    click.option(
        "--rest-user",
        default="rtccheck",
        show_default=True,
        help="User part of minted REST usernames.",
    ),
    click.option(
        "--rest-ttl",
        type=click.IntRange(min=1),
        default=3600,
        show_default=True,
        metavar="SECONDS",
        help="Validity of minted REST credentials.",
    ),
    click.option(
        "--separator",
        default=":",
        show_default=True,
        help="Separator between expiry and user in REST usernames (the server's setting).",
    ),
    click.option(
        "--ice-config",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        help='RTCConfiguration JSON ({"iceServers": [...]}), as the app passes it.',
    ),
    click.option(
        "--credentials-url",
        metavar="URL",
        help="Fetch RTCIceServer JSON from this credential service (GET).",
    ),
    click.option(
        "--api-key",
        envvar="RTCCHECK_API_KEY",
        help="Bearer token for --credentials-url [env RTCCHECK_API_KEY].",
    ),
    click.option(
        "--server-date",
        metavar="DATE",
        help="The server's current time (HTTP date, ISO 8601 or Unix seconds), to compare "
        "credential expiry with the server's clock.",
    ),
    click.option(
        "--max-ttl",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_TTL_S,
        show_default=True,
        metavar="SECONDS",
        help="Warn when a REST credential expires further ahead than this (the issuer's clock "
        "is wrong, or it mints with an oversized TTL).",
    ),
    click.option(
        "--nameserver",
        multiple=True,
        metavar="ADDR[:PORT]",
        help="Ask this DNS server instead of the system's (repeatable).",
    ),
    click.option(
        "--ca-file",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="PEM",
        help="Trust only the CAs in this PEM file for turns:/stuns: (default: the system store).",
    ),
    click.option(
        "--expect-relay-address",
        metavar="IP",
        help="The relayed address the TURN servers should hand out (their public or "
        "advertised IP); turn.relay-address fails when another one comes back.",
    ),
    click.option(
        "--expect-relay-ports",
        metavar="MIN-MAX",
        help="The relay port range the TURN servers are configured with, e.g. 49152-65535; "
        "turn.relay-address fails for a relayed port outside it.",
    ),
    click.option(
        "--nat-lifetime",
        is_flag=True,
        help="Also estimate how long this NAT keeps an idle UDP mapping (the nat check then "
        "takes up to --nat-lifetime-max).",
    ),
    click.option(
        "--nat-lifetime-max",
        type=click.FloatRange(min=1, max=3600),
        default=DEFAULT_LIFETIME_MAX_S,
        show_default=True,
        metavar="SECONDS",
        help="Longest idle time --nat-lifetime tries; mappings that outlive it are reported "
        "as 'at least' this long.",
    ),
    click.option(
        "--packets",
        type=click.IntRange(min=1, max=1000),
        default=100,
        show_default=True,
        metavar="N",
        help="Ping packets the data check sends on each path (plus a 0.3 s burst).",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=5.0,
        show_default=True,
        metavar="SECONDS",
        help="Timeout for each probe.",
    ),
    click.option("--require", multiple=True, metavar="LIST", help=REQUIRE_HELP),
    click.option("--json", "json_output", is_flag=True, help="Print the JSON report on stdout."),
    click.option(
        "--junit",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        help="Also write a JUnit XML report to FILE (checked before any check runs).",
    ),
    click.option(
        "--json-file",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        help="Also write the JSON report to FILE (checked before any check runs).",
    ),
)

_SELECTION_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    click.option(
        "--only",
        multiple=True,
        metavar="FAMILY[,..]",
        help="Run only these check families (comma-separated, repeatable).",
    ),
    click.option(
        "--skip",
        multiple=True,
        metavar="FAMILY|CHECK[,..]",
        help="Leave out these families, or deselect these checks (e.g. policy.peers): their "
        "results are reported as skipped and fail nothing.",
    ),
)


def shared_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_SHARED_OPTIONS):
        command = option(command)
    return command


def selection_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_SELECTION_OPTIONS):
        command = option(command)
    return command


def settings_from(params: dict[str, Any], runtime: Runtime) -> Settings:
    """Validated settings from the click parameters; bad values raise click.UsageError."""
    try:
        required = parse_requirements(params["require"])
        nameservers = tuple(parse_nameserver(text) for text in params["nameserver"])
        secret = _secret(params["secret"], params["secret_file"])
        clock = _server_clock(params["server_date"], runtime)
        ca_file = _ca_file(params["ca_file"])
        relay_address = _relay_address(params["expect_relay_address"])
        relay_ports = _relay_ports(params["expect_relay_ports"])
        junit = _output(params, "junit")
        json_file = _output(params, "json_file")
    except ValueError as error:  # includes UnknownRequirementError
        raise click.UsageError(str(error)) from None
    spec = InputSpec(
        uris=tuple(params["uris"]),
        username=params["username"],
        credential=params["credential"],
        secret=secret,
        rest_user=params["rest_user"],
        rest_ttl=params["rest_ttl"],
        separator=params["separator"],
        ice_config=params["ice_config"],
        credentials_url=params["credentials_url"],
        api_key=params["api_key"],
    )
    options = CheckOptions(
        secret=secret,
        separator=params["separator"],
        username=params["username"],
        credential=params["credential"],
        server_clock=clock,
        nameservers=nameservers,
        ca_file=ca_file,
        packets=params["packets"],
        expect_relay_address=relay_address,
        expect_relay_ports=relay_ports,
        nat_lifetime=params["nat_lifetime"],
        nat_lifetime_max_s=params["nat_lifetime_max"],
        max_ttl_s=params["max_ttl"],
    )
    return Settings(
        spec, options, required, params["timeout"], params["json_output"], junit, json_file
    )


def _output(params: dict[str, Any], name: str) -> Path | None:
    path: Path | None = params[name]
    option = "--" + name.replace("_", "-")
    return None if path is None else check_output_path(option, path)


def _secret(secret: str | None, secret_file: Path | None) -> str | None:
    if secret is not None and secret_file is not None:
        raise ValueError("give either --secret or --secret-file, not both")
    return read_secret_file(secret_file) if secret_file is not None else secret


def _ca_file(path: Path | None) -> Path | None:
    return None if path is None else check_ca_file(path)


def _relay_address(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"--expect-relay-address {text!r} is not an IP address") from None


def _relay_ports(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        return parse_port_range(text)
    except ValueError as error:
        raise ValueError(f"--expect-relay-ports: {error}") from None


def _server_clock(text: str | None, runtime: Runtime) -> ServerClock | None:
    return None if text is None else parse_server_date(text, runtime.now())


def check_sources(families: Sequence[Family], settings: Settings) -> None:
    if settings.spec.has_sources:
        return
    if all(not family.needs_targets for family in families) and settings.options.username:
        return
    raise click.UsageError(
        "give at least one server: a stun:/turn:/turns: URI, --ice-config FILE or "
        "--credentials-url URL (to only explain a username: rtccheck credentials --username U)"
    )


async def execute(families: Sequence[Family], settings: Settings, runtime: Runtime) -> Report:
    started, start_tick = runtime.now(), runtime.monotonic()
    inputs = await gather_inputs(settings.spec, runtime.now, settings.timeout)
    inputs_s = runtime.monotonic() - start_tick
    options = replace(settings.options, ice_transport_policy=inputs.ice_transport_policy)
    if options.server_clock is None and inputs.server_clock is not None:
        options = replace(options, server_clock=inputs.server_clock)
    ctx = CheckContext(inputs.servers, settings.timeout, runtime.now, runtime.monotonic, options)
    with progress_display(settings.json_output) as progress:
        runs = await run_families(families, ctx, progress)
    results = [*inputs.findings, *(result for run in runs for result in run.results)]
    if settings.selection is not None:
        results = settings.selection.apply(results)
    durations = {"inputs": inputs_s, **{run.name: run.duration_s for run in runs}}
    return build_report(
        results=link_repeated_causes(results),
        targets=[target_info(server) for server in inputs.servers],
        required=settings.required,
        started_at=started,
        duration_s=runtime.monotonic() - start_tick,
        checks_run=[family.name for family in families],
        tool_version=tool_version(),
        durations_s=durations,
    )


def run_command(
    families: Sequence[Family], params: dict[str, Any], selection: Selection | None = None
) -> None:
    ctx = click.get_current_context()
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()
    settings = replace(settings_from(params, runtime), selection=selection)
    check_sources(families, settings)
    try:
        report = asyncio.run(execute(families, settings, runtime))
    except InputError as error:
        raise ConfigError(str(error)) from None
    emit(report, settings)
    ctx.exit(report.exit_code)


def emit(report: Report, settings: Settings) -> None:
    if settings.json_output:
        click.echo(report_to_json(report))
    else:
        render_report(report, make_console())
    try:
        if settings.junit is not None:
            write_junit(report, settings.junit)
        if settings.json_file is not None:
            settings.json_file.write_text(report_to_json(report) + "\n", encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{error.filename}: cannot write it ({error.strerror})") from None


def family_command(family: Family) -> click.Command:
    @shared_options
    def command(**params: Any) -> None:
        if not family.available:
            raise ConfigError(f"the {family.name} check is not available in this version yet")
        run_command([family], params)

    return click.command(family.name, help=family.help, short_help=family.summary)(command)


ALL_HELP = """Run every available check (what `rtccheck URI...` does).

Runs the check families below concurrently and prints one table per family, then the verdict.

\b
Examples:
  rtccheck all turn:turn.example.com turns:turn.example.com:443 --secret-file secret.txt
  rtccheck all --ice-config ice.json --json --junit rtccheck.xml --require relay-udp,relay-tls
  rtccheck all turn:turn.example.com --secret-file secret.txt --only turn,data \\
      --require relay-udp,data-relay --junit rtccheck.xml
  rtccheck all turn:127.0.0.1 --secret-file secret.txt --skip nat,policy.peers
"""


@click.command(DEFAULT_COMMAND, help=ALL_HELP, short_help="Run every available check (default).")
@shared_options
@selection_options
def all_command(only: tuple[str, ...], skip: tuple[str, ...], **params: Any) -> None:
    available = [family for family in FAMILIES if family.available]
    try:
        selection = select([family.name for family in available], only, skip)
    except SelectionError as error:
        raise click.UsageError(str(error)) from None
    chosen = [family for family in available if family.name in selection.families]
    run_command(chosen, params, selection)


main.add_command(all_command)
for _family in FAMILIES:
    main.add_command(family_command(_family))
main.add_command(signaling_command)
main.add_command(report_command)
main.add_command(reports_command)
main.add_command(pair_command)
main.add_command(peer_command)
