"""What a TURN server's error answer means: a `Diagnosis` with a stable cause id.

`explain_error` covers the codes of RFC 8489/8656; a 401 that answers a request carrying
MESSAGE-INTEGRITY means "credentials refused", and `explain_rejected_credentials` then says why
as far as can be told from here, reusing the credentials check's analysis (REST username
shape, expiry by this machine's and the server's clock, password recomputed from --secret).
"""

from __future__ import annotations

from dataclasses import dataclass

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckOptions
from rtccheck.checks.credentials import Subject, expiry_result, password_result, username_result
from rtccheck.diagnosis import Diagnosis
from rtccheck.explain.username_shape import Shape, analyse_username
from rtccheck.results import CheckResult, Status
from rtccheck.timefmt import human_duration

#: below this validity left, a rejected credential may be expired by a skewed server clock
CLOCK_SUSPECT_S = 900

_ERRORS: dict[int, tuple[CauseId, str, str]] = {
    300: (
        CauseId.TRY_ALTERNATE,
        "The server redirects clients to another server (300 Try Alternate): it is "
        "overloaded or draining.",
        "Point clients at the ALTERNATE-SERVER it names, or stop the redirect on the server.",
    ),
    400: (
        CauseId.BAD_REQUEST,
        "The server found the request malformed (400 Bad Request).",
        "Look at the server's log for the reason; report it if the server misreads valid requests.",
    ),
    403: (
        CauseId.FORBIDDEN,
        "The server refuses this client or request (403 Forbidden): a denied client address, "
        "a disabled user, or a peer address its policy forbids.",
        "Check the server's allow/deny rules for clients and peers (turn-relay "
        "peer_policy, coturn denied-peer-ip/allowed-peer-ip) and the user's status.",
    ),
    420: (
        CauseId.UNKNOWN_ATTRIBUTE,
        "The server does not understand an attribute it must understand (420 Unknown "
        "Attribute): it implements an older or partial TURN.",
        "Upgrade the server to one that implements RFC 8656.",
    ),
    437: (
        CauseId.ALLOCATION_MISMATCH,
        "The server already has an allocation for this client address and port, or none "
        "for a refresh (437 Allocation Mismatch): an earlier allocation from the same "
        "5-tuple was not deleted, or a NAT reused the port.",
        "Retry from another local port or after the old allocation expires; clients should "
        "delete allocations with Refresh lifetime 0.",
    ),
    438: (
        CauseId.STALE_NONCE,
        "The server called a brand-new nonce stale again (438 Stale Nonce twice): its nonce "
        "lifetime is shorter than a round trip, its clock jumps, or several servers behind "
        "one address do not share nonce keys.",
        "Lengthen the nonce lifetime, sync the clocks, or make all servers behind the address "
        "share their nonce secret (stickiness per client helps too).",
    ),
    440: (
        CauseId.ADDRESS_FAMILY_NOT_SUPPORTED,
        "The server cannot relay the requested address family (440).",
        "Give the server a relay address of that family, or ask for IPv4.",
    ),
    441: (
        CauseId.WRONG_CREDENTIALS,
        "The request carried other credentials than those that created the allocation (441 "
        "Wrong Credentials).",
        "Use one username/password for all requests of an allocation.",
    ),
    442: (
        CauseId.UNSUPPORTED_TRANSPORT,
        "The server refuses to relay UDP (442 Unsupported Transport Protocol), the "
        "transport WebRTC needs.",
        "Enable UDP relaying on the server (coturn: remove no-udp-relay).",
    ),
    486: (
        CauseId.ALLOCATION_QUOTA_REACHED,
        "This user (or the server as a whole) has reached its allocation quota (486): old "
        "allocations are still alive because clients do not delete them, or the quota is "
        "too low.",
        "Raise the quota (turn-relay --max-allocations-per-user, coturn user-quota/"
        "total-quota) and make clients delete allocations when a call ends.",
    ),
    500: (
        CauseId.SERVER_ERROR,
        "The server hit an internal error (500).",
        "Look at the server's log for this request.",
    ),
    508: (
        CauseId.INSUFFICIENT_CAPACITY,
        "The server has no relay ports (or memory) left (508 Insufficient Capacity): its "
        "relay port range is exhausted.",
        "Widen the relay port range (turn-relay --port-range, coturn min-port/max-port), "
        "lower allocation lifetimes, or add servers.",
    ),
}


@dataclass(frozen=True)
class Rejected:
    """A 401 to a signed request, and what is known to explain it."""

    username: str
    credential: str | None
    realm: str | None
    target: str


def explain_error(code: int, detail: str, method: str) -> Diagnosis:
    """Any error code except the 401 cases (see `explain_unauthorized`)."""
    cause_id, cause, fix = _ERRORS.get(
        code,
        (
            CauseId.ERROR_RESPONSE,
            f"The server answered {detail}.",
            "Look at the server's log for this request.",
        ),
    )
    return Diagnosis(cause_id, f"{method} answered {detail}", cause, fix)


def explain_unauthorized(realm: str | None, have_credentials: bool) -> Diagnosis:
    """A 401 to the first (unsigned) request that could not be answered with credentials."""
    if not have_credentials:
        where = f" (realm {realm!r})" if realm else ""
        return Diagnosis(
            CauseId.NO_CREDENTIALS,
            f"the server asks for credentials{where}, none were given",
            "TURN servers allocate relays only for authenticated clients.",
            "Pass --username/--credential, --secret (mint REST credentials) or --credentials-url.",
        )
    return Diagnosis(
        CauseId.BAD_CHALLENGE,
        "the 401 challenge lacks REALM or NONCE (or a realm the password cannot be used with)",
        "The server's challenge cannot be answered: RFC 8489 requires REALM and NONCE in it.",
        "Check the server's realm setting; report a server bug if REALM/NONCE are missing.",
    )


def explain_rejected_credentials(
    rejected: Rejected, options: CheckOptions, now: float
) -> Diagnosis:
    """Why a signed request got 401: the credentials check's failure (same cause id), or what
    can be told from here when that check finds nothing wrong."""
    subject = Subject(rejected.username, rejected.credential, rejected.target)
    shape = analyse_username(rejected.username, options.separator)
    username = username_result(subject, shape, options)
    if username.status is Status.FAIL:
        return _from_result(username)
    if shape.shape is Shape.REST and shape.expiry is not None:
        expiry = expiry_result(subject, shape.expiry, now, options.server_clock)
        if expiry.status is Status.FAIL:
            return _from_result(expiry)
    password = password_result(subject, shape, options.secret)
    if password is not None and password.status is Status.FAIL:
        return _from_result(password)
    if password is not None and password.status is Status.PASS:
        return _wrong_secret(shape.expiry, now, rejected.realm)
    return _refused(shape.shape, shape.expiry, now, rejected.realm)


def _from_result(failed: CheckResult) -> Diagnosis:
    """A failed credentials-check result as the reason for a 401."""
    return Diagnosis(
        CauseId(failed.cause_id) if failed.cause_id else CauseId.CREDENTIALS_REJECTED,
        f"credentials refused (401): {failed.summary}",
        failed.cause or "The server refused the credentials.",
        failed.fix or "Mint fresh credentials with the server's secret.",
    )


def _clock_hint(expiry: int | None, now: float) -> str:
    if expiry is None:
        return ""
    left = expiry - now
    if left > CLOCK_SUSPECT_S:
        return ""
    return (
        f" It expires in {human_duration(left)} by this machine's clock, so a server clock "
        "that far ahead would also refuse it (clock skew): pass --server-date to compare."
    )


def _wrong_secret(expiry: int | None, now: float, realm: str | None) -> Diagnosis:
    hint = _clock_hint(expiry, now)
    cause_id = CauseId.CLOCK_SKEW_OR_WRONG_SECRET if hint else CauseId.WRONG_SECRET
    return Diagnosis(
        cause_id,
        "credentials refused (401) although the password matches --secret",
        "The password is right for the secret given here and the username has not expired "
        "by this machine's clock, so the server uses another secret (or rotated it)"
        f"{'' if realm is None else f' in realm {realm!r}'}." + hint,
        "Use the server's current secret (coturn static-auth-secret, turn-relay "
        "rest_secrets_file) where credentials are minted; during rotation give the server "
        "both secrets.",
    )


def _refused(shape: Shape, expiry: int | None, now: float, realm: str | None) -> Diagnosis:
    in_realm = "" if realm is None else f" in realm {realm!r}"
    if shape is Shape.STATIC:
        cause = (
            f"The server does not accept this username/password{in_realm}: unknown user or "
            "wrong password (or the server expects TURN REST usernames '<expiry>:<user>')."
        )
        fix = "Check the user and password configured on the server, or use REST credentials."
    else:
        cause = (
            f"The password is wrong for this REST username{in_realm}: it was computed with "
            "another secret than the server's, or for another username string."
            + _clock_hint(expiry, now)
        )
        fix = "Give --secret to recompute the password here, and mint with the server's secret."
    return Diagnosis(CauseId.CREDENTIALS_REJECTED, "credentials refused (401)", cause, fix)
