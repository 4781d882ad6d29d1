"""The [rendezvous] section and the pairing secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from turn_relay.config import ConfigError, load_secrets, loads

API = '[api]\nenabled = true\napi_key_env = "KEY"\n'


def test_off_without_a_secret() -> None:
    config = loads(API)
    assert config.rendezvous.enabled is False
    assert load_secrets(config, {"KEY": "k" * 16}).pairing_secrets == ()


def test_pairing_secrets_from_a_file(tmp_path: Path) -> None:
    secrets = tmp_path / "pairing"
    secrets.write_text("# current first\nfirst-pairing-secret\n\nolder-pairing-secret\n")
    config = loads(
        API + f'[rendezvous]\npairing_secrets_file = "{secrets}"\nmax_rooms = 7\n'
        "messages_per_second = 5.5\n"
    )
    assert config.rendezvous.enabled and config.rendezvous.max_rooms == 7
    assert config.rendezvous.messages_per_second == 5.5
    loaded = load_secrets(config, {"KEY": "k" * 16})
    assert loaded.pairing_secrets == ("first-pairing-secret", "older-pairing-secret")


@pytest.mark.parametrize(
    ("text", "environ", "problem"),
    [
        ('[rendezvous]\npairing_secrets_env = "P"\n', {}, "needs api.enabled"),
        (API + '[rendezvous]\npairing_secrets_env = "P"\n', {"KEY": "k" * 16}, "P is not set"),
        (API + '[rendezvous]\npairing_secrets_env = "P"\n', {"KEY": "k" * 16, "P": "short"},
         "at least 16 characters"),
        (API + '[rendezvous]\npairing_secrets_env = "P"\nmax_rooms = 0\n', {}, "max_rooms"),
        (API + '[rendezvous]\npairing_secret = "inline"\n', {}, "pairing_secret"),
    ],
    ids=["no-api", "env-unset", "short", "bounds", "no-inline-secret"],
)  # fmt: skip
def test_refused(text: str, environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_secrets(loads(text), environ)
