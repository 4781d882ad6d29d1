"""Stateless nonces: fresh, stale, invalid, client binding, the RFC 8489 cookie."""

from __future__ import annotations

import pytest

from stun_server.wire.errors import StunError
from turn_relay.auth.nonce import (
    NONCE_COOKIE,
    InvalidNonce,
    InvalidNonceError,
    NonceIssuer,
    SecurityFeature,
    StaleNonce,
    StaleNonceError,
    cookie,
    new_key,
    security_features,
)

KEY = b"k" * 32
T0 = 5_000.25  # a monotonic time


def test_fresh_nonce_checks() -> None:
    issuer = NonceIssuer(KEY)
    nonce = issuer.make(T0, "192.0.2.1")
    checked = issuer.check(nonce, T0 + 1, "192.0.2.1")
    assert checked.issued_at == 5_000
    assert checked.features == SecurityFeature.PASSWORD_ALGORITHMS


def test_default_lifetime_is_600_seconds() -> None:
    issuer = NonceIssuer(KEY)
    nonce = issuer.make(5_000.0)
    issuer.check(nonce, 5_599.9)
    with pytest.raises(StaleNonceError):
        issuer.check(nonce, 5_600.0)


def test_stale_is_a_438_stun_error() -> None:
    issuer = NonceIssuer(KEY, lifetime=30)
    nonce = issuer.make(T0)
    with pytest.raises(StunError) as caught:
        issuer.check(nonce, T0 + 31)
    assert (caught.value.code, caught.value.reason) == (438, "Stale Nonce")
    assert isinstance(caught.value, StaleNonceError)


def test_lifetime_is_configurable() -> None:
    issuer = NonceIssuer(KEY, lifetime=10)
    nonce = issuer.make(100.0)
    issuer.check(nonce, 109.5)
    with pytest.raises(StaleNonceError):
        issuer.check(nonce, 110.0)


def test_other_client_is_invalid_not_stale() -> None:
    issuer = NonceIssuer(KEY)
    nonce = issuer.make(T0, "192.0.2.1")
    with pytest.raises(InvalidNonceError):
        issuer.check(nonce, T0, "192.0.2.2")
    with pytest.raises(InvalidNonceError):
        issuer.check(nonce, T0)


def test_other_key_is_invalid() -> None:
    nonce = NonceIssuer(KEY).make(T0)
    with pytest.raises(InvalidNonceError) as caught:
        NonceIssuer(b"x" * 32).check(nonce, T0)
    assert caught.value.code == 438
    assert "MAC" in caught.value.detail


@pytest.mark.parametrize(
    "garbage", ["", "abc", "obMatJos2AAAB", "x" * 45, "obMatJos2AAAB" + "*" * 32, "é" * 45]
)
def test_garbage_is_invalid(garbage: str) -> None:
    with pytest.raises(InvalidNonceError):
        NonceIssuer(KEY).check(garbage, T0)


def test_tampered_issue_time_is_invalid() -> None:
    issuer = NonceIssuer(KEY, features=None)
    nonce = issuer.make(T0)
    tampered = ("B" if nonce[0] != "B" else "C") + nonce[1:]
    with pytest.raises(InvalidNonceError):
        issuer.check(tampered, T0)


def test_stripped_feature_bits_are_invalid() -> None:
    """Bid-down protection: the feature bits are covered by the MAC."""
    issuer = NonceIssuer(KEY, features=SecurityFeature.PASSWORD_ALGORITHMS)
    nonce = issuer.make(T0)
    downgraded = cookie(SecurityFeature.NONE) + nonce[len(cookie(SecurityFeature.NONE)) :]
    assert downgraded != nonce
    with pytest.raises(InvalidNonceError):
        issuer.check(downgraded, T0)


def test_nonce_from_the_future_is_invalid() -> None:
    issuer = NonceIssuer(KEY)
    nonce = issuer.make(1_000.0)
    issuer.check(nonce, 999.5)  # within the one-second flooring allowance
    with pytest.raises(InvalidNonceError):
        issuer.check(nonce, 998.0)


def test_cookie_layout() -> None:
    assert cookie(SecurityFeature.PASSWORD_ALGORITHMS) == "obMatJos2AAAB"
    assert cookie(SecurityFeature.USERNAME_ANONYMITY) == "obMatJos2AAAC"
    both = SecurityFeature.PASSWORD_ALGORITHMS | SecurityFeature.USERNAME_ANONYMITY
    assert cookie(both) == "obMatJos2AAAD"
    assert cookie(SecurityFeature.NONE) == "obMatJos2AAAA"


def test_nonce_carries_cookie_when_asked() -> None:
    with_cookie = NonceIssuer(KEY).make(T0)
    assert with_cookie.startswith("obMatJos2AAAB")
    assert security_features(with_cookie) == SecurityFeature.PASSWORD_ALGORITHMS
    plain = NonceIssuer(KEY, features=None)
    nonce = plain.make(T0)
    assert not nonce.startswith(NONCE_COOKIE)
    assert security_features(nonce) is None
    assert plain.check(nonce, T0).features is None


def test_security_features_of_foreign_nonces() -> None:
    # RFC 8489 appendix B.1's nonce: bit 1, username anonymity.
    assert security_features("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA") == (
        SecurityFeature.USERNAME_ANONYMITY
    )
    assert security_features("obMatJos2") is None
    assert security_features("obMatJos2!!!!") is None
    assert security_features("f//499k954d6OL34oL9FSTvy64sA") is None


def test_nonce_is_valid_qdtext_and_short() -> None:
    nonce = NonceIssuer(KEY).make(T0, "2001:db8::1")
    assert len(nonce) < 128
    assert all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in nonce)


def test_nonces_differ_per_second_and_client() -> None:
    issuer = NonceIssuer(KEY)
    assert issuer.make(T0, "a") != issuer.make(T0 + 1, "a")
    assert issuer.make(T0, "a") != issuer.make(T0, "b")
    assert issuer.make(T0, "a") == issuer.make(T0 + 0.5, "a")  # stateless: same second, same nonce


def test_bad_construction() -> None:
    with pytest.raises(ValueError, match="key"):
        NonceIssuer(b"short")
    with pytest.raises(ValueError, match="lifetime"):
        NonceIssuer(KEY, lifetime=0)
    with pytest.raises(ValueError, match="now"):
        NonceIssuer(KEY).make(-1.0)


def test_new_key_is_random_and_usable() -> None:
    first, second = new_key(), new_key()
    assert first != second
    issuer = NonceIssuer(first)
    issuer.check(issuer.make(T0), T0)


def test_short_names_are_the_same_classes() -> None:
    assert StaleNonce is StaleNonceError
    assert InvalidNonce is InvalidNonceError
