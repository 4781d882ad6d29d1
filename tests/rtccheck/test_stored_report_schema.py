"""The small validator the rtccheck tests use knows every keyword the stored-report fields use,
and agrees with the relay's validation (jsonschema) on them."""

from __future__ import annotations

from rtccheck_schema_validator import report_errors
from turnkit_testing.report_documents import mutated, report

from turn_relay.reports.validation import schema_problems


def test_a_browser_report_is_valid_for_both_validators() -> None:
    assert report_errors(report()) == []
    assert schema_problems(report()) == []


def test_both_validators_refuse_a_port_out_of_range() -> None:
    bad = mutated(report(), ("relay_observed", "allocations", 0, "client_port"), 70000)
    assert report_errors(bad) == [
        "$.relay_observed.allocations[0].client_port: 70000 is above 65535"
    ]
    assert schema_problems(bad) == [
        "$.relay_observed.allocations[0].client_port: 70000 is greater than the maximum of 65535"
    ]
