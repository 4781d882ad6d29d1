"""Integrity and key derivation: HMAC-SHA1/-SHA256, FINGERPRINT, long/short-term keys, USERHASH.

OpaqueString (RFC 8265 section 4.2) is applied to passwords, realms and usernames as RFC 8489
section 9 requires; `sasl_prep` is the RFC 4013 profile RFC 5389 used, kept for older peers.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import stringprep
import unicodedata

_FINGERPRINT_XOR = 0x5354554E


def fingerprint(data: bytes) -> int:
    """CRC-32 of ``data`` XOR 0x5354554e (RFC 8489 section 14.7)."""
    return (binascii.crc32(data) & 0xFFFFFFFF) ^ _FINGERPRINT_XOR


def hmac_sha1(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha1).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def compare(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _is_space(char: str) -> bool:
    return unicodedata.category(char) == "Zs"


# PRECIS FreeformClass (RFC 8264 section 9): the general categories whose code points are
# valid (LetterDigits, OtherLetterDigits, Spaces, Symbols, Punctuation). Everything else
# (Cc, Cf, Co, Cs, Cn, Zl, Zp) is disallowed or unassigned.
_FREEFORM_CATEGORIES = frozenset(
    {
        *("Ll", "Lu", "Lo", "Lm", "Mn", "Mc", "Nd"),  # LetterDigits
        *("Lt", "Nl", "No", "Me"),  # OtherLetterDigits
        "Zs",  # Spaces: only U+0020 is left after the mapping
        *("Sm", "Sc", "Sk", "So"),  # Symbols
        *("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"),  # Punctuation
    }
)
# Code points of those categories that PRECIS still disallows: Default_Ignorable_Code_Point
# letters and marks (fillers, variation selectors), OldHangulJamo, and the IDNA exceptions
# (RFC 5892 section 2.6) whose value is DISALLOWED.
_FREEFORM_DISALLOWED_RANGES = (
    (0x034F, 0x034F),
    (0x0640, 0x0640),
    (0x07FA, 0x07FA),
    (0x1100, 0x11FF),
    (0x17B4, 0x17B5),
    (0x180B, 0x180D),
    (0x180F, 0x180F),
    (0x302E, 0x302F),
    (0x3031, 0x3035),
    (0x303B, 0x303B),
    (0x3164, 0x3164),
    (0xA960, 0xA97F),
    (0xD7B0, 0xD7FF),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xE0100, 0xE01EF),
)
_JOIN_CONTROLS = frozenset("\u200c\u200d")
_VIRAMA = 9  # canonical combining class


def _freeform_disallowed(text: str, index: int) -> bool:
    char = text[index]
    if char in _JOIN_CONTROLS:
        # CONTEXTJ (RFC 5892 A.1/A.2): valid after a virama. The ZWNJ joining-type rule
        # needs Unicode joining data Python lacks, so such strings are (strictly) refused.
        return index == 0 or unicodedata.combining(text[index - 1]) != _VIRAMA
    if unicodedata.category(char) not in _FREEFORM_CATEGORIES:
        return True
    point = ord(char)
    return any(low <= point <= high for low, high in _FREEFORM_DISALLOWED_RANGES)


def opaque_string(text: str) -> str:
    """RFC 8265 OpaqueString: map non-ASCII spaces to U+0020, NFC, then enforce the PRECIS
    FreeformClass: controls, format characters, private use, unassigned code points and
    default-ignorable ones are refused (ValueError), as is the empty string.

    CONTEXTO rules (RFC 5892 A.3-A.9, e.g. U+00B7 between two "l") are not checked.
    """
    if text.isascii() and text.isprintable() and text:
        return text  # U+0020-U+007E are all FreeformClass and NFC-stable (the common case)
    mapped = "".join(" " if _is_space(c) and c != " " else c for c in text)
    normalised = unicodedata.normalize("NFC", mapped)
    if not normalised:
        raise ValueError("OpaqueString: empty string")
    for index, char in enumerate(normalised):
        if _freeform_disallowed(normalised, index):
            raise ValueError(f"OpaqueString: disallowed character U+{ord(char):04X}")
    return normalised


_SASL_PROHIBITED = (
    stringprep.in_table_c12,  # non-ASCII space (mapped before, so only after NFKC)
    stringprep.in_table_c21_c22,  # controls
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogates
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties or deprecated
    stringprep.in_table_c9,  # tagging characters
    stringprep.in_table_a1,  # unassigned in Unicode 3.2 (stored strings, RFC 3454 section 7)
)


def sasl_prep(text: str) -> str:
    """RFC 4013 SASLprep, stored-string profile (RFC 5389's preparation, kept for older peers).

    Maps table B.1 to nothing and non-ASCII spaces to U+0020, applies NFKC of Unicode 3.2,
    refuses (ValueError) the characters of tables C.1.2-C.9 and A.1, and enforces the
    RFC 3454 section 6 bidirectional rule. Uses the stdlib `stringprep` tables.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    normalised = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for char in normalised:
        if any(table(char) for table in _SASL_PROHIBITED):
            raise ValueError(f"SASLprep: prohibited character U+{ord(char):04X}")
    if any(stringprep.in_table_d1(c) for c in normalised):
        if any(stringprep.in_table_d2(c) for c in normalised):
            raise ValueError("SASLprep: mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(normalised[0]) and stringprep.in_table_d1(normalised[-1])):
            raise ValueError("SASLprep: right-to-left string must start and end with RandALCat")
    return normalised


def short_term_key(password: str) -> bytes:
    """Short-term credential key: OpaqueString(password) (RFC 8489 section 9.1.1)."""
    return opaque_string(password).encode("utf-8")


def long_term_key(username: str, realm: str, password: str, *, algorithm: str = "md5") -> bytes:
    """Long-term key: MD5 or SHA-256 of ``username:realm:password`` (RFC 8489 section 9.2.2).

    The username is used as it appears in USERNAME; realm and password go through OpaqueString.
    """
    material = f"{username}:{opaque_string(realm)}:{opaque_string(password)}".encode()
    if algorithm == "md5":
        return hashlib.md5(material, usedforsecurity=False).digest()
    if algorithm == "sha256":
        return hashlib.sha256(material).digest()
    raise ValueError(f"unknown password algorithm {algorithm!r}")


def userhash(username: str, realm: str) -> bytes:
    """USERHASH = SHA-256(OpaqueString(username) ":" OpaqueString(realm)) (RFC 8489 14.4)."""
    return hashlib.sha256(f"{opaque_string(username)}:{opaque_string(realm)}".encode()).digest()
