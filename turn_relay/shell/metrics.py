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


def snapshot(
    core: CoreStats, fast: DataPathStats, *, allocations: int, relays: int, connections: int
) -> dict[str, float]:
    """Flat ``name -> value`` map; labelled counters become ``name{label="value"}`` keys."""
    flat: dict[str, float] = {
        "turnkit_relay_allocations_active": allocations,
        "turnkit_relay_sockets_open": relays,
        "turnkit_relay_stream_connections_open": connections,
        "turnkit_relay_allocations_created_total": core.allocations_created,
        "turnkit_relay_auth_challenges_total": core.auth_challenges,
        "turnkit_relay_rate_limited_total": core.rate_limited,
        'turnkit_relay_relayed_packets_total{direction="to_peer"}': core.packets_to_peer
        + fast.packets_to_peer,
        'turnkit_relay_relayed_packets_total{direction="to_client"}': core.packets_to_client
        + fast.packets_to_client,
        'turnkit_relay_relayed_bytes_total{direction="to_peer"}': core.bytes_to_peer
        + fast.bytes_to_peer,
        'turnkit_relay_relayed_bytes_total{direction="to_client"}': core.bytes_to_client
        + fast.bytes_to_client,
    }
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
        "401 challenges sent: answers to requests without credentials, the first step of"
        " every client's login (realm and nonce); healthy traffic, not a failure. Challenges"
        " the budget dropped count in turnkit_relay_rate_limited_total only."
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
        "401/438 answers not sent because the challenge budget (auth.challenge_budget: the"
        " UDP source's bucket or the relay-wide cap) was spent."
    ),
    "turnkit_relay_relayed_packets_total": "Packets relayed, by direction.",
    "turnkit_relay_relayed_bytes_total": "Payload bytes relayed, by direction.",
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
