"""Parsing of command-line values that need more than a click type: each raises ValueError
with a message fit to show the user."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from rtccheck.checks.base import Nameserver
from rtccheck.credential_service import ServerClock


def parse_nameserver(text: str) -> Nameserver:
    """``ADDRESS``, ``ADDRESS:PORT``, ``[IPV6]:PORT`` or a bare IPv6 address."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        host, _, after = value[1:].partition("]")
        port_text = after.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"--nameserver {text!r}: give an IP address, optionally with :PORT"
        ) from None
    if not port_text:
        return Nameserver(str(address))
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"--nameserver {text!r}: port must be a number in 1-65535")
    return Nameserver(str(address), int(port_text))


def parse_server_date(text: str, now: float) -> ServerClock:
    """The server's current time as an HTTP date, ISO 8601 or Unix seconds -> its clock offset."""
    value = text.strip()
    try:
        moment = _moment(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"--server-date {text!r}: give an HTTP date ('Tue, 14 Nov 2023 22:13:20 GMT'), "
            "an ISO 8601 time or Unix seconds"
        ) from None
    return ServerClock(moment - now, "--server-date")


def _moment(value: str) -> float:
    if value.replace(".", "", 1).isdigit():
        return float(value)
    if "," in value or value.endswith("GMT"):
        return parsedate_to_datetime(value).timestamp()
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def read_secret_file(path: Path) -> str:
    """The secret in ``path`` without its line ending (files usually end with a newline)."""
    try:
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise ValueError(f"--secret-file {path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"--secret-file {path}: not UTF-8 text") from None
    if not secret:
        raise ValueError(f"--secret-file {path} is empty")
    return secret


def check_ca_file(path: Path) -> Path:
    """``path`` if it holds at least one PEM certificate OpenSSL can load."""
    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        raise ValueError(f"--ca-file {path}: no such file") from None
    except (ssl.SSLError, OSError) as error:
        raise ValueError(f"--ca-file {path}: not a PEM CA certificate file ({error})") from None
    return path


def parse_port_range(text: str) -> tuple[int, int]:
    """``"49152-65535"`` -> (49152, 65535); ValueError with a hint otherwise."""
    low, dash, high = text.strip().partition("-")
    if not dash or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(f"{text!r} is not a port range MIN-MAX, e.g. 49152-65535")
    first, last = int(low), int(high)
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"{text!r}: need 1 <= MIN <= MAX <= 65535")
    return first, last


def check_output_path(option: str, path: Path) -> Path:
    """Fail now, not after every check ran, when ``path`` cannot be written.

    Opens the file for appending (which creates it) and removes it again when it did not exist:
    the only test that also catches read-only file systems and missing directories as root."""
    existed = path.exists()
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a directory")
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as error:
        raise ValueError(f"{option} {path}: cannot write it ({error.strerror})") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path
