"""/metrics through prometheus-client: the old names and labels, plus build info, sessions by
transport and histograms of allocation lifetime and bytes; summed across workers; no label
carries a user name."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from turn_testkit import PEER, T0, allocated, make_core

from turn_relay.core.allocation import Transport
from turn_relay.core.relay import RelayCore
from turn_relay.shell.metrics import DataPathStats, prometheus_text, snapshot


def flat_of(core: RelayCore) -> dict[str, float]:
    by_transport = {
        "udp": sum(1 for a in core.sessions() if a.five_tuple.transport is Transport.UDP)
    }
    return snapshot(
        core.stats, DataPathStats(), allocations=len(core.table), relays=0, connections=0,
        by_transport=by_transport,
    )  # fmt: skip


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def ended_core() -> RelayCore:
    core = make_core()
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    client.channel_data(0x4000, b"x" * 2000, now=T0 + 1)
    client.refresh(0, now=T0 + 90)
    allocated(core, T0 + 90, user="bob", port=40001)  # still alive
    return core


def test_new_series_parse_with_the_library_parser() -> None:
    found = samples(prometheus_text(flat_of(ended_core())))
    assert found[("turnkit_relay_sessions", (("transport", "udp"),))] == 1
    assert found[("turnkit_relay_sessions", (("transport", "tls"),))] == 0
    lifetime = "turnkit_relay_allocation_lifetime_seconds"
    assert found[(f"{lifetime}_bucket", (("le", "60"),))] == 0
    assert found[(f"{lifetime}_bucket", (("le", "300"),))] == 1  # 90 s, cumulative from here
    assert found[(f"{lifetime}_bucket", (("le", "+Inf"),))] == 1
    assert (found[(f"{lifetime}_count", ())], found[(f"{lifetime}_sum", ())]) == (1, 90)
    to_peer = (("direction", "to_peer"),)
    assert found[("turnkit_relay_allocation_bytes_sum", to_peer)] == 2000
    assert found[("turnkit_relay_allocation_bytes_bucket", (*to_peer, ("le", "1000")))] == 0
    assert found[("turnkit_relay_allocation_bytes_bucket", (*to_peer, ("le", "10000")))] == 1
    (build,) = [labels for name, labels in found if name == "turnkit_relay_build_info"]
    assert dict(build)["version"] and dict(build)["python"].startswith("3.")
    assert found[("turnkit_relay_allocations_removed_total", (("reason", "deleted"),))] == 1


def test_the_sum_of_two_workers_snapshots_is_one_histogram() -> None:
    first, second = flat_of(ended_core()), flat_of(ended_core())
    total = {key: first[key] + second.get(key, 0) for key in first}
    found = samples(prometheus_text(total))
    assert found[("turnkit_relay_allocation_lifetime_seconds_count", ())] == 2
    assert found[("turnkit_relay_allocations_active", ())] == 2
    assert found[("turnkit_relay_relayed_bytes_total", (("direction", "to_peer"),))] == 4000


def test_no_series_names_a_user() -> None:
    text = prometheus_text(flat_of(ended_core()))
    assert "alice" not in text and "bob" not in text
