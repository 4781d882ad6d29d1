"""`turn-relay link` and the config keys of the check page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from turn_relay.auth.links import LinkClaims, verify
from turn_relay.cli import main
from turn_relay.config import ConfigError, loads
from turn_relay.config.urls import api_base_url, check_stun_urls

SECRET = "link-secret-0123456789"
BASE = """
[server]
public_host = "turn.example.com"
state_dir = "/var/lib/turn-relay"
[listen]
addresses = ["203.0.113.1", "203.0.113.2"]
[relay]
addresses = ["203.0.113.1"]
[api]
enabled = true
port = 8443
api_key_env = "K"
tls_cert_file = "/etc/turnkit/cert.pem"
tls_key_file = "/etc/turnkit/key.pem"
"""


def config_file(tmp_path: Path, check: str) -> Path:
    (tmp_path / "link-secrets").write_text(SECRET + "\nprevious-secret-0123456789\n")
    path = tmp_path / "relay.toml"
    path.write_text(BASE + f'[check]\nlink_secrets_file = "{tmp_path / "link-secrets"}"\n' + check)
    return path


def test_link_prints_a_signed_url_and_the_result_id(tmp_path: Path) -> None:
    path = config_file(tmp_path, "link_ttl = 3600\n")
    done = CliRunner().invoke(main, ["link", "--config", str(path), "--note", "t-1", "--json"])
    assert done.exit_code == 0, done.output
    printed = json.loads(done.output)
    prefix = "https://turn.example.com:8443/check/"
    assert printed["url"].startswith(prefix)
    claims = verify([SECRET], printed["url"][len(prefix) :], printed["expires_at"] - 1)
    assert isinstance(claims, LinkClaims)
    assert (claims.test_id, claims.note, claims.signaling) == (printed["result_id"], "t-1", None)
    assert len(printed["result_id"]) == 8


def test_link_signs_the_signaling_url(tmp_path: Path) -> None:
    path = config_file(tmp_path, 'public_url = "https://check.example.com/"\n')
    argv = ["link", "--config", str(path), "--signaling", "wss://app.example.com/ws"]
    done = CliRunner().invoke(main, argv)
    assert done.exit_code == 0, done.output
    url, id_line = done.output.splitlines()
    assert url.startswith("https://check.example.com/check/")
    claims = verify([SECRET], url.rpartition("/")[2], 0)
    assert isinstance(claims, LinkClaims) and claims.signaling == "wss://app.example.com/ws"
    assert id_line.startswith("result id: ")


def test_link_without_a_secret_says_what_to_set(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(BASE)
    done = CliRunner().invoke(main, ["link", "--config", str(path)])
    assert done.exit_code == 1
    assert "check.link_secrets_file" in done.output


def test_link_help_has_an_example() -> None:
    done = CliRunner().invoke(main, ["link", "--help"])
    assert "turn-relay link --config" in done.output


def test_the_check_page_needs_a_state_dir_and_the_api() -> None:
    with pytest.raises(
        ConfigError, match=r"check.link_secrets_env: the check page needs server.state_dir"
    ):
        loads('[api]\nenabled = true\napi_key_env = "K"\n[check]\nlink_secrets_env = "L"\n')
    with pytest.raises(
        ConfigError, match=r"check.link_secrets_env: the check page needs api.enabled"
    ):
        loads('[server]\nstate_dir = "/x"\n[check]\nlink_secrets_env = "L"\n')
    with pytest.raises(
        ConfigError, match=r"api.tls_cert_file: set api.tls_cert_file and api.tls_key_file together"
    ):
        loads('[api]\ntls_cert_file = "/c"\n')


def test_derived_urls_for_the_page() -> None:
    config = loads(BASE)
    assert api_base_url(config) == "https://turn.example.com:8443"
    assert check_stun_urls(config) == ("stun:turn.example.com:3478",)
    plain = loads('[listen]\naddresses = ["127.0.0.1", "::1"]\n')
    assert api_base_url(plain) == "http://127.0.0.1:8080"
    assert check_stun_urls(plain) == ("stun:127.0.0.1:3478", "stun:[::1]:3478")
