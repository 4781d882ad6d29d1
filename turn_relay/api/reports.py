"""``GET /reports/<id>`` and ``GET /reports?limit=N``: stored reports, for `rtccheck report/reports
--api` (API key as ``Authorization: Bearer <key>`` or ``X-API-Key``).

``/reports/<id>`` answers ``{"id", "stored_at", "source", "status", "verdict", "size",
"report": {...}}`` (404 unknown or expired, 400 not a result id); ``/reports`` answers
``{"reports": [summary, ...]}``, newest first (``limit`` 1-1000, default 20). In a fleet both
also find what the other relays stored (`shared_reports.Reports`).
"""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from turn_relay.reports.result_id import ResultIdError

from .access import ApiCounters, error_response, key_matches, presented_key
from .settings import SecretsProvider
from .shared_reports import Reports

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


class ReportRoutes:
    def __init__(
        self,
        reports: Reports,
        secrets: SecretsProvider,
        counters: ApiCounters,
    ) -> None:
        self._reports = reports
        self._secrets = secrets
        self._counters = counters

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/reports", self.listing)
        app.router.add_get("/reports/{id}", self.one)

    def _refused(self, request: web.Request) -> web.Response | None:
        if key_matches(presented_key(request), self._secrets().api_key):
            return None
        self._counters.unauthorized += 1
        return error_response(401, "missing or wrong API key")

    async def one(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            found = await self._reports.get(request.match_info["id"])
        except ResultIdError as error:
            return error_response(400, str(error))
        if found is None:
            return error_response(404, "no such report (unknown or expired)")
        body = {**asdict(found.summary), "report": found.document}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def listing(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        text = request.query.get("limit", str(DEFAULT_LIMIT))
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LIMIT):
            return error_response(400, f"limit: a whole number from 1 to {MAX_LIMIT}")
        summaries = await self._reports.newest(int(text))
        body = {"reports": [asdict(summary) for summary in summaries]}
        return web.json_response(body, headers={"Cache-Control": "no-store"})
