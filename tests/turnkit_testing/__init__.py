"""Helpers every test tier shares: free loopback ports, loopback capabilities, throwaway TLS.

Importable from any test as ``turnkit_testing`` (pytest's ``pythonpath`` includes ``tests``).
"""

from .net import (
    free_port,
    free_port_pair,
    ipv6_loopback_available,
    port_is_free,
    second_loopback_available,
)
from .tls import self_signed_certificate

__all__ = [
    "free_port",
    "free_port_pair",
    "ipv6_loopback_available",
    "port_is_free",
    "second_loopback_available",
    "self_signed_certificate",
]
