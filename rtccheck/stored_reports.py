"""Reading reports the relay stored: from its HTTP API, or straight from its state directory.

API shape (the client side; the relay's routes follow it):

- ``GET {api}/reports/{id}`` -> ``{"id", "stored_at", "source", "status", "verdict", "size",
  "report": {...the report document...}}``; 404 when unknown or expired.
- ``GET {api}/reports?limit=N`` -> ``{"reports": [{"id", "stored_at", "source", "status",
  "verdict", "size"}, ...]}``, newest first.

Both send ``Authorization: Bearer <key>``. The key is read from the environment
(RTCCHECK_API_KEY) or a file, never from a command-line value.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from turn_relay.reports.result_id import parse_result_id
from turn_relay.reports.store import DATABASE_FILE, ReportStore, ReportSummary


class ReportSourceError(Exception):
    """The reports cannot be read from where the user pointed (exit status 2)."""


class ReportNotFoundError(Exception):
    """No such report (unknown, or expired): exit status 1."""


def summary_document(summary: ReportSummary) -> dict[str, Any]:
    return asdict(summary)


def read_from_state_dir(state_dir: Path, result_id: str, now: float) -> dict[str, Any]:
    with _open_store(state_dir) as store:
        stored = store.get(result_id, now)
    if stored is None:
        raise ReportNotFoundError(f"no report {parse_result_id(result_id)} in {state_dir}")
    return {**summary_document(stored.summary), "report": stored.document}


def list_from_state_dir(state_dir: Path, limit: int, now: float) -> dict[str, Any]:
    with _open_store(state_dir) as store:
        return {"reports": [summary_document(s) for s in store.list(limit, now)]}


def _open_store(state_dir: Path) -> ReportStore:
    if not (state_dir / DATABASE_FILE).is_file():
        raise ReportSourceError(f"--state-dir {state_dir}: no report store ({DATABASE_FILE})")
    return ReportStore(state_dir)


async def read_from_api(
    api: str, result_id: str, key: str | None, timeout: float, tls: ssl.SSLContext | None = None
) -> Any:
    """``tls``: the context that verifies an https:// API (None: the system trust store)."""
    ident = parse_result_id(result_id)
    return await _get(f"{api.rstrip('/')}/reports/{ident}", {}, key, timeout, ident, tls=tls)


async def list_from_api(
    api: str, limit: int, key: str | None, timeout: float, tls: ssl.SSLContext | None = None
) -> Any:
    query = {"limit": str(limit)}
    return await _get(f"{api.rstrip('/')}/reports", query, key, timeout, None, tls=tls)


async def _get(
    url: str,
    params: dict[str, str],
    key: str | None,
    timeout: float,
    ident: str | None,
    *,
    tls: ssl.SSLContext | None,
) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    connector = aiohttp.TCPConnector(ssl=tls if tls is not None else True)
    try:
        async with (
            asyncio.timeout(timeout),
            aiohttp.ClientSession(connector=connector) as session,
            session.get(url, params=params, headers=headers) as answer,
        ):
            if answer.status == 404 and ident is not None:
                raise ReportNotFoundError(f"no report {ident} at {url}")
            if answer.status in (401, 403):
                raise ReportSourceError(
                    f"{url}: {answer.status}: the API key (RTCCHECK_API_KEY or "
                    "--api-key-file) is missing or wrong"
                )
            if answer.status != 200:
                raise ReportSourceError(f"{url}: HTTP {answer.status} {answer.reason or ''}")
            return json.loads(await answer.text())
    except TimeoutError:
        raise ReportSourceError(f"{url}: no answer within {timeout:g} s") from None
    except aiohttp.ClientConnectorCertificateError as error:
        raise ReportSourceError(
            f"{url}: the API's certificate is not trusted ({error.certificate_error}); "
            "for a private CA pass it with --ca-file"
        ) from None
    except (aiohttp.ClientError, ValueError) as error:
        raise ReportSourceError(f"{url}: {error}") from None
