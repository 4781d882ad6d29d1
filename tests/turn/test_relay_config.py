"""Relay config: the example loads; every bad value names its key; secrets load and reload."""

from __future__ import annotations

import copy
import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from turn_relay.config import (
    DEFAULT_LISTEN_ADDRESSES,
    DEFAULT_PORT_RANGE,
    DEFAULT_REALM,
    ConfigError,
    RelayConfig,
    ServerConfig,
    TurnConfig,
    ice_urls,
    load,
    load_rest_secrets,
    load_secrets,
    loads,
    parse,
)
from turn_relay.config.wiring import settings_from_config

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "turn_relay.example.toml"

SECRET_HINT = "; secrets never go in this file: name a file or an environment variable instead"

MINIMAL: dict[str, Any] = {
    "server": {"realm": "turn.example.com"},
    "relay": {"addresses": ["192.0.2.5"]},
}


def with_value(path: str, value: object) -> dict[str, Any]:
    """MINIMAL with ``path`` (dotted) set to ``value``."""
    data = copy.deepcopy(MINIMAL)
    *tables, key = path.split(".")
    node = data
    for table in tables:
        node = node.setdefault(table, {})
    node[key] = value
    return data


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(data)
    return str(caught.value)


def test_example_file_loads() -> None:
    config = load(EXAMPLE)
    assert config.server.realm == "turn.example.com"
    assert config.relay.addresses == ("10.0.0.5", "2001:db8:1::5")
    assert config.relay.advertised("10.0.0.5") == "203.0.113.10"
    assert config.relay.advertised("2001:db8:1::5") == "2001:db8:1::5"
    assert (config.relay.port_min, config.relay.port_max) == (49152, 65535)
    assert config.listen.tls_port == 5349
    assert config.api.enabled
    assert config.auth.rest_secrets_file == Path("/etc/turnkit/rest-secrets")
    assert ice_urls(config) == (
        "turn:turn.example.com:3478?transport=udp",
        "turn:turn.example.com:3478?transport=tcp",
        "turns:turn.example.com:5349?transport=tcp",
    )


def _leaf_keys(table: dict[str, Any], prefix: str = "") -> list[tuple[str, object]]:
    leaves: list[tuple[str, object]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            leaves += _leaf_keys(value, f"{prefix}{key}.")
        else:
            leaves.append((f"{prefix}{key}", value))
    return leaves


@pytest.mark.parametrize("section", ["check", "rendezvous", "fleet"])
def test_example_sections_show_the_defaults_and_name_every_key(section: str) -> None:
    """The example's [check], [rendezvous] and [fleet] hold every key of their dataclass, set to its
    default or commented out (the keys that turn the feature on, and those without one)."""
    loaded = getattr(load(EXAMPLE), section)
    assert loaded == type(loaded)(), f"[{section}] in the example differs from the defaults"
    text = EXAMPLE.read_text()
    body = text.split(f"\n[{section}]", 1)[1].split("\n[", 1)[0]
    named = re.findall(r"^#? ?([a-z_]+) = ", body, flags=re.MULTILINE)
    assert sorted(named) == sorted(f.name for f in dataclasses.fields(loaded))
    shown = tomllib.loads(text)[section]
    assert {k: getattr(loaded, k) for k in shown} == shown


def test_example_holds_no_secret() -> None:
    document = tomllib.loads(EXAMPLE.read_text())
    for key, value in _leaf_keys(document):
        if any(word in key for word in ("secret", "password", "api_key")):
            assert key.endswith(("_file", "_env")) or isinstance(value, bool), key


def test_defaults() -> None:
    config = parse(MINIMAL)
    assert isinstance(config, TurnConfig)
    assert (config.allocation.default_lifetime, config.allocation.max_lifetime) == (600, 3600)
    assert config.allocation.permission_lifetime == 300
    assert config.allocation.channel_lifetime == 600
    assert config.auth.nonce_lifetime == 600.0
    assert config.auth.separator == ":"
    assert config.auth.strict_expiry is True
    assert config.quotas.max_bandwidth_per_allocation == 0
    assert config.allocation.rfc5766_channels is False
    assert not config.api.enabled
    assert [(x.transport, x.address, x.port) for x in config.listen.listeners()] == [
        ("udp", "127.0.0.1", 3478),
        ("tcp", "127.0.0.1", 3478),
    ]
    assert ice_urls(config) == (
        "turn:127.0.0.1:3478?transport=udp",
        "turn:127.0.0.1:3478?transport=tcp",
    )


def test_an_empty_file_is_the_dataclass_defaults() -> None:
    """Every key has a default, the same one the dataclasses (and `serve --help`) show."""
    config = loads("")
    assert config == TurnConfig(server=ServerConfig(), relay=RelayConfig(("127.0.0.1",)))
    assert config.server.realm == DEFAULT_REALM == "turnkit"
    assert config.listen.addresses == DEFAULT_LISTEN_ADDRESSES == ("127.0.0.1",)
    assert (config.relay.port_min, config.relay.port_max) == DEFAULT_PORT_RANGE


def test_relay_addresses_default_to_the_listen_addresses() -> None:
    config = parse({"listen": {"addresses": ["127.0.0.1", "::1", "127.0.0.2"]}})
    assert config.relay.addresses == ("127.0.0.1", "::1")  # the first of each family
    assert error_of({"listen": {"addresses": ["0.0.0.0", "::1"]}}) == (
        "relay.addresses: required when listen.addresses has 0.0.0.0: name the concrete local"
        " address(es) relay sockets bind to (--relay-address)"
    )
    wild = {"listen": {"addresses": ["0.0.0.0"]}, "relay": {"addresses": ["192.0.2.5"]}}
    assert parse(wild).relay.addresses == ("192.0.2.5",)


def test_rfc5766_channels_key_reaches_the_core_settings() -> None:
    config = parse(with_value("allocation.rfc5766_channels", True))
    assert config.allocation.rfc5766_channels
    assert settings_from_config(config).max_channel == 0x7FFF
    assert settings_from_config(parse(MINIMAL)).max_channel == 0x4FFF


def test_config_is_frozen() -> None:
    config = parse(MINIMAL)
    with pytest.raises(AttributeError):
        config.server.realm = "other"  # type: ignore[misc]


def test_own_addresses_include_advertised() -> None:
    config = parse(with_value("relay.external", {"192.0.2.5": "198.51.100.5"}))
    assert config.relay.own_addresses() == ("192.0.2.5", "198.51.100.5")


def test_ipv6_public_host_is_bracketed() -> None:
    config = parse(with_value("server.public_host", "2001:db8::1"))
    assert ice_urls(config)[0] == "turn:[2001:db8::1]:3478?transport=udp"


def test_explicit_urls_win() -> None:
    data = with_value("api.urls", ["turn:a.example:3478"])
    data["server"]["public_host"] = "b.example"
    assert ice_urls(parse(data)) == ("turn:a.example:3478",)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("server.realm", "", "server.realm: is empty (omit it for the default 'turnkit')"),
        ("server.realm", 5, "server.realm: expected a string, got 5"),
        (
            "server.realm",
            'a"b',
            "server.realm: 'a\"b' must be under 128 printable characters, no quotes",
        ),
        ("server.workers", -1, "server.workers: -1 is out of range (0-256)"),
        ("server.workers", True, "server.workers: expected an integer, got True"),
        ("server.colour", "blue", "server.colour: unknown key"),
        ("listen.addresses", [], "listen.addresses: needs at least one address"),
        (
            "listen.addresses",
            ["0.0.0.0", "localhost"],
            "listen.addresses: 'localhost' is not an IP address",
        ),
        ("listen.udp_port", 70000, "listen.udp_port: 70000 is out of range (0-65535)"),
        ("listen.tls_port", 5349, "listen.tls_cert_file: required when listen.tls_port is not 0"),
        (
            "listen.addresses",
            "0.0.0.0",
            "listen.addresses: expected a list of strings, got '0.0.0.0'",
        ),
        (
            "relay.addresses",
            [],
            "relay.addresses: needs at least one address (or omit the key)",
        ),
        (
            "relay.addresses",
            ["192.0.2.5", "192.0.2.6"],
            "relay.addresses: 192.0.2.5 and 192.0.2.6 are both IPv4; one per family",
        ),
        (
            "relay.addresses",
            ["0.0.0.0"],
            "relay.addresses: 0.0.0.0 is unspecified;"
            " bind a concrete address or map it in relay.external",
        ),
        (
            "relay.port_range",
            {"min": 50000, "max": 49999},
            "relay.port_range: min 50000 > max 49999",
        ),
        (
            "relay.port_range",
            {"min": 0, "max": 49999},
            "relay.port_range.min: 0 is out of range (1-65535)",
        ),
        ("relay.port_range", {"low": 1}, "relay.port_range.low: unknown key"),
        (
            "relay.port_range",
            {"min": 3000, "max": 4000},
            "relay.port_range: 3000-4000 includes listener port 3478",
        ),
        ("relay.port_range", "1-2", "relay.port_range: expected a table, got '1-2'"),
        (
            "relay.external",
            {"192.0.2.9": "198.51.100.1"},
            "relay.external: 192.0.2.9 is not one of relay.addresses",
        ),
        (
            "relay.external",
            {"192.0.2.5": "2001:db8::1"},
            'relay.external."192.0.2.5": 2001:db8::1 is not the family of 192.0.2.5',
        ),
        (
            "relay.external",
            {"192.0.2.5": "nat"},
            "relay.external.\"192.0.2.5\": 'nat' is not an IP address",
        ),
        (
            "allocation.default_lifetime",
            4000,
            "allocation.default_lifetime: 4000 > allocation.max_lifetime 3600",
        ),
        (
            "allocation.permission_lifetime",
            0,
            "allocation.permission_lifetime: 0 is out of range (at least 1)",
        ),
        (
            "quotas.max_allocations_per_user",
            -1,
            "quotas.max_allocations_per_user: -1 is out of range (at least 0)",
        ),
        (
            "quotas.max_bandwidth_per_allocation",
            1.5,
            "quotas.max_bandwidth_per_allocation: expected an integer, got 1.5",
        ),
        (
            "auth.rest_secret",
            "hunter2",
            "auth.rest_secret: unknown key" + SECRET_HINT,
        ),
        ("auth.separator", "", "auth.separator: '' must be one printable non-digit character"),
        ("auth.separator", "7", "auth.separator: '7' must be one printable non-digit character"),
        ("auth.strict_expiry", "yes", "auth.strict_expiry: expected true or false, got 'yes'"),
        ("auth.nonce_lifetime", 0, "auth.nonce_lifetime: 0 must be greater than 0"),
        (
            "auth.rest_secrets_env",
            "1BAD",
            "auth.rest_secrets_env: '1BAD' is not an environment variable name",
        ),
        ("auth.rest_secrets_file", "", "auth.rest_secrets_file: is empty"),
        (
            "auth.unauthorized_limit",
            {"burst": 0},
            "auth.unauthorized_limit.burst: 0 is out of range (at least 1)",
        ),
        (
            "auth.unauthorized_limit",
            {"per_second": -1},
            "auth.unauthorized_limit.per_second: -1 must be greater than 0",
        ),
        (
            "auth.challenge_budget",
            {"proven_burst": 0},
            "auth.challenge_budget.proven_burst: 0 is out of range (at least 1)",
        ),
        (
            "auth.challenge_budget",
            {"total_rate": float("inf")},
            "auth.challenge_budget.total_rate: inf is not a finite number",
        ),
        (
            "auth.challenge_budget",
            {"unproven_rate": float("nan")},
            "auth.challenge_budget.unproven_rate: nan is not a finite number",
        ),
        ("auth.nonce_lifetime", float("nan"), "auth.nonce_lifetime: nan is not a finite number"),
        (
            "auth.challenge_budget",
            {"proof_lifetime": -5.0},
            "auth.challenge_budget.proof_lifetime: -5.0 must be greater than 0",
        ),
        (
            "peer_policy.allowed_peers",
            ["10.0.0.0/8", "10.0.0.1/8"],
            "peer_policy.allowed_peers[1]: '10.0.0.1/8': 10.0.0.1/8 has host bits set",
        ),
        (
            "peer_policy.denied_peers",
            ["bogus"],
            "peer_policy.denied_peers[0]: 'bogus':"
            " 'bogus' does not appear to be an IPv4 or IPv6 network",
        ),
        ("api.listen", "anywhere", "api.listen: 'anywhere' is not an IP address"),
        ("api.port", 0, "api.port: 0 is out of range (1-65535)"),
        (
            "api.enabled",
            True,
            "api.api_key_file: set api_key_file or api_key_env when api.enabled (--api-key-file)",
        ),
        (
            "allocation.rfc5766_channels",
            1,
            "allocation.rfc5766_channels: expected true or false, got 1",
        ),
        ("api.default_ttl", 100000, "api.default_ttl: 100000 > api.max_ttl 86400"),
        (
            "api.urls",
            ["http://x"],
            "api.urls[0]: 'http://x' must start with turn:, turns: or stun:",
        ),
        (
            "api.api_key",
            "abc",
            "api.api_key: unknown key" + SECRET_HINT,
        ),
        ("metrics.enabled", 1, "metrics.enabled: expected true or false, got 1"),
        ("tuning", {}, "tuning: unknown key"),
    ],
)
def test_bad_value_names_its_key(path: str, value: object, message: str) -> None:
    assert error_of(with_value(path, value)) == message


def test_missing_sections_take_the_defaults() -> None:
    assert parse({"relay": MINIMAL["relay"]}).server.realm == "turnkit"
    assert parse({"server": MINIMAL["server"]}).relay.addresses == ("127.0.0.1",)


def test_both_secret_sources_is_an_error() -> None:
    data = with_value("auth.rest_secrets_file", "/x")
    data["auth"]["rest_secrets_env"] = "X"
    assert (
        error_of(data)
        == "auth.rest_secrets_file: set rest_secrets_file or rest_secrets_env, not both"
    )


def test_nothing_listening_is_an_error() -> None:
    data = with_value("listen.udp_port", 0)
    data["listen"]["tcp_port"] = 0
    assert error_of(data) == (
        "listen.udp_port: udp_port, tcp_port and tls_port are all 0: nothing listens"
    )


def test_tls_and_tcp_on_one_port() -> None:
    data = with_value("listen.tls_port", 3478)
    data["listen"] |= {"tls_cert_file": "c.pem", "tls_key_file": "k.pem"}
    assert error_of(data) == "listen.tls_port: 3478 is also listen.tcp_port"


def api_on(**sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"api": {"enabled": True, "api_key_env": "KEY"}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


def test_api_urls_default_to_the_listen_addresses() -> None:
    """A user test found `--api-port` unusable without a config: no flag set a URL host."""
    tls = {"tls_port": 5349, "tls_cert_file": "c.pem", "tls_key_file": "k.pem"}
    config = parse(api_on(listen={"addresses": ["127.0.0.1", "::1"], **tls}))
    assert ice_urls(config) == (
        "turn:127.0.0.1:3478?transport=udp",
        "turn:127.0.0.1:3478?transport=tcp",
        "turns:127.0.0.1:5349?transport=tcp",
        "turn:[::1]:3478?transport=udp",
        "turn:[::1]:3478?transport=tcp",
        "turns:[::1]:5349?transport=tcp",
    )


def test_api_urls_name_the_public_host_first() -> None:
    config = parse(api_on(server={"public_host": "turn.example.com"}))
    assert ice_urls(config) == (
        "turn:turn.example.com:3478?transport=udp",
        "turn:turn.example.com:3478?transport=tcp",
    )
    data = api_on(server={"public_host": "turn.example.com"}, listen={"udp_port": 0})
    data["api"]["urls"] = ["turns:turn.example.com:443?transport=tcp"]
    assert ice_urls(parse(data)) == ("turns:turn.example.com:443?transport=tcp",)


def test_api_urls_behind_nat_use_the_advertised_address() -> None:
    data = api_on(
        listen={"addresses": ["192.0.2.5"]},
        relay={"addresses": ["192.0.2.5"], "external": {"192.0.2.5": "203.0.113.10"}},
    )
    assert ice_urls(parse(data))[0] == "turn:203.0.113.10:3478?transport=udp"
    wildcard = api_on(
        listen={"addresses": ["0.0.0.0"]},
        relay={"addresses": ["0.0.0.0"], "external": {"0.0.0.0": "203.0.113.10"}},
    )
    assert ice_urls(parse(wildcard))[0] == "turn:203.0.113.10:3478?transport=udp"


@pytest.mark.parametrize(
    ("listen", "relay", "problem"),
    [
        (
            ["0.0.0.0"],
            {"addresses": ["192.0.2.5"]},
            "listen address 0.0.0.0 is a wildcard, not an address clients can dial",
        ),
        (
            ["::"],
            {"addresses": ["2001:db8::5"]},
            "listen address :: is a wildcard, not an address clients can dial",
        ),
        (
            ["192.0.2.6", "192.0.2.5"],
            {"addresses": ["192.0.2.5"], "external": {"192.0.2.5": "203.0.113.10"}},
            "listen address 192.0.2.6 may be behind the 1:1 NAT of relay.external,"
            " which does not map it",
        ),
    ],
)
def test_api_without_a_url_host_says_what_to_set(
    listen: list[str], relay: dict[str, Any], problem: str
) -> None:
    data = api_on(listen={"addresses": listen}, relay=relay)
    hint = "; set server.public_host (--public-host) or api.urls"
    assert error_of(data) == f"api.urls: no URL to hand out: {problem}{hint}"
    data["api"]["enabled"] = False  # the same reason when `credentials --config` asks
    with pytest.raises(ConfigError, match="no URL to hand out"):
        ice_urls(parse(data))
    data["server"] = {"public_host": "turn.example.com"}
    assert ice_urls(parse(data))[0] == "turn:turn.example.com:3478?transport=udp"


def test_unspecified_relay_address_with_external_mapping_is_fine() -> None:
    data = with_value("relay.addresses", ["0.0.0.0"])
    data["relay"]["external"] = {"0.0.0.0": "198.51.100.1"}
    assert parse(data).relay.advertised("0.0.0.0") == "198.51.100.1"


def test_toml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TOML syntax"):
        loads("[server\nrealm=")
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[server]\nrealm = "r"\n'
        '[relay]\naddresses = ["192.0.2.1"]\nport_range = {min = 9, max = 8}\n'
    )
    with pytest.raises(ConfigError) as caught:
        load(bad)
    assert str(caught.value) == f"{bad}: relay.port_range: min 9 > max 8"


# --- secrets --------------------------------------------------------------------------------------


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "rest").write_text("# rotated 2026-01\nnew-secret\n\n  old-secret  \n")
    (tmp_path / "users").write_text("# static\nalice:wonder:land\nbob:builder\n")
    (tmp_path / "key").write_text("0123456789abcdef0123\n")
    data = with_value("auth.rest_secrets_file", str(tmp_path / "rest"))
    data["auth"]["users_file"] = str(tmp_path / "users")
    data["api"] = {"enabled": True, "api_key_file": str(tmp_path / "key"), "urls": ["turn:x"]}
    secrets = load_secrets(parse(data), environ={})
    assert secrets.rest_secrets == ("new-secret", "old-secret")
    assert dict(secrets.static_users) == {"alice": "wonder:land", "bob": "builder"}
    assert secrets.api_key == "0123456789abcdef0123"
    assert "new-secret" not in repr(secrets)


def test_secrets_from_environment() -> None:
    data = with_value("auth.rest_secrets_env", "TURN_SECRETS")
    data["api"] = {"enabled": True, "api_key_env": "TURN_API_KEY", "urls": ["turn:x"]}
    environ = {"TURN_SECRETS": "a, b,,c", "TURN_API_KEY": "k" * 16}
    secrets = load_secrets(parse(data), environ=environ)
    assert secrets.rest_secrets == ("a", "b", "c")
    assert secrets.api_key == "k" * 16


def test_secrets_reload_sees_new_file_content(tmp_path: Path) -> None:
    secret_file = tmp_path / "rest"
    secret_file.write_text("first\n")
    config = parse(with_value("auth.rest_secrets_file", str(secret_file)))
    assert load_rest_secrets(config.auth) == ("first",)
    secret_file.write_text("second\nfirst\n")
    assert load_secrets(config, environ={}).rest_secrets == ("second", "first")


def test_no_secret_source_means_no_rest_secrets() -> None:
    secrets = load_secrets(parse(MINIMAL), environ={})
    assert secrets.rest_secrets == ()
    assert dict(secrets.static_users) == {}
    assert secrets.api_key is None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            {"auth": {"rest_secrets_env": "NOPE"}},
            "auth.rest_secrets_env: environment variable NOPE is not set",
        ),
        ({"auth": {"rest_secrets_env": "EMPTY"}}, "auth.rest_secrets_env: EMPTY holds no secret"),
        (
            {"api": {"enabled": True, "api_key_env": "SHORT", "urls": ["turn:x"]}},
            "api.api_key_env: the API key must be at least 16 characters",
        ),
        (
            {"api": {"enabled": True, "api_key_env": "NOPE", "urls": ["turn:x"]}},
            "api.api_key_env: the API key must be at least 16 characters",
        ),
    ],
)
def test_bad_secret_sources(setup: dict[str, Any], message: str) -> None:
    data = copy.deepcopy(MINIMAL) | setup
    with pytest.raises(ConfigError) as caught:
        load_secrets(parse(data), environ={"EMPTY": " , ", "SHORT": "abc"})
    assert str(caught.value) == message


def test_bad_secret_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    config = parse(with_value("auth.rest_secrets_file", str(missing)))
    with pytest.raises(ConfigError, match=r"auth.rest_secrets_file: .*missing: No such file"):
        load_secrets(config, environ={})
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n")
    config = parse(with_value("auth.rest_secrets_file", str(empty)))
    with pytest.raises(ConfigError, match="holds no secret"):
        load_secrets(config, environ={})
    users = tmp_path / "users"
    users.write_text("alice:ok\nbob\n")
    config = parse(with_value("auth.users_file", str(users)))
    with pytest.raises(ConfigError) as caught:
        load_secrets(config, environ={})
    assert str(caught.value) == f"auth.users_file: {users} line 2: expected user:password"
