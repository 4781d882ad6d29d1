"""`rtccheck peer CODE`: take part in a two-party call test through the relay's rendezvous."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import click

from rtccheck.option_values import check_ca_file
from rtccheck.peer.party import PeerOptions, PeerOutcome, api_connector, run_peer
from rtccheck.peer.signaling import PeerTestError, token_for_code
from rtccheck.results import ExitCode
from rtccheck.tlsinfo.trust import client_context
from turn_relay.api.rooms import parse_code

REQUIREMENTS = ("direct", "relay-udp", "relay-tcp", "relay-tls")

PEER_HELP = """Test whether a call works between this network and another one.

Joins the rendezvous room of CODE (from `rtccheck pair`, or a link it printed) on the relay;
the other side joins with the other link in a browser or with `rtccheck peer` too. The first
to join leads and both run the legs together: every candidate type allowed (is a direct path
found, and which pair), relay-only over each transport the relay offers (UDP, TCP, TLS), each
with connect time, RTT p50/p95, loss and throughput; an ICE restart leg runs only between two
browsers (aiortc cannot restart ICE). Both sides get the same verdict: "direct works", "needs
TURN (UDP is fine)", "needs TURN over TLS on 443", "needs TURN over TCP" or "nothing works"
with the cause; the relay stores it as a report (source "peer").

Exit status: 0 the verdict passed and every --require was met; 1 the test failed (nothing
works, a --require not met, the other party left); 2 bad usage, or the room refused us
(unknown, expired, forged, full).

\b
Examples:
  rtccheck peer 7KQ2-M9XD --relay https://turn.example.com:8443
  rtccheck peer 'https://turn.example.com:8443/peer/#eyJpZC...' --json --require relay-tls
"""


class PeerUsageError(click.ClickException):
    exit_code = int(ExitCode.USAGE)


def resolve_room(given: str, relay: str | None) -> tuple[str, str | None, str | None]:
    """(relay URL, token, code) from a link, a token or a code."""
    if given.startswith(("http://", "https://")):
        parts = urlsplit(given)
        if not parts.fragment:
            raise PeerUsageError(f"{given!r}: a link from `rtccheck pair` ends in #<token>")
        return relay or f"{parts.scheme}://{parts.netloc}", parts.fragment, None
    if relay is None:
        raise PeerUsageError("give the relay's HTTP API with --relay URL")
    if "." in given:
        return relay, given, None
    code = parse_code(given)
    if code is None:
        raise PeerUsageError(f"{given!r} is neither a room code (8 characters) nor a token")
    return relay, None, code


async def join_and_run(
    relay: str, token: str | None, code: str | None, options: PeerOptions
) -> PeerOutcome:
    if token is None:
        assert code is not None
        async with aiohttp.ClientSession(
            connector=api_connector(options.tls), timeout=aiohttp.ClientTimeout(total=10)
        ) as session:
            token = await token_for_code(session, relay, code)
    return await run_peer(token, options)


def requirement_problems(verdict: dict[str, Any], required: tuple[str, ...]) -> list[str]:
    met = verdict.get("met") or {}
    return [f"--require {name}: not met" for name in required if not met.get(name)]


def _print_human(outcome: PeerOutcome, verdict: dict[str, Any]) -> None:
    click.echo(f"room {outcome.room}, this side: {outcome.role}")
    report = verdict.get("report") or {}
    for result in report.get("results", []):
        click.echo(f"  [{result['status']:>4}] {result['summary']}")
    click.echo(f"verdict: {verdict.get('verdict')}")
    if verdict.get("result_id"):
        click.echo(f"stored as report {verdict['result_id']} (rtccheck report ID)")
    elif verdict.get("store_error"):
        click.echo(f"not stored: {verdict['store_error']}")


@click.command("peer", help=PEER_HELP, short_help="Test a call between two networks.")
@click.argument("room")
@click.option("--relay", metavar="URL", help="The relay's HTTP API (not needed with a link).")
@click.option("--json", "json_output", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--require",
    "required",
    multiple=True,
    type=click.Choice(REQUIREMENTS),
    help="Fail (exit 1) unless this leg connects; repeatable.",
)
@click.option(
    "--ca-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trust this CA (PEM) for the relay's https:// API and TURN over TLS (turns:).",
)
@click.option(
    "--leg-timeout",
    type=click.FloatRange(min=1),
    default=12.0,
    show_default=True,
    metavar="SECONDS",
    help="How long one leg may take to connect.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the other party.",
)
@click.option("--pings", type=click.IntRange(1, 1000), default=50, show_default=True)
def peer_command(room: str, **params: Any) -> None:
    relay_url, token, code = resolve_room(room, params["relay"])
    ca_file: Path | None = params["ca_file"]
    json_output: bool = params["json_output"]
    required: tuple[str, ...] = params["required"]
    try:
        tls = client_context(check_ca_file(ca_file)) if ca_file is not None else None
    except ValueError as error:
        raise PeerUsageError(str(error)) from None
    options = PeerOptions(
        relay_url,
        leg_timeout=params["leg_timeout"],
        wait_for_peer=params["wait"],
        pings=params["pings"],
        tls=tls,
    )
    try:
        outcome = asyncio.run(join_and_run(relay_url, token, code, options))
    except PeerTestError as error:
        raise PeerUsageError(str(error)) from None
    if outcome.error is not None or outcome.verdict is None:
        click.echo(f"rtccheck peer: {outcome.error or 'no verdict'}", err=True)
        sys.exit(int(ExitCode.FAILED))
    verdict = outcome.verdict
    if json_output:
        click.echo(json.dumps(verdict.get("report"), indent=2))
        if verdict.get("result_id"):
            click.echo(f"stored as report {verdict['result_id']}", err=True)
    else:
        _print_human(outcome, verdict)
    problems = requirement_problems(verdict, required)
    for problem in problems:
        click.echo(problem, err=True)
    passed = verdict.get("status") == "pass" and not problems
    sys.exit(int(ExitCode.OK if passed else ExitCode.FAILED))
