"""The credentials check: username shapes, expiry by both clocks, password recomputation."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from rtccheck.checks import credentials
from rtccheck.checks.base import CheckContext, CheckOptions
from rtccheck.credential_service import ServerClock
from rtccheck.explain.password_diagnosis import GENERIC_CAUSE, diagnose_mismatch
from rtccheck.explain.username_shape import Shape, analyse_username
from rtccheck.results import CheckResult, Status
from rtccheck.uri import parse_uri
from turn_relay.auth.credentials import rest_password

NOW = 1_700_000_000.0


def context(
    username: str | None = None,
    credential: str | None = None,
    *,
    uris: tuple[str, ...] = (),
    secret: str | None = None,
    separator: str = ":",
    server_offset: float | None = None,
) -> CheckContext:
    targets = tuple(parse_uri(uri).with_credentials(username, credential) for uri in uris)
    clock = None if server_offset is None else ServerClock(server_offset, "Date header from test")
    options = CheckOptions(
        secret=secret,
        separator=separator,
        username=username,
        credential=credential,
        server_clock=clock,
    )
    return CheckContext(targets=targets, timeout=1.0, now=lambda: NOW, options=options)


async def run(ctx: CheckContext) -> dict[str, CheckResult]:
    results = await credentials.run(ctx)
    by_check = {result.check: result for result in results}
    assert len(by_check) == len(results), "one result per check name for one subject"
    return by_check


# --- username shapes -------------------------------------------------------------------------

SHAPES = [
    # username, separator, shape, expiry, user, separator found
    ("1700003600:alice", ":", Shape.REST, 1700003600, "alice", ":"),
    ("1700003600", ":", Shape.REST, 1700003600, "", ":"),
    ("1700003600:alice:extra", ":", Shape.REST, 1700003600, "alice:extra", ":"),
    ("1700003600-alice", "-", Shape.REST, 1700003600, "alice", "-"),
    ("1700003600000:alice", ":", Shape.REST_MILLISECONDS, 1700003600000, "alice", ":"),
    ("1700003600-alice", ":", Shape.WRONG_SEPARATOR, 1700003600, "alice", "-"),
    ("1700003600_alice", ":", Shape.WRONG_SEPARATOR, 1700003600, "alice", "_"),
    ("1700003600:alice", "-", Shape.WRONG_SEPARATOR, 1700003600, "alice", ":"),
    ("alice:1700003600", ":", Shape.REVERSED, 1700003600, "alice", ":"),
    ("alice-1700003600", ":", Shape.REVERSED_WRONG_SEPARATOR, 1700003600, "alice", "-"),
    ("alice@example.com:1700003600", ":", Shape.REVERSED, 1700003600, "alice@example.com", ":"),
    ("alice", ":", Shape.STATIC, None, "alice", None),
    ("alice:bob", ":", Shape.STATIC, None, "alice:bob", None),
    ("12345-alice", ":", Shape.STATIC, None, "12345-alice", None),
    (":1700003600", ":", Shape.STATIC, None, ":1700003600", None),
]


@pytest.mark.parametrize(("username", "sep", "shape", "expiry", "user", "found"), SHAPES)
def test_username_shapes(
    username: str, sep: str, shape: Shape, expiry: int | None, user: str, found: str | None
) -> None:
    got = analyse_username(username, sep)
    assert (got.shape, got.expiry, got.user, got.separator_found) == (shape, expiry, user, found)


@pytest.mark.asyncio
async def test_rest_username_valid_for_an_hour() -> None:
    results = await run(context("1700003600:alice"))
    username = results["credentials.username"]
    assert username.status is Status.PASS
    assert "expiry 1700003600 (2023-11-14 23:13:20 UTC), user 'alice'" in username.summary
    expiry = results["credentials.expiry"]
    assert expiry.status is Status.PASS
    assert expiry.summary == "valid for another 1 h (until 2023-11-14 23:13:20 UTC)"
    assert expiry.metrics == {"expires_at": 1700003600, "seconds_left": 3600.0}
    assert results["credentials.password"].status is Status.SKIP
    assert username.target == "--username"


@pytest.mark.asyncio
async def test_expired_username() -> None:
    results = await run(context("1699992000:alice"))
    expiry = results["credentials.expiry"]
    assert expiry.status is Status.FAIL
    assert expiry.summary == "expired 2 h 13 min ago (at 2023-11-14 20:00:00 UTC)"
    assert expiry.cause is not None and "401 Unauthorized" in expiry.cause
    assert expiry.fix is not None and "fresh credential" in expiry.fix
    assert expiry.capabilities == ("credentials",)


@pytest.mark.asyncio
async def test_expiring_soon_warns() -> None:
    expiry = (await run(context("1700000042:alice")))["credentials.expiry"]
    assert expiry.status is Status.WARN
    assert expiry.summary.startswith("expires in 42 s")


@pytest.mark.asyncio
async def test_very_long_validity_warns() -> None:
    expiry = (await run(context(f"{int(NOW) + 400 * 86400}:alice")))["credentials.expiry"]
    assert expiry.status is Status.WARN
    assert expiry.summary == (
        "expires 400 d ahead (at 2024-12-18 22:13:20 UTC), beyond --max-ttl 1 d"
    )
    assert expiry.cause_id == "credential-long-lived"


@pytest.mark.asyncio
async def test_milliseconds_expiry() -> None:
    results = await run(context("1700003600000:alice"))
    username = results["credentials.username"]
    assert username.status is Status.WARN
    assert "in milliseconds (2023-11-14 23:13:20 UTC if divided by 1000)" in username.summary
    assert username.fix is not None and "Divide by 1000" in username.fix
    assert "credentials.expiry" not in results


@pytest.mark.asyncio
async def test_reversed_username() -> None:
    username = (await run(context("alice:1700003600")))["credentials.username"]
    assert username.status is Status.FAIL
    assert username.summary == "user and expiry are reversed (expiry must come first)"
    assert (
        username.cause is not None
        and "reads 'alice' where it expects a Unix time" in username.cause
    )
    assert username.fix is not None and "'1700003600:alice'" in username.fix


@pytest.mark.asyncio
async def test_reversed_with_wrong_separator() -> None:
    username = (await run(context("alice-1700000000")))["credentials.username"]
    assert username.status is Status.FAIL
    assert "reversed (expiry must come first), and uses '-' instead of ':'" in username.summary
    assert username.fix is not None and "'1700000000:alice'" in username.fix


@pytest.mark.asyncio
async def test_wrong_separator() -> None:
    results = await run(context("1700000000_alice"))
    username = results["credentials.username"]
    assert username.status is Status.FAIL
    assert username.summary == "expiry and user are separated by '_' instead of ':'"
    assert username.fix is not None and "--separator '_'" in username.fix
    assert "credentials.expiry" not in results


@pytest.mark.asyncio
async def test_static_username() -> None:
    results = await run(context("alice", "password"))
    assert results["credentials.username"].status is Status.PASS
    assert results["credentials.username"].summary.startswith("static (long-term) username")
    assert set(results) == {"credentials.username"}


@pytest.mark.asyncio
async def test_static_username_with_a_secret_warns() -> None:
    results = await run(context("alice", "password", secret="s"))
    assert results["credentials.username"].status is Status.WARN
    assert "credentials.password" not in results


# --- the server's clock ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_server_clock_ahead_makes_a_fresh_credential_expired() -> None:
    results = await run(context("1700000060:alice", server_offset=120.0))
    expiry = results["credentials.expiry"]
    assert expiry.status is Status.FAIL
    assert expiry.summary == (
        "valid by this machine's clock, but expired by the server's (2 min ahead of ours)"
    )
    assert expiry.cause is not None and "Date header from test" in expiry.cause
    assert expiry.metrics["server_seconds_left"] == -60.0
    clock = results["credentials.clock"]
    assert clock.status is Status.WARN
    assert clock.summary == "server clock is 2 min ahead of this machine's"


@pytest.mark.asyncio
async def test_server_clock_behind_keeps_an_expired_credential_valid() -> None:
    expiry = (await run(context("1699999940:alice", server_offset=-300.0)))["credentials.expiry"]
    assert expiry.status is Status.WARN
    assert expiry.summary.startswith("expired by this machine's clock, but still valid")


@pytest.mark.asyncio
async def test_server_clock_in_step() -> None:
    results = await run(context("1700003600:alice", server_offset=1.0))
    assert results["credentials.clock"].status is Status.PASS
    assert results["credentials.expiry"].metrics["server_seconds_left"] == 3599.0


# --- passwords -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_password_matches_known_answer() -> None:
    # the scheme's known answer from the architecture notes
    results = await run(context("1256900400", "uEKlpcME7MNMMVRV8rUFPCTIFEs=", secret="crypt1c"))
    password = results["credentials.password"]
    assert password.status is Status.PASS
    assert password.summary == "password = base64(HMAC-SHA1(secret, username))"


@pytest.mark.asyncio
async def test_password_mismatch() -> None:
    password = (await run(context("1700003600:alice", "wrong", secret="s")))["credentials.password"]
    assert password.status is Status.FAIL
    assert password.cause == GENERIC_CAUSE


@pytest.mark.asyncio
async def test_password_without_credential_is_skipped() -> None:
    password = (await run(context("1700003600:alice", secret="s")))["credentials.password"]
    assert password.status is Status.SKIP


def sha1(secret: str, username: str) -> bytes:
    return hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()


USERNAME = "1700003600:alice"
MISTAKES = [
    (sha1("s", USERNAME).hex(), "s", "hex"),
    (
        base64.b64encode(hmac.new(b"s", USERNAME.encode(), hashlib.sha256).digest()).decode(),
        "s",
        "HMAC-SHA256",
    ),
    (base64.urlsafe_b64encode(sha1("s?>", USERNAME)).decode(), "s?>", "URL-safe base64"),
    (rest_password("s", USERNAME).rstrip("="), "s", "padding"),
    (rest_password("s", USERNAME), " s\n", "surrounding whitespace"),
    (rest_password("s\n", USERNAME), "s", "newline at the end of the secret"),
]


@pytest.mark.parametrize(("credential", "secret", "phrase"), MISTAKES)
def test_password_mistakes_are_recognised(credential: str, secret: str, phrase: str) -> None:
    cause, fix = diagnose_mismatch(secret, USERNAME, credential)
    assert phrase in cause
    assert fix


# --- which usernames are explained -----------------------------------------------------------


@pytest.mark.asyncio
async def test_one_explanation_per_distinct_credential_naming_its_servers() -> None:
    ctx = context(
        "1700003600:alice",
        "p",
        uris=("stun:192.0.2.1", "turn:192.0.2.1", "turns:192.0.2.1:443"),
    )
    results = await credentials.run(ctx)
    assert [r.check for r in results] == [
        "credentials.username",
        "credentials.expiry",
        "credentials.password",
    ]
    assert results[0].target == "turn:192.0.2.1, turns:192.0.2.1:443"


@pytest.mark.asyncio
async def test_turn_server_without_credentials_fails() -> None:
    results = await credentials.run(context(uris=("turn:192.0.2.1",)))
    (missing,) = results
    assert missing.check == "credentials.present" and missing.status is Status.FAIL
    assert missing.fix is not None and "--secret" in missing.fix


@pytest.mark.asyncio
async def test_nothing_to_explain_is_a_skip() -> None:
    (result,) = await credentials.run(context(uris=("stun:192.0.2.1",)))
    assert result.status is Status.SKIP
