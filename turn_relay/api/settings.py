"""What the HTTP API needs from the relay's configuration, and the views the shell hands it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from turn_relay.auth.credentials import DEFAULT_SEPARATOR
from turn_relay.config import Secrets, TurnConfig, ice_urls

MetricsProvider = Callable[[], str]
SecretsProvider = Callable[[], Secrets]


@dataclass(frozen=True, slots=True)
class ApiSettings:
    urls: tuple[str, ...]
    default_ttl: int = 3600
    max_ttl: int = 86400
    separator: str = DEFAULT_SEPARATOR
    metrics_enabled: bool = True
    metrics_require_key: bool = False

    @classmethod
    def from_config(cls, config: TurnConfig) -> ApiSettings:
        return cls(
            urls=ice_urls(config),
            default_ttl=config.api.default_ttl,
            max_ttl=config.api.max_ttl,
            separator=config.auth.separator,
            metrics_enabled=config.metrics.enabled,
            metrics_require_key=config.metrics.require_api_key,
        )
