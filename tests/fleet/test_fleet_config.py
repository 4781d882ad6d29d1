"""The [fleet] section: defaults, validation naming the key, the password never in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from turn_relay.config import ConfigError, Secrets, load_secrets, loads


def test_no_fleet_by_default() -> None:
    config = loads("")
    assert not config.fleet.enabled
    assert config.fleet.relay_id is None
    assert load_secrets(config, {}) == Secrets()


def test_a_fleet_section_is_read() -> None:
    config = loads(
        '[listen]\naddresses = ["127.0.0.2"]\n'
        '[fleet]\nredis_url = "redis://127.0.0.1:6379/0"\nadvertise = ["127.0.0.2:3478"]\n'
        "heartbeat = 0.25\nttl = 2\n"
    )
    fleet = config.fleet
    assert fleet.enabled
    assert fleet.relay_id == "127.0.0.2"  # the first listen address unless named
    assert fleet.advertise == (("127.0.0.2", 3478),)
    assert (fleet.heartbeat, fleet.ttl, fleet.prefix) == (0.25, 2.0, "turnkit")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('redis_url = "http://x"', "fleet.redis_url: 'http://x': expected redis://"),
        ('redis_url = "redis://:pw@127.0.0.1"', "fleet.redis_url: holds a password"),
        ('advertise = ["127.0.0.1:0"]', "fleet.advertise[0]"),
        ('advertise = ["nothere:3478"]', "fleet.advertise[0]"),
        ("heartbeat = 0", "fleet.heartbeat: 0 must be greater than 0"),
        ("heartbeat = nan", "fleet.heartbeat: nan is not a finite number"),
        ("heartbeat = 1\nttl = 1", "fleet.ttl: 1.0 must be longer than heartbeat 1.0"),
        ('relay_id = " "', "fleet.relay_id: is empty"),
        ('redis_password = "x"', "fleet.redis_password: unknown key; secrets never go in this"),
        (
            'redis_password_file = "a"\nredis_password_env = "B"',
            "fleet.redis_password_file: set redis_password_file or redis_password_env, not both",
        ),
    ],
)
def test_bad_fleet_values_name_their_key(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loads(f"[fleet]\n{body}\n")
    assert str(caught.value).startswith(message)


def test_the_redis_password_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text("# the fleet's Redis\ns3cr3t,with,commas\n")
    config = loads(f'[fleet]\nredis_url = "redis://127.0.0.1"\nredis_password_file = "{secret}"\n')
    assert load_secrets(config, {}).redis_password == "s3cr3t,with,commas"
    config = loads('[fleet]\nredis_url = "redis://127.0.0.1"\nredis_password_env = "RPW"\n')
    assert load_secrets(config, {"RPW": "pw"}).redis_password == "pw"
    with pytest.raises(ConfigError, match=r"fleet\.redis_password_env: environment variable RPW"):
        load_secrets(config, {})
