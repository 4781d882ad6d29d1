"""``turn-relay import-coturn``: a coturn ``turnserver.conf`` as an equivalent relay config.

The file's syntax (coturn's own description): one option a line, ``name=value``, ``name value``
or a bare ``name`` for a flag; ``#`` starts a comment line; values may be quoted; options are
coturn's long command-line names without the dashes. Every option read ends up in one of three
places: a key of the new TOML document, `Conversion.already` (turn-relay does that anyway,
e.g. ``no-loopback-peers``), or `Conversion.unmapped` with the reason, which the command prints
one per line. Secrets never go into the document: `Conversion.rest_secrets` and
`Conversion.static_users` are written to their own files, which the document names.

Pure: text in, a `Conversion` out; the command reads and writes the files.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TRUE = {"", "1", "true", "yes", "on"}
_LOOPBACK = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True, slots=True)
class Option:
    line: int
    name: str
    value: str  # "" for a bare flag

    def where(self) -> str:
        return f"line {self.line}: {self.name}"


@dataclass(frozen=True, slots=True)
class Unmapped:
    option: Option
    reason: str

    def __str__(self) -> str:
        """``line 12: log-file=/var/log/turn.log: not mapped: why`` (secrets left out)."""
        option = self.option
        value = f"={option.value}" if option.value and not _secret(option) else ""
        where = f"line {option.line}: " if option.line else ""
        return f"{where}{option.name}{value}: not mapped: {self.reason}"


@dataclass(slots=True)
class Conversion:
    document: dict[str, dict[str, Any]] = field(default_factory=dict)
    rest_secrets: list[str] = field(default_factory=list)
    static_users: list[tuple[str, str]] = field(default_factory=list)
    already: list[Option] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)

    def put(self, section: str, key: str, value: Any) -> None:
        self.document.setdefault(section, {})[key] = value

    def get(self, section: str, key: str) -> Any:
        return self.document.get(section, {}).get(key)

    def append(self, section: str, key: str, values: list[str]) -> None:
        current = self.document.setdefault(section, {}).setdefault(key, [])
        current.extend(v for v in values if v not in current)

    def skip(self, option: Option, reason: str) -> None:
        self.unmapped.append(Unmapped(option, reason))


def _secret(option: Option) -> bool:
    return option.name in {"static-auth-secret", "user", "cli-password", "pkey-pwd"}


def parse_options(text: str) -> list[Option]:
    """The options of a turnserver.conf, in file order."""
    options = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" in line:
            name, _, value = line.partition("=")
        else:
            name, _, value = line.partition(" ")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        options.append(Option(number, name.strip().lstrip("-"), value))
    return options


# ---------------------------------------------------------------- options with no equivalent

_NO_EQUIVALENT = {
    "listening-device": "binding to a device is not supported: name listen.addresses",
    "relay-device": "binding to a device is not supported: name relay.addresses",
    "no-auth": "turn-relay always authenticates (REST secrets or static users)",
    "server-name": "no separate server name; server.public_host names the host in TURN URLs",
    "pkey-pwd": "encrypted keys are not supported: decrypt the key (openssl pkey)",
    "cipher-list": "the cipher list is Python's default (TLS 1.2+, strong ciphers only)",
    "dh-file": "ECDHE only: no DH parameters",
    "ec-curve-name": "the curves are OpenSSL's defaults",
    "verbose": "verbosity is a flag: turn-relay serve --log-level info|debug",
    "Verbose": "verbosity is a flag: turn-relay serve --log-level debug",
    "log-file": "turn-relay logs to stderr (the journal under systemd)",
    "syslog": "turn-relay logs to stderr (the journal under systemd)",
    "no-stdout-log": "turn-relay logs to stderr (the journal under systemd)",
    "simple-log": "turn-relay logs to stderr (the journal under systemd)",
    "new-log-timestamp": "turn-relay logs to stderr (the journal under systemd)",
    "new-log-timestamp-format": "turn-relay logs to stderr (the journal under systemd)",
    "syslog-facility": "turn-relay logs to stderr (the journal under systemd)",
    "log-binding": "turn-relay logs to stderr (the journal under systemd)",
    "cli-ip": "no telnet CLI: use the HTTP API ([api])",
    "cli-port": "no telnet CLI: use the HTTP API ([api])",
    "cli-password": "no telnet CLI: use the HTTP API ([api]) with its own key",
    "cli-max-output-sessions": "no telnet CLI: use the HTTP API ([api])",
    "web-admin": "no web admin: use the HTTP API ([api])",
    "web-admin-ip": "no web admin: use the HTTP API ([api])",
    "web-admin-port": "no web admin: use the HTTP API ([api])",
    "web-admin-listen-on-workers": "no web admin: use the HTTP API ([api])",
    "prometheus": "metrics are served at /metrics on the HTTP API: enable [api] and [metrics]",
    "prometheus-port": "metrics are served at /metrics on the HTTP API port ([api] port)",
    "pidfile": "no pid file: the service manager tracks the process",
    "proc-user": "no privilege drop: run it as a user (packaging/systemd/turn-relay.service)",
    "proc-group": "no privilege drop: run it as a user (packaging/systemd/turn-relay.service)",
    "relay-threads": "processes, not threads: server.workers",
    "udp-self-balance": "processes share the ports with SO_REUSEPORT: server.workers",
    "aux-server": "no auxiliary servers",
    "alternate-server": "no ALTERNATE-SERVER redirection",
    "tls-alternate-server": "no ALTERNATE-SERVER redirection",
    "alt-listening-port": "RFC 5780 lives in stun-server (--alternate)",
    "alt-tls-listening-port": "RFC 5780 lives in stun-server (--alternate)",
    "tcp-proxy-port": "no PROXY-protocol listener",
    "userdb": "no user database: auth.users_file or REST secrets",
    "psql-userdb": "no user database: auth.users_file or REST secrets",
    "mysql-userdb": "no user database: auth.users_file or REST secrets",
    "mongo-userdb": "no user database: auth.users_file or REST secrets",
    "redis-userdb": "no user database: auth.users_file or REST secrets",
    "redis-statsdb": "no statistics database: /metrics on the HTTP API",
    "secret-key-file": "no user database, so no key to encrypt it",
    "oauth": "no OAuth (RFC 7635) third-party authorization",
    "mobility": "no ICE mobility (RFC 8016)",
    "check-origin-consistency": "no ORIGIN attribute checks",
    "secure-stun": "Binding requests are answered without authentication",
    "keep-address-family": "the family of the relayed address follows REQUESTED-ADDRESS-FAMILY",
    "allocation-default-address-family": "the default relayed family is the client's (IPv4)",
    "stun-only": "run stun-server for STUN only",
    "no-stun": "Binding requests are always answered",
    "no-software-attribute": "no switch for SOFTWARE",
    "no-rfc5780": "RFC 5780 lives in stun-server; turn-relay never answers it",
    "no-stun-backward-compatibility": "RFC 3489 clients get RFC 8489 answers; no switch",
    "response-origin-only-with-rfc5780": "turn-relay sends no RESPONSE-ORIGIN",
    "server-relay": "no server-relay mode",
    "acme-redirect": "no HTTP listener on the TURN ports",
    "max-allocate-timeout": "allocation time-outs are not configurable",
    "no-udp-relay": "UDP relaying is TURN's data path; it cannot be turned off",
    "no-tcp-relay": "turn-relay has no TCP relaying (RFC 6062) to turn off",
    "ne": "no network engine choice",
}

_ALREADY = {
    "no-loopback-peers": "loopback peers are denied unless allowed_peers re-opens them",
    "no-multicast-peers": "multicast peers are denied by default",
    "fingerprint": "answers carry FINGERPRINT when the request does (RFC 8489)",
    "no-dtls": "turn-relay has no DTLS",
    "no-cli": "turn-relay has no telnet CLI",
    "no-tlsv1": "TLS 1.0 is refused",
    "no-tlsv1_1": "TLS 1.1 is refused",
    "lt-cred-mech": "long-term credentials are the only mechanism",
}


# ---------------------------------------------------------------- the conversion


def _integer(conversion: Conversion, option: Option, low: int = 0) -> int | None:
    try:
        number = int(option.value)
    except ValueError:
        conversion.skip(option, f"{option.value!r} is not a whole number")
        return None
    if number < low:
        conversion.skip(option, f"{number} is below {low}")
        return None
    return number


def _address(conversion: Conversion, option: Option, text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        conversion.skip(option, f"{text!r} is not an IP address")
        return None


def _networks(conversion: Conversion, option: Option) -> list[str]:
    """``a.b.c.d``, ``a.b.c.d-e.f.g.h`` (coturn's ranges) or a CIDR, as CIDRs."""
    text = option.value
    try:
        if "-" in text:
            first, _, last = text.partition("-")
            low, high = ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
            return [str(n) for n in ipaddress.summarize_address_range(low, high)]
        return [str(ipaddress.ip_network(text, strict=False))]
    except (ValueError, TypeError):
        conversion.skip(option, f"{text!r} is neither an address, a range a-b nor a CIDR")
        return []


def _flag_set(option: Option) -> bool:
    return option.value.lower() in _TRUE


class _Importer:
    def __init__(self, options: list[Option]) -> None:
        self.options = options
        self.out = Conversion()
        self.by_name: dict[str, list[Option]] = {}
        for option in options:
            self.by_name.setdefault(option.name, []).append(option)

    def last(self, name: str) -> Option | None:
        found = self.by_name.get(name)
        return found[-1] if found else None

    def run(self) -> Conversion:
        handlers: dict[str, Callable[[Option], None]] = {
            "realm": lambda o: self.out.put("server", "realm", o.value),
            "listening-port": self.listening_port,
            "tls-listening-port": self.tls_listening_port,
            "listening-ip": self.listening_ip,
            "relay-ip": self.relay_ip,
            "external-ip": lambda o: None,  # after the addresses: see external_ips
            "min-port": lambda o: self.port_bound(o, "min"),
            "max-port": lambda o: self.port_bound(o, "max"),
            "cert": lambda o: self.out.put("listen", "tls_cert_file", o.value),
            "pkey": lambda o: self.out.put("listen", "tls_key_file", o.value),
            "no-udp": lambda o: self.transport_off(o, "udp_port"),
            "no-tcp": lambda o: self.transport_off(o, "tcp_port"),
            "no-tls": lambda o: self.transport_off(o, "tls_port"),
            "use-auth-secret": lambda o: None,  # read with static-auth-secret
            "static-auth-secret": self.static_auth_secret,
            "user": self.user,
            "total-quota": lambda o: self.integer_key(o, "quotas", "max_allocations"),
            "user-quota": lambda o: self.integer_key(o, "quotas", "max_allocations_per_user"),
            "max-bps": lambda o: self.integer_key(o, "quotas", "max_bandwidth_per_allocation"),
            "denied-peer-ip": lambda o: self.peers(o, "denied_peers"),
            "allowed-peer-ip": lambda o: self.peers(o, "allowed_peers"),
            "allow-loopback-peers": self.allow_loopback,
            "stale-nonce": self.stale_nonce,
            "max-allocate-lifetime": lambda o: self.integer_key(o, "allocation", "max_lifetime", 1),
            "channel-lifetime": lambda o: self.integer_key(o, "allocation", "channel_lifetime", 1),
            "permission-lifetime": lambda o: self.integer_key(
                o, "allocation", "permission_lifetime", 1
            ),
        }
        for option in self.options:
            if option.name in handlers:
                handlers[option.name](option)
            elif option.name in _ALREADY:
                self.out.already.append(option)
            elif option.name in _NO_EQUIVALENT:
                self.out.skip(option, _NO_EQUIVALENT[option.name])
            else:
                self.out.skip(option, "not a coturn option turn-relay knows")
        self.finish_listen()
        self.external_ips()
        self.finish_tls()
        return self.out

    # ------------------------------------------------------------ listen and relay

    def listening_port(self, option: Option) -> None:
        port = _integer(self.out, option, 1)
        if port is not None:
            self.out.put("listen", "udp_port", port)
            self.out.put("listen", "tcp_port", port)

    def tls_listening_port(self, option: Option) -> None:
        port = _integer(self.out, option, 1)
        if port is not None:
            self.out.put("listen", "tls_port", port)

    def listening_ip(self, option: Option) -> None:
        address = _address(self.out, option, option.value)
        if address is not None:
            self.out.append("listen", "addresses", [address])

    def relay_ip(self, option: Option) -> None:
        address = _address(self.out, option, option.value)
        if address is None:
            return
        chosen = self.out.get("relay", "addresses") or []
        family = ipaddress.ip_address(address).version
        taken = [a for a in chosen if ipaddress.ip_address(a).version == family]
        if taken:
            self.out.skip(option, f"one relay address per family; {taken[0]} is kept")
            return
        self.out.append("relay", "addresses", [address])

    def port_bound(self, option: Option, bound: str) -> None:
        port = _integer(self.out, option, 1)
        if port is not None:
            self.out.document.setdefault("relay", {}).setdefault("port_range", {})[bound] = port

    def transport_off(self, option: Option, key: str) -> None:
        if _flag_set(option):
            self.out.put("listen", key, 0)

    def finish_listen(self) -> None:
        """coturn listens on every address when no listening-ip is given."""
        if self.out.get("listen", "addresses"):
            return
        relays = self.out.get("relay", "addresses") or []
        if not relays:
            self.out.skip(
                Option(0, "listening-ip", ""),
                "(not set) coturn listens on every address and relays from the client's: name"
                " them in listen.addresses and relay.addresses (until then: 127.0.0.1)",
            )
            return
        families = {ipaddress.ip_address(a).version for a in relays}
        wildcards = [w for v, w in ((4, "0.0.0.0"), (6, "::")) if v in families]
        self.out.put("listen", "addresses", wildcards)

    def external_ips(self) -> None:
        """``public`` (every relay address of its family) or ``public/private``."""
        for option in self.by_name.get("external-ip", []):
            public_text, _, private_text = option.value.partition("/")
            public = _address(self.out, option, public_text)
            if public is None:
                continue
            local = self.local_for(option, public, private_text)
            if local is None:
                continue
            relays = self.out.get("relay", "addresses")
            if relays is None:
                self.out.put("relay", "addresses", [local])
            elif local not in relays:
                self.out.skip(option, f"{local} is not a relay-ip")
                continue
            self.out.document.setdefault("relay", {}).setdefault("external", {})[local] = public

    def local_for(self, option: Option, public: str, private_text: str) -> str | None:
        version = ipaddress.ip_address(public).version
        if private_text:
            local = _address(self.out, option, private_text)
            if local is not None and ipaddress.ip_address(local).version != version:
                self.out.skip(option, f"{public} and {local} are not one address family")
                return None
            return local
        candidates = self.out.get("relay", "addresses") or self.out.get("listen", "addresses")
        concrete = [
            a
            for a in candidates or []
            if ipaddress.ip_address(a).version == version
            and not ipaddress.ip_address(a).is_unspecified
        ]
        if not concrete:
            self.out.skip(option, "no relay-ip or listening-ip of its family to map it from")
            return None
        return str(concrete[0])

    def finish_tls(self) -> None:
        """coturn serves TLS (on 5349 unless told) when it has a certificate and key."""
        listen = self.out.document.get("listen", {})
        has_pair = "tls_cert_file" in listen and "tls_key_file" in listen
        if listen.get("tls_port") == 0:
            listen.pop("tls_cert_file", None)
            listen.pop("tls_key_file", None)
            return
        if has_pair:
            listen.setdefault("tls_port", 5349)
            return
        option = self.last("tls-listening-port") or self.last("cert") or self.last("pkey")
        if option is not None:
            self.out.skip(option, "TLS needs both cert and pkey; TLS stays off")
        for key in ("tls_port", "tls_cert_file", "tls_key_file"):
            listen.pop(key, None)

    # ------------------------------------------------------------ credentials and limits

    def static_auth_secret(self, option: Option) -> None:
        if self.last("use-auth-secret") is None:
            self.out.skip(option, "coturn ignores it without use-auth-secret")
            return
        if not option.value:
            self.out.skip(option, "empty secret")
            return
        self.out.rest_secrets.append(option.value)

    def user(self, option: Option) -> None:
        name, sep, password = option.value.partition(":")
        if not (sep and name and password):
            self.out.skip(option, "expected user=name:password")
        elif password.startswith("0x"):
            self.out.skip(option, f"{name}: a coturn key (0x...), not a password: set one")
        else:
            self.out.static_users.append((name, password))

    def integer_key(self, option: Option, section: str, key: str, low: int = 0) -> None:
        number = _integer(self.out, option, low)
        if number is not None:
            self.out.put(section, key, number)

    def peers(self, option: Option, key: str) -> None:
        networks = _networks(self.out, option)
        if networks:
            self.out.append("peer_policy", key, networks)

    def allow_loopback(self, option: Option) -> None:
        if _flag_set(option):
            self.out.append("peer_policy", "allowed_peers", list(_LOOPBACK))

    def stale_nonce(self, option: Option) -> None:
        if not option.value:
            self.out.put("auth", "nonce_lifetime", 600)  # coturn's default for a bare flag
            return
        number = _integer(self.out, option, 0)
        if number == 0:
            self.out.skip(option, "nonces always expire (auth.nonce_lifetime, default 600 s)")
        elif number is not None:
            self.out.put("auth", "nonce_lifetime", number)


def convert(text: str) -> Conversion:
    """The relay config equivalent to the turnserver.conf ``text`` (no file names yet)."""
    return _Importer(parse_options(text)).run()


def point_at_secret_files(
    conversion: Conversion, rest_secrets: Path | None, users: Path | None
) -> None:
    """Name the files the secrets are written to in the document."""
    if rest_secrets is not None:
        conversion.put("auth", "rest_secrets_file", str(rest_secrets))
    if users is not None:
        conversion.put("auth", "users_file", str(users))
