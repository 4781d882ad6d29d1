"""Why a TURN REST password does not match: recompute it and try the usual mistakes.

The scheme's password is ``base64(HMAC-SHA1(secret, username))``. When the given credential is
something else, a few cheap recomputations often tell which mistake made it.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable

from turn_relay.auth.credentials import rest_password

Variant = Callable[[str, str], str]


def _hmac(secret: str, username: str, digest: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), username.encode("utf-8"), digest).digest()


def _hex_sha1(secret: str, username: str) -> str:
    return _hmac(secret, username, "sha1").hex()


def _base64_sha256(secret: str, username: str) -> str:
    return base64.b64encode(_hmac(secret, username, "sha256")).decode("ascii")


def _urlsafe_sha1(secret: str, username: str) -> str:
    return base64.urlsafe_b64encode(_hmac(secret, username, "sha1")).decode("ascii")


def _unpadded_sha1(secret: str, username: str) -> str:
    return rest_password(secret, username).rstrip("=")


def _trimmed_secret(secret: str, username: str) -> str:
    return rest_password(secret.strip(), username)


def _secret_with_newline(secret: str, username: str) -> str:
    return rest_password(secret + "\n", username)


#: (how the credential was made, the fix), tried in order against the given credential
MISTAKES: tuple[tuple[Variant, str, str], ...] = (
    (
        _hex_sha1,
        "The password is HMAC-SHA1 in hex; the REST scheme encodes it in base64.",
        "Encode the HMAC-SHA1 digest with standard base64 (28 characters ending in '=').",
    ),
    (
        _base64_sha256,
        "The password is HMAC-SHA256; the REST scheme (coturn, turnkit) uses HMAC-SHA1.",
        "Compute base64(HMAC-SHA1(secret, username)).",
    ),
    (
        _urlsafe_sha1,
        "The password uses URL-safe base64 ('-' and '_'); the scheme uses standard base64.",
        "Use standard base64 ('+' and '/').",
    ),
    (
        _unpadded_sha1,
        "The password lost its trailing '=' padding.",
        "Keep the base64 padding: the password is 28 characters ending in '='.",
    ),
    (
        _trimmed_secret,
        "The secret given here has surrounding whitespace; the credential was made without it.",
        "Remove the whitespace (often a trailing newline) from the secret.",
    ),
    (
        _secret_with_newline,
        "The credential was made with a newline at the end of the secret.",
        "Strip the trailing newline from the secret where the credentials are minted.",
    ),
)

GENERIC_CAUSE = (
    "The credential is not base64(HMAC-SHA1(secret, username)) for this username and secret: "
    "the secret differs from the server's (or was rotated), or the username was changed after "
    "the password was computed."
)
GENERIC_FIX = (
    "Mint credentials with the same secret the TURN server uses (coturn: static-auth-secret) "
    "and sign the exact username string that is sent."
)


def password_matches(secret: str, username: str, credential: str) -> bool:
    expected = rest_password(secret, username)
    return hmac.compare_digest(expected.encode("ascii"), credential.encode("utf-8"))


def diagnose_mismatch(secret: str, username: str, credential: str) -> tuple[str, str]:
    """(cause, fix) for a credential that does not match; the generic pair if no mistake fits."""
    for variant, cause, fix in MISTAKES:
        if variant(secret, username) == credential:
            return cause, fix
    return GENERIC_CAUSE, GENERIC_FIX
