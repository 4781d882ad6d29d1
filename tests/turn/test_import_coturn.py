"""`turn-relay import-coturn` (run as the real command): a coturn config with the common
options becomes a TOML that `turn-relay serve --check` accepts; secrets go to 0600 files next
to it, never into the TOML; each option it cannot map is named on stderr with its line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from turnkit_testing.tls import make_certificate

from turn_relay.config.coturn_import import convert, parse_options

TURN_RELAY = str(Path(sys.executable).parent / "turn-relay")
DEBIAN_EXAMPLE = Path("/etc/turnserver.conf")

COTURN_CONF = """\
# a production-like coturn config
listening-port=3478
tls-listening-port=5349
listening-ip=127.0.0.1
listening-ip=::1
relay-ip=127.0.0.1
external-ip=203.0.113.10/127.0.0.1
min-port=40000
max-port=40999
realm=turn.example.com
use-auth-secret
static-auth-secret=north-secret
lt-cred-mech
user=alice:wonderland
user=bob:0xbc807ee29df3c9ffa736523fb2c4e8ee
cert={cert}
pkey="{key}"
total-quota=1000
user-quota=12
max-bps=64000
no-tcp
no-dtls
denied-peer-ip=198.51.100.0-198.51.100.255
allowed-peer-ip=203.0.113.7
no-loopback-peers
no-multicast-peers
stale-nonce=300
fingerprint
verbose
log-file=/var/log/turnserver/turn.log
cli-password=qwerty
no-cli
max-allocate-lifetime=1800
permission-lifetime=300
some-made-up-option=1
"""


def import_coturn(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TURN_RELAY, "import-coturn", *args],
        check=False, capture_output=True, text=True, timeout=60, cwd=cwd,
    )  # fmt: skip


def test_common_options_convert_to_a_config_serve_check_accepts(tmp_path: Path) -> None:
    pair = make_certificate(tmp_path / "tls")
    source = tmp_path / "turnserver.conf"
    source.write_text(COTURN_CONF.format(cert=pair.cert, key=pair.key))
    out_dir = tmp_path / "turnkit"
    out_dir.mkdir()
    output = out_dir / "turn_relay.toml"
    done = import_coturn(str(source), "-o", str(output), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"wrote 1 secret line(s) to {out_dir / 'rest-secrets'} (mode 0600)",
        f"wrote 1 secret line(s) to {out_dir / 'users'} (mode 0600)",
        f"{source}: line 15: user: not mapped: bob: a coturn key (0x...), not a password: set one",
        f"{source}: line 29: verbose: not mapped: verbosity is a flag:"
        " turn-relay serve --log-level info|debug",
        f"{source}: line 30: log-file=/var/log/turnserver/turn.log: not mapped:"
        " turn-relay logs to stderr (the journal under systemd)",
        f"{source}: line 31: cli-password: not mapped: no telnet CLI: use the HTTP API ([api])"
        " with its own key",
        f"{source}: line 35: some-made-up-option=1: not mapped:"
        " not a coturn option turn-relay knows",
    ]
    text = output.read_text()
    assert "north-secret" not in text and "wonderland" not in text and "qwerty" not in text
    assert tomllib.loads(text) == {
        "server": {"realm": "turn.example.com"},
        "listen": {
            "udp_port": 3478,
            "tcp_port": 0,
            "tls_port": 5349,
            "addresses": ["127.0.0.1", "::1"],
            "tls_cert_file": str(pair.cert),
            "tls_key_file": str(pair.key),
        },
        "relay": {
            "addresses": ["127.0.0.1"],
            "port_range": {"min": 40000, "max": 40999},
            "external": {"127.0.0.1": "203.0.113.10"},
        },
        "allocation": {"max_lifetime": 1800, "permission_lifetime": 300},
        "quotas": {
            "max_allocations": 1000,
            "max_allocations_per_user": 12,
            "max_bandwidth_per_allocation": 64000,
        },
        "auth": {
            "nonce_lifetime": 300,
            "rest_secrets_file": str(out_dir / "rest-secrets"),
            "users_file": str(out_dir / "users"),
        },
        "peer_policy": {"denied_peers": ["198.51.100.0/24"], "allowed_peers": ["203.0.113.7/32"]},
    }
    for name, content in (("rest-secrets", "north-secret\n"), ("users", "alice:wonderland\n")):
        assert (out_dir / name).read_text() == content
        assert stat.S_IMODE((out_dir / name).stat().st_mode) == 0o600
    assert "#   line 13: lt-cred-mech" in text and "#   line 25: no-loopback-peers" in text
    check = subprocess.run(
        [TURN_RELAY, "serve", "--check", "--config", str(output)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (check.returncode, check.stderr) == (0, "")
    assert "listen:  udp 127.0.0.1:3478, udp [::1]:3478, tls 127.0.0.1:5349, tls [::1]:5349" in (
        check.stdout
    )
    assert "127.0.0.1 (advertised 203.0.113.10), ports 40000-40999" in check.stdout


def test_debian_example_converts_and_names_what_it_cannot_map(tmp_path: Path) -> None:
    if not DEBIAN_EXAMPLE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("coturn's /etc/turnserver.conf is missing: bootstrap installs coturn")
        pytest.skip("coturn is not installed")
    done = import_coturn(str(DEBIAN_EXAMPLE), cwd=tmp_path)
    assert done.returncode == 0
    named = {line.split(": ")[2] for line in done.stderr.splitlines() if ": line " in line}
    active = {o.name for o in parse_options(DEBIAN_EXAMPLE.read_text())}
    assert named == active  # every uncommented option there has no turn-relay equivalent
    assert tomllib.loads(done.stdout) == {}
    assert list(tmp_path.iterdir()) == []  # no secret in it, so no secret file


def test_unreadable_input_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "absent.conf"
    done = import_coturn(str(missing), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {missing}: cannot read it: No such file or directory\n"


def test_stdout_mode_writes_secrets_in_the_secrets_dir_and_never_overwrites(
    tmp_path: Path,
) -> None:
    source = tmp_path / "turnserver.conf"
    source.write_text("use-auth-secret\nstatic-auth-secret=s1\nrelay-ip=127.0.0.1\n")
    secrets_dir = tmp_path / "private"
    secrets_dir.mkdir()
    done = import_coturn(str(source), "--secrets-dir", str(secrets_dir), cwd=tmp_path)
    assert done.returncode == 0
    document = tomllib.loads(done.stdout)
    assert document["auth"] == {"rest_secrets_file": str(secrets_dir / "rest-secrets")}
    assert document["listen"] == {"addresses": ["0.0.0.0"]}  # coturn's every address
    again = import_coturn(str(source), "--secrets-dir", str(secrets_dir), cwd=tmp_path)
    assert again.returncode == 1
    assert "rest-secrets exists; not overwriting it" in again.stderr
    assert (secrets_dir / "rest-secrets").read_text() == "s1\n"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("external-ip=203.0.113.5", {"127.0.0.1": "203.0.113.5"}),
        ("external-ip=203.0.113.5/127.0.0.1", {"127.0.0.1": "203.0.113.5"}),
    ],
)
def test_external_ip_both_forms(line: str, expected: dict[str, str]) -> None:
    conversion = convert(f"listening-ip=127.0.0.1\n{line}\n")
    assert conversion.document["relay"]["external"] == expected
    assert conversion.unmapped == []


def test_option_syntax_forms() -> None:
    options = parse_options('# c\n  realm = "a b"\n--verbose\nstale-nonce 60\n\n')
    assert [(o.line, o.name, o.value) for o in options] == [
        (2, "realm", "a b"),
        (3, "verbose", ""),
        (4, "stale-nonce", "60"),
    ]


def test_static_auth_secret_without_use_auth_secret_is_named_not_used() -> None:
    conversion = convert("listening-ip=127.0.0.1\nstatic-auth-secret=s\n")
    assert conversion.rest_secrets == []
    assert [str(u) for u in conversion.unmapped] == [
        "line 2: static-auth-secret: not mapped: coturn ignores it without use-auth-secret"
    ]
