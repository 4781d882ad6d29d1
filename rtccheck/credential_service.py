"""Fetch RTCIceServer JSON from a turn-relay style credential service.

``GET <url>`` (with ``Authorization: Bearer <key>`` when a key is given) answers one object
``{"urls": [...], "username", "credential", "ttl"}``, a list of them, or ``{"iceServers": [...]}``.
The response's ``Date`` header tells the server's clock, which the credentials check uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp


@dataclass(frozen=True)
class ServerClock:
    """The server's clock relative to ours: positive ``offset_s`` means the server is ahead."""

    offset_s: float
    source: str


@dataclass(frozen=True)
class FetchedIceServers:
    entries: list[object]
    clock: ServerClock | None
    rtt_s: float


class CredentialServiceError(Exception):
    """The credential service did not give usable credentials; carries cause and fix."""

    def __init__(self, summary: str, cause: str, fix: str) -> None:
        super().__init__(summary)
        self.summary = summary
        self.cause = cause
        self.fix = fix


async def fetch_ice_servers(
    url: str, api_key: str | None, timeout: float, clock: Callable[[], float]
) -> FetchedIceServers:
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    sent = clock()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url, headers=headers) as response,
        ):
            body = await response.text()
            status, date = response.status, response.headers.get("Date")
    except TimeoutError:
        raise _timeout_error(url, timeout) from None
    except aiohttp.ClientSSLError as error:
        raise _tls_error(url, error) from None
    except aiohttp.ClientConnectorError as error:
        raise _connect_error(url, error) from None
    except aiohttp.ClientError as error:
        raise CredentialServiceError(
            f"request failed ({error})",
            "The HTTP request to the credential service failed.",
            "Check the URL and that the service is running.",
        ) from None
    received = clock()
    _raise_for_status(status, body)
    entries = _entries_of(body)
    clock_then = _server_clock(date, (sent + received) / 2, url)
    return FetchedIceServers(entries, clock_then, received - sent)


def _timeout_error(url: str, timeout: float) -> CredentialServiceError:
    return CredentialServiceError(
        f"no answer within {timeout:g} s",
        f"The credential service at {url} did not answer in time.",
        "Check that it is running and reachable from here, or raise --timeout.",
    )


def _tls_error(url: str, error: aiohttp.ClientSSLError) -> CredentialServiceError:
    return CredentialServiceError(
        f"TLS handshake failed ({error})",
        "The credential service's certificate was not accepted.",
        "Serve a certificate valid for this host name, signed by a CA this machine trusts.",
    )


def _connect_error(url: str, error: aiohttp.ClientConnectorError) -> CredentialServiceError:
    return CredentialServiceError(
        f"cannot connect ({error.os_error.strerror or error})",
        f"Nothing accepted the connection at {url} (refused, unreachable or name not found).",
        "Check the host and port in --credentials-url and that the service is running.",
    )


def _raise_for_status(status: int, body: str) -> None:
    if 200 <= status < 300:
        return
    excerpt = body.strip().replace("\n", " ")[:200]
    if status in (401, 403):
        raise CredentialServiceError(
            f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}",
            "The credential service refused the request: the API key is missing or wrong.",
            "Pass the service's API key with --api-key (or RTCCHECK_API_KEY).",
        )
    if status == 404:
        raise CredentialServiceError(
            "HTTP 404",
            "There is no credential endpoint at this path.",
            "Check the path in --credentials-url (the turn-relay service answers on its "
            "credentials endpoint).",
        )
    raise CredentialServiceError(
        f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}",
        f"The credential service answered with an error (HTTP {status}).",
        "Look at the credential service's log for this request.",
    )


def _entries_of(body: str) -> list[object]:
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        raise CredentialServiceError(
            "the answer is not JSON",
            "The credential service answered, but not with RTCIceServer JSON.",
            "Point --credentials-url at the endpoint that returns "
            '{"urls", "username", "credential", "ttl"}.',
        ) from None
    if isinstance(document, dict) and isinstance(document.get("iceServers"), list):
        return list(document["iceServers"])
    if isinstance(document, dict) and "urls" in document:
        return [document]
    if isinstance(document, list):
        return list(document)
    raise CredentialServiceError(
        "the JSON has no 'urls'",
        "The answer is JSON but not an RTCIceServer object or a list of them.",
        'Return {"urls": [...], "username", "credential", "ttl"} or a list of such.',
    )


def _server_clock(date: str | None, local_midpoint: float, url: str) -> ServerClock | None:
    if not date:
        return None
    try:
        server_time = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None
    return ServerClock(server_time - local_midpoint, f"Date header from {url}")
