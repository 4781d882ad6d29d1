"""The JSON Schema of ``rtccheck --json`` output, shipped with the package."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

REPORT_SCHEMA_FILE = "report.schema.json"


def load_report_schema() -> dict[str, Any]:
    text = resources.files(__name__).joinpath(REPORT_SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
