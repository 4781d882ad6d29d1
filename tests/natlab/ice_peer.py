"""One end of a call between two lab namespaces: an aioice agent that signals through its stdin
and stdout (JSON lines), so the test that runs both ends is the signalling channel.

    python ice_peer.py --role caller|callee [--stun HOST:PORT] [--turn URI --secret S]
                       [--relay-only] [--ca-file PEM] [--timeout S] [--packets N]

1. gathers, prints ``{"event": "description", "ufrag", "pwd", "candidates": [SDP...]}``;
2. reads the other end's description (one JSON line on stdin);
3. runs ICE (the caller controls), prints ``{"event": "connected", "selected_pair": ...}`` or
   ``{"event": "failed", ...}`` and stops there when it failed;
4. the caller sends pings and a burst (rtccheck's data exchange) and prints
   ``{"event": "measured", ...}``; the callee echoes until its stdin closes, then prints
   ``{"event": "done"}``.

Every wait is bounded by ``--timeout``; the process never outlives the test that started it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from aioice import Candidate

from rtccheck.ice.agent import (
    AgentSettings,
    IceAgent,
    candidate_view,
    close_agents,
    host_addresses,
    selected_pair,
)
from rtccheck.ice.exchange import echo, probe
from rtccheck.tlsinfo.trust import client_context
from rtccheck.uri import IceServer, parse_uri
from turn_relay.auth.credentials import issue

#: how long the callee echoes at most, waiting for its stdin to close
ECHO_LIMIT_S = 30.0


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("caller", "callee"), required=True)
    parser.add_argument("--stun", help="HOST:PORT of a STUN server (srflx candidates)")
    parser.add_argument("--turn", help="turn:/turns: URI (relay candidates)")
    parser.add_argument("--secret", help="REST secret to mint TURN credentials")
    parser.add_argument("--relay-only", action="store_true")
    parser.add_argument("--ca-file", help="CA for turns:")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--packets", type=int, default=50)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> tuple[AgentSettings, list[IceServer]]:
    stun = None
    servers: list[IceServer] = []
    if args.stun:
        host, _, port = args.stun.rpartition(":")
        stun = (host, int(port))
        servers.append(parse_uri(f"stun:{args.stun}"))
    turn = None
    if args.turn:
        minted = issue(args.secret, "ice-peer", 600, time.time())
        turn = parse_uri(args.turn).with_credentials(minted.username, minted.password)
        servers.append(turn)
    ca_file = Path(args.ca_file) if args.ca_file else None
    tls = client_context(ca_file) if turn is not None and turn.secure else None
    return AgentSettings(stun, turn, tls, relay_only=args.relay_only), servers


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def read_description(reader: asyncio.StreamReader, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        line = await reader.readline()
    description: dict[str, Any] = json.loads(line)
    return description


async def apply_description(agent: IceAgent, description: dict[str, Any]) -> None:
    agent.remote_username = description["ufrag"]
    agent.remote_password = description["pwd"]
    for sdp in description["candidates"]:
        await agent.add_remote_candidate(Candidate.from_sdp(sdp))
    await agent.add_remote_candidate(None)


def pair_view(agent: IceAgent) -> dict[str, Any] | None:
    pair = selected_pair(agent)
    if pair is None:
        return None
    return {"local": candidate_view(pair[0]), "remote": candidate_view(pair[1])}


async def connect(agent: IceAgent, timeout: float) -> str | None:
    """None when connected, else why not."""
    try:
        async with asyncio.timeout(timeout):
            await agent.connect()
    except TimeoutError:
        return f"no candidate pair succeeded within {timeout:g} s"
    except ConnectionError as error:
        return str(error)
    return None


async def converse(agent: IceAgent, args: argparse.Namespace, reader: asyncio.StreamReader) -> None:
    if args.role == "caller":
        measured = await probe(agent, time.monotonic, args.packets)
        emit(
            "measured",
            sent=measured.pings_sent,
            received=measured.pings_received,
            loss_pct=measured.loss_pct,
            rtt_p50_ms=measured.rtt_ms(0.5),
            throughput_mbps=measured.throughput_mbps,
            error=measured.error,
        )
        return
    echoing = asyncio.create_task(echo(agent))
    try:
        async with asyncio.timeout(ECHO_LIMIT_S):
            await reader.read()  # until the test closes our stdin
    except TimeoutError:
        pass
    echoing.cancel()
    await asyncio.gather(echoing, return_exceptions=True)
    emit("done")


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    settings, servers = settings_from(args)
    hosts = host_addresses(servers)
    agent = IceAgent(
        settings,
        controlling=args.role == "caller",
        hosts=hosts,
        gather_timeout=args.timeout,
    )
    reader = await stdin_reader()
    try:
        await agent.gather_candidates()
        candidates = [c.to_sdp() for c in agent.local_candidates]
        emit(
            "description",
            ufrag=agent.local_username,
            pwd=agent.local_password,
            candidates=candidates,
        )
        await apply_description(agent, await read_description(reader, args.timeout * 3))
        failure = await connect(agent, args.timeout)
        if failure is not None:
            emit("failed", reason=failure, candidates=candidates)
            return 1
        emit("connected", selected_pair=pair_view(agent))
        await converse(agent, args, reader)
        return 0
    finally:
        await close_agents([agent], args.timeout)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
