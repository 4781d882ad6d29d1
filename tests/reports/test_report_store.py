"""The SQLite report store: restart survival, bounds, expiry and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from turnkit_testing.report_documents import body, mutated, report, stored_size

from turn_relay.reports.result_id import ResultIdError
from turn_relay.reports.store import ReportStore, StoreLimits
from turn_relay.reports.validation import (
    ReportInvalidError,
    ReportTooLargeError,
    parse_report,
)

NOW = 1_700_000_000.0


def test_a_report_survives_closing_and_reopening(tmp_path: Path) -> None:
    document = report()
    with ReportStore(tmp_path) as store:
        ident = store.put(body(document), NOW)
    with ReportStore(tmp_path) as reopened:
        stored = reopened.get(ident, NOW + 1)
        listed = reopened.list(10, NOW + 1)
    assert stored is not None
    assert stored.document == document
    assert stored.summary.id == ident
    assert (stored.summary.source, stored.summary.status) == ("browser", "pass")
    assert stored.summary.stored_at == NOW
    assert [summary.id for summary in listed] == [ident]


def test_ids_are_read_forgivingly(tmp_path: Path) -> None:
    with ReportStore(tmp_path) as store:
        ident = store.put(body(report()), NOW)
        assert store.get(ident.lower(), NOW) is not None
        assert store.get(f"{ident[:4]}-{ident[4:]}", NOW) is not None
        assert store.get("00000000" if ident != "00000000" else "11111111", NOW) is None
        with pytest.raises(ResultIdError):
            store.get("nope", NOW)


def test_a_report_without_source_is_from_the_cli(tmp_path: Path) -> None:
    with ReportStore(tmp_path) as store:
        ident = store.put(body(report(source=None)), NOW)
        stored = store.get(ident, NOW)
    assert stored is not None and stored.summary.source == "cli"


def test_list_is_newest_first_and_limited(tmp_path: Path) -> None:
    with ReportStore(tmp_path) as store:
        idents = [store.put(body(report()), NOW + i) for i in range(5)]
        assert [s.id for s in store.list(3, NOW + 10)] == idents[::-1][:3]
        assert store.list(0, NOW + 10) == []


def test_eviction_by_count_drops_the_oldest(tmp_path: Path) -> None:
    with ReportStore(tmp_path, StoreLimits(max_count=3)) as store:
        idents = [store.put(body(report()), NOW + i) for i in range(5)]
        assert [s.id for s in store.list(10, NOW + 5)] == idents[:1:-1]
        assert store.get(idents[0], NOW + 5) is None
        assert store.get(idents[1], NOW + 5) is None
        assert store.totals()[0] == 3


def test_eviction_by_total_size_drops_the_oldest(tmp_path: Path) -> None:
    size = stored_size(report(padding=1000))
    limits = StoreLimits(max_total_bytes=size * 2 + size // 2, max_report_bytes=size * 2)
    with ReportStore(tmp_path, limits) as store:
        idents = [store.put(body(report(padding=1000)), NOW + i) for i in range(4)]
        assert store.totals() == (2, size * 2)
        assert [s.id for s in store.list(10, NOW + 4)] == [idents[3], idents[2]]


def test_reports_expire_by_age(tmp_path: Path) -> None:
    with ReportStore(tmp_path, StoreLimits(max_age_s=100)) as store:
        old = store.put(body(report()), NOW)
        young = store.put(body(report()), NOW + 50)
        assert store.get(old, NOW + 99.9) is not None
        assert store.get(old, NOW + 100) is None  # hidden at once, deleted by expire()
        assert [s.id for s in store.list(10, NOW + 100)] == [young]
        assert store.totals()[0] == 2
        assert store.expire(NOW + 100) == 1
        assert store.totals()[0] == 1
        # a put expires too
        store.put(body(report()), NOW + 151)
        assert store.get(young, NOW + 151) is None and store.totals()[0] == 1


def test_an_oversized_report_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    limits = StoreLimits(max_report_bytes=2000)
    with ReportStore(tmp_path, limits) as store:
        large = body(report(padding=3000))
        with pytest.raises(ReportTooLargeError) as refused:
            store.put(large, NOW)
        assert (refused.value.size, refused.value.limit) == (len(large), 2000)
        assert store.totals() == (0, 0)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"{not json", "not UTF-8 JSON"),
        (b"[]", "$: [] is not of type 'object'"),
        (json.dumps({"schema_version": 1}).encode(), "$: 'tool' is a required property"),
    ],
)
def test_malformed_uploads_are_refused_and_nothing_stored(
    tmp_path: Path, raw: bytes, problem: str
) -> None:
    with ReportStore(tmp_path) as store:
        with pytest.raises(ReportInvalidError) as refused:
            store.put(raw, NOW)
        assert refused.value.problems[0].startswith(problem)
        assert store.totals() == (0, 0)


def _mutated(path: tuple[str | int, ...], value: object) -> bytes:
    return body(mutated(report(), path, value))


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("source",), "robot", "$.source: 'robot' is not one of ['cli', 'browser', 'peer']"),
        (("schema_version",), 2, "$.schema_version: 1 was expected"),
        (("client", "os"), 7, "$.client.os: 7 is not of type 'string', 'null'"),
        (
            ("relay_observed", "allocations", 0, "bytes_to_peers"),
            -1,
            "$.relay_observed.allocations[0].bytes_to_peers: -1 is less than the minimum of 0",
        ),
        (
            ("relay_observed", "allocations", 0, "transport"),
            "sctp",
            "$.relay_observed.allocations[0].transport: 'sctp' is not one of",
        ),
        (("extra",), True, "$: Additional properties are not allowed ('extra' was unexpected)"),
    ],
)
def test_schema_violations_are_named(
    path: tuple[str | int, ...], value: object, problem: str
) -> None:
    with pytest.raises(ReportInvalidError) as refused:
        parse_report(_mutated(path, value))
    assert refused.value.problems[0].startswith(problem), refused.value.problems


def test_the_shipped_examples_pass_the_schema() -> None:
    assert parse_report(body(report())) == report()
    assert parse_report(body(report(source="peer"))) == report(source="peer")


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_report_bytes"):
        StoreLimits(max_total_bytes=10, max_report_bytes=20)
    with pytest.raises(ValueError, match="positive"):
        StoreLimits(max_count=0)
