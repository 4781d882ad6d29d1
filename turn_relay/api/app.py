"""The relay's HTTP service, one module per route group: credentials, health and metrics,
the admin API (when the shell hands over an `AdminView`) and (with a state directory and a
check-link secret) the check page and stored reports.

The shell builds the application with `create_app` and runs it with ``web.AppRunner`` on
``api.listen``, handing it the views it needs (current secrets, a metrics provider); the API
imports nothing of the shell.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from .access import ApiCounters
from .admin import AdminRoutes, AdminView
from .check import CheckRoutes
from .check_settings import CheckViews
from .credentials import CredentialRoutes
from .health import HealthRoutes
from .reports import ReportRoutes
from .settings import ApiSettings, MetricsProvider, SecretsProvider
from .shared_reports import REPORTS_KEY, Reports

MAX_REQUEST_BYTES = 64 * 1024  # no route takes a body; aiohttp's default is 1 MiB


def create_app(
    settings: ApiSettings,
    secrets: SecretsProvider,
    metrics: MetricsProvider | None = None,
    clock: Callable[[], float] = time.time,
    *,
    admin: AdminView | None = None,
    check: CheckViews | None = None,
) -> web.Application:
    """The aiohttp application with every route group added."""
    counters = ApiCounters()
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    CredentialRoutes(settings, secrets, counters, clock).add_to(app)
    draining = admin.draining if admin is not None else None
    HealthRoutes(settings, secrets, counters, metrics, draining).add_to(app)
    if admin is not None:
        AdminRoutes(admin, secrets, counters).add_to(app)
    if check is not None:
        reports = Reports(check.store, check.share, clock)
        app[REPORTS_KEY] = reports
        app.on_cleanup.append(lambda _: reports.settle())
        CheckRoutes(check.settings, secrets, reports, check.observed, clock).add_to(app)
        ReportRoutes(reports, secrets, counters).add_to(app)
    return app
