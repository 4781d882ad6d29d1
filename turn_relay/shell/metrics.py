"""Counters the relay keeps for /metrics: plain integers, bumped inline, read as a snapshot;
exposed through prometheus-client.

The data path bumps plain integers (`DataPathStats`, the core's `CoreStats`); /metrics turns a
`snapshot` of them into metric families with a prometheus-client custom collector and the
library's exposition. prometheus-client's multiprocess mode does not fit: it needs the
library's own counter objects bumped where the events happen, and one ``Counter.inc`` there
cost 4.3 us against 0.2 us for an attribute increment (measured on a 2-core box), a third of a
core at the packet rates of docs/benchmarks.md; it also keeps a memory-mapped file per process.
With ``--workers N`` the parent asks every worker for its snapshot over the control socket and
sums (`turn_relay.shell.workers`): snapshots are flat ``name{labels} -> value`` maps, histograms
as per-bucket (not cumulative) counts and a sum, so summing is addition.

No label carries a user name (coturn's ephemeral-username series leak); per-user figures are
the admin API's (``turn-relay sessions``).
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from turn_relay.core.stats import CoreStats, Histogram

TRANSPORTS = ("udp", "tcp", "tls")
_KEY = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


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
    by_transport: Mapping[str, int] | None = None,
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
    transports = by_transport or {}
    for transport in TRANSPORTS:
        flat[f'turnkit_relay_sessions{{transport="{transport}"}}'] = transports.get(transport, 0)
    _histogram(flat, "turnkit_relay_allocation_lifetime_seconds", "", core.allocation_lifetime)
    for direction, histogram in (
        ("to_peer", core.allocation_bytes_to_peer),
        ("to_client", core.allocation_bytes_to_client),
    ):
        labels = f'direction="{direction}",'
        _histogram(flat, "turnkit_relay_allocation_bytes", labels, histogram)
    return flat


def _histogram(flat: dict[str, float], name: str, labels: str, histogram: Histogram) -> None:
    """Per-bucket counts as ``name_bucket{...le="B"}`` and the sum as ``name_sum{...}``."""
    for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
        flat[f'{name}_bucket{{{labels}le="{_le(bound)}"}}'] = count
    flat[f"{name}_sum{{{labels.rstrip(',')}}}"] = histogram.total


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


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
        " wrong-credentials (441, another user's allocation), revoked (an operator revoked the"
        " user). Alert on this one."
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
    "turnkit_relay_kernel_offload": (
        "Kernel data path for UDP ChannelData: 1 for the current state (active, off, or"
        " unavailable: auto mode fell back to userspace; the log says why)."
    ),
    "turnkit_relay_kernel_routes": "Channel routes in the kernel now.",
    "turnkit_relay_fleet_connected": (
        "1 while this relay reaches the fleet's Redis; 0 while it serves on alone (quotas per"
        " relay, sessions and commands local)."
    ),
    "turnkit_relay_fleet_outages_total": "Times the fleet's Redis became unreachable.",
    "turnkit_relay_fleet_errors_total": "Redis calls of the fleet link that failed.",
    "turnkit_relay_fleet_siblings": "Other relays of the fleet seen in the last heartbeat.",
    "turnkit_relay_fleet_commands_total": "Fleet commands (kick, revoke, drain ...) received.",
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
    "turnkit_relay_sessions": "Allocations alive now, by the client's transport.",
    "turnkit_relay_allocation_lifetime_seconds": "How long ended allocations lived.",
    "turnkit_relay_allocation_bytes": "Payload bytes an ended allocation relayed, by direction.",
    "turnkit_relay_build_info": "The relay's version and Python (always 1).",
}


def prometheus_text(flat: Mapping[str, float]) -> str:
    """Prometheus text exposition of a `snapshot`, rendered by prometheus-client: ``*_total``
    are counters, ``*_bucket``/``*_sum`` histograms, the rest gauges; plus build info."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(flat))
    return generate_latest(registry).decode("utf-8")


Series = tuple[tuple[str, str], ...]


class SnapshotCollector:
    """A prometheus-client collector of one flat snapshot."""

    def __init__(self, flat: Mapping[str, float]) -> None:
        self.flat = flat

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        histograms: dict[str, dict[Series, dict[str, float]]] = {}
        for key, value in self.flat.items():
            name, labels = _parse_key(key)
            base = name.removesuffix("_bucket").removesuffix("_sum")
            if base != name and base in HELP:
                series = tuple((k, v) for k, v in labels if k != "le")
                counts = histograms.setdefault(base, {}).setdefault(series, {})
                le = dict(labels).get("le", "sum")
                counts[le] = counts.get(le, 0.0) + value
                continue
            family = families.get(name)
            if family is None:
                family = families[name] = _family(name, [k for k, _ in labels])
            family.add_metric([v for _, v in labels], value)
        yield from families.values()
        for name, series_counts in histograms.items():
            yield _histogram_family(name, series_counts)
        build = GaugeMetricFamily(
            "turnkit_relay_build_info",
            HELP["turnkit_relay_build_info"],
            labels=["version", "python"],
        )
        build.add_metric([_version(), sys.version.split()[0]], 1)
        yield build


def _family(name: str, labels: list[str]) -> CounterMetricFamily | GaugeMetricFamily:
    help_text = HELP.get(name, name)
    if name.endswith("_total"):
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


def _histogram_family(name: str, series: dict[Series, dict[str, float]]) -> HistogramMetricFamily:
    label_names = [k for k, _ in next(iter(series))]
    family = HistogramMetricFamily(name, HELP[name], labels=label_names)
    for labels, counts in series.items():
        total = counts.pop("sum", 0.0)
        cumulative, buckets = 0.0, []
        for le, count in sorted(counts.items(), key=lambda kv: float(kv[0])):
            cumulative += count
            buckets.append((le, cumulative))
        family.add_metric([v for _, v in labels], buckets, total)
    return family


def _parse_key(key: str) -> tuple[str, list[tuple[str, str]]]:
    match = _KEY.match(key)
    if match is None:
        raise ValueError(f"not a metric key: {key!r}")
    return match.group(1), _LABEL.findall(match.group(2) or "")


def _version() -> str:
    try:
        return metadata.version("turnkit")
    except metadata.PackageNotFoundError:
        return "unknown"
