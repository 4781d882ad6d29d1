"""Validate rtccheck's JUnit XML against tests/rtccheck/junit.xsd (the Ant/Jenkins format) with
xmlschema; the XSD is ours, written from that format's facts (see its header)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import xmlschema

JUNIT_XSD = Path(__file__).with_name("junit.xsd")


@cache
def junit_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(JUNIT_XSD)


def junit_errors(xml_text: str) -> list[str]:
    """Every violation of the schema; empty when valid."""
    return [str(error.reason) for error in junit_schema().iter_errors(xml_text)]
