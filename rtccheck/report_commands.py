"""`rtccheck report ID` and `rtccheck reports`: stored reports, from the relay or its state."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rtccheck.option_values import check_ca_file, read_secret_file
from rtccheck.render import make_console, render_report_list, render_stored_report
from rtccheck.results import ExitCode
from rtccheck.stored_reports import (
    ReportNotFoundError,
    ReportSourceError,
    list_from_api,
    list_from_state_dir,
    read_from_api,
    read_from_state_dir,
)
from rtccheck.tlsinfo.trust import client_context
from turn_relay.reports.result_id import ResultIdError

API_KEY_ENV = "RTCCHECK_API_KEY"


class SourceError(click.ClickException):
    exit_code = int(ExitCode.USAGE)


class NotFoundError(click.ClickException):
    exit_code = int(ExitCode.FAILED)


_SOURCE_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    click.option(
        "--state-dir",
        type=click.Path(path_type=Path, file_okay=False),
        metavar="DIR",
        help="Read the relay's report store in this state directory directly.",
    ),
    click.option(
        "--api",
        metavar="URL",
        help="The relay's HTTP API, e.g. https://turn.example.com:8443/api. The key comes "
        f"from {API_KEY_ENV} or --api-key-file.",
    ),
    click.option(
        "--api-key-file",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        help=f"Read the API key from this file (instead of {API_KEY_ENV}).",
    ),
    click.option(
        "--ca-file",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="PEM",
        help="Trust only the CAs in this PEM file for an https:// --api (a relay API served "
        "with its own certificate); default: the system trust store.",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=5.0,
        show_default=True,
        metavar="SECONDS",
        help="Timeout of the API request.",
    ),
    click.option("--json", "json_output", is_flag=True, help="Print JSON on stdout."),
)


def source_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_SOURCE_OPTIONS):
        command = option(command)
    return command


REPORT_HELP = """Show one stored report by its result id (the id the check page shows).

\b
Examples:
  rtccheck report 7KQ2-M9XD --state-dir /var/lib/turn-relay
  RTCCHECK_API_KEY=... rtccheck report 7KQ2M9XD --api https://turn.example.com:8443/api --json
  rtccheck report 7KQ2M9XD --api https://10.0.0.5:8443 --ca-file private-ca.pem --api-key-file k
"""

REPORTS_HELP = """List the newest stored reports.

\b
Examples:
  rtccheck reports --state-dir /var/lib/turn-relay --limit 20
  rtccheck reports --api https://turn.example.com:8443/api --api-key-file admin.key --json
"""


@click.command("report", help=REPORT_HELP, short_help="Show a stored report by its id.")
@click.argument("result_id", metavar="ID")
@source_options
def report_command(result_id: str, **params: Any) -> None:
    document = _fetch(
        params,
        lambda state_dir, now: read_from_state_dir(state_dir, result_id, now),
        lambda api, key, timeout, tls: read_from_api(api, result_id, key, timeout, tls),
    )
    if params["json_output"]:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        render_stored_report(document, make_console())


@click.command("reports", help=REPORTS_HELP, short_help="List stored reports.")
@click.option(
    "--limit", type=click.IntRange(min=1, max=1000), default=20, show_default=True, metavar="N"
)
@source_options
def reports_command(limit: int, **params: Any) -> None:
    document = _fetch(
        params,
        lambda state_dir, now: list_from_state_dir(state_dir, limit, now),
        lambda api, key, timeout, tls: list_from_api(api, limit, key, timeout, tls),
    )
    if params["json_output"]:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        render_report_list(document.get("reports", []), make_console())


def _fetch(
    params: dict[str, Any],
    from_state: Callable[[Path, float], Any],
    from_api: Callable[[str, str | None, float, ssl.SSLContext | None], Any],
) -> Any:
    state_dir, api = params["state_dir"], params["api"]
    if (state_dir is None) == (api is None):
        raise click.UsageError("give either --state-dir DIR or --api URL")
    if params["ca_file"] is not None and not (api or "").startswith("https://"):
        raise click.UsageError("--ca-file is for an https:// --api URL")
    now = getattr(click.get_current_context().obj, "now", time.time)()
    try:
        if state_dir is not None:
            return from_state(state_dir, now)
        key = _api_key(params["api_key_file"])
        tls = _tls_context(params["ca_file"])
        return asyncio.run(from_api(api, key, params["timeout"], tls))
    except ResultIdError as error:
        raise click.UsageError(str(error)) from None
    except ReportSourceError as error:
        raise SourceError(str(error)) from None
    except ReportNotFoundError as error:
        raise NotFoundError(str(error)) from None


def _tls_context(path: Path | None) -> ssl.SSLContext | None:
    if path is None:
        return None
    try:
        return client_context(check_ca_file(path))
    except ValueError as error:
        raise SourceError(str(error)) from None


def _api_key(path: Path | None) -> str | None:
    if path is None:
        return os.environ.get(API_KEY_ENV) or None
    try:
        return read_secret_file(path)
    except ValueError as error:
        raise SourceError(str(error).replace("--secret-file", "--api-key-file")) from None
