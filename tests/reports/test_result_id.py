"""Result ids: 8 Crockford base32 characters, read back forgivingly."""

from __future__ import annotations

import pytest

from turn_relay.reports.result_id import (
    ResultIdError,
    new_result_id,
    parse_result_id,
    result_id_from,
)


def test_known_ids() -> None:
    assert result_id_from(bytes(5)) == "00000000"
    assert result_id_from(b"\xff" * 5) == "ZZZZZZZZ"
    assert result_id_from(b"\x00\x00\x00\x00\x01") == "00000001"
    assert result_id_from(b"\x84\x21\x08\x42\x10") == "GGGGGGGG"


def test_forgiving_reading() -> None:
    assert parse_result_id("abcd-efgh") == "ABCDEFGH"
    assert parse_result_id("o0il 1234") == "00111234"


@pytest.mark.parametrize("text", ["", "ABCDEFG", "ABCDEFGHJ", "ABCDEFGU"])
def test_not_ids(text: str) -> None:
    with pytest.raises(ResultIdError):
        parse_result_id(text)


def test_new_ids_parse_as_themselves() -> None:
    ident = new_result_id()
    assert parse_result_id(ident) == ident and len(ident) == 8
    with pytest.raises(ValueError, match="takes 5 bytes"):
        result_id_from(b"1234")
