"""The relay's configuration: the frozen model, its TOML reader, secrets, URLs, flags over a
file, and the wiring of a config into a core. The names below are the public API.
"""

from .example import example_config
from .model import (
    DEFAULT_LISTEN_ADDRESSES,
    DEFAULT_PORT_RANGE,
    DEFAULT_REALM,
    OFFLOAD_MODES,
    AllocationConfig,
    ApiConfig,
    AuthConfig,
    ChallengeBudgetConfig,
    CheckConfig,
    ConfigError,
    FleetConfig,
    ListenConfig,
    Listener,
    MetricsConfig,
    OffloadConfig,
    PeerPolicyConfig,
    QuotaConfig,
    RelayConfig,
    RendezvousConfig,
    Secrets,
    ServerConfig,
    TurnConfig,
)
from .reader import default_relay_addresses, load, loads, parse
from .secrets import load_rest_secrets, load_secrets
from .urls import ice_urls

__all__ = [
    "DEFAULT_LISTEN_ADDRESSES",
    "DEFAULT_PORT_RANGE",
    "DEFAULT_REALM",
    "OFFLOAD_MODES",
    "AllocationConfig",
    "ApiConfig",
    "AuthConfig",
    "ChallengeBudgetConfig",
    "CheckConfig",
    "ConfigError",
    "FleetConfig",
    "ListenConfig",
    "Listener",
    "MetricsConfig",
    "OffloadConfig",
    "PeerPolicyConfig",
    "QuotaConfig",
    "RelayConfig",
    "RendezvousConfig",
    "Secrets",
    "ServerConfig",
    "TurnConfig",
    "default_relay_addresses",
    "example_config",
    "ice_urls",
    "load",
    "load_rest_secrets",
    "load_secrets",
    "loads",
    "parse",
]
