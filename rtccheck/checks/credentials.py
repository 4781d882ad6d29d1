"""Explain TURN credentials: decode REST usernames, check expiry, recompute passwords.

For each username the TURN servers will be sent, says whether it is a TURN REST username
("<expiry>:<user>") and catches the usual mistakes: user and expiry reversed, a wrong
separator, milliseconds instead of seconds. Tells how long the credential stays valid by this
machine's clock and, when known, by the server's (the Date header of --credentials-url, or
--server-date). An expiry further ahead than --max-ttl (24 h by default) warns: the issuer's
clock is ahead, or it mints with an oversized TTL; with a known server clock it says which.
With --secret it recomputes the password and says whether it matches.

\b
Examples:
  rtccheck credentials --username 1700000000:alice
  rtccheck credentials --username alice:1700000000 --credential 'uEKl...' --secret-file s.txt
  rtccheck credentials --credentials-url https://turn.example.com/api/credentials
"""

from __future__ import annotations

from dataclasses import dataclass

from rtccheck.causes import CauseId
from rtccheck.checks.base import DEFAULT_MAX_TTL_S, CheckContext, CheckOptions
from rtccheck.credential_service import ServerClock
from rtccheck.explain.password_diagnosis import diagnose_mismatch, password_matches
from rtccheck.explain.username_shape import Shape, UsernameShape, analyse_username
from rtccheck.results import CheckResult, Metrics, Status
from rtccheck.timefmt import human_duration, utc_text
from rtccheck.uri import IceServer

CAPABILITY = ("credentials",)
#: a credential expiring sooner than this cannot carry a call started now
SHORT_VALIDITY_S = 300
#: clock differences below this are measurement noise (HTTP dates have 1 s resolution)
CLOCK_SKEW_WARN_S = 30


@dataclass(frozen=True)
class Subject:
    """One username (and credential) and the servers it is sent to."""

    username: str
    credential: str | None
    target: str


async def run(ctx: CheckContext) -> list[CheckResult]:
    results = [_missing(server) for server in ctx.targets if _lacks_credentials(server)]
    for subject in subjects(ctx):
        results += explain(subject, ctx)
    if ctx.options.server_clock is not None:
        results.append(clock_result(ctx.options.server_clock))
    if not results:
        results.append(
            CheckResult(
                check="credentials",
                target="-",
                status=Status.SKIP,
                summary="no TURN credentials to explain (STUN needs none)",
            )
        )
    return results


def _lacks_credentials(server: IceServer) -> bool:
    return server.is_turn and (server.username is None or server.credential is None)


def subjects(ctx: CheckContext) -> list[Subject]:
    """Distinct (username, credential) pairs with the servers using them, in input order."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for server in ctx.targets:
        if server.is_turn and server.username is not None:
            groups.setdefault((server.username, server.credential), []).append(server.uri)
    if not groups and ctx.options.username is not None:
        groups[(ctx.options.username, ctx.options.credential)] = ["--username"]
    return [Subject(user, cred, ", ".join(uris)) for (user, cred), uris in groups.items()]


def explain(subject: Subject, ctx: CheckContext) -> list[CheckResult]:
    shape = analyse_username(subject.username, ctx.options.separator)
    results = [username_result(subject, shape, ctx.options)]
    if shape.shape is Shape.REST and shape.expiry is not None:
        results.append(
            expiry_result(
                subject, shape.expiry, ctx.now(), ctx.options.server_clock, ctx.options.max_ttl_s
            )
        )
    password = password_result(subject, shape, ctx.options.secret)
    if password is not None:
        results.append(password)
    return results


def _missing(server: IceServer) -> CheckResult:
    return CheckResult(
        check="credentials.present",
        target=server.uri,
        status=Status.FAIL,
        summary="no username/credential for this TURN server",
        cause_id=CauseId.NO_CREDENTIALS,
        cause="TURN servers allocate relays only for authenticated clients "
        "(long-term credentials).",
        fix="Pass --username and --credential, --secret (to mint REST credentials) "
        "or --credentials-url.",
        capabilities=CAPABILITY,
    )


def username_result(subject: Subject, shape: UsernameShape, options: CheckOptions) -> CheckResult:
    explainer = _USERNAME_EXPLAINERS[shape.shape]
    return explainer(subject, shape, options.separator, options.secret is not None)


def _rest_username(subject: Subject, shape: UsernameShape, sep: str, _: bool) -> CheckResult:
    assert shape.expiry is not None
    user = f"user {shape.user!r}" if shape.user else "no user part"
    return _username(
        subject,
        Status.PASS,
        f"TURN REST username: expiry {shape.expiry} ({utc_text(shape.expiry)}), {user}",
        metrics={"expires_at": shape.expiry, "user": shape.user or None},
    )


def _milliseconds(subject: Subject, shape: UsernameShape, sep: str, _: bool) -> CheckResult:
    assert shape.expiry is not None
    seconds = shape.expiry // 1000
    return _username(
        subject,
        Status.WARN,
        f"expiry {shape.expiry} is in milliseconds ({utc_text(seconds)} if divided by 1000)",
        metrics={"expires_at": shape.expiry},
        cause_id=CauseId.USERNAME_MILLISECONDS,
        cause="The REST scheme counts seconds; read as seconds this expiry is thousands of years "
        "away, so the credential never expires.",
        fix="Divide by 1000 when minting (in JavaScript: Math.floor(Date.now() / 1000) + ttl).",
    )


def _wrong_separator(subject: Subject, shape: UsernameShape, sep: str, _: bool) -> CheckResult:
    found = shape.separator_found
    return _username(
        subject,
        Status.FAIL,
        f"expiry and user are separated by {found!r} instead of {sep!r}",
        cause_id=CauseId.USERNAME_MALFORMED,
        cause=f"The server splits REST usernames at {sep!r} to read the expiry; in "
        f"{subject.username!r} it finds no {sep!r}, so it cannot read the expiry and answers "
        "401 Unauthorized.",
        fix=f"Mint usernames as '<expiry>{sep}<user>', or if the server is configured with "
        f"{found!r} as separator, run rtccheck with --separator {found!r}.",
    )


def _reversed(subject: Subject, shape: UsernameShape, sep: str, _: bool) -> CheckResult:
    good = f"{shape.expiry}{sep}{shape.user}"
    found = shape.separator_found
    also = "" if found == sep else f", and uses {found!r} instead of {sep!r}"
    return _username(
        subject,
        Status.FAIL,
        f"user and expiry are reversed (expiry must come first){also}",
        cause_id=CauseId.USERNAME_MALFORMED,
        cause=f"The REST scheme puts the expiry first; the server reads {shape.user!r} where "
        "it expects a Unix time, finds no number and answers 401 Unauthorized.",
        fix=f"Build the username as {good!r} (expiry first) and compute the password over "
        "that exact string.",
    )


def _static(subject: Subject, shape: UsernameShape, sep: str, has_secret: bool) -> CheckResult:
    if has_secret:
        return _username(
            subject,
            Status.WARN,
            "static username: not a TURN REST username, so the REST secret does not apply",
            cause_id=CauseId.USERNAME_NOT_REST,
            cause="A --secret was given, but the username carries no expiry; a server using "
            "REST authentication only accepts it if it also knows it as a static user.",
            fix=f"Use a REST username '<expiry>{sep}<user>' or configure the user on the server.",
        )
    return _username(
        subject, Status.PASS, "static (long-term) username: no expiry to check", metrics={}
    )


_USERNAME_EXPLAINERS = {
    Shape.REST: _rest_username,
    Shape.REST_MILLISECONDS: _milliseconds,
    Shape.WRONG_SEPARATOR: _wrong_separator,
    Shape.REVERSED: _reversed,
    Shape.REVERSED_WRONG_SEPARATOR: _reversed,
    Shape.STATIC: _static,
}


def _username(
    subject: Subject,
    status: Status,
    summary: str,
    *,
    metrics: Metrics | None = None,
    cause_id: CauseId | None = None,
    cause: str | None = None,
    fix: str | None = None,
) -> CheckResult:
    return CheckResult(
        check="credentials.username",
        target=subject.target,
        status=status,
        summary=summary,
        metrics=metrics or {},
        cause_id=cause_id,
        cause=cause,
        fix=fix,
        details={"username": subject.username},
        capabilities=CAPABILITY,
    )


def expiry_result(
    subject: Subject,
    expiry: int,
    now: float,
    server_clock: ServerClock | None,
    max_ttl_s: int = DEFAULT_MAX_TTL_S,
) -> CheckResult:
    """How long the credential stays valid, by this machine's clock and the server's."""
    local_left = expiry - now
    metrics: Metrics = {
        "expires_at": expiry,
        "seconds_left": round(local_left, 1),
    }
    if server_clock is None:
        left = local_left
    else:
        left = local_left - server_clock.offset_s
        metrics["server_seconds_left"] = round(left, 1)
        metrics["server_clock_offset_s"] = round(server_clock.offset_s, 1)
        if (local_left > 0) != (left > 0):
            return _clocks_disagree(subject, local_left, server_clock, metrics)
    if max(local_left, left) > max_ttl_s:
        return _beyond_max_ttl(
            subject, expiry, local_left, clock=server_clock, max_ttl_s=max_ttl_s, metrics=metrics
        )
    return _expiry(subject, expiry, left, metrics)


def _beyond_max_ttl(
    subject: Subject,
    expiry: int,
    local_left: float,
    *,
    clock: ServerClock | None,
    max_ttl_s: int,
    metrics: Metrics,
) -> CheckResult:
    """An expiry further ahead than any call needs: the issuer's clock, or its TTL."""
    metrics["max_ttl_s"] = max_ttl_s
    limit = f"--max-ttl {human_duration(max_ttl_s)}"
    summary = f"expires {human_duration(local_left)} ahead (at {utc_text(expiry)}), beyond {limit}"
    if clock is None:
        cause = (
            f"The expiry lies further ahead than {limit}. Two causes give that: the issuer's "
            "clock is ahead of the real time (clock skew), or it mints credentials with an "
            "oversized TTL. Either way a leaked credential works that long."
        )
        fix = (
            "Compare the issuer's clock with this machine's (give --server-date, or use "
            "--credentials-url, whose Date header tells it); if the clocks agree, lower the "
            "TTL it mints with to hours."
        )
        return _expiry_finding(
            subject, Status.WARN, summary, metrics, cause_id=CauseId.CREDENTIAL_LONG_LIVED,
            cause=cause, fix=fix,
        )  # fmt: skip
    return _ttl_or_skew(
        subject, summary, local_left=local_left, clock=clock, max_ttl_s=max_ttl_s, metrics=metrics
    )


def _ttl_or_skew(
    subject: Subject,
    summary: str,
    *,
    local_left: float,
    clock: ServerClock,
    max_ttl_s: int,
    metrics: Metrics,
) -> CheckResult:
    offset = clock.offset_s
    issuer_ttl = local_left - offset
    metrics["issuer_clock_offset_s"] = round(offset, 1)
    metrics["issuer_ttl_s"] = round(issuer_ttl, 1)
    skew = f"{human_duration(offset)} {'ahead of' if offset > 0 else 'behind'} this machine's"
    summary += f"; issuer clock {skew}"
    if issuer_ttl <= max_ttl_s:
        cause = (
            f"The issuer's clock is {skew} (from the {clock.source}): by its own clock it minted "
            f"a TTL of {human_duration(issuer_ttl)}, which is sane. Clock skew is the cause, not "
            "an oversized TTL; a TURN server with the right time accepts the credential for "
            f"{human_duration(local_left)}."
        )
        fix = "Synchronise the issuer's clock (NTP: chrony, systemd-timesyncd)."
    else:
        cause = (
            f"Even by the issuer's own clock ({skew}, from the {clock.source}) the credential "
            f"is valid for {human_duration(issuer_ttl)}: the TTL it mints with is oversized, "
            "not (only) its clock. A leaked credential works that long."
        )
        fix = "Lower the TTL the issuer mints with to hours (a day at most)."
    return _expiry_finding(
        subject, Status.WARN, summary, metrics, cause_id=CauseId.CREDENTIAL_LONG_LIVED,
        cause=cause, fix=fix,
    )  # fmt: skip


def _expiry(subject: Subject, expiry: int, left: float, metrics: Metrics) -> CheckResult:
    until = utc_text(expiry)
    if left <= 0:
        return _expiry_finding(
            subject,
            Status.FAIL,
            f"expired {human_duration(left)} ago (at {until})",
            metrics,
            cause_id=CauseId.CREDENTIAL_EXPIRED,
            cause="REST credentials are valid until the expiry in their username; "
            "the server rejects this one with 401 Unauthorized.",
            fix="Mint a fresh credential shortly before connecting (do not cache it past its "
            "ttl) and check that the issuer's clock is right.",
        )
    if left < SHORT_VALIDITY_S:
        return _expiry_finding(
            subject,
            Status.WARN,
            f"expires in {human_duration(left)} (at {until})",
            metrics,
            cause_id=CauseId.CREDENTIAL_EXPIRES_SOON,
            cause="A call started now loses its relay at the first refresh after the expiry "
            "(turnkit refuses refreshes with expired credentials).",
            fix="Mint credentials with a ttl that covers a whole call (an hour or more).",
        )
    return _expiry_finding(
        subject, Status.PASS, f"valid for another {human_duration(left)} (until {until})", metrics
    )


def _clocks_disagree(
    subject: Subject,
    local_left: float,
    clock: ServerClock,
    metrics: Metrics,
) -> CheckResult:
    skew = f"{human_duration(clock.offset_s)} {'ahead of' if clock.offset_s > 0 else 'behind'}"
    if local_left > 0:
        return _expiry_finding(
            subject,
            Status.FAIL,
            f"valid by this machine's clock, but expired by the server's ({skew} ours)",
            metrics,
            cause_id=CauseId.CLOCK_SKEW,
            cause=f"The server's clock is {skew} this machine's (from the {clock.source}), so "
            "it already sees the credential as expired and answers 401 Unauthorized.",
            fix="Synchronise the clocks of the TURN server and the credential issuer (NTP).",
        )
    return _expiry_finding(
        subject,
        Status.WARN,
        f"expired by this machine's clock, but still valid by the server's ({skew} ours)",
        metrics,
        cause_id=CauseId.CLOCK_SKEW,
        cause=f"This machine's clock differs from the server's by {human_duration(clock.offset_s)} "
        f"(from the {clock.source}); the server still accepts the credential.",
        fix="Synchronise this machine's clock (NTP) before trusting expiry checks.",
    )


def _expiry_finding(
    subject: Subject,
    status: Status,
    summary: str,
    metrics: Metrics,
    *,
    cause_id: CauseId | None = None,
    cause: str | None = None,
    fix: str | None = None,
) -> CheckResult:
    return CheckResult(
        check="credentials.expiry",
        target=subject.target,
        status=status,
        summary=summary,
        metrics=metrics,
        cause_id=cause_id,
        cause=cause,
        fix=fix,
        capabilities=CAPABILITY,
    )


def password_result(
    subject: Subject, shape: UsernameShape, secret: str | None
) -> CheckResult | None:
    """Recompute the REST password; None when it is no REST credential or nothing to compare."""
    if shape.shape is Shape.STATIC:
        return None
    if secret is None:
        return _password(subject, Status.SKIP, "no --secret given: cannot recompute the password")
    if subject.credential is None:
        return _password(subject, Status.SKIP, "no credential given to compare with the secret")
    if password_matches(secret, subject.username, subject.credential):
        return _password(subject, Status.PASS, "password = base64(HMAC-SHA1(secret, username))")
    cause, fix = diagnose_mismatch(secret, subject.username, subject.credential)
    return _password(
        subject,
        Status.FAIL,
        "password does not match the secret",
        cause_id=CauseId.WRONG_PASSWORD,
        cause=cause,
        fix=fix,
    )


def _password(
    subject: Subject,
    status: Status,
    summary: str,
    *,
    cause_id: CauseId | None = None,
    cause: str | None = None,
    fix: str | None = None,
) -> CheckResult:
    return CheckResult(
        check="credentials.password",
        target=subject.target,
        status=status,
        summary=summary,
        cause_id=cause_id,
        cause=cause,
        fix=fix,
        capabilities=CAPABILITY if status is not Status.SKIP else (),
    )


def clock_result(clock: ServerClock) -> CheckResult:
    """How far the server's clock is from ours, as far as the source tells."""
    offset = clock.offset_s
    metrics: Metrics = {"offset_s": round(offset, 1)}
    direction = "ahead of" if offset > 0 else "behind"
    if abs(offset) < CLOCK_SKEW_WARN_S:
        summary = f"server clock within {human_duration(offset)} of this machine's"
        return _clock(Status.PASS, summary, clock, metrics)
    return _clock(
        Status.WARN,
        f"server clock is {human_duration(offset)} {direction} this machine's",
        clock,
        metrics,
        cause_id=CauseId.CLOCK_SKEW,
        cause="REST credentials carry an absolute expiry, so skewed clocks make fresh "
        "credentials look expired (or expired ones valid).",
        fix="Run NTP (chrony, systemd-timesyncd) on the TURN servers, the credential issuer "
        "and clients you control.",
    )


def _clock(
    status: Status,
    summary: str,
    clock: ServerClock,
    metrics: Metrics,
    *,
    cause_id: CauseId | None = None,
    cause: str | None = None,
    fix: str | None = None,
) -> CheckResult:
    return CheckResult(
        check="credentials.clock",
        target=clock.source,
        status=status,
        summary=summary,
        metrics=metrics,
        cause_id=cause_id,
        cause=cause,
        fix=fix,
    )
