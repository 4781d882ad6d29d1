"""rtccheck as a release gate, without servers: --only/--skip, output paths checked before any
check runs, what an unmet --require lacks, iceTransportPolicy, one cause reported once, JUnit
against the Ant/Jenkins schema, credentials beyond --max-ttl."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rtccheck_dns_responder import forbid_real_dns
from rtccheck_junit_schema import junit_errors
from rtccheck_schema_validator import report_errors

from rtccheck.causes import CauseId
from rtccheck.checks import FAMILIES
from rtccheck.checks.credentials import Subject, expiry_result
from rtccheck.cli import Runtime, main
from rtccheck.credential_service import ServerClock
from rtccheck.junit import junit_xml
from rtccheck.results import CheckResult, Status, build_report
from rtccheck.root_causes import link_repeated_causes
from rtccheck.selection import CHECK_IDS, SelectionError, select

NOW = 1_700_000_000.0
VALID_USER = "1700003600:alice"
EXPIRED_USER = "1699990000:alice"
DOC = Path(__file__).resolve().parents[2] / "docs" / "rtccheck-json.md"
FAMILY_NAMES = [family.name for family in FAMILIES if family.available]


@pytest.fixture(autouse=True)
def _local_dns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_real_dns(monkeypatch)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=Runtime(now=lambda: NOW))


def report_of(result: Result) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    assert report_errors(document) == []
    return document


# --- --only / --skip ---------------------------------------------------------------------------


def test_only_runs_just_those_families() -> None:
    result = invoke("all", "--username", VALID_USER, "--only", "credentials", "--json")
    assert result.exit_code == 0, result.output
    document = report_of(result)
    assert document["checks_run"] == ["credentials"]
    assert set(document["durations_s"]) == {"inputs", "credentials"}


def test_skip_a_check_reports_it_skipped_and_failing_nothing() -> None:
    args = ("all", "--username", EXPIRED_USER, "--only", "credentials", "--json")
    assert invoke(*args).exit_code == 1
    result = invoke(*args, "--skip", "credentials.expiry")
    assert result.exit_code == 0, result.output
    (expiry,) = [r for r in report_of(result)["results"] if r["check"] == "credentials.expiry"]
    assert expiry["status"] == "skip"
    assert expiry["summary"].startswith("deselected with --skip credentials.expiry (it found: fail")
    assert expiry["capabilities"] == [] and expiry["cause_id"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "turn,bogus"], "--only: unknown check family 'bogus'"),
        (["--skip", "turn.bogus"], "--skip: 'turn.bogus' is neither a check family"),
        (["--only", "turn", "--skip", "turn"], "leave no check family to run"),
    ],
)
def test_unknown_selection_is_bad_usage(args: list[str], message: str) -> None:
    result = invoke("all", "turn:127.0.0.1", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_select_keeps_registry_order_and_separates_checks() -> None:
    chosen = select(FAMILY_NAMES, ["policy,turn"], ["policy.peers"])
    assert chosen.families == ("turn", "policy")
    assert chosen.skipped_checks == frozenset({"policy.peers"})
    with pytest.raises(SelectionError):
        select(FAMILY_NAMES, [], ["nonsense"])


def test_check_ids_are_the_documented_check_catalogue() -> None:
    doc = DOC.read_text(encoding="utf-8")
    catalogue = doc[doc.index("\n## Check catalogue") : doc.index("\n## cause_id catalogue")]
    documented = {
        name
        for cell in re.findall(r"^\| (`[^|]+`) \|", catalogue, flags=re.MULTILINE)
        for name in re.findall(r"`([a-z]+\.[a-z-]+)`", cell)
    }
    documented -= {"inputs.credentials-url", "inputs.ice-config"}
    # `rtccheck signaling URL` checks an app's endpoint on its own; `all` never runs it
    documented = {name for name in documented if not name.startswith("signaling.")}
    assert documented == set(CHECK_IDS)


# --- output paths are checked first ------------------------------------------------------------


@pytest.mark.parametrize("option", ["--junit", "--json-file"])
def test_an_unwritable_output_path_exits_2_before_any_check_runs(
    option: str, tmp_path: Path
) -> None:
    result = invoke("all", "turn:127.0.0.1:9", "--json", option, str(tmp_path / "none" / "x"))
    assert result.exit_code == 2
    assert f"{option} {tmp_path / 'none' / 'x'}: cannot write it" in result.output
    assert '"results"' not in result.stdout  # no check ran, no report printed


def test_a_writable_output_path_is_not_left_behind_when_the_run_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "report.xml"
    result = invoke("all", "turn:127.0.0.1:9", "--junit", str(path), "--only", "bogus")
    assert result.exit_code == 2
    assert not path.exists()


def test_json_file_holds_the_report(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    result = invoke("credentials", "--username", VALID_USER, "--json-file", str(path))
    assert result.exit_code == 0, result.output
    assert report_errors(json.loads(path.read_text())) == []


# --- unmet requirements say what is missing -----------------------------------------------------


def test_unmet_requirement_names_the_family_and_the_uri_that_would_show_it() -> None:
    result = invoke("credentials", "--username", VALID_USER, "--require", "relay-tls", "--json")
    assert result.exit_code == 1
    (requirement,) = report_of(result)["requirements"]
    assert requirement["missing"] == (
        "the credentials check family runs no turn check (relay-tls is shown by turn.allocate): "
        "run `rtccheck turn`, or `rtccheck all` without --skip/--only leaving turn out; no "
        "turns: URI was given (as an argument, in --ice-config or from --credentials-url)"
    )


# --- the app's RTCConfiguration ------------------------------------------------------------------


def write_config(tmp_path: Path, document: object) -> str:
    path = tmp_path / "ice.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_an_unknown_ice_transport_policy_is_bad_usage(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"iceServers": [], "iceTransportPolicy": "direct"})
    result = invoke("credentials", "--ice-config", config)
    assert result.exit_code == 2
    assert "iceTransportPolicy 'direct' is not one of 'all', 'relay'" in result.output


def test_relay_policy_without_turn_can_never_connect(tmp_path: Path) -> None:
    servers = [{"urls": "stun:127.0.0.1:9"}]
    config = write_config(tmp_path, {"iceServers": servers, "iceTransportPolicy": "relay"})
    result = invoke("credentials", "--ice-config", config, "--json")
    assert result.exit_code == 1
    (finding,) = [r for r in report_of(result)["results"] if r["check"] == "inputs.ice-config"]
    assert finding["status"] == "fail"
    assert finding["cause_id"] == "relay-policy-without-turn"


def test_the_config_says_what_the_app_cannot_do(tmp_path: Path) -> None:
    servers = [
        {"urls": "stun:127.0.0.1:9"},
        {"urls": "turn:127.0.0.1:9", "username": VALID_USER, "credential": "x"},
    ]
    config = write_config(tmp_path, {"iceServers": servers, "iceTransportPolicy": "relay"})
    result = invoke("credentials", "--ice-config", config, "--json")
    (finding,) = [r for r in report_of(result)["results"] if r["check"] == "inputs.ice-config"]
    assert finding["status"] == "pass"
    assert finding["details"]["cannot"] == [
        "connect directly (host and srflx candidates are never used)",
        "use its stun:/stuns: servers (relay only never asks them)",
        "reach a relay where UDP is blocked (no turn:?transport=tcp or turns: URL)",
        "get through networks that allow only TLS (no turns: URL)",
    ]


# --- one failure, one cause -----------------------------------------------------------------------


def failed(check: str, target: str, cause_id: CauseId) -> CheckResult:
    return CheckResult(check, target, Status.FAIL, "it failed", cause_id=cause_id,
                       cause="expired", fix="mint a new one")  # fmt: skip


def test_later_results_with_the_same_cause_point_to_the_first() -> None:
    udp, tcp = "turn:127.0.0.1", "turn:127.0.0.1?transport=tcp"
    results = link_repeated_causes(
        [
            failed("credentials.expiry", f"{udp}, {tcp}", CauseId.CREDENTIAL_EXPIRED),
            failed("turn.allocate", udp, CauseId.CREDENTIAL_EXPIRED),
            failed("turn.allocate", tcp, CauseId.CREDENTIAL_EXPIRED),
            failed("data.relay", "turn:other", CauseId.CREDENTIAL_EXPIRED),
            failed("gather.relay", udp, CauseId.CONNECTION_REFUSED),
        ]
    )
    first, *linked, other_server, other_cause = results
    assert first.see is None and first.fix == "mint a new one"
    for result in linked:
        assert result.see == f"credentials.expiry ({udp}, {tcp})"
        assert result.fix == "see credentials.expiry"
        assert result.cause == f"The same cause as credentials.expiry ({udp}, {tcp}), reported "\
            "there with its fix."  # fmt: skip
    assert other_server.see is None and other_cause.see is None


# --- JUnit ----------------------------------------------------------------------------------------


def test_junit_is_valid_ant_junit_with_times_and_one_target_per_name() -> None:
    targets = "turn:127.0.0.1, turns:127.0.0.1"
    report = build_report(
        results=[
            failed("credentials.expiry", targets, CauseId.CREDENTIAL_EXPIRED),
            CheckResult("turn.allocate", "turn:127.0.0.1", Status.PASS, "ok"),
            CheckResult("turn.allocate", "turns:127.0.0.1", Status.SKIP, "no"),
        ],
        targets=[],
        required=("relay-tcp",),
        started_at=NOW,
        duration_s=3.0,
        checks_run=["credentials", "turn"],
        tool_version="0",
        durations_s={"inputs": 0.0, "credentials": 0.5, "turn": 2.0},
    )
    xml = junit_xml(report, hostname="ci")
    assert junit_errors(xml) == []
    root = ET.fromstring(xml)
    assert root.get("time") == "3.000" and root.get("timestamp") == "2023-11-14T22:13:20"
    suites = {suite.get("name"): suite for suite in root}
    assert suites["turn"].get("time") == "2.000"
    assert [case.get("time") for case in suites["turn"]] == ["1.000", "1.000"]
    names = [case.get("name") for suite in root for case in suite]
    assert names[0] == "credentials.expiry [turn:127.0.0.1]"
    failure = suites["credentials"].find("testcase/failure")
    assert failure is not None and failure.get("type") == "credential-expired"
    assert failure.text is not None and f"targets: {targets}" in failure.text


def test_the_schema_rejects_what_ci_systems_choke_on() -> None:
    """The XSD is no rubber stamp: a case without time, or a zoned time stamp, is refused."""
    bad_case = '<testsuites><testsuite name="a" tests="1" failures="0" errors="0" time="0" '\
        'timestamp="2023-11-14T22:13:20" hostname="h"><testcase name="x" classname="c"/>'\
        "</testsuite></testsuites>"  # fmt: skip
    assert junit_errors(bad_case) != []
    zoned = bad_case.replace('classname="c"', 'classname="c" time="0"').replace(
        "22:13:20", "22:13:20+00:00"
    )
    assert junit_errors(zoned) != []
    assert junit_errors(zoned.replace("22:13:20+00:00", "22:13:20")) == []


# --- credentials beyond --max-ttl ---------------------------------------------------------------


SUBJECT = Subject("x:alice", None, "turn:127.0.0.1")


def test_an_expiry_beyond_max_ttl_names_both_causes_without_a_clock() -> None:
    result = expiry_result(SUBJECT, int(NOW) + 2 * 86400, NOW, None, 86400)
    assert result.status is Status.WARN and result.cause_id == "credential-long-lived"
    assert result.cause is not None
    assert "clock is ahead of the real time (clock skew)" in result.cause
    assert "oversized TTL" in result.cause


def test_an_issuer_clock_ahead_is_named_as_the_cause() -> None:
    clock = ServerClock(2 * 86400, "Date header from https://issuer.test/creds")
    result = expiry_result(SUBJECT, int(NOW) + 2 * 86400 + 3600, NOW, clock, 86400)
    assert result.status is Status.WARN
    assert result.metrics["issuer_clock_offset_s"] == 172800
    assert result.metrics["issuer_ttl_s"] == 3600
    assert result.cause is not None and "Clock skew is the cause" in result.cause
    assert "2 d ahead of this machine's" in result.summary


def test_an_oversized_ttl_by_the_issuers_own_clock() -> None:
    clock = ServerClock(5.0, "--server-date")
    result = expiry_result(SUBJECT, int(NOW) + 3 * 86400, NOW, clock, 86400)
    assert result.cause is not None and "the TTL it mints with is oversized" in result.cause


def test_max_ttl_option_sets_the_limit() -> None:
    user = f"{int(NOW) + 7200}:alice"
    assert invoke("credentials", "--username", user).exit_code == 0
    result = invoke("credentials", "--username", user, "--max-ttl", "3600", "--json")
    (expiry,) = [r for r in report_of(result)["results"] if r["check"] == "credentials.expiry"]
    assert expiry["status"] == "warn" and expiry["metrics"]["max_ttl_s"] == 3600
