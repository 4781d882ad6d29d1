"""turn-relay CLI: credentials from each secret source, serve start-up errors, help text."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from turn_relay import cli
from turn_relay.auth.credentials import verify

URL = "turn:turn.example.com:3478?transport=udp"


def write_config(tmp_path: Path, extra: str = "") -> Path:
    secrets = tmp_path / "rest-secrets"
    secrets.write_text("current\nprevious\n")
    config = tmp_path / "relay.toml"
    config.write_text(
        f"""
[server]
realm = "turn.example.com"
public_host = "turn.example.com"

[relay]
addresses = ["192.0.2.5"]

[auth]
rest_secrets_file = "{secrets}"
separator = "-"
{extra}
"""
    )
    return config


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, list(args), env=env)
    return result.exit_code, result.output


def test_credentials_from_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secrets"
    secret_file.write_text("# current first\ns3cret\nold\n")
    code, output = run(
        "credentials", "--user", "alice", "--ttl", "600", "--secret-file", str(secret_file),
        "--url", URL, "--url", "turns:turn.example.com:5349?transport=tcp",
    )  # fmt: skip
    assert code == 0, output
    server = json.loads(output)
    assert set(server) == {"urls", "username", "credential", "ttl"}
    assert server["urls"] == [URL, "turns:turn.example.com:5349?transport=tcp"]
    assert server["ttl"] == 600
    assert server["username"].endswith(":alice")
    assert verify(["s3cret"], server["username"], server["credential"], time.time())


def test_credentials_from_environment() -> None:
    code, output = run(
        "credentials", "--user", "bob", "--secret-env", "TURN_SECRETS", "--url", URL,
        env={"TURN_SECRETS": "envsecret,older"},
    )  # fmt: skip
    assert code == 0, output
    server = json.loads(output)
    assert server["ttl"] == 3600
    assert verify(["envsecret"], server["username"], server["credential"], time.time())


def test_credentials_from_config_uses_its_urls_and_separator(tmp_path: Path) -> None:
    code, output = run("credentials", "--user", "carol", "--config", str(write_config(tmp_path)))
    assert code == 0, output
    server = json.loads(output)
    assert server["urls"] == [
        "turn:turn.example.com:3478?transport=udp",
        "turn:turn.example.com:3478?transport=tcp",
    ]
    assert server["username"].endswith("-carol")
    assert verify(["current"], server["username"], server["credential"], time.time(), "-")


def test_credentials_url_option_overrides_config(tmp_path: Path) -> None:
    code, output = run(
        "credentials", "--user", "carol", "--config", str(write_config(tmp_path)), "--url", URL
    )
    assert code == 0, output
    assert json.loads(output)["urls"] == [URL]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", URL], "give exactly one of --secret-file, --secret-env, --config"),
        (["--secret-env", "TURN_SECRETS"], "no URL: give --url"),
        (["--secret-env", "MISSING", "--url", URL], "environment variable MISSING is not set"),
        (["--secret-env", "TURN_SECRETS", "--url", URL, "--ttl", "0"], "--ttl"),
    ],
)
def test_credentials_usage_errors(args: list[str], message: str) -> None:
    code, output = run("credentials", "--user", "alice", *args, env={"TURN_SECRETS": "s"})
    assert code != 0
    assert message in output


def test_credentials_two_sources_is_an_error(tmp_path: Path) -> None:
    code, output = run(
        "credentials", "--user", "a", "--url", URL, "--secret-env", "X",
        "--config", str(write_config(tmp_path)),
    )  # fmt: skip
    assert code == 2
    assert "exactly one of" in output


def test_credentials_rejects_bad_user() -> None:
    code, output = run(
        "credentials", "--user", "al:ice", "--secret-env", "S", "--url", URL, env={"S": "x"}
    )
    assert code == 2
    assert "--user" in output


def test_credentials_config_without_rest_secret(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text('[server]\nrealm = "r"\n[relay]\naddresses = ["192.0.2.5"]\n')
    code, output = run("credentials", "--user", "a", "--config", str(config), "--url", URL)
    assert code == 2
    assert "names no REST secret" in output


def test_serve_refuses_a_relay_address_it_cannot_bind(tmp_path: Path) -> None:
    code, output = run("serve", "--config", str(write_config(tmp_path)))
    assert code == 1
    assert "relay address 192.0.2.5 cannot be bound" in output


def test_serve_check_validates_and_exits(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, output = run("serve", "--config", str(config), "--check")
    assert code == 0, output
    assert "OK" in output


def test_serve_reads_config_from_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, output = run("serve", "--check", env={"TURNKIT_RELAY_CONFIG": str(config)})
    assert code == 0, output


def test_serve_reports_config_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="nonce_lifetime = -1")
    code, output = run("serve", "--config", str(config))
    assert code == 2
    assert "auth.nonce_lifetime: -1 must be greater than 0" in output


def test_serve_reports_secret_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "rest-secrets").unlink()
    code, output = run("serve", "--config", str(config), "--check")
    assert code == 2
    assert "auth.rest_secrets_file" in output


def test_serve_passes_overrides_to_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    monkeypatch.setattr(
        cli, "start_server", lambda config, secrets: started.append(config.server.workers)
    )
    code, output = run("serve", "--config", str(write_config(tmp_path)), "--workers", "4")
    assert code == 0, output
    assert started == [4]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["Examples:", "turn-relay credentials", "turn-relay serve"]),
        (
            ["credentials"],
            ["RTCIceServer", "iceServers", "Example:", "--secret-file", "--secret-env"],
        ),
        (
            ["serve"],
            [
                "Examples:",
                "--config",
                "--check",
                "TURNKIT_RELAY_CONFIG",
                "--workers",
                "--public-host",
                "--challenge-rate",
                "--challenge-burst",
                "--rfc5766-channels / --rfc8656-channels",
            ],
        ),
    ],
)
def test_help_explains_itself(args: list[str], expected: list[str]) -> None:
    code, output = run(*args, "--help")
    assert code == 0
    for text in expected:
        assert text in output


def test_credentials_from_a_config_without_public_host_use_the_listen_address(
    tmp_path: Path,
) -> None:
    secrets = tmp_path / "rest-secrets"
    secrets.write_text("s3cret\n")
    config = tmp_path / "relay.toml"
    config.write_text(
        f'[listen]\naddresses = ["127.0.0.1"]\nudp_port = 3479\ntcp_port = 0\n'
        f'[auth]\nrest_secrets_file = "{secrets}"\n'
    )
    code, output = run("credentials", "--user", "dave", "--config", str(config))
    assert code == 0, output
    assert json.loads(output)["urls"] == ["turn:127.0.0.1:3479?transport=udp"]


def test_credentials_from_a_wildcard_config_say_what_to_set(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        '[listen]\naddresses = ["0.0.0.0"]\n[relay]\naddresses = ["192.0.2.5"]\n'
        '[auth]\nrest_secrets_env = "S"\n'
    )
    code, output = run("credentials", "--user", "a", "--config", str(config), env={"S": "x"})
    assert code == 2
    assert "listen address 0.0.0.0 is a wildcard" in output
    assert "--public-host" in output


def test_serve_api_port_from_flags_alone(tmp_path: Path) -> None:
    """The user test: `serve --api-port N --api-key-file K` failed, as no flag set a URL host."""
    (tmp_path / "rest-secret").write_text("s3cret\n")
    (tmp_path / "api-key").write_text("0123456789abcdef0123\n")
    base = ["serve", "--secret-file", str(tmp_path / "rest-secret"), "--check"]
    api = ["--api-port", "8080", "--api-key-file", str(tmp_path / "api-key")]
    code, output = run(*base, *api)
    assert code == 0, output
    assert "api:     http://127.0.0.1:8080 hands out turn:127.0.0.1:3478?transport=udp" in output
    code, output = run(*base, *api, "--public-host", "turn.example.com")
    assert code == 0, output
    assert "hands out turn:turn.example.com:3478?transport=udp" in output
    code, output = run(*base, *api, "--listen", "0.0.0.0", "--relay-address", "127.0.0.1")
    assert code == 2
    assert "listen address 0.0.0.0 is a wildcard" in output
    assert "set server.public_host (--public-host) or api.urls" in output
    code, output = run(*base, "--api-port", "8080")
    assert code == 2
    assert "(--api-key-file)" in output
