"""The relay's configuration: the frozen model, its TOML reader, secrets, URLs, flags over a
file, and the wiring of a config into a core. The names below are the public API.
"""

from .model import (
    DEFAULT_LISTEN_ADDRESSES,
    DEFAULT_PORT_RANGE,
    DEFAULT_REALM,
    AllocationConfig,
    ApiConfig,
    AuthConfig,
    CheckConfig,
    ConfigError,
    ListenConfig,
    Listener,
    MetricsConfig,
    PeerPolicyConfig,
    QuotaConfig,
    RateLimitConfig,
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
    "AllocationConfig",
    "ApiConfig",
    "AuthConfig",
    "CheckConfig",
    "ConfigError",
    "ListenConfig",
    "Listener",
    "MetricsConfig",
    "PeerPolicyConfig",
    "QuotaConfig",
    "RateLimitConfig",
    "RelayConfig",
    "RendezvousConfig",
    "Secrets",
    "ServerConfig",
    "TurnConfig",
    "default_relay_addresses",
    "ice_urls",
    "load",
    "load_rest_secrets",
    "load_secrets",
    "loads",
    "parse",
]
