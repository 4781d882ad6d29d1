"""Signed test links: exact tokens, expiry stepped by hand, rotation, and refusals typed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turn_relay.auth.links import (
    DOMAIN,
    LinkClaims,
    LinkError,
    Refusal,
    RefusalReason,
    mint,
    verify,
)

SECRET = "link-secret"
NOW = 1_700_000_000.0
EXPIRES = 1_700_003_600


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_token_is_payload_and_hmac_sha256_over_domain_and_payload() -> None:
    token = mint(SECRET, "t-1", EXPIRES, "ticket 42", NOW)
    payload = b'{"id":"t-1","exp":1700003600,"note":"ticket 42"}'
    mac = hmac.new(SECRET.encode(), DOMAIN + payload, hashlib.sha256).digest()
    assert token == f"{b64(payload)}.{b64(mac)}"
    assert "=" not in token


def test_verify_returns_the_claims_until_expiry() -> None:
    token = mint(SECRET, "t-1", EXPIRES, None, NOW)
    assert verify(SECRET, token, NOW) == LinkClaims("t-1", EXPIRES, None, 0)
    assert verify(SECRET, token, EXPIRES - 0.001) == LinkClaims("t-1", EXPIRES, None, 0)
    assert verify(SECRET, token, EXPIRES) == Refusal(RefusalReason.EXPIRED, "expired at 1700003600")
    assert verify(SECRET, token, EXPIRES + 86400).reason is RefusalReason.EXPIRED  # type: ignore[union-attr]


def test_rotation_accepts_old_secrets_and_says_which_signed() -> None:
    old = mint("old-secret", "t-2", EXPIRES, "n", NOW)
    assert verify(["new-secret", "old-secret"], old, NOW) == LinkClaims("t-2", EXPIRES, "n", 1)
    assert verify(["new-secret"], old, NOW) == Refusal(
        RefusalReason.FORGED, "no secret signed this token"
    )


def test_a_changed_payload_is_forged() -> None:
    token = mint(SECRET, "t-1", EXPIRES, None, NOW)
    _, mac = token.split(".")
    longer = b'{"id":"t-1","exp":1800000000,"note":null}'
    assert verify(SECRET, f"{b64(longer)}.{mac}", NOW).reason is RefusalReason.FORGED  # type: ignore[union-attr]


def test_a_validly_signed_payload_of_the_wrong_shape_is_malformed() -> None:
    payload = json.dumps({"id": "t", "exp": "soon", "note": None}).encode()
    mac = hmac.new(SECRET.encode(), DOMAIN + payload, hashlib.sha256).digest()
    assert verify(SECRET, f"{b64(payload)}.{b64(mac)}", NOW) == Refusal(
        RefusalReason.MALFORMED, "a field has the wrong type"
    )


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("", "not two dot-separated parts"),
        ("abc", "not two dot-separated parts"),
        ("a.b.c", "not two dot-separated parts"),
        ("ab+c.def", "not base64url"),
        ("abcd=.abcd", "not base64url"),
        (".abcd", "not base64url"),
        ("abcd.abcd", "the signature has the wrong length"),
        ("a" * 2000, "too long"),
        (b"\xff.\xfe", "not ASCII"),
        (12, "not text"),
    ],
)
def test_malformed_tokens(token: object, detail: str) -> None:
    assert verify(SECRET, token, NOW) == Refusal(RefusalReason.MALFORMED, detail)


def test_non_canonical_base64_is_malformed() -> None:
    token = mint(SECRET, "t-1", EXPIRES, None, NOW)
    payload, mac = token.split(".")
    # the last character of a 43-character signature carries 2 spare bits: set one
    last = mac[-1]
    twisted = mac[:-1] + ("B" if last == "A" else chr(ord(last) + 1))
    # same bytes once decoded, but not the encoding a minted token has
    assert base64.urlsafe_b64decode(twisted + "=") == base64.urlsafe_b64decode(mac + "=")
    outcome = verify(SECRET, f"{payload}.{twisted}", NOW)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.MALFORMED


@pytest.mark.parametrize(
    ("test_id", "expires_at", "note", "message"),
    [
        ("", EXPIRES, None, "test id ''"),
        ("has space", EXPIRES, None, "test id 'has space'"),
        ("x" * 65, EXPIRES, None, "1-64 letters"),
        ("t", int(NOW), None, "is not after now"),
        ("t", EXPIRES, "é" * 101, "longer than 200 bytes"),
    ],
)
def test_mint_refuses_bad_claims(
    test_id: str, expires_at: int, note: str | None, message: str
) -> None:
    with pytest.raises(LinkError, match=message):
        mint(SECRET, test_id, expires_at, note, NOW)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(LinkError, match="empty"):
        mint("", "t", EXPIRES, None, NOW)


@given(st.binary(max_size=300))
def test_any_bytes_are_refused_and_never_raise(data: bytes) -> None:
    outcome = verify(SECRET, data, NOW)
    assert isinstance(outcome, Refusal)
    if b"." not in data:
        assert outcome.reason is RefusalReason.MALFORMED


@given(st.text(max_size=300))
def test_any_text_is_refused_and_never_raise(text: str) -> None:
    outcome = verify([SECRET, "other"], text, NOW)
    assert isinstance(outcome, Refusal)
    assert outcome.reason in (RefusalReason.MALFORMED, RefusalReason.FORGED)


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=64),
    st.integers(min_value=int(NOW) + 1, max_value=2**40),
    st.none() | st.text(max_size=50),
)
def test_every_minted_token_verifies(test_id: str, expires_at: int, note: str | None) -> None:
    token = mint(SECRET, test_id, expires_at, note, NOW)
    assert verify(SECRET, token, NOW) == LinkClaims(test_id, expires_at, note, 0)
