"""The one report schema (JSON Schema 2020-12) every source writes, shipped with the package.

It lives here, with the relay's report store, because the relay validates uploads with it and
never imports rtccheck; rtccheck loads the same file through ``rtccheck.schema``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

REPORT_SCHEMA_FILE = "report.schema.json"


def load_report_schema() -> dict[str, Any]:
    """A fresh copy of the schema (callers may change it)."""
    return json.loads(_schema_text())  # type: ignore[no-any-return]


@cache
def _schema_text() -> str:
    return resources.files(__package__).joinpath(REPORT_SCHEMA_FILE).read_text(encoding="utf-8")
