"""Command-line values: --nameserver, --server-date, --secret-file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtccheck.checks.base import Nameserver
from rtccheck.option_values import parse_nameserver, parse_server_date, read_secret_file

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", Nameserver("127.0.0.1", 53)),
        ("127.0.0.1:5353", Nameserver("127.0.0.1", 5353)),
        ("::1", Nameserver("::1", 53)),
        ("[::1]:5353", Nameserver("::1", 5353)),
        ("[::1]", Nameserver("::1", 53)),
        (" 2001:DB8::53 ", Nameserver("2001:db8::53", 53)),
    ],
)
def test_nameserver_forms(text: str, expected: Nameserver) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "127.0.0.1:0", "127.0.0.1:x", "[::1]:70000", ""])
def test_bad_nameservers(text: str) -> None:
    with pytest.raises(ValueError, match="--nameserver"):
        parse_nameserver(text)


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("Tue, 14 Nov 2023 22:15:20 GMT", 120.0),
        ("2023-11-14T22:12:20+00:00", -60.0),
        ("2023-11-14T22:13:30", 10.0),
        ("2023-11-14 23:13:20+01:00", 0.0),
        ("1700000005", 5.0),
        ("1700000005.5", 5.5),
    ],
)
def test_server_date_forms(text: str, offset: float) -> None:
    clock = parse_server_date(text, NOW)
    assert clock.offset_s == pytest.approx(offset)
    assert clock.source == "--server-date"


def test_secret_file_drops_only_the_line_ending(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b" spaced secret \r\n")
    assert read_secret_file(path) == " spaced secret "
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_secret_file(path)
