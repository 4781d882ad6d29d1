"""Real browsers as WebRTC clients, driven from asyncio: Debian's Chromium and Firefox ESR.

Both give `BrowserPage` objects whose ``call(function, arg)`` runs ``window.function(arg)`` in
the page and returns its (awaited) JSON result, so one page script serves both.

* Chromium: Playwright (``playwright`` on PyPI) launching ``/usr/bin/chromium`` over its pipe
  (no Playwright browser download). Every page gets its own browser context, as separate
  participants have separate profiles. ``command_prefix`` runs the browser under another
  command (``ip netns exec NS``): the control pipe does not care which network it is in.
* Firefox ESR: Mozilla's Marionette client (``marionette-driver`` on PyPI) over Firefox's own
  remote protocol (``--marionette``), one window per page. Why not the others, as tried here:
  neither Debian nor PyPI has a geckodriver binary (the npm and PyPI installers download it at
  install time, which fails without the internet), so selenium cannot start a session; and
  Playwright's WebDriver BiDi path for stock Firefox (``channel="moz-firefox"``) fails on
  ESR 153 at ``new_context`` with "emulation.setMediaFeaturesOverride: unknown command".

Every process is started here, tracked by PID and ended by PID (Playwright ends the browser it
launched on ``close``; Firefox's process group is ended by its PID).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

CHROMIUM = Path("/usr/bin/chromium")
FIREFOX = Path("/usr/bin/firefox-esr")
CERTUTIL = Path("/usr/bin/certutil")

# FIELD-NOTES: what headless Chromium needs to gather on loopback and stay quiet
CHROMIUM_ARGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--allow-loopback-in-peer-connection",
)


def resolver_rules(reachable: Sequence[str]) -> str:
    """Every host name unresolvable but ``reachable`` (Chromium also maps IP literals)."""
    excluded = "".join(f", EXCLUDE {host}" for host in reachable)
    return f"--host-resolver-rules=MAP * ~NOTFOUND{excluded}"


# Firefox ESR in a namespace without a default route gathers nothing unless loopback is allowed
# and a media permission is granted (FIELD-NOTES); the rest keeps a fresh profile quiet.
FIREFOX_PREFS: dict[str, bool | int | str] = {
    "media.peerconnection.ice.loopback": True,
    "permissions.default.microphone": 1,
    "permissions.default.camera": 1,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.auto": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "dom.disable_open_during_load": False,
}

PAGE_LOAD_TIMEOUT = 20.0
CALL_TIMEOUT = 20.0


class BrowserPage(Protocol):
    async def call(self, function: str, arg: object = None) -> Any: ...

    async def close(self) -> None: ...


class Browser(Protocol):
    name: str
    version: str

    async def open_page(self, url: str) -> BrowserPage: ...


def chromium_available() -> str | None:
    """None when Chromium and Playwright are usable, else why not."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} missing (apt-get install chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e .[dev])"
    return None


def firefox_available() -> str | None:
    """None when Firefox ESR and the Marionette client are usable, else why not."""
    if not FIREFOX.exists():
        return f"{FIREFOX} missing (apt-get install firefox-esr)"
    try:
        import marionette_driver.marionette  # noqa: F401
    except ImportError:
        return "marionette-driver is not installed (pip install -e .[dev])"
    return None


# --------------------------------------------------------------------------- Chromium


class ChromiumPage:
    def __init__(self, context: Any, page: Any) -> None:
        self._context = context
        self._page = page

    async def call(self, function: str, arg: object = None) -> Any:
        return await asyncio.wait_for(
            self._page.evaluate(f"arg => window.{function}(arg)", arg), CALL_TIMEOUT
        )

    async def close(self) -> None:
        with suppress(Exception):
            await self._context.close()


class Chromium:
    name = "chromium"

    def __init__(self, browser: Any) -> None:
        self._browser = browser
        self.version: str = browser.version

    async def open_page(self, url: str) -> BrowserPage:
        context = await self._browser.new_context()
        page = await context.new_page()
        await page.goto(url, timeout=PAGE_LOAD_TIMEOUT * 1000)
        return ChromiumPage(context, page)


def _wrapper(directory: Path, command_prefix: Sequence[str], executable: Path) -> Path:
    """A script that runs ``executable`` under ``command_prefix`` with the arguments it gets."""
    script = directory / "chromium-wrapper.sh"
    prefix = " ".join(shlex.quote(part) for part in command_prefix)
    script.write_text(f'#!/bin/sh\nexec {prefix} {shlex.quote(str(executable))} "$@"\n')
    script.chmod(0o755)
    return script


@asynccontextmanager
async def chromium(
    *,
    extra_args: Sequence[str] = (),
    command_prefix: Sequence[str] = (),
    workdir: Path | None = None,
    reachable_hosts: Sequence[str] = ("127.0.0.1",),
) -> AsyncIterator[Chromium]:
    """Headless Debian Chromium under Playwright for the block; names other than
    ``reachable_hosts`` do not resolve (it would otherwise look up Google hosts)."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="chromium-", dir=workdir) as scratch:
        executable = (
            _wrapper(Path(scratch), command_prefix, CHROMIUM) if command_prefix else CHROMIUM
        )
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(executable),
                headless=True,
                chromium_sandbox=False,
                args=[*CHROMIUM_ARGS, resolver_rules(reachable_hosts), *extra_args],
                timeout=30_000,
                handle_sigint=False,
                handle_sigterm=False,
                handle_sighup=False,
            )
            try:
                yield Chromium(browser)
            finally:
                with suppress(Exception):
                    await asyncio.wait_for(browser.close(), 15)


# --------------------------------------------------------------------------- Firefox ESR


class FirefoxPage:
    def __init__(self, browser: Firefox, handle: str) -> None:
        self._browser = browser
        self.handle = handle

    async def call(self, function: str, arg: object = None) -> Any:
        return await self._browser.run_in(self.handle, function, arg)

    async def close(self) -> None:
        await self._browser.close_window(self.handle)


_ASYNC_CALL = """
const [name, arg, done] = arguments;
Promise.resolve().then(() => window[name](arg)).then(
  (value) => done({value}), (err) => done({error: String(err)}));
"""


class Firefox:
    name = "firefox"

    def __init__(self, marionette: Any) -> None:
        self._marionette = marionette
        self._lock = asyncio.Lock()
        self._spare: list[str] = list(marionette.window_handles)  # the start-up window
        caps: dict[str, Any] = marionette.session_capabilities
        self.version = str(caps.get("browserVersion", "?"))

    async def _locked(self, work: Any) -> Any:
        async with self._lock:
            return await asyncio.wait_for(asyncio.to_thread(work), CALL_TIMEOUT + 5)

    async def open_page(self, url: str) -> BrowserPage:
        m = self._marionette

        def open_window() -> str:
            if self._spare:
                handle = self._spare.pop()
            else:
                handle = str(m.open(type="window", focus=False)["handle"])
            m.switch_to_window(handle, focus=False)
            m.navigate(url)
            return handle

        return FirefoxPage(self, await self._locked(open_window))

    async def run_in(self, handle: str, function: str, arg: object) -> Any:
        m = self._marionette

        def run() -> Any:
            m.switch_to_window(handle, focus=False)
            return m.execute_async_script(
                _ASYNC_CALL,
                script_args=[function, arg],
                sandbox=None,
                script_timeout=int(CALL_TIMEOUT * 1000),
            )

        outcome: dict[str, Any] = await self._locked(run)
        if "error" in outcome:
            raise RuntimeError(f"{function} failed in Firefox: {outcome['error']}")
        return outcome.get("value")

    async def close_window(self, handle: str) -> None:
        m = self._marionette

        def close() -> None:
            if len(m.window_handles) <= 1:  # keep the last window: Firefox would exit
                m.switch_to_window(handle, focus=False)
                m.navigate("about:blank")
                self._spare.append(handle)
                return
            m.switch_to_window(handle, focus=False)
            m.close()

        with suppress(Exception):
            await self._locked(close)


def _write_prefs(profile: Path, marionette_port: int) -> None:
    prefs = {**FIREFOX_PREFS, "marionette.port": marionette_port}
    lines = [f"user_pref({_js(name)}, {_js(value)});" for name, value in prefs.items()]
    (profile / "user.js").write_text("\n".join(lines) + "\n")


def _js(value: bool | int | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def trust_ca_in_profile(profile: Path, ca_pem: Path) -> None:
    """Add ``ca_pem`` as a trusted TLS root to the profile's own NSS database (certutil)."""
    subprocess.run(
        [str(CERTUTIL), "-N", "-d", f"sql:{profile}", "--empty-password"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    subprocess.run(
        [str(CERTUTIL), "-A", "-d", f"sql:{profile}", "-n", "turnkit test CA", "-t", "C,,",
         "-i", str(ca_pem)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def end_process_group(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM to the group led by ``process`` (which we started), then SIGKILL; waits."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        break
    deadline = time.monotonic() + 3.0
    with suppress(ProcessLookupError):  # children that outlived the leader
        os.killpg(process.pid, signal.SIGKILL)
        while time.monotonic() < deadline:
            os.killpg(process.pid, 0)
            time.sleep(0.05)


@asynccontextmanager
async def firefox(
    *, workdir: Path, marionette_port: int, trusted_ca: Path | None = None
) -> AsyncIterator[Firefox]:
    """Headless Firefox ESR with a fresh profile under Marionette for the block."""
    from marionette_driver.marionette import Marionette

    profile = Path(tempfile.mkdtemp(prefix="firefox-profile-", dir=workdir))
    _write_prefs(profile, marionette_port)
    if trusted_ca is not None:
        trust_ca_in_profile(profile, trusted_ca)
    log = (workdir / "firefox.log").open("wb")
    process = subprocess.Popen(
        [str(FIREFOX), "--headless", "--marionette", "--no-remote", "--profile", str(profile),
         "about:blank"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    marionette: Any = None
    try:
        marionette = Marionette(host="127.0.0.1", port=marionette_port, startup_timeout=60)
        await asyncio.wait_for(asyncio.to_thread(marionette.start_session), 70)
        yield Firefox(marionette)
    finally:
        if marionette is not None:
            with suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(marionette.delete_session), 10)
        end_process_group(process)
        log.close()
