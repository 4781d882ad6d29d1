"""Open a check link in headless Chromium and record what happened, over the DevTools protocol.

Run as a script (inside a lab namespace, or in the test's loopback-only namespace)::

    python drive_check_page.py URL --out result.json [--screenshot page.png] [--spki B64]
        [--tick-share] [--timeout 90] [--peer-code-file code.txt]

It starts Chromium with a fresh profile and ``--remote-debugging-port=0``, attaches to the page
target, enables Network, Runtime, Log and Page, navigates to URL and waits until the page sets
``document.body.dataset.reported`` (the report went up, or failed). It writes JSON: every URL
the browser requested (Network.requestWillBeSent, WebSocket creations included), console
messages, log entries (CSP violations are reported there), exceptions, the verdict text, its
kind, the shown result id and the rows of the details table. Chromium is stopped by PID.

With ``--peer-code-file`` it then presses "Test with another person", writes the room code the
page shows to that file (for the other party, e.g. ``rtccheck peer CODE``) once the page has
joined the room, and waits for the peer test's verdict on the page (``peer`` in the state).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
    "--window-size=900,1100",
    "--remote-debugging-port=0",
]
STATE_SCRIPT = """(() => {
  const box = document.getElementById("verdict-box");
  return JSON.stringify({
    reported: document.body ? (document.body.dataset.reported || null) : null,
    verdict: document.getElementById("verdict")?.textContent ?? null,
    kind: box?.dataset.verdict ?? null,
    result_id: document.getElementById("result-id")?.textContent ?? null,
    rows: [...document.querySelectorAll("#checks tbody tr")].map(
      (row) => [...row.cells].map((cell) => cell.textContent)),
    peer: (() => {
      const peer = document.getElementById("peer-box");
      const text = (id) => document.getElementById(id)?.textContent ?? null;
      return peer ? {
        offered: !peer.hidden, code: peer.dataset.code ?? null, state: peer.dataset.state ?? null,
        link: document.getElementById("peer-link")?.href ?? null, command: text("peer-command"),
        verdict: document.getElementById("peer-verdict")?.hidden ? null : text("peer-verdict"),
        stored: text("peer-stored"), status: text("peer-status"),
        report: text("peer-report"), log: text("peer-log"),
      } : null;
    })(),
  });
})()"""


class DevTools:
    """One page target's DevTools WebSocket: commands with ids, events collected in a list."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.socket:
            data = json.loads(message.data)
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None:
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self.socket.send_json({"id": ident, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def close(self) -> None:
        self._reader.cancel()
        await self.socket.close()


def devtools_port(profile: Path, deadline: float) -> int:
    marker = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        time.sleep(0.1)
    raise TimeoutError("Chromium did not open its DevTools port")


async def drive(args: argparse.Namespace, profile: Path) -> dict[str, Any]:
    # Every name resolves to nothing except the page's host and the relay's: IP literals match
    # the rules too, and Chromium's WebRTC TCP sockets fail with ERR_NAME_NOT_RESOLVED (-105)
    # for an address that is not excluded.
    hosts = dict.fromkeys([urlsplit(args.url).hostname, *args.relay_host])
    rules = "--host-resolver-rules=MAP * ~NOTFOUND, " + ", ".join(f"EXCLUDE {h}" for h in hosts)
    flags = [*FLAGS, rules, f"--user-data-dir={profile}"]
    if args.spki:
        flags.append(f"--ignore-certificate-errors-spki-list={args.spki}")
    log_path = os.environ.get("CHECKPAGE_CHROMIUM_LOG")  # for debugging: Chromium's own log
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    if log_path:
        flags += ["--enable-logging=stderr", "--v=1", "--vmodule=*turn*=3,*tcp*=3,*socket*=3"]
    browser = subprocess.Popen(
        [CHROMIUM, *flags, "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        port = devtools_port(profile, time.monotonic() + 30)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                targets = await answer.json()
            page = next(t for t in targets if t["type"] == "page")
            socket = await session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
            tools = DevTools(socket)
            try:
                return await run_page(tools, args)
            finally:
                await tools.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(browser.pid, signal.SIGTERM)
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait(10)


async def run_page(tools: DevTools, args: argparse.Namespace) -> dict[str, Any]:
    for domain in ("Network", "Runtime", "Log", "Page"):
        await tools.call(f"{domain}.enable")
    await tools.call("Page.navigate", url=args.url)
    state: dict[str, Any] = {}
    ticked = False
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        evaluated = await tools.call("Runtime.evaluate", expression=STATE_SCRIPT)
        value = evaluated.get("result", {}).get("value")
        state = json.loads(value) if isinstance(value, str) else {}
        if args.tick_share and not ticked and state.get("verdict") is not None:
            await tools.call(
                "Runtime.evaluate", expression="document.getElementById('share-local').click()"
            )
            ticked = True
        if state.get("reported"):
            break
    if args.peer_code_file and state.get("reported"):
        state = await run_peer_test(tools, args)
    if args.screenshot:
        shot = await tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        Path(args.screenshot).write_bytes(base64.b64decode(shot["data"]))
    return {"state": state, **network_facts(tools.events)}


PEER_DONE = ("pass", "fail", "error")


async def run_peer_test(tools: DevTools, args: argparse.Namespace) -> dict[str, Any]:
    await tools.call("Runtime.evaluate", expression="document.getElementById('peer-start').click()")
    state: dict[str, Any] = {}
    deadline = time.monotonic() + args.peer_timeout
    written = False
    while time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        evaluated = await tools.call("Runtime.evaluate", expression=STATE_SCRIPT)
        value = evaluated.get("result", {}).get("value")
        state = json.loads(value) if isinstance(value, str) else {}
        peer = state.get("peer") or {}
        if not written and peer.get("code") and peer.get("state") in ("waiting", *PEER_DONE):
            args.peer_code_file.write_text(peer["code"])
            written = True
        if peer.get("state") in PEER_DONE:
            break
    return state


def network_facts(events: list[dict[str, Any]]) -> dict[str, Any]:
    def of(method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in events if e["method"] == method]

    return {
        "requests": [p["request"]["url"] for p in of("Network.requestWillBeSent")],
        "websockets": [p["url"] for p in of("Network.webSocketCreated")],
        "failed": [p.get("errorText") for p in of("Network.loadingFailed")],
        "console": [
            {"type": p["type"], "text": " ".join(str(a.get("value", "")) for a in p["args"])}
            for p in of("Runtime.consoleAPICalled")
        ],
        "log": [
            {
                "level": p["entry"]["level"],
                "source": p["entry"]["source"],
                "text": p["entry"]["text"],
            }
            for p in of("Log.entryAdded")
        ],
        "exceptions": [
            p["exceptionDetails"].get("exception", {}).get("description")
            or p["exceptionDetails"].get("text")
            for p in of("Runtime.exceptionThrown")
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--spki", help="base64 SHA-256 of a certificate's SPKI to trust")
    parser.add_argument("--relay-host", action="append", default=[], help="another host to reach")
    parser.add_argument("--tick-share", action="store_true", help="tick the share box")
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--peer-code-file", type=Path, help="run the peer test (see above)")
    parser.add_argument("--peer-timeout", type=float, default=150.0)
    args = parser.parse_args()
    profile = Path(tempfile.mkdtemp(prefix="checkpage-chromium-"))
    try:
        result = asyncio.run(drive(args, profile))
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
