"""ServerConfig from TOML and flags: defaults, the example file, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stun_server.config import (
    ConfigError,
    ServerConfig,
    build_config,
    load_file,
    parse_address,
    parse_table,
)
from stun_server.responder import Rfc5780Addresses

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "stun_server.example.toml"


def test_defaults_listen_on_loopback_without_rfc5780() -> None:
    config = ServerConfig()
    assert config.listen == (("127.0.0.1", 3478),)
    assert config.rfc5780_addresses() == ()
    assert config.tcp and not config.tls_enabled
    responder = config.responder_config()
    assert (responder.rate_limit, responder.rate_burst, responder.software) == (
        500,
        1000,
        "turnkit",
    )


def test_example_file_loads_with_every_section() -> None:
    config = build_config(load_file(EXAMPLE))
    assert config.listen == (("127.0.0.1", 3478),)
    assert config.alternate == ("127.0.0.2",)
    assert config.rfc5780_addresses() == (Rfc5780Addresses("127.0.0.1", "127.0.0.2", 3478, 3479),)
    assert config.tls_cert == Path("/etc/turnkit/tls/fullchain.pem")
    assert (config.tls_port, config.rate_limit, config.rate_burst) == (5349, 500, 1000)
    assert (config.max_connections, config.idle_timeout, config.workers) == (0, 30, 1)
    assert (config.max_connections_per_source, config.first_message_timeout) == (256, 5)


def test_flags_override_the_file() -> None:
    config = build_config(
        load_file(EXAMPLE),
        {"listen": (("::1", 4000),), "alternate": (), "workers": 2, "tcp": None, "tls_cert": None},
    )
    assert config.listen == (("::1", 4000),)
    assert config.alternate == ()
    assert config.workers == 2
    assert config.tcp is True  # None means "flag not given"
    assert config.tls_cert == Path("/etc/turnkit/tls/fullchain.pem")


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:3478", ("127.0.0.1", 3478)),
        ("127.0.0.1", ("127.0.0.1", 3478)),
        ("[::1]:5000", ("::1", 5000)),
        ("[::1]", ("::1", 3478)),
        ("::1", ("::1", 3478)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[2001:db8:0::1]:1", ("2001:db8::1", 1)),
    ],
)
def test_listen_address_forms(text: str, address: tuple[str, int]) -> None:
    assert parse_address("server.listen", text) == address


@pytest.mark.parametrize("text", ["localhost:3478", "127.0.0.1:99999", "127.0.0.1:x", "[::1]:-1"])
def test_bad_listen_addresses_name_the_key(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^server\.listen: "):
        parse_address("server.listen", text)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"serve": {}}, r"^serve: unknown section"),
        ({"server": {"listne": []}}, r"^server\.listne: unknown key"),
        ({"server": []}, r"^server: expected a table"),
        ({"server": {"listen": 5}}, r"^server\.listen: expected a string or a list"),
        ({"server": {"listen": ["nowhere"]}}, r"^server\.listen: 'nowhere'"),
        ({"server": {"tcp": "yes"}}, r"^server\.tcp: expected true or false"),
        ({"server": {"workers": 1.5}}, r"^server\.workers: expected an integer"),
        ({"server": {"workers": True}}, r"^server\.workers: expected an integer"),
        ({"limits": {"rate_limit": "fast"}}, r"^limits\.rate_limit: expected a number"),
        ({"rfc5780": {"alternate": ["x"]}}, r"^rfc5780\.alternate: 'x' is not an IP"),
        ({"tls": {"cert": 1}}, r"^tls\.cert: expected a string"),
    ],
)
def test_table_errors_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_table(table)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"listen": ()}, r"^server\.listen: needs at least one"),
        ({"tls_port": 70000}, r"^tls\.port: port 70000"),
        ({"tls_cert": Path("c.pem")}, r"^tls\.cert: tls\.cert and tls\.key go together"),
        ({"software": "x" * 129}, r"^server\.software: longer than 128"),
        ({"log_level": "loud"}, r"^server\.log_level: 'loud'"),
        ({"rate_limit": -1}, r"^limits\.rate_limit: must be >= 0"),
        ({"rate_burst": 0.5}, r"^limits\.rate_burst: must be >= 1"),
        ({"max_sources": 0}, r"^limits\.max_sources"),
        ({"max_padding": 65001}, r"^limits\.max_padding"),
        ({"max_connections": -1}, r"^limits\.max_connections"),
        ({"idle_timeout": 0}, r"^limits\.idle_timeout"),
        ({"workers": -1}, r"^server\.workers: must be >= 0"),
        ({"workers": 2, "listen": (("127.0.0.1", 0),)}, r"^server\.workers: several workers"),
        ({"alternate": ("::2",)}, r"^rfc5780\.alternate: no IPv6 listen address"),
        ({"alternate": ("127.0.0.2", "127.0.0.3")}, r"^rfc5780\.alternate: at most one"),
        (
            {"alternate": ("127.0.0.2",), "listen": (("0.0.0.0", 3478),)},
            r"^rfc5780\.alternate: 0\.0\.0\.0 is a wildcard",
        ),
        (
            {"alternate": ("127.0.0.2",), "listen": (("127.0.0.1", 0),)},
            r"^rfc5780\.alternate: needs a fixed listen port",
        ),
        ({"alternate": ("127.0.0.1",)}, r"^rfc5780\.alternate: RFC 5780 needs two different"),
        ({"alternate": ("127.0.0.2",), "alternate_port": 3478}, r"^rfc5780\.alternate: .*ports"),
        ({"alternate_port": 65536}, r"^rfc5780\.alternate_port: port 65536"),
    ],
)
def test_semantic_errors_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(values)


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown settings: colour"):
        build_config({"colour": "blue"})


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nlisten=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_file(bad)


def test_alternate_port_defaults_to_listen_port_plus_one() -> None:
    config = ServerConfig(listen=(("::1", 5000), ("127.0.0.1", 4000)), alternate=("127.0.0.2",))
    assert config.rfc5780_addresses() == (Rfc5780Addresses("127.0.0.1", "127.0.0.2", 4000, 4001),)


def test_rate_burst_defaults_to_twice_the_rate_and_zero_disables() -> None:
    assert ServerConfig(rate_limit=7).responder_config().rate_burst == 14
    assert ServerConfig(rate_limit=7, rate_burst=3).responder_config().rate_burst == 3
    assert ServerConfig(rate_limit=0).responder_config().rate_limit == 0


def test_empty_software_leaves_the_attribute_out() -> None:
    assert ServerConfig(software="").responder_config().software is None
