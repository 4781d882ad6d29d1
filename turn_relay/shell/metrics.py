"""Counters the relay keeps for /metrics: plain integers, bumped inline, read as a snapshot."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from turn_relay.core.stats import CoreStats


@dataclass(slots=True)
class DataPathStats:
    """What a shell forwarded itself (ChannelData both ways) and what it refused to read."""

    packets_to_peer: int = 0
    bytes_to_peer: int = 0
    packets_to_client: int = 0
    bytes_to_client: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    # forwarded by the kernel (`turn_relay.shell.offload`), read from its counters
    kernel_packets_to_peer: int = 0
    kernel_bytes_to_peer: int = 0
    kernel_packets_to_client: int = 0
    kernel_bytes_to_client: int = 0
    kernel_suspensions: int = 0  # allocations whose kernel routes went down over their cap


OFFLOAD_STATES = ("active", "off", "unavailable")


def offload_state(state: str, routes: int = 0) -> dict[str, float]:
    """The kernel offload's state as a gauge per state (1 for the current one), and its routes."""
    flat: dict[str, float] = {
        f'turnkit_relay_kernel_offload{{state="{name}"}}': float(name == state)
        for name in OFFLOAD_STATES
    }
    flat["turnkit_relay_kernel_routes"] = routes
    return flat


def snapshot(
    core: CoreStats,
    fast: DataPathStats,
    *,
    allocations: int,
    relays: int,
    connections: int,
    offload: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Flat ``name -> value`` map; labelled counters become ``name{label="value"}`` keys.

    Relayed packets and bytes include what the kernel forwarded, which is also counted alone;
    ``offload`` is `offload_state`'s gauges."""
    flat: dict[str, float] = {
        "turnkit_relay_allocations_active": allocations,
        "turnkit_relay_sockets_open": relays,
        "turnkit_relay_stream_connections_open": connections,
        "turnkit_relay_allocations_created_total": core.allocations_created,
        "turnkit_relay_auth_challenges_total": core.auth_challenges,
        "turnkit_relay_rate_limited_total": core.rate_limited,
        'turnkit_relay_relayed_packets_total{direction="to_peer"}': core.packets_to_peer
        + fast.packets_to_peer
        + fast.kernel_packets_to_peer,
        'turnkit_relay_relayed_packets_total{direction="to_client"}': core.packets_to_client
        + fast.packets_to_client
        + fast.kernel_packets_to_client,
        'turnkit_relay_relayed_bytes_total{direction="to_peer"}': core.bytes_to_peer
        + fast.bytes_to_peer
        + fast.kernel_bytes_to_peer,
        'turnkit_relay_relayed_bytes_total{direction="to_client"}': core.bytes_to_client
        + fast.bytes_to_client
        + fast.kernel_bytes_to_client,
    }
    if offload is not None:
        flat.update(offload)
        flat.update(
            {
                'turnkit_relay_kernel_packets_total{direction="to_peer"}': (
                    fast.kernel_packets_to_peer
                ),
                'turnkit_relay_kernel_packets_total{direction="to_client"}': (
                    fast.kernel_packets_to_client
                ),
                'turnkit_relay_kernel_bytes_total{direction="to_peer"}': fast.kernel_bytes_to_peer,
                'turnkit_relay_kernel_bytes_total{direction="to_client"}': (
                    fast.kernel_bytes_to_client
                ),
                "turnkit_relay_kernel_suspensions_total": fast.kernel_suspensions,
            }
        )
    labelled = (
        ("turnkit_relay_allocations_removed_total", "reason", core.allocations_removed),
        ("turnkit_relay_error_responses_total", "code", core.error_responses),
        ("turnkit_relay_auth_failures_total", "reason", core.auth_failures),
        ("turnkit_relay_stale_nonces_total", "reason", core.stale_nonces),
        ("turnkit_relay_requests_total", "method", core.requests),
        ("turnkit_relay_dropped_total", "reason", core.dropped + fast.dropped),
    )
    for name, label, counter in labelled:
        for key, value in sorted(counter.items(), key=lambda kv: str(kv[0])):
            flat[f'{name}{{{label}="{key}"}}'] = value
    return flat


HELP: Mapping[str, str] = {
    "turnkit_relay_allocations_active": "Allocations alive now.",
    "turnkit_relay_sockets_open": "Relay sockets open now (allocations plus reserved ports).",
    "turnkit_relay_stream_connections_open": "TCP/TLS client connections open now.",
    "turnkit_relay_allocations_created_total": "Allocations created.",
    "turnkit_relay_auth_challenges_total": (
        "401 challenges: answers to requests without credentials, the first step of every"
        " client's login (realm and nonce); healthy traffic, not a failure."
    ),
    "turnkit_relay_auth_failures_total": (
        "Requests whose credentials were refused, by reason: bad-integrity (wrong password or"
        " secret), unknown-user, expired (REST credential), wrong-realm, malformed-username,"
        " missing-username-realm-or-nonce and password-algorithm-mismatch (400),"
        " wrong-credentials (441, another user's allocation). Alert on this one."
    ),
    "turnkit_relay_stale_nonces_total": (
        "438 Stale Nonce answers, by reason: stale-nonce (ours, too old; clients retry with the"
        " new one) or invalid-nonce (not ours, e.g. issued before a restart)."
    ),
    "turnkit_relay_rate_limited_total": (
        "401/438 answers not sent because the UDP source exceeded auth.unauthorized_limit."
    ),
    "turnkit_relay_relayed_packets_total": "Packets relayed, by direction.",
    "turnkit_relay_relayed_bytes_total": "Payload bytes relayed, by direction.",
    "turnkit_relay_kernel_offload": (
        "Kernel data path for UDP ChannelData: 1 for the current state (active, off, or"
        " unavailable: auto mode fell back to userspace; the log says why)."
    ),
    "turnkit_relay_kernel_routes": "Channel routes in the kernel now.",
    "turnkit_relay_kernel_packets_total": (
        "Packets the kernel forwarded, by direction (included in relayed_packets_total)."
    ),
    "turnkit_relay_kernel_bytes_total": (
        "Payload bytes the kernel forwarded, by direction (included in relayed_bytes_total)."
    ),
    "turnkit_relay_kernel_suspensions_total": (
        "Times an allocation's kernel routes went down because it exceeded its bandwidth cap."
    ),
    "turnkit_relay_allocations_removed_total": "Allocations removed, by reason.",
    "turnkit_relay_error_responses_total": (
        "Error responses sent, by code (includes the 401 challenges)."
    ),
    "turnkit_relay_requests_total": "Requests handled by the core, by method.",
    "turnkit_relay_dropped_total": "Packets dropped, by reason.",
}


def prometheus_text(flat: Mapping[str, float]) -> str:
    """Prometheus text exposition of a `snapshot`: ``*_total`` are counters, the rest gauges."""
    lines: list[str] = []
    seen: set[str] = set()
    for key, value in flat.items():
        name = key.split("{", 1)[0]
        if name not in seen:
            seen.add(name)
            if name in HELP:
                lines.append(f"# HELP {name} {HELP[name]}")
            lines.append(f"# TYPE {name} {'counter' if name.endswith('_total') else 'gauge'}")
        shown = int(value) if float(value).is_integer() else value
        lines.append(f"{key} {shown}")
    return "\n".join(lines) + "\n"
