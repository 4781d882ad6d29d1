"""The check page end to end on loopback: `turn-relay serve` (its API over TLS), `turn-relay
link`, headless Chromium driven over the DevTools protocol, the stored report, a restart.

Runs only in a loopback-only network namespace (scripts/run-tests.sh). Checked: the page
reports back with data through UDP, TCP and TLS, requests nothing from another origin and logs
no error (CSP included); private addresses are redacted unless the box is ticked; the relay's
own view (relay_observed) names the test's allocations with bytes each way; a spent, forged or
expired token and oversized or malformed uploads are refused with nothing stored, and the relay
still serves afterwards; `rtccheck report ID --json` reads the report after a restart.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from checkpage_kit import (
    API_KEY,
    RTCCHECK,
    TURN_RELAY,
    RelaySetup,
    data_by_transport,
    driver_argv,
    link_argv,
    page_problems,
    spki_sha256,
    write_relay_config,
)
from turnkit_testing import free_port
from turnkit_testing.report_documents import report
from turnkit_testing.tls import make_certificate

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip(f"{CHROMIUM} missing (scripts/bootstrap.sh installs it)", allow_module_level=True)
if [name for _, name in socket.if_nameindex()] != ["lo"]:
    pytest.skip("needs a loopback-only namespace (scripts/run-tests.sh)", allow_module_level=True)


@dataclass
class Relay:
    config: Path
    state_dir: Path
    spki: str
    api: str
    directory: Path
    cert: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.directory / "relay.log").open("ab")
        self.process = subprocess.Popen(
            [TURN_RELAY, "serve", "--config", str(self.config)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if fetch(f"{self.api}/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the relay's API did not come up")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)
            self.process = None


def fetch(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    context = ssl._create_unverified_context()  # the test's own throwaway certificate
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    directory = tmp_path_factory.mktemp("check-page")
    certs = make_certificate(directory, ("127.0.0.1",), self_signed=True)
    api_port = free_port()
    setup = RelaySetup(
        listen=("127.0.0.1",),
        relay_address="127.0.0.1",
        port=free_port(),
        tls_port=free_port(),
        api_listen="127.0.0.1",
        api_port=api_port,
        port_range=(27000, 27999),
        allowed_peers=("127.0.0.0/8",),
        cert=certs.cert,
        key=certs.key,
    )
    config = write_relay_config(directory, setup)
    serving = Relay(
        config, directory / "state", spki_sha256(certs.cert), f"https://127.0.0.1:{api_port}",
        directory, certs.ca,
    )  # fmt: skip
    serving.start()
    try:
        yield serving
    finally:
        serving.stop()


def mint(relay: Relay, *extra: str) -> dict[str, Any]:
    done = subprocess.run(link_argv(relay.config, *extra), capture_output=True, check=True)
    link: dict[str, Any] = json.loads(done.stdout)
    return link


def open_page(relay: Relay, url: str, directory: Path, *extra: str) -> dict[str, Any]:
    out = directory / "page.json"
    subprocess.run(driver_argv(url, out, relay.spki, *extra), check=True, timeout=150)
    outcome: dict[str, Any] = json.loads(out.read_text())
    return outcome


def stored(relay: Relay, result_id: str) -> dict[str, Any]:
    done = subprocess.run(
        [RTCCHECK, "report", result_id, "--state-dir", str(relay.state_dir), "--json"],
        capture_output=True, check=True,
    )  # fmt: skip
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def reports_kept(relay: Relay) -> int:
    done = subprocess.run(
        [RTCCHECK, "reports", "--state-dir", str(relay.state_dir), "--json"],
        capture_output=True, check=True,
    )  # fmt: skip
    return len(json.loads(done.stdout)["reports"])


def test_a_link_reports_back_and_survives_a_restart(relay: Relay, tmp_path: Path) -> None:
    link = mint(relay, "--note", "ticket 4711")
    page = open_page(relay, link["url"], tmp_path)
    state = page["state"]
    assert state["reported"] == link["result_id"]
    assert state["result_id"] == f"{link['result_id'][:4]}-{link['result_id'][4:]}"
    assert page_problems(page, {relay.api, relay.api.replace("https", "wss")}) == []
    document = stored(relay, link["result_id"])
    report = document["report"]
    assert report["verdict"] == state["verdict"]
    assert data_by_transport(report) == {"udp": "pass", "tcp": "pass", "tls": "pass"}
    text = json.dumps(report["results"])
    assert '127.0.0.1"' not in text.replace("turn:127.0.0.1", "").replace("turns:127.0.0.1", "")
    observed = report["relay_observed"]
    assert observed["test_id"] == link["result_id"]
    moved = {a["transport"] for a in observed["allocations"] if a["bytes_from_peers"] > 0}
    assert moved == {"udp", "tcp", "tls"}
    relay.stop()
    relay.start()
    assert stored(relay, link["result_id"]) == document
    assert stored_over_api(relay, link["result_id"], "--ca-file", str(relay.cert)) == document


def read_over_api(relay: Relay, result_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`rtccheck report ID --api` against the relay's own HTTPS API (its key from the env)."""
    return subprocess.run(
        [RTCCHECK, "report", result_id, "--api", relay.api, "--json", *extra],
        check=False, capture_output=True, text=True, timeout=30,
        env={**os.environ, "RTCCHECK_API_KEY": API_KEY},
    )  # fmt: skip


def stored_over_api(relay: Relay, result_id: str, *extra: str) -> dict[str, Any]:
    done = read_over_api(relay, result_id, *extra)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def test_the_tls_api_is_trusted_only_with_its_ca(relay: Relay, tmp_path: Path) -> None:
    """Without --ca-file the relay's own certificate is refused (exit 2, with the hint), and
    another CA does not make it trusted either."""
    link = mint(relay)
    token = link["url"].rpartition("/")[2]
    body = json.dumps(report(source="browser")).encode()
    assert fetch(f"{relay.api}/check/{token}/report", body)[0] == 200
    newest = link["result_id"]
    untrusted = read_over_api(relay, newest)
    assert untrusted.returncode == 2 and "--ca-file" in untrusted.stderr, untrusted.stderr
    other = make_certificate(tmp_path, ("127.0.0.1",), self_signed=True)
    wrong = read_over_api(relay, newest, "--ca-file", str(other.ca))
    assert wrong.returncode == 2 and "not trusted" in wrong.stderr, wrong.stderr
    plain = subprocess.run(
        [RTCCHECK, "report", newest, "--api", relay.api.replace("https", "http"),
         "--ca-file", str(relay.cert)],
        check=False, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert plain.returncode == 2 and "https://" in plain.stderr
    assert stored_over_api(relay, newest, "--ca-file", str(relay.cert))["id"] == newest


def test_private_addresses_are_sent_when_the_box_is_ticked(relay: Relay, tmp_path: Path) -> None:
    link = mint(relay)
    page = open_page(relay, link["url"], tmp_path, "--tick-share")
    assert page["state"]["reported"] == link["result_id"]
    report = stored(relay, link["result_id"])["report"]
    (verdict,) = [r for r in report["results"] if r["check"] == "browser.verdict"]
    assert verdict["details"]["private_addresses_shared"] is True
    addresses = {
        c["address"] for r in report["results"] for c in r["details"].get("candidates", [])
    }
    assert "127.0.0.1" in addresses and "redacted" not in addresses


def test_spent_forged_expired_tokens_and_bad_uploads_store_nothing(
    relay: Relay, tmp_path: Path
) -> None:
    link = mint(relay)
    spent = mint(relay)
    token = link["url"].rpartition("/")[2]
    body = json.dumps({**stored_example(relay), "source": "browser"}).encode()
    assert fetch(f"{relay.api}/check/{spent['url'].rpartition('/')[2]}/report", body)[0] == 200
    before = reports_kept(relay)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    statuses = {
        "spent": fetch(f"{relay.api}/check/{spent['url'].rpartition('/')[2]}/report", body)[0],
        "spent page": fetch(spent["url"])[0],
        "forged": fetch(f"{relay.api}/check/{forged}/report", body)[0],
        "oversized": fetch(f"{relay.api}/check/{token}/report", b" " * 300_000)[0],
        "malformed": fetch(f"{relay.api}/check/{token}/report", b"{")[0],
    }
    assert statuses == {
        "spent": 403, "spent page": 403, "forged": 403, "oversized": 413, "malformed": 400,
    }  # fmt: skip
    assert reports_kept(relay) == before
    assert fetch(f"{relay.api}/healthz")[0] == 200
    assert fetch(f"{relay.api}/check/{token}/config")[0] == 200  # the unspent link still works


def stored_example_id(relay: Relay) -> str:
    """The id of the newest stored report (an earlier test made it)."""
    done = subprocess.run(
        [RTCCHECK, "reports", "--state-dir", str(relay.state_dir), "--json", "--limit", "1"],
        capture_output=True, check=True,
    )  # fmt: skip
    newest: str = json.loads(done.stdout)["reports"][0]["id"]
    return newest


def stored_example(relay: Relay) -> dict[str, Any]:
    """A valid report document: the newest stored one (an earlier test made it)."""
    report: dict[str, Any] = stored(relay, stored_example_id(relay))["report"]
    return report


def test_an_expired_link_is_refused(relay: Relay) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from turn_relay.auth.links import mint as mint_token

    token = mint_token("check-page-link-secret-0123456789", "7KQ2M9XD", 1000, None, 999)
    assert fetch(f"{relay.api}/check/{token}")[0] == 403


def test_the_check_page_tests_a_call_with_another_person(relay: Relay, tmp_path: Path) -> None:
    """ "Test with another person": the page's button opens a room on the check link's
    authority and shows a link and code; `rtccheck peer CODE --json` joins from the CLI and
    both sides get the same verdict, stored once as a peer report."""
    link = mint(relay)
    out, code_file = tmp_path / "page.json", tmp_path / "code.txt"
    argv = driver_argv(link["url"], out, relay.spki, "--peer-code-file", str(code_file))
    page_process = subprocess.Popen([*argv, "--peer-timeout", "100"])
    try:
        while not code_file.exists() and page_process.poll() is None:
            time.sleep(0.3)
        if not code_file.exists():
            page_process.wait(10)
            pytest.fail(f"the page showed no room code: {out.read_text()[:3000]}")
        code = code_file.read_text()
        cli = subprocess.run(
            [RTCCHECK, "peer", code, "--relay", relay.api, "--ca-file", str(relay.cert), "--json"],
            check=False, capture_output=True, text=True, timeout=150,
        )  # fmt: skip
        assert page_process.wait(150) == 0
    finally:
        if page_process.poll() is None:
            page_process.kill()
            page_process.wait(10)
    page = json.loads(out.read_text())
    peer = page["state"]["peer"]
    assert cli.returncode == 0, (cli.stderr, peer)
    cli_report = json.loads(cli.stdout)
    assert peer["offered"] is True and peer["state"] == "pass", peer
    assert peer["code"] == code and len(code) == 9 and code[4] == "-"
    assert peer["link"].startswith(f"{relay.api}/peer/#")
    assert peer["command"] == f"rtccheck peer {code} --relay {relay.api}"
    assert peer["verdict"] == cli_report["verdict"]
    assert cli_report["source"] == "peer"
    page_report = json.loads(peer["report"])
    assert page_report == cli_report
    result_id = peer["stored"].split()[2].rstrip(":")
    assert f"stored as report {result_id}" in cli.stderr
    assert stored(relay, result_id)["report"]["verdict"] == peer["verdict"]
    allowed = {relay.api, relay.api.replace("https", "wss")}
    assert page_problems(page, allowed) == []


def test_a_room_from_a_check_link_needs_a_valid_link(relay: Relay) -> None:
    link = mint(relay)
    token = link["url"].rpartition("/")[2]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert fetch(f"{relay.api}/rendezvous/from-check/{forged}", b"")[0] == 403
    status, body = fetch(f"{relay.api}/rendezvous/from-check/{token}", b"")
    assert status == 200
    room = json.loads(body)
    assert "secret" not in body.decode().lower()
    # the code hands out the other person's seat only, never the page's own
    status, body = fetch(f"{relay.api}/rendezvous/code/{room['code']}")
    assert status == 200
    handed = json.loads(body)
    assert handed["seat"] == "b" and handed["token"] == room["link"].partition("#")[2]
    assert handed["token"] != room["token"]
