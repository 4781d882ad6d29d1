"""A small JSON Schema validator: the subset rtccheck's report schema uses.

Supports type (one or a list), enum, const, required, properties, additionalProperties (boolean
or schema), items, minimum, maximum, minLength, pattern and local $ref ("#/$defs/name"); any
other keyword fails loudly, so the schema cannot silently outgrow it. ("format", "$schema",
"$id", "title" and "description" are annotations and are skipped.)

``report_errors`` checks a whole rtccheck report: the shipped schema, plus the cause_id rules
the schema cannot express (every id is in the catalogue, every fail or warn result has one).
"""

from __future__ import annotations

import re
from typing import Any

from rtccheck.causes import CAUSE_IDS
from rtccheck.schema import load_report_schema

ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "format"}
_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def validate(document: Any, schema: dict[str, Any]) -> list[str]:
    """Every violation as 'path: problem'; an empty list means valid."""
    errors: list[str] = []
    _check(document, schema, schema, "$", errors)
    return errors


def report_errors(document: Any) -> list[str]:
    """What is wrong with an rtccheck report: schema violations, cause ids outside the
    catalogue, and failed or warning results without a cause id."""
    errors = validate(document, load_report_schema())
    results = document.get("results", []) if isinstance(document, dict) else []
    for index, result in enumerate(results):
        cause_id = result.get("cause_id")
        where = f"$.results[{index}] ({result.get('check')} {result.get('target')})"
        if cause_id is None and result.get("status") in ("fail", "warn"):
            errors.append(f"{where}: {result['status']} without a cause_id")
        elif cause_id is not None and cause_id not in CAUSE_IDS:
            errors.append(f"{where}: {cause_id!r} is not in the cause_id catalogue")
    return errors


def _check(
    value: Any, schema: dict[str, Any], root: dict[str, Any], path: str, errors: list[str]
) -> None:
    for keyword, expected in schema.items():
        if keyword in ANNOTATIONS:
            continue
        checker = _KEYWORDS.get(keyword)
        if checker is None:
            raise NotImplementedError(f"schema keyword {keyword!r} is not supported")
        checker(value, expected, schema, root, path, errors)


def _type(value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]) -> None:
    names = expected if isinstance(expected, list) else [expected]
    if not any(_TYPES[name](value) for name in names):
        errors.append(f"{path}: {value!r} is not of type {expected}")


def _enum(value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]) -> None:
    if not any(value == option and type(value) is type(option) for option in expected):
        errors.append(f"{path}: {value!r} is not one of {expected}")


def _const(value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]) -> None:
    if value != expected or type(value) is not type(expected):
        errors.append(f"{path}: {value!r} is not {expected!r}")


def _required(
    value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]
) -> None:
    if isinstance(value, dict):
        errors.extend(f"{path}: missing {key!r}" for key in expected if key not in value)


def _properties(
    value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]
) -> None:
    if isinstance(value, dict):
        for key, subschema in expected.items():
            if key in value:
                _check(value[key], subschema, root, f"{path}.{key}", errors)


def _additional(
    value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]
) -> None:
    if not isinstance(value, dict):
        return
    extra = [key for key in value if key not in schema.get("properties", {})]
    for key in extra:
        if expected is False:
            errors.append(f"{path}: unexpected property {key!r}")
        elif isinstance(expected, dict):
            _check(value[key], expected, root, f"{path}.{key}", errors)


def _items(value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, expected, root, f"{path}[{index}]", errors)


def _minimum(
    value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]
) -> None:
    if _TYPES["number"](value) and value < expected:
        errors.append(f"{path}: {value} is below {expected}")


def _maximum(
    value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]
) -> None:
    if _TYPES["number"](value) and value > expected:
        errors.append(f"{path}: {value} is above {expected}")


def _min_length(
    value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]
) -> None:
    if isinstance(value, str) and len(value) < expected:
        errors.append(f"{path}: {value!r} is shorter than {expected}")


def _pattern(
    value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]
) -> None:
    if isinstance(value, str) and not re.search(expected, value):
        errors.append(f"{path}: {value!r} does not match {expected}")


def _ref(value: Any, expected: Any, schema: Any, root: Any, path: str, errors: list[str]) -> None:
    prefix = "#/$defs/"
    if not expected.startswith(prefix):
        raise NotImplementedError(f"only local $ref {prefix}... is supported, not {expected!r}")
    _check(value, root["$defs"][expected[len(prefix) :]], root, path, errors)


_KEYWORDS = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional,
    "items": _items,
    "minimum": _minimum,
    "maximum": _maximum,
    "minLength": _min_length,
    "pattern": _pattern,
    "$ref": _ref,
}
