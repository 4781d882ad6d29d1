"""The check page in headless Chromium behind real NATs: the verdict matches each site's truth.

In ``inet``: turn-relay listening on 203.0.113.1 and 203.0.113.2 (UDP and TCP 3478, TLS 443;
two addresses, so the page compares the mappings two STUN servers see), relaying on
203.0.113.1, with its HTTP API over TLS on a third address, 203.0.113.3:443 (the
``udp_blocked`` site lets out only TCP to 443 and 3478). A link is minted with
``turn-relay link`` and opened by Chromium inside each site's client namespace
(``tests/checkpage/drive_check_page.py`` drives it over the DevTools protocol). For each site
the DOM verdict, the uploaded report's verdict kind, mapping and per-transport data results,
and the address the relay saw, are compared with the site's design (`Site.expected`); the page
requests nothing from any other origin and logs no error (CSP violations are log errors). After
a relay restart ``rtccheck report ID --json`` returns each report. The udp_blocked site is
then put behind two stricter firewalls (`Lab.egress_only`): only TCP 443 out ("tls-443-only"),
and nothing out but the relay's web page ("blocked"). With
``TURNKIT_CHECK_PAGE_SCREENSHOTS=1`` each verdict kind's screenshot is written to
docs/check-page/.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from turnkit_testing.tls import make_certificate

from .lab import Lab, NatType, venv_script

sys.path.insert(0, str(Path(__file__).parent.parent / "checkpage"))
from checkpage_kit import (
    DOCS_SCREENSHOTS,
    RTCCHECK,
    SCREENSHOT_ENV,
    RelaySetup,
    data_by_transport,
    driver_argv,
    link_argv,
    page_problems,
    results_of,
    spki_sha256,
    write_relay_config,
)

pytestmark = [pytest.mark.natlab, pytest.mark.timeout(300)]

API_ADDR = "203.0.113.3"
LAB_PEERS = ("203.0.113.0/24", "198.51.100.0/24", "198.18.0.0/15", "100.64.0.0/10")
CHROMIUM = Path("/usr/bin/chromium")
DRIVER_TIMEOUT_S = 150.0


@dataclass(frozen=True)
class Truth:
    kind: str
    mapping: str
    data: dict[str, str]
    verdict: str


TRUTH = {
    NatType.NONE: Truth(
        "open",
        "no-nat",
        {"udp": "pass", "tcp": "pass", "tls": "pass"},
        "Your network is open: no NAT and UDP works. Calls will work directly and through "
        "the relay.",
    ),
    NatType.PORT_RESTRICTED: Truth(
        "udp-ok",
        "endpoint-independent",
        {"udp": "pass", "tcp": "pass", "tls": "pass"},
        "Your network works for calls: UDP reaches the relay and your router keeps one public "
        "address for every destination.",
    ),
    NatType.SYMMETRIC: Truth(
        "symmetric",
        "endpoint-dependent",
        {"udp": "pass", "tcp": "pass", "tls": "pass"},
        "Your router gives you a different public address for every destination (symmetric "
        "NAT), so direct calls will often fail. Calls will work through the relay over UDP.",
    ),
    NatType.UDP_BLOCKED: Truth(
        "udp-blocked",
        "unknown",
        {"udp": "fail", "tcp": "pass", "tls": "pass"},
        "Your network blocks UDP. Calls will work through TCP on port 3478 and TLS on port 443.",
    ),
}

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip(f"{CHROMIUM} missing (scripts/bootstrap.sh installs it)", allow_module_level=True)


@dataclass(frozen=True)
class LabCheckRelay:
    config: Path
    spki: str
    state_dir: Path


@contextlib.contextmanager
def serving(lab: Lab, relay: LabCheckRelay, name: str) -> Iterator[None]:
    process = lab.popen(
        lab.inet, [venv_script("turn-relay"), "serve", "--config", str(relay.config)], name=name
    )
    try:
        lab.wait_listening(lab.inet, 3478, addr=lab.server_addr)
        lab.wait_listening(lab.inet, 443, proto="tcp", addr=API_ADDR)
        yield
    finally:
        lab.stop(process)


@pytest.fixture(scope="module")
def check_relay(lab: Lab) -> Iterator[LabCheckRelay]:
    lab.run(lab.inet, ["ip", "addr", "add", f"{API_ADDR}/24", "dev", "br0"], check=True)
    try:
        directory = lab.workdir / "check-page"
        certs = make_certificate(directory, (API_ADDR, *lab.server_addrs), valid_days=1)
        setup = RelaySetup(
            listen=lab.server_addrs,
            relay_address=lab.server_addr,
            port=3478,
            tls_port=443,
            api_listen=API_ADDR,
            api_port=443,
            port_range=(40000, 40999),
            allowed_peers=LAB_PEERS,
            cert=certs.cert,
            key=certs.key,
        )
        config = write_relay_config(directory, setup)
        yield LabCheckRelay(config, spki_sha256(certs.cert), directory / "state")
    finally:
        lab.run(lab.inet, ["ip", "addr", "del", f"{API_ADDR}/24", "dev", "br0"])


@pytest.fixture(scope="module")
def outcomes(lab: Lab, check_relay: LabCheckRelay) -> dict[NatType, dict[str, Any]]:
    """Each site's page run: the driver's record, the link's result id, the report."""
    found: dict[NatType, dict[str, Any]] = {}
    with serving(lab, check_relay, "turn-relay-check"):
        for nat in TRUTH:
            site = lab.site(nat)
            lab.reset_nat_state([nat])
            minted = lab.run(
                lab.inet, link_argv(check_relay.config, "--note", f"lab {nat}"), check=True
            )
            link = json.loads(minted.stdout)
            out = lab.workdir / f"check-{nat}.json"
            shot = lab.workdir / f"check-{nat}.png"
            argv = driver_argv(
                link["url"], out, check_relay.spki, "--screenshot", str(shot),
                relay_hosts=lab.server_addrs,
            )  # fmt: skip
            done = lab.run(site.client, argv, timeout=DRIVER_TIMEOUT_S)
            assert done.returncode == 0, done.stdout + done.stderr
            found[nat] = {"link": link, "page": json.loads(out.read_text()), "shot": shot}
    # a restart later, the reports are still there
    with serving(lab, check_relay, "turn-relay-check-again"):
        for outcome in found.values():
            read = lab.run(
                lab.inet,
                [RTCCHECK, "report", outcome["link"]["result_id"], "--state-dir",
                 str(check_relay.state_dir), "--json"],
            )  # fmt: skip
            assert read.returncode == 0, read.stdout + read.stderr
            outcome["stored"] = json.loads(read.stdout)
    return found


@pytest.mark.parametrize("nat", list(TRUTH), ids=str)
def test_the_verdict_matches_the_site(
    lab: Lab, outcomes: dict[NatType, dict[str, Any]], nat: NatType
) -> None:
    truth, outcome = TRUTH[nat], outcomes[nat]
    state = outcome["page"]["state"]
    report = outcome["stored"]["report"]
    assert state["verdict"] == truth.verdict  # what the user reads, from the DOM
    assert state["kind"] == truth.kind
    assert state["result_id"].replace("-", "") == outcome["link"]["result_id"]
    assert report["verdict"] == truth.verdict
    assert report["source"] == "browser"
    (nat_result,) = results_of(report, "browser.nat").values()
    assert nat_result["details"]["mapping"] == truth.mapping
    rows = [
        (r["check"], r["target"], r["status"], r["summary"], r["cause"]) for r in report["results"]
    ]
    assert data_by_transport(report) == truth.data, json.dumps(rows, indent=1)
    seen = {a["client_address"] for a in report["relay_observed"]["allocations"]}
    assert seen == {lab.site(nat).public_ip()}
    moved = [a for a in report["relay_observed"]["allocations"] if a["bytes_to_peers"] > 0]
    assert {a["transport"] for a in moved} == {k for k, v in truth.data.items() if v == "pass"}


@pytest.mark.parametrize("nat", list(TRUTH), ids=str)
def test_the_page_talks_only_to_the_relay(
    outcomes: dict[NatType, dict[str, Any]], nat: NatType
) -> None:
    page = outcomes[nat]["page"]
    allowed = {f"https://{API_ADDR}", f"wss://{API_ADDR}"}
    assert page_problems(page, allowed) == []
    assert page["requests"] and page["websockets"]


def test_screenshots_of_each_verdict_kind(outcomes: dict[NatType, dict[str, Any]]) -> None:
    """Writes docs/check-page/<kind>.png when TURNKIT_CHECK_PAGE_SCREENSHOTS is set."""
    shots = {TRUTH[nat].kind: outcome["shot"] for nat, outcome in outcomes.items()}
    assert all(shot.stat().st_size > 10_000 for shot in shots.values())
    if os.environ.get(SCREENSHOT_ENV):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for kind, shot in shots.items():
            shutil.copyfile(shot, DOCS_SCREENSHOTS / f"{kind}.png")


@dataclass(frozen=True)
class StrictSite:
    """The udp_blocked site behind a stricter firewall (`Lab.egress_only`)."""

    allowed: tuple[str, ...]
    truth: Truth
    causes: dict[str, str]  # browser.gather cause_id per transport


STRICT = {
    "tls-443-only": StrictSite(
        ("tcp dport 443",),
        Truth(
            "tls-443-only",
            "unknown",
            {"udp": "fail", "tcp": "fail", "tls": "pass"},
            "Your network blocks UDP and lets only TLS on port 443 through. Calls will work "
            "through TLS on port 443.",
        ),
        {"udp": "udp-no-answer", "tcp": "tcp-no-answer"},
    ),
    # only the relay's web page gets out: no TURN listener is reachable at all
    "blocked": StrictSite(
        (f"ip daddr {API_ADDR} tcp dport 443",),
        Truth(
            "blocked",
            "unknown",
            {"udp": "fail", "tcp": "fail", "tls": "fail"},
            "Calls cannot connect from this network: the relay could not be reached over UDP, "
            "TCP or TLS. Please read the result id below to support.",
        ),
        {"udp": "udp-no-answer", "tcp": "tcp-no-answer", "tls": "tcp-no-answer"},
    ),
}


@pytest.fixture(scope="module")
def strict_outcomes(lab: Lab, check_relay: LabCheckRelay) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    with serving(lab, check_relay, "turn-relay-check-strict"):
        for name, strict in STRICT.items():
            minted = lab.run(lab.inet, link_argv(check_relay.config), check=True)
            link = json.loads(minted.stdout)
            out, shot = lab.workdir / f"check-{name}.json", lab.workdir / f"check-{name}.png"
            argv = driver_argv(
                link["url"], out, check_relay.spki, "--screenshot", str(shot),
                relay_hosts=lab.server_addrs,
            )  # fmt: skip
            with lab.egress_only(strict.allowed) as site:
                done = lab.run(site.clients[0], argv, timeout=DRIVER_TIMEOUT_S)
            assert done.returncode == 0, done.stdout + done.stderr
            read = lab.run(
                lab.inet,
                [RTCCHECK, "report", link["result_id"], "--state-dir",
                 str(check_relay.state_dir), "--json"],
            )  # fmt: skip
            assert read.returncode == 0, read.stdout + read.stderr
            found[name] = {
                "link": link, "page": json.loads(out.read_text()), "shot": shot,
                "stored": json.loads(read.stdout),
            }  # fmt: skip
    return found


@pytest.mark.parametrize("name", list(STRICT))
def test_strict_firewalls_get_their_verdict(
    strict_outcomes: dict[str, dict[str, Any]], name: str
) -> None:
    """A site letting out only TCP 443 gets "tls-443-only"; one letting out nothing but the
    relay's web page gets "blocked": in the DOM and in the stored report, with the causes."""
    strict, outcome = STRICT[name], strict_outcomes[name]
    state, report = outcome["page"]["state"], outcome["stored"]["report"]
    assert (state["kind"], state["verdict"]) == (strict.truth.kind, strict.truth.verdict)
    assert state["result_id"].replace("-", "") == outcome["link"]["result_id"]
    assert report["verdict"] == strict.truth.verdict
    (verdict,) = results_of(report, "browser.verdict").values()
    assert verdict["details"]["kind"] == strict.truth.kind
    assert data_by_transport(report) == strict.truth.data
    gather = {
        ("tls" if target.startswith("turns:") else target.rpartition("transport=")[2]): r
        for target, r in results_of(report, "browser.gather").items()
    }
    failed = {kind: r["cause_id"] for kind, r in gather.items() if r["status"] == "fail"}
    assert failed == strict.causes
    allowed = {f"https://{API_ADDR}", f"wss://{API_ADDR}"}
    assert page_problems(outcome["page"], allowed) == []
    if os.environ.get(SCREENSHOT_ENV):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outcome["shot"], DOCS_SCREENSHOTS / f"{strict.truth.kind}.png")
