"""Bad input through the real ``stun-server`` command: one line naming the file and key, exit 2,
never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from stun_testkit import STUN_SERVER
from turnkit_testing import self_signed_certificate


def run_server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STUN_SERVER), *args], capture_output=True, text=True, timeout=30, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *texts: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("stun-server: error: ")
    for text in texts:
        assert text in lines[0]


def test_non_utf8_config_file(tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes('[server]\nsoftware = "caf\xe9"\n'.encode("latin-1"))
    result = run_server("--config", str(config))
    assert_one_line_error(result, f"{config}: not UTF-8 text (byte 0xe9 at offset 24)")


def test_unreadable_config_file(tmp_path: Path) -> None:
    result = run_server("--config", str(tmp_path / "missing.toml"))
    assert_one_line_error(result, f"{tmp_path / 'missing.toml'}: cannot read: No such file")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    "key",
    ["rate_limit", "rate_burst", "idle_timeout", "first_message_timeout"],
)
def test_non_finite_numbers_in_the_file_are_refused(tmp_path: Path, key: str, value: str) -> None:
    config = tmp_path / "stun.toml"
    config.write_text(f"[limits]\n{key} = {value}\n")
    result = run_server("--config", str(config))
    assert_one_line_error(result, f"{config}: limits.{key}", "is not a finite number")


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        ("--idle-timeout", "limits.idle_timeout"),
        ("--first-message-timeout", "limits.first_message_timeout"),
        ("--rate-limit", "limits.rate_limit"),
        ("--rate-burst", "limits.rate_burst"),
    ],
)
def test_non_finite_numbers_in_flags_are_refused(flag: str, key: str) -> None:
    result = run_server(flag, "nan")
    assert_one_line_error(result, f"{key} ({flag}): nan is not a finite number")


def test_a_file_value_error_names_the_file_and_a_flag_error_does_not(tmp_path: Path) -> None:
    config = tmp_path / "stun.toml"
    config.write_text("[limits]\nidle_timeout = -1\n")
    from_file = run_server("--config", str(config))
    assert_one_line_error(from_file, f"{config}: limits.idle_timeout (--idle-timeout): must be > 0")
    from_flag = run_server("--config", str(config), "--idle-timeout", "0")
    assert_one_line_error(from_flag, "error: limits.idle_timeout (--idle-timeout): must be > 0")


def test_tls_port_without_a_certificate_is_refused(tmp_path: Path) -> None:
    assert_one_line_error(run_server("--tls-port", "5349"), "tls.port (--tls-port): needs tls.cert")
    config = tmp_path / "stun.toml"
    config.write_text("[tls]\nport = 5349\n")
    assert_one_line_error(run_server("--config", str(config)), f"{config}: tls.port")


def test_tls_files_that_are_missing_or_not_pem(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    missing = tmp_path / "missing.pem"
    result = run_server("--tls-cert", str(missing), "--tls-key", str(key))
    assert_one_line_error(result, f"tls.cert (--tls-cert): {missing}: cannot read: No such file")
    result = run_server("--tls-cert", str(cert), "--tls-key", str(missing))
    assert_one_line_error(result, f"tls.key (--tls-key): {missing}: cannot read")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"\xff\xfe not a certificate")
    result = run_server("--tls-cert", str(garbage), "--tls-key", str(key))
    assert_one_line_error(result, "tls.cert (--tls-cert):", "not a usable PEM certificate and key")
    result = run_server("--tls-cert", str(key), "--tls-key", str(cert))  # swapped
    assert_one_line_error(result, "not a usable PEM certificate and key")
