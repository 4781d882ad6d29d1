"""Short result ids a user can read to support over the phone: 8 Crockford base32 characters.

40 random bits, written with Crockford's alphabet (no I, L, O or U). Reading one back is
forgiving as Crockford specifies: lower case, I/L read as 1, O as 0, hyphens and spaces
ignored (so ``abcd-efgh`` and ``ABCDEFGH`` are the same id).
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 8
ENTROPY_BYTES = 5  # 40 bits = 8 characters of 5 bits
_READ_AS = {"I": "1", "L": "1", "O": "0"}


class ResultIdError(ValueError):
    """Not a result id."""


def result_id_from(entropy: bytes) -> str:
    """The id written from exactly five bytes."""
    if len(entropy) != ENTROPY_BYTES:
        raise ValueError(f"a result id takes {ENTROPY_BYTES} bytes, not {len(entropy)}")
    value = int.from_bytes(entropy, "big")
    return "".join(ALPHABET[(value >> shift) & 31] for shift in range(35, -1, -5))


def new_result_id() -> str:
    return result_id_from(secrets.token_bytes(ENTROPY_BYTES))


def parse_result_id(text: str) -> str:
    """The canonical form of an id as a person typed it; ResultIdError if it is none."""
    cleaned = "".join(_READ_AS.get(c, c) for c in text.upper() if c not in "- ")
    if len(cleaned) != LENGTH or any(c not in ALPHABET for c in cleaned):
        raise ResultIdError(f"{text!r} is not a result id ({LENGTH} characters of {ALPHABET})")
    return cleaned
