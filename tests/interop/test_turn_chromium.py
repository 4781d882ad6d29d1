"""A real browser (Debian's headless Chromium) makes relay-only calls through ``turn-relay``.

One page holds two RTCPeerConnections with ``iceTransportPolicy: "relay"`` and the iceServer that
``turn-relay credentials`` prints, signals locally, opens a data channel, echoes messages and
reads ``getStats()``: the selected candidate pair must join two relay candidates allocated over
the expected transport (``relayProtocol`` udp, tcp, tls). The relay's /metrics must show the
allocations, relayed packets and their deletion. For ``turns:`` Chromium trusts exactly the
relay's throwaway key (``--ignore-certificate-errors-spki-list``; without it the TLS handshake
fails with ERR_CERT_AUTHORITY_INVALID and no tls candidate is gathered). Runs only in a
loopback-only network namespace, as scripts/run-tests.sh runs pytest (``unshare -n``, ``lo`` up).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from turn_interop_kit import TURN_RELAY, wait_until_answering
from turnkit_testing import free_port, self_signed_certificate

pytestmark = pytest.mark.interop

CHROMIUM = Path("/usr/bin/chromium")
REALM = "chromium.test"
SECRET = "chromium-interop-secret"
API_KEY = "chromium-interop-api-key"
RELAY_PORTS = (26000, 26999)  # below the ephemeral range, apart from the other interop tests
MESSAGES = 20
PAGE_DEADLINE = 25.0  # seconds for the whole page (three calls) to report back

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} missing: install Debian's chromium package "
        "(apt-get install -y --no-install-recommends chromium)",
        allow_module_level=True,
    )


def loopback_only() -> bool:
    """True in a network namespace whose only interface is ``lo`` (nothing else is reachable)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


# Chromium talks to Google services on its own; a namespace without routes is the real guarantee
# that this test reaches nothing but 127.0.0.1, the flags below only keep it quiet.
if not loopback_only():
    pytest.skip(
        "needs a loopback-only network namespace: run under scripts/run-tests.sh or "
        "`unshare -n bash -c 'ip link set lo up && .venv/bin/pytest ...'`",
        allow_module_level=True,
    )


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>turnkit relay-only calls</title>
<script>
"use strict";
const post = (body) => fetch("/result", {
  method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body),
});
const expire = (ms, what) =>
  new Promise((_, reject) => setTimeout(() => reject(new Error(what + " timed out")), ms));

function candidate(stats, id) {
  const c = stats.get(id);
  return c && {
    candidateType: c.candidateType, relayProtocol: c.relayProtocol ?? null,
    protocol: c.protocol, address: c.address ?? null, port: c.port ?? null, url: c.url ?? null,
  };
}

// The controlled side may still show its nominated pair "in-progress" for a moment after data
// flowed over it (seen under load): read the stats again until it settles, for at most 5 s.
async function selectedPair(pc) {
  let pair = await readSelectedPair(pc);
  for (let tries = 0; pair && pair.state === "in-progress" && tries < 50; tries++) {
    await new Promise(resolve => setTimeout(resolve, 100));
    pair = await readSelectedPair(pc);
  }
  return pair;
}

async function readSelectedPair(pc) {
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type !== "transport" || !report.selectedCandidatePairId) continue;
    const pair = stats.get(report.selectedCandidatePairId);
    return {
      state: pair.state, nominated: pair.nominated ?? null,
      bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived,
      local: candidate(stats, pair.localCandidateId),
      remote: candidate(stats, pair.remoteCandidateId),
    };
  }
  return null;
}

async function call(run, count) {
  const config = {iceServers: [run.iceServer], iceTransportPolicy: "relay"};
  const caller = new RTCPeerConnection(config);
  const callee = new RTCPeerConnection(config);
  const result = {transport: run.transport, echoed: [], candidates: [], iceErrors: []};
  // Trickle signalling inside the page: candidates wait until the other side has a description.
  const trickle = (side, from, to) => {
    const pending = [];
    let ready = false;
    from.addEventListener("icecandidate", ({candidate: c}) => {
      if (!c || !c.candidate) return;
      result.candidates.push({side, type: c.type, protocol: c.protocol, address: c.address,
                              port: c.port});
      if (ready) to.addIceCandidate(c).catch((err) => result.iceErrors.push(String(err)));
      else pending.push(c);
    });
    from.addEventListener("icecandidateerror", (e) => {
      result.iceErrors.push({side, url: e.url, code: e.errorCode, text: e.errorText});
    });
    return async () => {
      ready = true;
      for (const c of pending.splice(0)) await to.addIceCandidate(c);
    };
  };
  const toCallee = trickle("caller", caller, callee);
  const toCaller = trickle("callee", callee, caller);
  try {
    const channel = caller.createDataChannel("echo");
    callee.addEventListener("datachannel", ({channel: peer}) => {
      peer.addEventListener("message", ({data}) => peer.send("echo:" + data));
    });
    const opened = new Promise((resolve) => channel.addEventListener("open", resolve));
    await caller.setLocalDescription();
    await callee.setRemoteDescription(caller.localDescription);
    await toCallee();
    await callee.setLocalDescription();
    await caller.setRemoteDescription(callee.localDescription);
    await toCaller();
    await Promise.race([opened, expire(8000, "data channel open")]);
    for (let i = 0; i < count; i++) {
      const reply = new Promise((resolve) => { channel.onmessage = ({data}) => resolve(data); });
      channel.send(`${run.transport} message ${i}`);
      result.echoed.push(await Promise.race([reply, expire(3000, "echo " + i)]));
    }
  } catch (err) {
    result.error = String(err);
  }
  result.caller = await selectedPair(caller);
  result.callee = await selectedPair(callee);
  caller.close();
  callee.close();
  return result;
}

(async () => {
  try {
    const config = await (await fetch("/config")).json();
    const results = [];
    for (const run of config.runs) results.push(await call(run, config.messages));
    await post({userAgent: navigator.userAgent, results});
  } catch (err) {
    await post({error: String(err)});
  }
})();
</script>
"""


@dataclass(frozen=True)
class Relay:
    port: int  # UDP and TCP
    tls_port: int
    api_port: int
    secret_file: Path
    spki_sha256: str  # base64, for Chromium's --ignore-certificate-errors-spki-list
    log: Path

    def urls(self) -> dict[str, str]:
        return {
            "udp": f"turn:127.0.0.1:{self.port}?transport=udp",
            "tcp": f"turn:127.0.0.1:{self.port}?transport=tcp",
            "tls": f"turns:127.0.0.1:{self.tls_port}?transport=tcp",
        }

    def ice_server(self, user: str, url: str) -> dict[str, Any]:
        """The RTCIceServer JSON that ``turn-relay credentials`` prints, as the page gets it."""
        printed = subprocess.run(
            [
                TURN_RELAY, "credentials", "--user", user, "--ttl", "600",
                "--secret-file", str(self.secret_file), "--url", url,
            ],
            check=True, capture_output=True, timeout=30,
        ).stdout  # fmt: skip
        server: dict[str, Any] = json.loads(printed)
        return server


def spki_sha256(cert_pem: Path) -> str:
    certificate = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def stop(process: subprocess.Popen[bytes], *, group: bool) -> None:
    """SIGTERM by PID (and its process group), then SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        if group:  # the leader is gone; sweep children that outlived it
            sweep_group(process.pid)
        return


def sweep_group(pgid: int, timeout: float = 3.0) -> None:
    """SIGKILL what is left of process group ``pgid`` and wait (bounded) until it is gone."""
    deadline = time.monotonic() + timeout
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)  # raises ProcessLookupError once the group is empty
            time.sleep(0.05)


@contextmanager
def running_relay(directory: Path) -> Iterator[Relay]:
    secret_file = directory / "rest-secrets"
    secret_file.write_text(SECRET + "\n")
    api_key = directory / "api-key"
    api_key.write_text(API_KEY + "\n")
    cert, key = self_signed_certificate(directory, stem="relay-")
    relay = Relay(
        port=free_port(),
        tls_port=free_port(),
        api_port=free_port(),
        secret_file=secret_file,
        spki_sha256=spki_sha256(cert),
        log=directory / "turn-relay.log",
    )
    with relay.log.open("wb") as log:
        process = subprocess.Popen(
            [
                # flags only: the relay address and the API's URLs follow from --listen
                TURN_RELAY, "serve", "--realm", REALM, "--listen", "127.0.0.1",
                "--port", str(relay.port), "--tls-port", str(relay.tls_port),
                "--tls-cert", str(cert), "--tls-key", str(key),
                "--port-range", "{}-{}".format(*RELAY_PORTS),
                "--secret-file", str(secret_file), "--allowed-peer", "127.0.0.0/8",
                "--api-port", str(relay.api_port), "--api-key-file", str(api_key),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_until_answering(relay.port)
            yield relay
        finally:
            stop(process, group=False)


@asynccontextmanager
async def page_server(
    config: dict[str, Any],
) -> AsyncIterator[tuple[str, asyncio.Future[dict[str, Any]]]]:
    """Serves the page and its config on 127.0.0.1; the future gets the page's POSTed JSON."""
    reported: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def page_config(request: web.Request) -> web.Response:
        return web.json_response(config)

    async def result(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        if not reported.done():
            reported.set_result(body)
        return web.json_response({"ok": True})

    async def no_favicon(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/config", page_config)
    app.router.add_post("/result", result)
    app.router.add_get("/favicon.ico", no_favicon)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/", reported
    finally:
        await runner.cleanup()


def chromium_command(url: str, profile: Path, relay: Relay) -> list[str]:
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--allow-loopback-in-peer-connection",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        # trust exactly the relay's throwaway key for turns: (no CA database needed)
        f"--ignore-certificate-errors-spki-list={relay.spki_sha256}",
        url,
    ]


async def fetch_api_urls(api_port: int) -> list[str]:
    """The URLs GET /credentials hands out (what an app's backend would give the page)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{api_port}/credentials?user=chromium", headers=headers
        ) as response,
    ):
        assert response.status == 200, await response.text()
        server: dict[str, Any] = await response.json()
    urls: list[str] = server["urls"]
    return urls


async def fetch_metrics(api_port: int) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{api_port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    metrics: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            metrics[name] = float(value)
    return metrics


async def wait_for_report(
    reported: asyncio.Future[dict[str, Any]], browser: subprocess.Popen[bytes]
) -> dict[str, Any]:
    """The page's POSTed results, failing early if Chromium exits before it reports."""
    deadline = time.monotonic() + PAGE_DEADLINE
    while not reported.done():
        code = browser.poll()
        assert code is None, f"chromium exited with {code} before the page reported"
        assert time.monotonic() < deadline, f"the page reported nothing in {PAGE_DEADLINE} s"
        await asyncio.wait([reported], timeout=0.2)
    return reported.result()


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    with running_relay(tmp_path_factory.mktemp("chromium-relay")) as started:
        yield started


def check_pair(pair: dict[str, Any] | None, transport: str, url: str, side: str) -> None:
    assert pair is not None, f"{transport}/{side}: no selected candidate pair"
    assert pair["state"] == "succeeded", (transport, side, pair)
    local, remote = pair["local"], pair["remote"]
    assert local["candidateType"] == "relay", (transport, side, pair)
    assert local["relayProtocol"] == transport, (transport, side, pair)
    assert local["url"] == url, (transport, side, pair)  # allocated from this relay URL
    # the relayed transport address is one of turn-relay's relay ports on loopback
    assert local["address"] == "127.0.0.1", (transport, side, pair)
    assert RELAY_PORTS[0] <= local["port"] <= RELAY_PORTS[1], (transport, side, pair)
    assert local["protocol"] == "udp", (transport, side, pair)  # relayed leg is always UDP
    # the other end is the other peer's relayed address, not a host candidate
    assert remote["candidateType"] == "relay", (transport, side, pair)
    assert RELAY_PORTS[0] <= remote["port"] <= RELAY_PORTS[1], (transport, side, pair)
    assert pair["bytesSent"] > 0 and pair["bytesReceived"] > 0, (transport, side, pair)


@pytest.mark.asyncio
async def test_chromium_relay_only_calls(relay: Relay, tmp_path: Path) -> None:
    before = await fetch_metrics(relay.api_port)
    urls = relay.urls()
    assert await fetch_api_urls(relay.api_port) == list(urls.values())
    runs = [
        {"transport": transport, "iceServer": relay.ice_server(f"chromium-{transport}", url)}
        for transport, url in urls.items()
    ]
    page_config = {"messages": MESSAGES, "runs": runs}
    browser_log = tmp_path / "chromium.log"
    async with page_server(page_config) as (url, reported):
        with browser_log.open("wb") as log:
            browser = subprocess.Popen(
                chromium_command(url, tmp_path / "profile", relay),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, killed as a whole below
            )
            started = time.monotonic()
            try:
                report = await wait_for_report(reported, browser)
            except AssertionError as failure:
                tail = browser_log.read_text(errors="replace")[-3000:]
                pytest.fail(f"{failure}; chromium log tail:\n{tail}")
            finally:
                stop(browser, group=True)
    elapsed = time.monotonic() - started

    assert "error" not in report, report
    results = {result["transport"]: result for result in report["results"]}
    assert list(results) == ["udp", "tcp", "tls"], report
    for transport, result in results.items():
        assert "error" not in result, json.dumps(result, indent=1)
        expected = [f"echo:{transport} message {i}" for i in range(MESSAGES)]
        assert result["echoed"] == expected, result
        # relay-only policy: the page never saw a host or srflx candidate
        assert {c["type"] for c in result["candidates"]} == {"relay"}, result
        check_pair(result["caller"], transport, urls[transport], "caller")
        check_pair(result["callee"], transport, urls[transport], "callee")

    # the page closed its peer connections: Chromium deletes its allocations (Refresh, lifetime 0)
    deadline = time.monotonic() + 3.0
    while True:
        after = await fetch_metrics(relay.api_port)
        if after["turnkit_relay_allocations_active"] == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert after["turnkit_relay_allocations_active"] == 0, after

    def grew(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    # both peers allocated on each transport (Chromium may add a spare allocation, never fewer)
    assert grew("turnkit_relay_allocations_created_total") >= 2 * len(results), after
    assert grew('turnkit_relay_requests_total{method="create_permission"}') >= 2, after
    created = grew("turnkit_relay_allocations_created_total")
    # every allocation ended as the client chose: a Refresh with lifetime 0, or (TCP, TLS) the
    # connection closed under it, which Chromium sometimes does first; none expired or was kicked
    removed = {
        key: grew(key)
        for key in after
        if key.startswith("turnkit_relay_allocations_removed_total") and grew(key)
    }
    ended_by_client = {
        'turnkit_relay_allocations_removed_total{reason="deleted"}',
        'turnkit_relay_allocations_removed_total{reason="connection-closed"}',
    }
    assert set(removed) <= ended_by_client, removed
    assert sum(removed.values()) == created, (created, removed)
    # the only error a browser saw is the 401 challenge that starts every Allocate
    errors = {key for key in after if key.startswith("turnkit_relay_error_responses") and grew(key)}
    assert errors <= {'turnkit_relay_error_responses_total{code="401"}'}, after
    # ... and it is counted as a challenge, not as an auth failure an alert would fire on
    assert grew("turnkit_relay_auth_challenges_total") >= 2 * len(results), after
    failures = {key for key in after if key.startswith("turnkit_relay_auth_failures") and grew(key)}
    assert not failures, after
    for direction in ("to_peer", "to_client"):
        key = f'turnkit_relay_relayed_packets_total{{direction="{direction}"}}'
        assert grew(key) >= 2 * MESSAGES * len(results), (key, after)
    print(f"chromium: {report['userAgent']}; three relay-only calls in {elapsed:.1f} s")
    print("  relay metrics grew:", {k: grew(k) for k in sorted(after) if grew(k)})
    for transport, result in results.items():
        local = result["caller"]["local"]
        print(f"  {transport}: caller local {local}, remote {result['caller']['remote']}")
