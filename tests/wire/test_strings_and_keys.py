"""OpaqueString (RFC 8265), SASLprep (RFC 4013), key derivation, USERHASH, FINGERPRINT."""

from __future__ import annotations

import hashlib
import stringprep

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stun_server.wire import long_term_key, opaque_string, sasl_prep, short_term_key, userhash
from stun_server.wire.integrity import fingerprint

# ---------------------------------------------------------------- OpaqueString


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password", "password"),
        ("correct horse battery staple", "correct horse battery staple"),
        ("VOkJxbRl1RmTxUk/WvJxBt", "VOkJxbRl1RmTxUk/WvJxBt"),
        ("Upper Case", "Upper Case"),  # no case mapping
        ("a\u00a0b", "a b"),  # NO-BREAK SPACE -> SPACE
        ("a\u3000b", "a b"),  # IDEOGRAPHIC SPACE -> SPACE
        ("a\u2009b", "a b"),  # THIN SPACE -> SPACE
        ("e\u0301", "\u00e9"),  # NFC composes
        ("\u00e9", "\u00e9"),
        ("\u212b", "\u00c5"),  # ANGSTROM SIGN -> A WITH RING (canonical)
        ("\uff21", "\uff21"),  # FULLWIDTH A: no width mapping
        ("\u00aa", "\u00aa"),  # no NFKC: FEMININE ORDINAL stays
        ("\u2168", "\u2168"),  # ROMAN NUMERAL NINE stays
        ("\u03c0\u00df\u0436", "\u03c0\u00df\u0436"),
        ("\u30de\u30c8\u30ea\u30c3\u30af\u30b9", "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"),
        ("\U0001f600", "\U0001f600"),  # emoji are symbols: allowed
        ("\u0915\u094d\u200d", "\u0915\u094d\u200d"),  # ZWJ after a virama (CONTEXTJ)
        (" leading and trailing ", " leading and trailing "),
    ],
)
def test_opaque_string_accepts(text: str, expected: str) -> None:
    assert opaque_string(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\u0000",
        "tab\there",
        "new\nline",
        "del\u007f",
        "\u0085",  # NEL (C1 control)
        "soft\u00adhyphen",  # default ignorable (SASLprep would delete it)
        "zero\u200bwidth",
        "a\u200db",  # ZWJ without a virama before it
        "bom\ufeff",
        "lrm\u200e",
        "\u2028",  # LINE SEPARATOR (Zl)
        "\u2029",  # PARAGRAPH SEPARATOR (Zp)
        "\ue000",  # private use
        "\U000f0000",  # supplementary private use
        "\ufdd0",  # noncharacter
        "\uffff",
        "\U000e0041",  # TAG LATIN CAPITAL LETTER A
        "\ufe0f",  # VARIATION SELECTOR-16
        "\u3164",  # HANGUL FILLER
        "\u1100\u1161",  # conjoining Jamo (OldHangulJamo)... unless NFC composes them
        "\u0378",  # unassigned
    ],
)
def test_opaque_string_refuses(text: str) -> None:
    if text == "\u1100\u1161":
        assert opaque_string(text) == "\uac00"  # NFC composes to a syllable: allowed
        return
    with pytest.raises(ValueError, match="OpaqueString"):
        opaque_string(text)


def test_opaque_string_refuses_lone_jamo() -> None:
    with pytest.raises(ValueError):
        opaque_string("\u11a8")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=20))
def test_opaque_string_is_idempotent(text: str) -> None:
    try:
        once = opaque_string(text)
    except ValueError:
        return
    assert opaque_string(once) == once
    assert once  # never empty
    assert all(c == " " or not c.isspace() for c in once)


# ---------------------------------------------------------------- SASLprep


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # RFC 4013 section 3 examples
        ("I\u00adX", "IX"),
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),
        ("\u2168", "IX"),
        # RFC 5769 2.4's password
        ("The\u00adM\u00aatr\u2168", "TheMatrIX"),
        # mapped to nothing (table B.1)
        ("a\u200bb\u2060c\ufeffd\u034fe\ufe0ff", "abcdef"),
        # non-ASCII spaces to SPACE (C.1.2)
        ("a\u00a0b\u3000c\u2003d", "a b c d"),
        # NFKC
        ("\uff21\uff22", "AB"),
        ("\ufb01", "fi"),
        ("e\u0301", "\u00e9"),
        ("", ""),
        # a right-to-left string that starts and ends with RandALCat
        ("\u0627\u0031\u0628", "\u0627\u0031\u0628"),
        ("\u05d0\u05d1", "\u05d0\u05d1"),
    ],
)
def test_sasl_prep(text: str, expected: str) -> None:
    assert sasl_prep(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "\u0007",  # RFC 4013 example: prohibited character
        "\u0627\u0031",  # RFC 4013 example: bidirectional check
        "a\u05d0",  # LCat and RandALCat mixed
        "\u05d0a\u05d1",
        "tab\t",
        "\u0080",
        "\ue000",  # private use (C.3)
        "\ufdd0",  # non-character (C.4)
        "\ufff9",  # inappropriate for plain text (C.6)
        "\u2ff0",  # ideographic description (C.7)
        "\u200e",  # LRM (C.8)
        "\u202e",  # RLO (C.8)
        "\U000e0001",  # LANGUAGE TAG (C.9)
        "\u0221",  # unassigned in Unicode 3.2 (A.1): stored strings refuse it
        "\U0001f600",
    ],
)
def test_sasl_prep_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="SASLprep"):
        sasl_prep(text)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=20))
def test_sasl_prep_output_is_stable(text: str) -> None:
    try:
        prepared = sasl_prep(text)
    except ValueError:
        return
    assert sasl_prep(prepared) == prepared
    assert not any(stringprep.in_table_b1(c) for c in prepared)
    assert not any(stringprep.in_table_c21_c22(c) for c in prepared)


# ---------------------------------------------------------------- keys


def test_short_term_key() -> None:
    assert short_term_key("VOkJxbRl1RmTxUk/WvJxBt") == b"VOkJxbRl1RmTxUk/WvJxBt"
    assert short_term_key("p\u00e4ss") == "p\u00e4ss".encode()
    assert short_term_key("a\u00a0b") == b"a b"
    with pytest.raises(ValueError):
        short_term_key("")


def test_long_term_key_md5_and_sha256() -> None:
    material = b"user:realm:pass"
    assert (
        long_term_key("user", "realm", "pass")
        == hashlib.md5(material, usedforsecurity=False).digest()
    )
    assert long_term_key("user", "realm", "pass", algorithm="sha256") == (
        hashlib.sha256(material).digest()
    )
    # realm and password go through OpaqueString; the username is used as sent.
    assert (
        long_term_key("user", "re\u00a0alm", "pa\u00a0ss")
        == hashlib.md5(b"user:re alm:pa ss", usedforsecurity=False).digest()
    )
    assert (
        long_term_key("u\u00a0", "r", "p")
        == hashlib.md5("u\u00a0:r:p".encode(), usedforsecurity=False).digest()
    )
    with pytest.raises(ValueError, match="algorithm"):
        long_term_key("user", "realm", "pass", algorithm="sha1")
    with pytest.raises(ValueError):
        long_term_key("user", "realm", "")


def test_userhash() -> None:
    assert userhash("user", "example.org") == hashlib.sha256(b"user:example.org").digest()
    assert userhash("a\u00a0b", "r") == hashlib.sha256(b"a b:r").digest()
    with pytest.raises(ValueError):
        userhash("", "realm")


def test_fingerprint_function() -> None:
    assert fingerprint(b"") == 0x5354554E
    assert fingerprint(b"123456789") == 0xCBF43926 ^ 0x5354554E  # the CRC-32 check value
