"""Where the servers to check come from, and their credentials.

Sources, combined in this order: URIs on the command line (with ``--username/--credential``), an
RTCConfiguration-shaped JSON file (``{"iceServers": [...]}``), and a turn-relay style credential
service (``--credentials-url``). ``--secret`` mints TURN REST credentials locally for every TURN
server that has none. Bad usage raises InputError (exit 2); a credential service that fails is a
finding, reported as a failed ``inputs.credentials-url`` result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rtccheck.causes import CauseId
from rtccheck.credential_service import CredentialServiceError, ServerClock, fetch_ice_servers
from rtccheck.results import CheckResult, Status, TargetInfo
from rtccheck.uri import IceServer, UriError, parse_uri
from turn_relay.auth.credentials import issue

__all__ = [
    "IceServer",
    "InputError",
    "InputSpec",
    "Inputs",
    "ServerClock",
    "gather_inputs",
    "load_ice_config",
    "servers_from_ice_servers",
    "target_info",
]


class InputError(ValueError):
    """Unusable input: a bad URI, an unreadable or malformed config file, conflicting options."""


@dataclass(frozen=True)
class InputSpec:
    uris: tuple[str, ...] = ()
    username: str | None = None
    credential: str | None = None
    secret: str | None = None
    rest_user: str = "rtccheck"
    rest_ttl: int = 600
    separator: str = ":"
    ice_config: Path | None = None
    credentials_url: str | None = None
    api_key: str | None = None

    @property
    def has_sources(self) -> bool:
        return bool(self.uris or self.ice_config or self.credentials_url)


#: RTCConfiguration's iceTransportPolicy values (W3C WebRTC, RTCIceTransportPolicy)
ICE_TRANSPORT_POLICIES = ("all", "relay")


@dataclass(frozen=True)
class Inputs:
    servers: tuple[IceServer, ...]
    findings: tuple[CheckResult, ...] = ()
    server_clock: ServerClock | None = None
    #: the app's iceTransportPolicy (from --ice-config; "all" when not given)
    ice_transport_policy: str = "all"


async def gather_inputs(spec: InputSpec, clock: Callable[[], float], timeout: float) -> Inputs:
    """All servers to check, with credentials filled in as the options say."""
    servers = [_with_cli_credentials(parse_cli_uri(uri), spec) for uri in spec.uris]
    findings: list[CheckResult] = []
    policy = "all"
    if spec.ice_config is not None:
        configured, policy = read_rtc_configuration(spec.ice_config)
        servers += configured
        findings.append(config_limits(str(spec.ice_config), configured, policy))
    server_clock = None
    if spec.credentials_url is not None:
        check_service_url(spec.credentials_url)
        try:
            fetched = await fetch_ice_servers(spec.credentials_url, spec.api_key, timeout, clock)
        except CredentialServiceError as error:
            findings.append(_service_failed(spec.credentials_url, error))
        else:
            servers += servers_from_ice_servers(fetched.entries, spec.credentials_url)
            server_clock = fetched.clock
            findings.append(_service_answered(spec.credentials_url, fetched.entries, fetched.rtt_s))
    if spec.secret is not None:
        servers = [_minted(server, spec, clock()) for server in servers]
    return Inputs(tuple(servers), tuple(findings), server_clock, policy)


def parse_cli_uri(text: str) -> IceServer:
    try:
        return parse_uri(text)
    except UriError as error:
        raise InputError(str(error)) from None


def check_service_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"--credentials-url {url!r} must be an http:// or https:// URL")


def _with_cli_credentials(server: IceServer, spec: InputSpec) -> IceServer:
    if not server.is_turn or (spec.username is None and spec.credential is None):
        return server
    return server.with_credentials(spec.username, spec.credential)


def _minted(server: IceServer, spec: InputSpec, now: float) -> IceServer:
    if not server.is_turn or server.username is not None or spec.secret is None:
        return server
    minted = issue(spec.secret, spec.rest_user, spec.rest_ttl, now, spec.separator)
    return server.with_credentials(minted.username, minted.password)


def load_ice_config(path: Path) -> list[IceServer]:
    """Servers from an RTCConfiguration JSON file, validated as RTCPeerConnection would."""
    return read_rtc_configuration(path)[0]


def read_rtc_configuration(path: Path) -> tuple[list[IceServer], str]:
    """The servers and the iceTransportPolicy of an RTCConfiguration JSON file."""
    document = _read_json(path)
    if isinstance(document, dict) and "iceServers" in document:
        entries = document["iceServers"]
    elif isinstance(document, list):
        entries = document
    else:
        raise InputError(
            f'--ice-config {path}: expected an RTCConfiguration object {{"iceServers": [...]}}'
        )
    policy = _transport_policy(document, path)
    return servers_from_ice_servers(entries, str(path)), policy


def _transport_policy(document: object, path: Path) -> str:
    if not isinstance(document, dict):
        return "all"
    policy = document.get("iceTransportPolicy", "all")
    if policy not in ICE_TRANSPORT_POLICIES:
        raise InputError(
            f"--ice-config {path}: iceTransportPolicy {policy!r} is not one of "
            f"{', '.join(repr(p) for p in ICE_TRANSPORT_POLICIES)} (RTCPeerConnection rejects "
            "it with a TypeError)"
        )
    return str(policy)


def _read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"--ice-config {path}: cannot read it ({error.strerror})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"--ice-config {path}: not JSON "
            f"(line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    return document


def config_limits(origin: str, servers: Sequence[IceServer], policy: str) -> CheckResult:
    """What an app with this RTCConfiguration cannot do, as a browser would use it."""
    turn = [server for server in servers if server.is_turn]
    if policy == "relay" and not turn:
        return CheckResult(
            check="inputs.ice-config",
            target=origin,
            status=Status.FAIL,
            summary='iceTransportPolicy "relay" without any turn:/turns: URL: the app can '
            "never connect",
            cause_id=CauseId.RELAY_POLICY_WITHOUT_TURN,
            cause='With "relay" the browser gathers relay candidates only, and only TURN '
            "servers give them; this configuration has none, so ICE always fails.",
            fix='Add the TURN servers (turn:/turns: URLs with credentials), or use "all".',
            details={"ice_transport_policy": policy, "cannot": ["connect at all"]},
        )
    cannot = _cannot(servers, policy)
    summary = f'iceTransportPolicy "{policy}"' + (
        f"; it cannot: {'; '.join(cannot)}" if cannot else "; no limits found"
    )
    return CheckResult(
        check="inputs.ice-config",
        target=origin,
        status=Status.PASS,
        summary=summary,
        details={"ice_transport_policy": policy, "cannot": list(cannot)},
    )


def _cannot(servers: Sequence[IceServer], policy: str) -> list[str]:
    turn = [server for server in servers if server.is_turn]
    cannot: list[str] = []
    if policy == "relay":
        cannot.append("connect directly (host and srflx candidates are never used)")
        if any(not server.is_turn for server in servers):
            cannot.append("use its stun:/stuns: servers (relay only never asks them)")
    if not turn:
        cannot.append(
            "relay (no turn:/turns: URL): peers behind symmetric NATs or UDP-blocking "
            "firewalls cannot connect"
        )
        return cannot
    if all(server.transport == "udp" and not server.secure for server in turn):
        cannot.append("reach a relay where UDP is blocked (no turn:?transport=tcp or turns: URL)")
    if not any(server.scheme == "turns" for server in turn):
        cannot.append("get through networks that allow only TLS (no turns: URL)")
    return cannot


def servers_from_ice_servers(entries: object, origin: str) -> list[IceServer]:
    """Validate a list of RTCIceServer dictionaries and expand each of their URLs."""
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise InputError(f"{origin}: iceServers must be a list of RTCIceServer objects")
    servers: list[IceServer] = []
    for index, entry in enumerate(entries):
        servers += _servers_of_entry(entry, f"{origin} iceServers[{index}]")
    return servers


def _servers_of_entry(entry: object, where: str) -> list[IceServer]:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object with 'urls', got {type(entry).__name__}")
    if "urls" not in entry:
        hint = " ('url' is the old name: rename it to 'urls')" if "url" in entry else ""
        raise InputError(f"{where}: missing 'urls'{hint}")
    urls = _url_list(entry["urls"], where)
    username = _optional_text(entry, "username", where)
    credential = _optional_text(entry, "credential", where)
    credential_type = entry.get("credentialType", "password")
    if credential_type != "password":
        raise InputError(
            f"{where}: credentialType {credential_type!r} is not supported (only 'password')"
        )
    servers = [_entry_server(url, where, username, credential) for url in urls]
    if any(server.is_turn for server in servers) and (username is None or credential is None):
        raise InputError(
            f"{where}: a turn:/turns: URL needs both 'username' and 'credential' "
            "(RTCPeerConnection rejects this entry with InvalidAccessError)"
        )
    return servers


def _url_list(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(url, str) for url in value):
        return list(value)
    raise InputError(f"{where}: 'urls' must be a string or a non-empty list of strings")


def _optional_text(entry: dict[str, object], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None or isinstance(value, str):
        return value
    raise InputError(f"{where}: '{key}' must be a string")


def _entry_server(url: str, where: str, username: str | None, credential: str | None) -> IceServer:
    try:
        server = parse_uri(url, source=where)
    except UriError as error:
        raise InputError(f"{where}: {error}") from None
    return server.with_credentials(username, credential) if server.is_turn else server


def _service_failed(url: str, error: CredentialServiceError) -> CheckResult:
    return CheckResult(
        check="inputs.credentials-url",
        target=url,
        status=Status.FAIL,
        summary=f"could not get credentials: {error.summary}",
        cause_id=CauseId.CREDENTIALS_URL_FAILED,
        cause=error.cause,
        fix=error.fix,
        capabilities=("credentials",),
    )


def _service_answered(url: str, entries: Sequence[object], rtt_s: float) -> CheckResult:
    return CheckResult(
        check="inputs.credentials-url",
        target=url,
        status=Status.PASS,
        summary=f"credential service answered with {len(entries)} RTCIceServer entr"
        + ("y" if len(entries) == 1 else "ies"),
        metrics={"rtt_ms": round(rtt_s * 1000, 1), "entries": len(entries)},
    )


def target_info(server: IceServer) -> TargetInfo:
    return TargetInfo(
        uri=server.uri,
        scheme=server.scheme,
        host=server.host,
        port=server.port,
        transport=server.transport,
        secure=server.secure,
        username=server.username,
        has_credential=server.credential is not None,
        source=server.source,
    )
