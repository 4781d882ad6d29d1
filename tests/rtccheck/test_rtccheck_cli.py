"""The rtccheck command line: help, exit codes, --json, --junit, --require and bad usage.

Every run here uses IP-literal servers or the local DNS responder: no test asks a real DNS
server or reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rtccheck_dns_responder import dns_responder_thread, forbid_real_dns
from rtccheck_schema_validator import report_errors

from rtccheck.checks import FAMILIES
from rtccheck.checks.base import pending
from rtccheck.cli import Runtime, family_command, main
from turn_relay.auth.credentials import rest_password

NOW = 1_700_000_000.0
VALID_USER = "1700003600:alice"
EXPIRED_USER = "1699990000:alice"


@pytest.fixture(autouse=True)
def _local_dns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_real_dns(monkeypatch)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(main, list(args), obj=Runtime(now=lambda: NOW), env=env)


def report_of(result: Result) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    assert report_errors(document) == []
    return document


def checks_in(document: dict[str, Any]) -> dict[str, str]:
    return {r["check"]: r["status"] for r in document["results"]}


# --- help ------------------------------------------------------------------------------------


def test_main_help_reads_well() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    out = result.output
    assert out.startswith("Usage: rtccheck [OPTIONS] COMMAND [ARGS]...")
    assert "Exit status: 0 every check passed" in out
    assert "rtccheck turn:turn.example.com --secret-file" in out
    for family in FAMILIES:
        assert f"  {family.name} " in out
    assert "all " in out and "Run every available check (default)." in out


@pytest.mark.parametrize("command", ["all", *(f.name for f in FAMILIES)])
def test_every_sub_command_has_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert f"Usage: rtccheck {command} [OPTIONS] [URI]..." in result.output
    for option in ("--username", "--secret-file", "--ice-config", "--require", "--json", "--junit"):
        assert option in result.output


@pytest.mark.parametrize("command", ["all", "credentials", "dns"])
def test_available_sub_commands_show_examples(command: str) -> None:
    result = invoke(command, "-h")
    assert "Examples:" in result.output
    assert f"rtccheck {command}" in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.startswith("rtccheck, version ")


# --- runs and exit codes ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def offline_families(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the families that need no reachable server, for every test here: the TEST-NET
    addresses below are never probed (no test sends a packet beyond loopback)."""
    offline = tuple(f for f in FAMILIES if f.name in ("credentials", "dns"))
    monkeypatch.setattr("rtccheck.cli.FAMILIES", offline)


def test_default_command_runs_every_available_check_and_passes() -> None:
    result = invoke("turn:192.0.2.1", "--username", VALID_USER, "--credential", "x", "--json")
    assert result.exit_code == 0, result.output
    document = report_of(result)
    assert document["checks_run"] == ["credentials", "dns"]
    assert document["status"] == "pass" and document["exit_code"] == 0
    assert checks_in(document) == {
        "credentials.username": "pass",
        "credentials.expiry": "pass",
        "credentials.password": "skip",
        "dns.resolve": "pass",
    }
    assert document["targets"][0]["has_credential"] is True
    assert "x" not in json.dumps(document["targets"])
    assert "rtccheck: credentials:" in result.stderr


def test_json_output_is_only_json() -> None:
    result = invoke("stun:192.0.2.1", "--json")
    json.loads(result.stdout)
    assert "rtccheck: dns: 1 pass" in result.stderr


def test_failed_check_exits_1() -> None:
    result = invoke("turn:192.0.2.1", "--username", EXPIRED_USER, "--credential", "x", "--json")
    assert result.exit_code == 1
    document = report_of(result)
    assert document["status"] == "fail" and document["exit_code"] == 1
    expiry = next(r for r in document["results"] if r["check"] == "credentials.expiry")
    assert expiry["cause"].startswith("REST credentials are valid until the expiry")
    assert document["verdict"].startswith("FAIL (")


def test_warnings_still_exit_0() -> None:
    soon = f"{int(NOW) + 30}:alice"
    result = invoke("credentials", "--username", soon, "--json")
    assert result.exit_code == 0
    assert report_of(result)["status"] == "warn"


def test_unmet_requirement_exits_1() -> None:
    result = invoke("stun:192.0.2.1", "--require", "dns,relay-udp", "--json")
    assert result.exit_code == 1
    document = report_of(result)
    assert [(r["name"], r["met"]) for r in document["requirements"]] == [
        ("dns", True),
        ("relay-udp", False),
    ]
    assert document["verdict"].endswith("required but not shown: relay-udp")
    missing = document["requirements"][1]["missing"]
    assert missing.startswith("the credentials, dns check families run no turn check (relay-udp ")
    assert "no turn: URI over UDP (turn:HOST or turn:HOST?transport=udp) was given" in missing


def test_terminal_report_ends_with_the_verdict() -> None:
    result = invoke("credentials", "--username", EXPIRED_USER)
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("FAIL (")
    assert "cause:" in result.stdout and "fix:" in result.stdout


def test_secret_file_mints_and_checks(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("crypt1c\n", encoding="utf-8")
    credential = rest_password("crypt1c", VALID_USER)
    result = invoke(
        "credentials", "turn:192.0.2.1", "--username", VALID_USER, "--credential", credential,
        "--secret-file", str(secret), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert checks_in(report_of(result))["credentials.password"] == "pass"


def test_secret_mints_credentials_for_bare_turn_uris() -> None:
    result = invoke(
        "credentials", "turn:192.0.2.1", "--secret", "s", "--rest-ttl", "7200", "--json"
    )
    document = report_of(result)
    assert document["targets"][0]["username"] == "1700007200:rtccheck"
    assert checks_in(document)["credentials.password"] == "pass"


def test_secret_from_the_environment() -> None:
    result = invoke("credentials", "turn:192.0.2.1", "--json", env={"RTCCHECK_SECRET": "from-env"})
    assert report_of(result)["targets"][0]["username"] == "1700003600:rtccheck"


def test_server_date_compares_with_the_servers_clock() -> None:
    result = invoke(
        "credentials", "--username", f"{int(NOW) + 60}:alice",
        "--server-date", "Tue, 14 Nov 2023 22:15:20 GMT", "--json",
    )  # fmt: skip
    assert result.exit_code == 1
    document = report_of(result)
    assert checks_in(document)["credentials.clock"] == "warn"
    assert checks_in(document)["credentials.expiry"] == "fail"


def test_ice_config(tmp_path: Path) -> None:
    config = tmp_path / "ice.json"
    config.write_text(
        json.dumps(
            {
                "iceServers": [
                    {"urls": ["stun:192.0.2.1"]},
                    {"urls": "turn:192.0.2.2", "username": VALID_USER, "credential": "p"},
                ]
            }
        ),
        encoding="utf-8",
    )
    result = invoke("--ice-config", str(config), "--json")
    assert result.exit_code == 0, result.output
    document = report_of(result)
    assert [t["uri"] for t in document["targets"]] == ["stun:192.0.2.1", "turn:192.0.2.2"]
    assert document["targets"][1]["source"] == f"{config} iceServers[1]"


def test_unreachable_credentials_url_is_a_failed_check() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/credentials"
    result = invoke("--credentials-url", url, "--timeout", "1", "--json")
    assert result.exit_code == 1
    document = report_of(result)
    finding = document["results"][0]
    assert finding["check"] == "inputs.credentials-url" and finding["status"] == "fail"
    assert finding["target"] == url
    assert finding["capabilities"] == ["credentials"]
    assert document["targets"] == []


def test_junit_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "rtccheck.xml"
    path.parent.mkdir()
    result = invoke("credentials", "--username", EXPIRED_USER, "--junit", str(path))
    assert result.exit_code == 1
    root = ET.parse(path).getroot()
    assert root.get("failures") == "1"


def test_junit_unwritable_is_exit_2(tmp_path: Path) -> None:
    result = invoke("credentials", "--username", VALID_USER, "--junit", str(tmp_path / "no" / "x"))
    assert result.exit_code == 2
    assert "--junit" in result.output and "cannot write it" in result.output


def test_dns_sub_command_with_a_local_nameserver() -> None:
    zone = {"turn.example.test": {"A": ["203.0.113.10"]}}
    with dns_responder_thread(zone) as responder:
        result = invoke(
            "dns", "turn:turn.example.test", "turn:missing.example.test",
            "--nameserver", f"127.0.0.1:{responder.port}", "--timeout", "2", "--json",
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    document = report_of(result)
    statuses = {(r["check"], r["target"]): r["status"] for r in document["results"]}
    assert statuses[("dns.resolve", "turn.example.test")] == "pass"
    assert statuses[("dns.resolve", "missing.example.test")] == "fail"
    assert ("turn.example.test.", "A") in responder.queries


# --- bad usage: exit 2 with a clear message --------------------------------------------------

BAD_USAGE = [
    (["turn:192.0.2.1", "--require", "relay-sctp"], "unknown requirement 'relay-sctp'"),
    (["192.0.2.1"], "has no scheme: write stun:192.0.2.1"),
    (["turn://192.0.2.1"], "have no '//'"),
    (["--json"], "give at least one server"),
    (["credentials"], "give at least one server"),
    (["dns", "--username", VALID_USER], "give at least one server"),
    (["turn:192.0.2.1", "--secret", "a", "--secret-file", "/dev/null"], "not both"),
    (["turn:192.0.2.1", "--secret-file", "/nonexistent/secret"], "cannot read it"),
    (["turn:192.0.2.1", "--nameserver", "dns.example"], "give an IP address"),
    (["turn:192.0.2.1", "--nameserver", "127.0.0.1:99999"], "port must be a number"),
    (["turn:192.0.2.1", "--server-date", "soon"], "--server-date 'soon'"),
    (["turn:192.0.2.1", "--timeout", "0"], "--timeout"),
    (["turn:192.0.2.1", "--rest-ttl", "0"], "--rest-ttl"),
    (["turn:192.0.2.1", "--credentials-url", "ftp://x/y"], "must be an http:// or https:// URL"),
    (["--ice-config", "/nonexistent/ice.json"], "cannot read it"),
    (["--no-such-option", "stun:192.0.2.1"], "No such option '--no-such-option'"),
    (
        ["turn", "turn:192.0.2.1", "--expect-relay-address", "relay.example.com"],
        "--expect-relay-address 'relay.example.com' is not an IP address",
    ),
    (
        ["turn", "turn:192.0.2.1", "--expect-relay-ports", "65535-49152"],
        "--expect-relay-ports: '65535-49152': need 1 <= MIN <= MAX <= 65535",
    ),
    (
        ["turn", "turn:192.0.2.1", "--expect-relay-ports", "49152"],
        "is not a port range MIN-MAX, e.g. 49152-65535",
    ),
    (["nat", "stun:192.0.2.1", "--nat-lifetime-max", "0"], "--nat-lifetime-max"),
]


@pytest.mark.parametrize(("args", "message"), BAD_USAGE)
def test_bad_usage_exits_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_pending_family_is_bad_usage() -> None:
    command = family_command(pending("later", "A check still to be written"))
    result = CliRunner().invoke(command, ["stun:192.0.2.1"], obj=Runtime(now=lambda: NOW))
    assert result.exit_code == 2
    assert "the later check is not available in this version yet" in result.output


def test_empty_secret_file_is_bad_usage(tmp_path: Path) -> None:
    empty = tmp_path / "secret"
    empty.write_text("\n", encoding="utf-8")
    result = invoke("turn:192.0.2.1", "--secret-file", str(empty))
    assert result.exit_code == 2 and "is empty" in result.output


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert "Usage: rtccheck" in result.output
    assert result.exit_code in (0, 2)
