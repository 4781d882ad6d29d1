"""`turn-relay serve --check` loads the TLS certificate and key and names the file of each
problem on one stderr line: errors exit 2, warnings keep exit 0. Run as the real command."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pytest
from relay_harness import free_port
from turnkit_testing.tls import make_certificate, write_unrelated_key

from turn_relay.config.tls_files import Severity, check_certificate_pair

TURN_RELAY = str(Path(sys.executable).parent / "turn-relay")


def serve_check(tmp_path: Path, cert: Path, key: Path) -> subprocess.CompletedProcess[str]:
    secrets = tmp_path / "rest-secrets"
    if not secrets.exists():
        secrets.write_text("s3cret\n")
        secrets.chmod(0o600)
    return subprocess.run(
        [TURN_RELAY, "serve", "--check", "--port", "3478", "--tls-port", "5349",
         "--tls-cert", str(cert), "--tls-key", str(key), "--secret-file", str(secrets)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_good_pair_passes_quietly_and_the_summary_names_the_certificate(tmp_path: Path) -> None:
    files = make_certificate(tmp_path, common_name="relay.test", valid_days=90)
    done = serve_check(tmp_path, files.cert, files.key)
    assert (done.returncode, done.stderr) == (0, "")
    assert f"tls:     {files.cert}: CN=relay.test, serial " in done.stdout


def test_garbage_certificate_fails_naming_the_file(tmp_path: Path) -> None:
    files = make_certificate(tmp_path)
    files.cert.write_text("this is not a certificate\n")
    done = serve_check(tmp_path, files.cert, files.key)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: listen.tls_cert_file: {files.cert}: not a PEM certificate"
        " (no parsable CERTIFICATE)\n"
    )


def test_a_key_given_as_the_certificate_fails(tmp_path: Path) -> None:
    files = make_certificate(tmp_path)
    done = serve_check(tmp_path, files.key, files.key)
    assert done.returncode == 2
    assert f"error: listen.tls_cert_file: {files.key}: not a PEM certificate" in done.stderr


def test_garbage_key_fails_naming_the_file(tmp_path: Path) -> None:
    files = make_certificate(tmp_path)
    files.key.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    done = serve_check(tmp_path, files.cert, files.key)
    assert done.returncode == 2
    assert done.stderr == f"error: listen.tls_key_file: {files.key}: not a PEM private key\n"


def test_mismatched_key_fails_naming_both_files(tmp_path: Path) -> None:
    files = make_certificate(tmp_path)
    other = write_unrelated_key(tmp_path / "other-key.pem")
    done = serve_check(tmp_path, files.cert, other)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: listen.tls_key_file: {other}: does not match the certificate in {files.cert}\n"
    )


def test_expired_certificate_fails(tmp_path: Path) -> None:
    files = make_certificate(tmp_path, expired=True)
    done = serve_check(tmp_path, files.cert, files.key)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: listen.tls_cert_file: {files.cert}: expired on ")
    assert done.stderr.endswith(" (1 days ago)\n")


def test_missing_certificate_fails(tmp_path: Path) -> None:
    files = make_certificate(tmp_path)
    missing = tmp_path / "absent.pem"
    done = serve_check(tmp_path, missing, files.key)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: listen.tls_cert_file: {missing}: cannot read it: No such file or directory\n"
    )


def test_soon_expiring_certificate_warns_and_passes(tmp_path: Path) -> None:
    files = make_certificate(tmp_path, valid_days=5.5)
    done = serve_check(tmp_path, files.cert, files.key)
    assert done.returncode == 0
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"warning: listen.tls_cert_file: {files.cert}: expires on ")
    assert line.endswith("(in 5 days, under 14): renew it, then SIGHUP the relay")


def test_key_and_secret_files_readable_by_others_warn(tmp_path: Path) -> None:
    files = make_certificate(tmp_path)
    files.key.chmod(0o644)
    secrets = tmp_path / "rest-secrets"
    secrets.write_text("s3cret\n")
    secrets.chmod(0o640)
    done = serve_check(tmp_path, files.cert, files.key)
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        f"warning: listen.tls_key_file: {files.key}: readable by group and others (mode 0644);"
        " chmod 600 it",
        f"warning: auth.rest_secrets_file: {secrets}: readable by group (mode 0640); chmod 600 it",
    ]


def test_serve_itself_refuses_a_bad_pair_before_binding(tmp_path: Path) -> None:
    files = make_certificate(tmp_path)
    other = write_unrelated_key(tmp_path / "other-key.pem")
    secrets = tmp_path / "rest-secrets"
    secrets.write_text("s3cret\n")
    secrets.chmod(0o600)
    done = subprocess.run(
        [TURN_RELAY, "serve", "--port", str(free_port()), "--tls-port", str(free_port()),
         "--port-range", "24300-24399", "--tls-cert", str(files.cert), "--tls-key", str(other),
         "--secret-file", str(secrets)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"listen.tls_key_file: {other}: does not match the certificate" in done.stderr


@pytest.mark.parametrize(
    ("days", "expected"),
    [(13.9, [Severity.WARNING]), (14.1, []), (-0.01, [Severity.ERROR])],
)
def test_the_expiry_warning_starts_at_14_days(
    tmp_path: Path, days: float, expected: list[Severity]
) -> None:
    files = make_certificate(tmp_path, valid_days=30)
    from cryptography import x509

    not_after = x509.load_pem_x509_certificate(files.cert.read_bytes()).not_valid_after_utc
    now = not_after - datetime.timedelta(days=days)
    findings = check_certificate_pair(files.cert, files.key, now)
    assert [f.severity for f in findings] == expected
