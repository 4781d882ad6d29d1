"""Integrity and key derivation: HMAC-SHA1/-SHA256, FINGERPRINT, long/short-term keys, USERHASH.

OpaqueString (RFC 8265 section 4.2) is applied to passwords, realms and usernames as RFC 8489
section 9 requires; `sasl_prep` is the RFC 4013 profile RFC 5389 used, kept for older peers.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
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


def _is_forbidden(char: str) -> bool:
    """PRECIS disallows controls, surrogates and unassigned code points."""
    return unicodedata.category(char) in ("Cc", "Cs", "Cn")


def opaque_string(text: str) -> str:
    """RFC 8265 OpaqueString: map non-ASCII spaces to U+0020, NFC; reject controls and empties."""
    mapped = "".join(" " if _is_space(c) and c != " " else c for c in text)
    normalised = unicodedata.normalize("NFC", mapped)
    if not normalised:
        raise ValueError("OpaqueString: empty string")
    for char in normalised:
        if _is_forbidden(char):
            raise ValueError(f"OpaqueString: forbidden character U+{ord(char):04X}")
    return normalised


_SASL_MAPPED_TO_NOTHING = frozenset("\u00ad\u034f\u1806\u180b\u180c\u180d\u200b\u200c\u200d\u2060")


def sasl_prep(text: str) -> str:
    """RFC 4013 SASLprep (stored-string profile): map, NFKC, prohibit controls."""
    mapped = "".join(
        " " if _is_space(c) and c != " " else c
        for c in text
        if c not in _SASL_MAPPED_TO_NOTHING and not "\ufe00" <= c <= "\ufe0f"
    )
    normalised = unicodedata.normalize("NFKC", mapped)
    for char in normalised:
        if _is_forbidden(char):
            raise ValueError(f"SASLprep: prohibited character U+{ord(char):04X}")
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
