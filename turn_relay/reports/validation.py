"""An uploaded report checked before anything is stored: its size, its JSON, its schema.

The errors are typed so that the HTTP API can answer them: ReportTooLargeError is 413,
ReportInvalidError 400. Validation uses the ``jsonschema`` library against the shipped schema.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from turn_relay.reports.schema import load_report_schema

#: the largest report accepted (a browser report with many candidates is some tens of KiB)
DEFAULT_MAX_REPORT_BYTES = 256 * 1024
#: how many schema violations an error message lists
ERRORS_SHOWN = 5


class ReportRejectedError(ValueError):
    """A report that is not stored."""


class ReportTooLargeError(ReportRejectedError):
    """Larger than the limit (HTTP 413)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the report is {size} bytes, more than the limit of {limit}")
        self.size = size
        self.limit = limit


class ReportInvalidError(ReportRejectedError):
    """Not JSON, or not a report of the schema (HTTP 400); ``problems`` lists why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:ERRORS_SHOWN]))
        self.problems = problems


def parse_report(body: bytes, max_bytes: int = DEFAULT_MAX_REPORT_BYTES) -> dict[str, Any]:
    """The report in ``body``, checked; raises a ReportRejectedError otherwise."""
    if len(body) > max_bytes:
        raise ReportTooLargeError(len(body), max_bytes)
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ReportInvalidError([f"not UTF-8 JSON: {error}"]) from None
    problems = schema_problems(document)
    if problems:
        raise ReportInvalidError(problems)
    assert isinstance(document, dict)
    return document


def schema_problems(document: object) -> list[str]:
    """Every schema violation, as ``path: message``, in document order."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [f"{e.json_path}: {e.message}" for e in errors]


@cache
def _validator() -> Draft202012Validator:
    schema = load_report_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)
