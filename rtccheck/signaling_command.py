"""`rtccheck signaling URL`: the click command around rtccheck.signaling."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import click

from rtccheck.junit import write_junit
from rtccheck.render import make_console, render_report
from rtccheck.results import ExitCode, Report, build_report, report_to_json
from rtccheck.signaling.check import FAMILY, run_signaling
from rtccheck.signaling.exchange import ExchangeOptions
from rtccheck.signaling.proxy import ProxySettingError, choose_proxy
from rtccheck.signaling.round_trip import Expectation, ExpectMode, default_probe
from rtccheck.signaling.target import SignalingTarget, SignalingUrlError, parse_target

SIGNALING_HELP = """Check an app's WebSocket (ws:, wss:) or Socket.IO (http:, https:) endpoint.

Layer by layer, each failure explained: the HTTP proxy from the environment (HTTPS_PROXY for
wss:/https:, HTTP_PROXY for ws:/http:, NO_PROXY honoured), DNS, TCP, the proxy's CONNECT
tunnel, TLS (certificate chain and name), the WebSocket upgrade or the Socket.IO handshake, and
a message round trip: a probe message is sent (--send; for Socket.IO as the --event event) and
the check waits --timeout seconds for a reply. By default any message back counts (a WebSocket
frame, a Socket.IO event or the probe's acknowledgement); --expect echo needs the probe text
back, --expect-text TEXT a message containing TEXT.

\b
Examples:
  rtccheck signaling wss://app.example.com/ws
  rtccheck signaling https://app.example.com --event ping --expect-text pong
  rtccheck signaling wss://app.example.com/ws --expect echo --json --junit signaling.xml
  HTTPS_PROXY=http://proxy.corp:3128 rtccheck signaling wss://app.example.com/ws
"""


class UnwritableReportError(click.ClickException):
    exit_code = int(ExitCode.USAGE)


@click.command(FAMILY, help=SIGNALING_HELP, short_help="Check a WebSocket/Socket.IO endpoint.")
@click.argument("url")
@click.option(
    "--protocol",
    type=click.Choice(["auto", "websocket", "socketio"]),
    default="auto",
    show_default=True,
    help="auto: ws:/wss: is a plain WebSocket (Socket.IO when the path has /socket.io), "
    "http:/https: is Socket.IO.",
)
@click.option("--send", "probe", metavar="TEXT", help="The probe message [default: random].")
@click.option(
    "--expect",
    type=click.Choice([ExpectMode.ANY.value, ExpectMode.ECHO.value]),
    default=ExpectMode.ANY.value,
    show_default=True,
    help="Which reply completes the round trip.",
)
@click.option("--expect-text", metavar="TEXT", help="Only a reply containing TEXT counts.")
@click.option("--event", default="message", show_default=True, help="Socket.IO event of the probe.")
@click.option(
    "--ca-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    metavar="PEM",
    help="Trust only the CAs in this PEM file (default: the system store).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Timeout for each step.",
)
@click.option("--json", "json_output", is_flag=True, help="Print the JSON report on stdout.")
@click.option(
    "--junit",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Also write a JUnit XML report to FILE.",
)
def signaling_command(
    *,
    url: str,
    protocol: str,
    probe: str | None,
    expect: str,
    expect_text: str | None,
    event: str,
    ca_file: Path | None,
    timeout: float,
    json_output: bool,
    junit: Path | None,
) -> None:
    try:
        target = parse_target(url, protocol)
        choose_proxy(target, os.environ)
    except (SignalingUrlError, ProxySettingError) as error:
        raise click.UsageError(str(error)) from None
    expectation = (
        Expectation(ExpectMode.TEXT, expect_text)
        if expect_text is not None
        else Expectation(ExpectMode(expect))
    )
    options = ExchangeOptions(
        timeout=timeout,
        probe=probe if probe is not None else default_probe(),
        expectation=expectation,
        event=event,
        ca_file=ca_file,
    )
    report = asyncio.run(signaling_report(target, options))
    if json_output:
        click.echo(report_to_json(report))
    else:
        render_report(report, make_console())
    if junit is not None:
        try:
            write_junit(report, junit)
        except OSError as error:
            message = f"--junit {junit}: cannot write it ({error.strerror})"
            raise UnwritableReportError(message) from None
    click.get_current_context().exit(report.exit_code)


async def signaling_report(target: SignalingTarget, options: ExchangeOptions) -> Report:
    from rtccheck.cli import tool_version

    started, tick = time.time(), time.monotonic()
    results = await run_signaling(target, options, os.environ)
    return build_report(
        results=results,
        targets=[],
        required=(),
        started_at=started,
        duration_s=time.monotonic() - tick,
        checks_run=[FAMILY],
        tool_version=tool_version(),
    )
