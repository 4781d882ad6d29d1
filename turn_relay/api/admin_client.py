"""The admin API's client, for ``turn-relay sessions | kick | revoke | unrevoke | drain |
status``: one request, the decoded JSON answer, or `AdminRequestError` saying what went wrong;
and what those commands parse (``--until``) and print (the sessions table)."""

from __future__ import annotations

import asyncio
import datetime
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from turn_relay.config import TurnConfig

DEFAULT_API = "http://127.0.0.1:8080"
KEY_ENV = "TURNKIT_ADMIN_KEY"

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_TIMEOUT = aiohttp.ClientTimeout(total=15)


class AdminRequestError(Exception):
    """The relay refused (its ``{"error": ...}`` message) or could not be reached."""


async def _call(base: str, key: str, method: str, path: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    url = base.rstrip("/") + path
    async with (
        aiohttp.ClientSession(timeout=_TIMEOUT) as session,
        session.request(method, url, headers=headers, json=body) as reply,
    ):
        try:
            found = await reply.json(content_type=None)
        except ValueError:
            found = None
        if reply.status >= 400:
            message = found.get("error") if isinstance(found, dict) else None
            raise AdminRequestError(f"{reply.status} from {url}: {message or reply.reason}")
        return found


def call(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    """``method path`` on the admin API at ``base`` (e.g. ``http://127.0.0.1:8080``)."""
    try:
        return asyncio.run(_call(base, key, method, path, body))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise AdminRequestError(f"cannot reach the admin API at {base}: {exc}") from None


@dataclass(frozen=True)
class AdminTarget:
    """Where the admin API is and the key it takes."""

    api: str
    key: str

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return call(self.api, self.key, method, path, body)


def _read_key(path: Path) -> str:
    try:
        lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise AdminRequestError(f"{path}: {exc.strerror or exc}") from None
    return next((x for x in lines if x and not x.startswith("#")), "")


def resolve_target(
    api: str | None, key_file: Path | None, key_env: str | None, config: TurnConfig | None
) -> AdminTarget:
    """``api`` and the key from the flags, else from ``config`` (its ``[api]``), else the
    defaults (`DEFAULT_API`, the `KEY_ENV` environment variable)."""
    if api is None and config is not None:
        host = config.api.listen
        api = f"http://{f'[{host}]' if ':' in host else host}:{config.api.port}"
    if key_file is None and key_env is None and config is not None:
        key_file, key_env = config.api.admin_key_file, config.api.admin_key_env
    if key_file is not None:
        key = _read_key(key_file)
    else:
        key = os.environ.get(key_env or KEY_ENV, "").strip()
    if not key:
        raise AdminRequestError(
            f"no admin key: give --admin-key-file, --admin-key-env or set {KEY_ENV}"
        )
    return AdminTarget(api or DEFAULT_API, key)


def parse_until(text: str, now: float) -> float:
    """Unix seconds (``1714564800``), ISO 8601 (``2024-05-01T12:00``, UTC unless it says
    otherwise) or a duration from now (``90s``, ``30m``, ``12h``, ``7d``, ``1h30m``)."""
    if text.isdigit():
        return float(text)
    if _DURATION.fullmatch(text) or re.fullmatch(r"(\d+[smhd])+", text):
        return now + sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r}: Unix seconds, ISO 8601 or a duration like 12h") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def describe_until(until: float | None) -> str:
    if until is None or math.isinf(until):
        return "until unrevoked"
    stamp = datetime.datetime.fromtimestamp(until, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"until {stamp}"


def session_lines(sessions: list[dict[str, Any]]) -> list[str]:
    header = (
        f"{'SESSION':<22} {'USER':<16} {'CLIENT':<22} {'TR':<3} {'AGE':>7} "
        f"{'TO PEER':>11} {'TO CLIENT':>11} PEERS"
    )
    lines = [header]
    for s in sessions:
        peers = ",".join(s["permissions"]) or "-"
        lines.append(
            f"{s['id']:<22} {s['user'][:16]:<16} {s['client']:<22} {s['transport']:<3} "
            f"{s['age']:>6.0f}s {s['bytes_to_peer']:>10}B {s['bytes_to_client']:>10}B {peers}"
        )
    return lines
