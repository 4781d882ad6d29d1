"""Bad inputs through the real ``turn-relay`` command: one line naming file and key, exit 2.

Found (issue 11): a non-UTF-8 secrets or config file gave a traceback, config errors exited 1
where usage errors exit 2, and nan/inf passed for numbers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TURN_RELAY = str(Path(sys.executable).parent / "turn-relay")
NOT_UTF8 = b"\xff\xfe secret \x80\n"


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TURN_RELAY, "serve", "--check", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_non_utf8_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_bytes(NOT_UTF8)
    line = one_error_line(serve("--secret-file", str(secrets)))
    assert line == (
        f"Error: auth.rest_secrets_file: {secrets}: not UTF-8 text (byte 0xff at offset 0)"
    )


def test_a_non_utf8_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_bytes(b"alice:" + NOT_UTF8)
    line = one_error_line(serve("--users-file", str(users)))
    assert line.startswith(f"Error: auth.users_file: {users}: not UTF-8 text")


def test_a_non_utf8_config_file(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_bytes(b'[server]\nrealm = "\xe9t\xe9"\n')
    line = one_error_line(serve("--config", str(config)))
    assert line == f"Error: {config}: not UTF-8 text (byte 0xe9 at offset 18)"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_in_a_config_file(tmp_path: Path, value: str) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(f"[auth]\nnonce_lifetime = {value}\n")
    line = one_error_line(serve("--config", str(config)))
    assert "auth.nonce_lifetime" in line and str(config) in line


@pytest.mark.parametrize(
    "flag",
    [
        "--challenge-rate",
        "--proven-challenge-rate",
        "--challenge-proof-lifetime",
        "--challenge-total-rate",
    ],
)
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_numbers_in_flags(tmp_path: Path, flag: str, value: str) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("s3cret\n")
    result = serve("--secret-file", str(secrets), flag, value)
    assert result.returncode == 2
    assert f"Invalid value for '{flag}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_config_error_exits_2_and_names_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("[auth.challenge_budget]\nproven_burst = 0\n")
    line = one_error_line(serve("--config", str(config)))
    assert line == (
        f"Error: {config}: auth.challenge_budget.proven_burst: 0 is out of range (at least 1)"
    )


def test_tls_port_without_its_files_is_refused(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("s3cret\n")
    line = one_error_line(serve("--secret-file", str(secrets), "--tls-port", "5349"))
    assert line == "Error: listen.tls_cert_file: required when listen.tls_port is not 0"


def test_tls_files_without_a_tls_port_are_refused(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("s3cret\n")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    line = one_error_line(
        serve("--secret-file", str(secrets), "--tls-cert", str(cert), "--tls-key", str(key))
    )
    assert line == (
        "Error: listen.tls_cert_file: given but listen.tls_port is 0: set it (--tls-port) or"
        " drop this"
    )


def test_old_and_new_budget_tables_together_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        "[auth.unauthorized_limit]\nburst = 5\n[auth.challenge_budget]\nunproven_burst = 5\n"
    )
    line = one_error_line(serve("--config", str(config)))
    assert "auth.unauthorized_limit: replaced by auth.challenge_budget (unproven_rate" in line
