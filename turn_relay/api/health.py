"""``GET /healthz`` (no key) and ``GET /metrics`` (Prometheus text; a key only if configured).

``/healthz`` answers 200 ``{"status": "ok"}``, or 503 ``{"status": "draining"}`` while the
relay drains for a deploy, so a load balancer stops sending new clients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

from .access import ApiCounters, error_response, key_matches, presented_key
from .settings import ApiSettings, MetricsProvider, SecretsProvider

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ApiCollector:
    """The API's own counters, for prometheus-client's exposition."""

    def __init__(self, counters: ApiCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        issued = CounterMetricFamily(
            "turnkit_api_credentials_issued", "Credentials issued by the API."
        )
        issued.add_metric([], self.counters.credentials_issued)
        refused = CounterMetricFamily(
            "turnkit_api_unauthorized", "API requests refused for their key."
        )
        refused.add_metric([], self.counters.unauthorized)
        yield issued
        yield refused


class HealthRoutes:
    """Health for load balancers, and the relay's metrics plus the API's own counters."""

    def __init__(
        self,
        settings: ApiSettings,
        secrets: SecretsProvider,
        counters: ApiCounters,
        metrics: MetricsProvider | None,
        draining: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self._secrets = secrets
        self._counters = counters
        self._metrics = metrics
        self._draining = draining
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(ApiCollector(counters))

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        if self.settings.metrics_enabled:
            app.router.add_get("/metrics", self.metrics)

    async def healthz(self, request: web.Request) -> web.Response:
        del request
        if self._draining is not None and self._draining():
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "ok"})

    async def metrics(self, request: web.Request) -> web.Response:
        if self.settings.metrics_require_key and not key_matches(
            presented_key(request), self._secrets().api_key
        ):
            self._counters.unauthorized += 1
            return error_response(401, "missing or wrong API key")
        text = self._metrics() if self._metrics is not None else ""
        if text and not text.endswith("\n"):
            text += "\n"
        text += generate_latest(self._registry).decode("utf-8")
        return web.Response(
            body=text.encode("utf-8"), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE}
        )
