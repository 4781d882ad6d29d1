"""REST credentials: known answer, expiry, separator, rotation."""

from __future__ import annotations

import pytest

from turn_relay.auth.credentials import (
    ExpiredCredentialError,
    MalformedUsernameError,
    WrongPasswordError,
    candidate_passwords,
    check_unexpired,
    check_user,
    issue,
    parse_username,
    rest_password,
    verify,
)

KNOWN_SECRET = "crypt1c"
KNOWN_USERNAME = "1256900400"
KNOWN_PASSWORD = "uEKlpcME7MNMMVRV8rUFPCTIFEs="
BEFORE_KNOWN_EXPIRY = 1_256_900_000.0


def test_known_answer() -> None:
    assert rest_password(KNOWN_SECRET, KNOWN_USERNAME) == KNOWN_PASSWORD
    assert rest_password(KNOWN_SECRET.encode(), KNOWN_USERNAME) == KNOWN_PASSWORD


def test_issue_without_user_reproduces_known_answer() -> None:
    credential = issue(KNOWN_SECRET, "", 400, BEFORE_KNOWN_EXPIRY)
    assert credential.username == KNOWN_USERNAME
    assert credential.password == KNOWN_PASSWORD
    assert credential.expires_at == 1_256_900_400


def test_verify_known_answer() -> None:
    parsed = verify([KNOWN_SECRET], KNOWN_USERNAME, KNOWN_PASSWORD, BEFORE_KNOWN_EXPIRY)
    assert parsed.expires_at == 1_256_900_400
    assert parsed.user == ""


def test_issue_then_verify_with_user() -> None:
    credential = issue("s3cret", "alice", 3600, 1_700_000_000.7)
    assert credential.username == "1700003600:alice"
    assert verify(["s3cret"], credential.username, credential.password, 1_700_000_001).user == (
        "alice"
    )


def test_issue_rejects_non_positive_ttl() -> None:
    with pytest.raises(ValueError, match="ttl"):
        issue("s", "alice", 0, 1_700_000_000)


def test_valid_until_the_expiry_second_excluded() -> None:
    credential = issue("s", "alice", 60, 1_700_000_000)
    assert check_unexpired(credential.username, 1_700_000_059.999).user == "alice"
    with pytest.raises(ExpiredCredentialError) as caught:
        check_unexpired(credential.username, 1_700_000_060)
    assert caught.value.expires_at == 1_700_000_060
    assert caught.value.reason == "expired"


def test_expired_credential_is_refused_even_with_right_password() -> None:
    with pytest.raises(ExpiredCredentialError):
        verify([KNOWN_SECRET], KNOWN_USERNAME, KNOWN_PASSWORD, 1_256_900_400)


def test_malformed_username() -> None:
    for username in ("alice", ":1700000000", "17e9:alice", "١٢٣:alice", ""):
        with pytest.raises(MalformedUsernameError):
            check_unexpired(username, 1_700_000_000)


def test_monotonic_clock_by_mistake_is_refused() -> None:
    with pytest.raises(ValueError, match="not Unix time"):
        check_unexpired("1700003600:alice", 12_345.0)


def test_custom_separator() -> None:
    credential = issue("s", "alice", 60, 1_700_000_000, separator="-")
    assert credential.username == "1700000060-alice"
    assert parse_username(credential.username, "-") is not None
    assert parse_username(credential.username, ":") is None
    assert verify(["s"], credential.username, credential.password, 1_700_000_000, "-").user == (
        "alice"
    )
    with pytest.raises(MalformedUsernameError):
        verify(["s"], credential.username, credential.password, 1_700_000_000, ":")


def test_user_part_may_contain_the_separator() -> None:
    parsed = parse_username("1700000060:alice:work")
    assert parsed is not None
    assert parsed.user == "alice:work"


def test_rotation_accepts_every_configured_secret() -> None:
    old = issue("old-secret", "alice", 600, 1_700_000_000)
    new = issue("new-secret", "alice", 600, 1_700_000_000)
    secrets = ["new-secret", "old-secret"]
    assert verify(secrets, old.username, old.password, 1_700_000_100).user == "alice"
    assert verify(secrets, new.username, new.password, 1_700_000_100).user == "alice"
    with pytest.raises(WrongPasswordError):
        verify(["new-secret"], old.username, old.password, 1_700_000_100)


def test_candidate_passwords_follow_secret_order() -> None:
    username = "1700000600:alice"
    candidates = candidate_passwords(["a", b"b"], username, 1_700_000_000)
    assert candidates == (rest_password("a", username), rest_password("b", username))
    assert candidate_passwords([], username, 1_700_000_000) == ()


def test_candidate_passwords_check_expiry() -> None:
    with pytest.raises(ExpiredCredentialError):
        candidate_passwords(["a"], "1700000600:alice", 1_700_000_600)


def test_wrong_password_and_no_secret() -> None:
    username = "1700000600:alice"
    with pytest.raises(WrongPasswordError):
        verify(["a"], username, "not-it", 1_700_000_000)
    with pytest.raises(WrongPasswordError):
        verify([], username, rest_password("a", username), 1_700_000_000)


def test_check_user() -> None:
    assert check_user("alice.b-c_d@example+1") == "alice.b-c_d@example+1"
    for bad in ("", "a" * 65, "alice:x", "al ice", "é", "a/b"):
        with pytest.raises(ValueError):
            check_user(bad)
    with pytest.raises(ValueError):
        check_user("a-b", separator="-")
