"""`rtccheck pair`: a rendezvous room for a two-party call test, its two links and its code."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import click

from rtccheck.option_values import read_secret_file
from rtccheck.results import ExitCode
from turn_relay.api.rooms import Seat, format_code, mint_room_token, new_room_code

PAIRING_SECRET_ENV = "RTCCHECK_PAIRING_SECRET"
DEFAULT_TTL_S = 900

PAIR_HELP = f"""Open a room on the relay's rendezvous for a call test between two networks.

Prints a link for each person (the browser test page on the relay) and a short code that
either side can use from a terminal instead: `rtccheck peer CODE --relay URL`. The room holds
two parties and ends when one leaves or after --ttl seconds. The room tokens are signed with
the relay's pairing secret (rendezvous.pairing_secrets_file), read from --secret-file or
{PAIRING_SECRET_ENV}; it is not the API key.

Exit status: 0 the room is open; 1 the relay refused it; 2 bad usage or configuration.

\b
Examples:
  rtccheck pair --relay https://turn.example.com:8443 --secret-file /etc/turnkit/pairing
  {PAIRING_SECRET_ENV}=... rtccheck pair --relay http://203.0.113.1:8080 --json
"""


class PairUsageError(click.ClickException):
    exit_code = int(ExitCode.USAGE)


class PairRefusedError(click.ClickException):
    exit_code = int(ExitCode.FAILED)


def pairing_secret(secret_file: Path | None) -> str:
    if secret_file is not None:
        try:
            return read_secret_file(secret_file)
        except ValueError as error:
            raise PairUsageError(str(error)) from None
    secret = os.environ.get(PAIRING_SECRET_ENV, "").strip()
    if not secret:
        raise PairUsageError(f"give --secret-file or set {PAIRING_SECRET_ENV}")
    return secret


def room_links(relay: str, secret: str, ttl: int, now: float) -> dict[str, Any]:
    room = new_room_code()
    expires_at = int(now) + ttl
    tokens = {str(seat): mint_room_token(secret, room, seat, expires_at, now) for seat in Seat}
    base = relay.rstrip("/")
    return {
        "room": room,
        "code": format_code(room),
        "expires_at": expires_at,
        "tokens": tokens,
        "links": {seat: f"{base}/peer/#{token}" for seat, token in tokens.items()},
        "command": f"rtccheck peer {format_code(room)} --relay {base}",
    }


async def register(relay: str, tokens: list[str], timeout: float) -> None:
    url = f"{relay.rstrip('/')}/rendezvous"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url, json={"tokens": tokens}) as response,
        ):
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise PairRefusedError(f"cannot register the room at {url}: {error}") from None
    if response.status != 200:
        problem = body.get("error") if isinstance(body, dict) else None
        raise PairRefusedError(f"the relay refused the room: {problem or response.status}")


@click.command("pair", help=PAIR_HELP, short_help="Open a room for a two-party call test.")
@click.option("--relay", required=True, metavar="URL", help="The relay's HTTP API base URL.")
@click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help=f"The pairing secret (instead of {PAIRING_SECRET_ENV}).",
)
@click.option(
    "--ttl",
    type=click.IntRange(60, 86400),
    default=DEFAULT_TTL_S,
    show_default=True,
    metavar="SECONDS",
    help="How long the room and its links stay valid.",
)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=5.0)
@click.option("--json", "json_output", is_flag=True, help="Print the room as JSON.")
def pair_command(
    relay: str, secret_file: Path | None, ttl: int, timeout: float, json_output: bool
) -> None:
    if not relay.startswith(("http://", "https://")):
        raise PairUsageError(f"--relay {relay!r}: give the HTTP API as http(s)://host:port")
    room = room_links(relay, pairing_secret(secret_file), ttl, time.time())
    asyncio.run(register(relay, list(room["tokens"].values()), timeout))
    if json_output:
        click.echo(json.dumps(room, indent=2))
        return
    until = datetime.fromtimestamp(room["expires_at"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    click.echo(f"Room {room['code']} (valid until {until}; two parties)")
    click.echo(f"  link for you:              {room['links']['a']}")
    click.echo(f"  link for the other person: {room['links']['b']}")
    click.echo(f"  or from a terminal:        {room['command']}")
