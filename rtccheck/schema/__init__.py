"""The JSON Schema of ``rtccheck --json`` output: the report schema shared with the relay's
report store (it ships in ``turn_relay/reports/report.schema.json``)."""

from __future__ import annotations

from turn_relay.reports.schema import REPORT_SCHEMA_FILE, load_report_schema

__all__ = ["REPORT_SCHEMA_FILE", "load_report_schema"]
