"""Signed, expiring test links for the check page: mint a token, verify it, refuse it typed.

Sans-I/O: every function takes ``now`` (Unix seconds) and reads no clock. A token is

    base64url(payload) "." base64url(HMAC-SHA256(secret, DOMAIN + payload))

without padding, where ``payload`` is the UTF-8 JSON ``{"id": test_id, "exp": expires_at,
"note": note}``, plus ``"sig": url`` when the link names the app's signaling URL (the page
checks a WebSocket round trip to it, so it is signed like the rest). The MAC is computed over
the payload bytes exactly as sent (so the JSON needs no canonical form) after a domain prefix,
so a token can never be mistaken for anything else signed with the same secret (the TURN REST
secret, say). Verification tries every secret given
(rotation: mint with the first, accept any), compares in constant time, and only then parses
the payload. Whether a token was already used is not decided here (that needs state).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

DOMAIN = b"turnkit check link v1\x00"
#: a test id: what the relay tags allocations with and what reports point back to
TEST_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_NOTE_BYTES = 200
#: longer than any token this module mints: longer input is refused before decoding
MAX_TOKEN_CHARS = 1024
MAC_BYTES = 32
MAX_SIGNALING_CHARS = 300
_SIGNALING_PATTERN = re.compile(r"wss?://[!-~]+")

Secret = str | bytes


class LinkError(ValueError):
    """A token cannot be minted from these values."""


class RefusalReason(StrEnum):
    MALFORMED = "malformed"
    FORGED = "forged"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Refusal:
    reason: RefusalReason
    detail: str


@dataclass(frozen=True)
class LinkClaims:
    test_id: str
    expires_at: int
    note: str | None
    #: which of the secrets given signed it (0 = the current one)
    secret_index: int
    #: the app's ``ws:``/``wss:`` signaling URL the page also checks, if the link names one
    signaling: str | None = None


def mint(
    secret: Secret,
    test_id: str,
    expires_at: int,
    note: str | None,
    now: float,
    *,
    signaling: str | None = None,
) -> str:
    """A token for ``test_id`` valid until ``expires_at`` (Unix seconds, after ``now``)."""
    _check_claims(test_id, expires_at, note)
    _check_signaling(signaling)
    if expires_at <= now:
        raise LinkError(f"expires_at {expires_at} is not after now ({now:.0f})")
    claims: dict[str, object] = {"id": test_id, "exp": expires_at, "note": note}
    if signaling is not None:
        claims["sig"] = signaling
    payload = json.dumps(
        claims,
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    return f"{_encode(payload)}.{_encode(_mac(_secret_bytes(secret), payload))}"


def verify(secrets: Secret | Sequence[Secret], token: object, now: float) -> LinkClaims | Refusal:
    """The token's claims, or why it is refused; never raises for any ``token``."""
    keys = (
        [_secret_bytes(secrets)]
        if isinstance(secrets, str | bytes)
        else [_secret_bytes(s) for s in secrets]
    )
    split = _split(token)
    if isinstance(split, Refusal):
        return split
    payload, mac = split
    index = _signer(keys, payload, mac)
    if index is None:
        return Refusal(RefusalReason.FORGED, "no secret signed this token")
    claims = _parse(payload, index)
    if isinstance(claims, Refusal):
        return claims
    if claims.expires_at <= now:
        return Refusal(RefusalReason.EXPIRED, f"expired at {claims.expires_at}")
    return claims


def _split(token: object) -> tuple[bytes, bytes] | Refusal:
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            return _malformed("not ASCII")
    if not isinstance(token, str):
        return _malformed("not text")
    if len(token) > MAX_TOKEN_CHARS:
        return _malformed("too long")
    parts = token.split(".")
    if len(parts) != 2:
        return _malformed("not two dot-separated parts")
    payload, mac = (_decode(part) for part in parts)
    if payload is None or mac is None or not payload:
        return _malformed("not base64url")
    if len(mac) != MAC_BYTES:
        return _malformed("the signature has the wrong length")
    return payload, mac


def _signer(keys: list[bytes], payload: bytes, mac: bytes) -> int | None:
    """The index of the secret that made ``mac``; every secret is tried (constant work)."""
    found = None
    for index, key in enumerate(keys):
        if hmac.compare_digest(_mac(key, payload), mac) and found is None:
            found = index
    return found


def _parse(payload: bytes, index: int) -> LinkClaims | Refusal:
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _malformed("the payload is not JSON")
    if not isinstance(document, dict) or set(document) - {"sig"} != {"id", "exp", "note"}:
        return _malformed("the payload has other fields")
    test_id, expires_at, note = document["id"], document["exp"], document["note"]
    signaling = document.get("sig")
    if (
        not isinstance(test_id, str)
        or not isinstance(expires_at, int)
        or isinstance(expires_at, bool)
        or not (note is None or isinstance(note, str))
        or not (signaling is None or isinstance(signaling, str))
    ):
        return _malformed("a field has the wrong type")
    try:
        _check_claims(test_id, expires_at, note)
        _check_signaling(signaling)
    except LinkError as error:
        return _malformed(str(error))
    return LinkClaims(test_id, expires_at, note, index, signaling)


def _check_claims(test_id: str, expires_at: int, note: str | None) -> None:
    if not TEST_ID_PATTERN.fullmatch(test_id):
        raise LinkError(f"test id {test_id!r}: 1-64 letters, digits, '-' or '_'")
    if expires_at < 0:
        raise LinkError("expires_at must not be negative")
    if note is not None and len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise LinkError(f"the note is longer than {MAX_NOTE_BYTES} bytes")


def _check_signaling(url: str | None) -> None:
    if url is None:
        return
    if len(url) > MAX_SIGNALING_CHARS or not _SIGNALING_PATTERN.fullmatch(url):
        raise LinkError(f"signaling URL {url!r}: a ws:// or wss:// URL of printable ASCII")


def _malformed(detail: str) -> Refusal:
    return Refusal(RefusalReason.MALFORMED, detail)


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, DOMAIN + payload, hashlib.sha256).digest()


def _secret_bytes(secret: Secret) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not key:
        raise LinkError("the link secret is empty")
    return key


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def _decode(text: str) -> bytes | None:
    """Strict unpadded base64url: other characters, or a length no encoding has, are None."""
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _encode(data) == text else None
