"""``turn-relay serve`` flags become the same document a TOML config is, validated the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from turn_relay import cli
from turn_relay.config import ConfigError
from turn_relay.serve_flags import ServeFlags, load, parse_port_range


def test_defaults_without_a_config_are_loopback_friendly() -> None:
    config = load(None, ServeFlags())
    assert config.server.realm == "turnkit"
    assert config.listen.addresses == ("127.0.0.1",)
    assert (config.listen.udp_port, config.listen.tcp_port, config.listen.tls_port) == (
        3478,
        3478,
        0,
    )
    assert config.relay.addresses == ("127.0.0.1",)


def test_flags_fill_every_section() -> None:
    flags = ServeFlags(
        realm="example.org",
        public_host="turn.example.org",
        listen=("127.0.0.1", "::1"),
        port=3479,
        relay_addresses=("127.0.0.1",),
        external=("203.0.113.7",),
        port_range=(40000, 40999),
        secret_env="TURN_SECRETS",
        allowed_peers=("127.0.0.0/8",),
        denied_peers=("127.0.0.9/32",),
        max_allocations_per_user=3,
        max_allocations=100,
    )
    config = load(None, flags)
    assert (config.server.realm, config.server.public_host) == ("example.org", "turn.example.org")
    assert config.listen.addresses == ("127.0.0.1", "::1")
    assert config.relay.advertised("127.0.0.1") == "203.0.113.7"
    assert (config.relay.port_min, config.relay.port_max) == (40000, 40999)
    assert config.auth.rest_secrets_env == "TURN_SECRETS"
    assert config.peer_policy.allowed_peers == ("127.0.0.0/8",)
    assert config.peer_policy.denied_peers == ("127.0.0.9/32",)
    assert (config.quotas.max_allocations_per_user, config.quotas.max_allocations) == (3, 100)


def test_relay_defaults_to_each_concrete_listen_address() -> None:
    config = load(None, ServeFlags(listen=("127.0.0.1", "::1")))
    assert config.relay.addresses == ("127.0.0.1", "::1")


def test_wildcard_listen_needs_a_relay_address() -> None:
    with pytest.raises(ConfigError, match=r"relay\.addresses"):
        load(None, ServeFlags(listen=("0.0.0.0",)))
    config = load(None, ServeFlags(listen=("0.0.0.0",), relay_addresses=("127.0.0.1",)))
    assert config.relay.addresses == ("127.0.0.1",)


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        '[server]\nrealm = "file"\n[relay]\naddresses = ["127.0.0.1"]\n[listen]\nudp_port = 4000\n'
    )
    config = load(path, ServeFlags(port=5000, allowed_peers=("10.0.0.0/8",)))
    assert config.server.realm == "file"
    assert (config.listen.udp_port, config.listen.tcp_port) == (5000, 5000)
    assert config.peer_policy.allowed_peers == ("10.0.0.0/8",)


def test_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"relay\.port_range"):
        load(None, ServeFlags(port_range=(2000, 1000)))
    with pytest.raises(ConfigError, match="LOCAL=ADVERTISED"):
        load(None, ServeFlags(listen=("127.0.0.1", "::1"), external=("203.0.113.7",)))
    with pytest.raises(ConfigError, match="TOML syntax"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[server\n")
        load(bad, ServeFlags())


@pytest.mark.parametrize("text", ["49152", "a-b", "1-", "-2"])
def test_port_range_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="MIN-MAX"):
        parse_port_range(text)


def test_serve_check_with_flags_only(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("s3cret\n")
    result = CliRunner().invoke(
        cli.main,
        ["serve", "--check", "--listen", "127.0.0.1", "--secret-file", str(secrets),
         "--allowed-peer", "127.0.0.0/8", "--port-range", "40000-40999"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "flags: OK (realm 'turnkit')" in result.output


def test_serve_passes_rfc5766_and_log_level_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("s3cret\n")
    seen: list[dict[str, object]] = []
    monkeypatch.setattr(
        cli, "start_server", lambda config, secrets, **options: seen.append(options)
    )
    result = CliRunner().invoke(
        cli.main,
        ["serve", "--secret-file", str(secrets), "--rfc5766-channels", "--log-level", "debug"],
    )
    assert result.exit_code == 0, result.output
    assert seen == [{"legacy_channels": True, "log_level": "debug"}]
