"""The relay's asyncio shell: listeners, relay sockets, timers, signals, metrics, HTTP API.

It owns every socket and the clock; the protocol lives in `turn_relay.core.RelayCore`. Client
datagrams and frames that the fast path does not forward, peer datagrams on unrouted peers and
timer ticks go into the core; the actions it returns are run here in order.

Signals (`serve`): SIGHUP re-reads the secrets (REST secrets, static users, API key) and swaps
the credential lookup, and re-reads the TLS certificate and key for new handshakes
(`turn_relay.shell.tls`); allocations, nonces and TLS connections stay valid. SIGTERM/SIGINT
stop cleanly: listeners close, every TCP/TLS connection and relay socket is closed, the HTTP
API stops. With ``server.drain_seconds`` above 0 a SIGTERM drains first (`drain`: no new
allocations, /healthz 503, the existing ones run until they end or the deadline); a second
SIGTERM stops at once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from turn_relay import config as relay_config
from turn_relay.api import quiet_errors
from turn_relay.api.admin import AdminView
from turn_relay.api.app import create_app
from turn_relay.api.check_settings import CheckSettings, CheckViews, ObservedProvider
from turn_relay.api.rendezvous import add_rendezvous
from turn_relay.api.settings import ApiSettings
from turn_relay.api.shared_reports import REPORTS_KEY, ReportShare
from turn_relay.auth.challenge import source_key
from turn_relay.config import ConfigError, Secrets, TurnConfig
from turn_relay.config.wiring import build_core, long_term_auth, wall_offset
from turn_relay.core.actions import (
    Action,
    CloseClient,
    CloseRelay,
    OpenRelay,
    PermitDown,
    PermitUp,
    RouteDown,
    RouteUp,
    ToClient,
    ToPeer,
)
from turn_relay.core.allocation import Address, FiveTuple, Transport
from turn_relay.reports.store import ReportStore

from .api_site import CappedSite
from .check_view import CheckView
from .datagrams import (
    CAN_SET_DONT_FRAGMENT,
    Deliver,
    RelaySocket,
    UdpListener,
    send_many,
    udp_socket,
)
from .eventlog import EventLog
from .metrics import DataPathStats, offload_state, prometheus_text, snapshot
from .offload import POLL_INTERVAL, KernelRoutes, KernelStart, start_kernel_offload
from .rare_warning import RareWarning
from .revocations import RevocationStore
from .stream_caps import StreamCaps
from .streams import StreamConnection
from .tls import ReloadableCertificate

logger = logging.getLogger(__name__)


class RelayFleetLike(Protocol):
    """What the server needs of its fleet membership (`turn_relay.shell.fleet.RelayFleet`)."""

    @property
    def reports(self) -> ReportShare: ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def metrics(self) -> dict[str, float]: ...


_BACKLOG = 512
_LOGGED_INTERNAL_ERRORS = 20  # then only counted, so a bug cannot flood the log
_TIMER_SLACK = 0.001  # uvloop timers have 1 ms resolution: never wake up just before a deadline
_LISTENER_BUFFER = 4 << 20  # bytes asked for; the kernel caps it at net.core.[rw]mem_max
_DRAIN_POLL = 0.25  # seconds between looks at a draining relay's allocations
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)
API_IDLE_TIMEOUT = 15.0  # seconds an HTTP API connection may sit idle (aiohttp's default: 75)
API_MAX_LINE = 4096  # bytes of a request line or header (the API's URLs are short)


def check_relay_addresses(config: TurnConfig) -> None:
    """Fail early (OSError with a clear message) if a relay address is not local."""
    for address in config.relay.addresses:
        try:
            udp_socket((address, 0)).close()
        except OSError as exc:
            raise OSError(exc.errno, f"relay address {address} cannot be bound: {exc}") from None


async def start_api(
    config: TurnConfig,
    secrets: Callable[[], Secrets],
    metrics: Callable[[], str],
    admin: AdminView | None,
    observed: ObservedProvider,
    *,
    report_share: ReportShare | None = None,
) -> web.AppRunner | None:
    """The HTTP API of ``config`` (None when it is off), serving ``metrics()`` at /metrics,
    given ``admin`` the admin routes and, when configured, the check page (``observed`` says
    what the relay saw of a test; a fleet member's ``report_share`` holds its siblings'
    reports)."""
    api = config.api
    if not api.enabled:
        return None
    settings = ApiSettings.from_config(config)
    quiet_errors.install()
    check = _check_views(config, observed, report_share)
    app = create_app(settings, secrets, metrics, admin=admin, check=check)
    if check is not None:
        app.on_cleanup.append(lambda _: asyncio.to_thread(check.store.close))
    if config.rendezvous.enabled:
        add_rendezvous(app, config, settings, secrets, app.get(REPORTS_KEY))
    runner = web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=API_IDLE_TIMEOUT,  # also closes connections that never send
        max_line_size=API_MAX_LINE,
        max_field_size=API_MAX_LINE,
    )
    await runner.setup()
    tls = _api_tls_context(config)
    try:
        await CappedSite(runner, api.listen, api.port, ssl_context=tls).start()
    except BaseException:
        await runner.cleanup()
        raise
    host = f"[{api.listen}]" if ":" in api.listen else api.listen
    urls = " ".join(settings.urls)
    scheme = "https" if tls else "http"
    logger.info(
        "HTTP API on %s://%s:%d; GET /credentials hands out %s", scheme, host, api.port, urls
    )
    return runner


def _check_views(
    config: TurnConfig, observed: ObservedProvider, share: ReportShare | None
) -> CheckViews | None:
    state_dir = config.server.state_dir
    if not config.check.enabled or state_dir is None:
        return None
    return CheckViews(CheckSettings.from_config(config), ReportStore(state_dir), observed, share)


def _api_tls_context(config: TurnConfig) -> ssl.SSLContext | None:
    api = config.api
    if api.tls_cert_file is None or api.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(api.tls_cert_file, api.tls_key_file)
    return context


def _tls_certificate(config: TurnConfig) -> ReloadableCertificate:
    listen = config.listen
    assert listen.tls_cert_file is not None and listen.tls_key_file is not None
    return ReloadableCertificate(listen.tls_cert_file, listen.tls_key_file)


def stream_socket(address: Address, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class RelayServer:
    def __init__(
        self,
        config: TurnConfig,
        secrets: Secrets,
        *,
        nonce_key: bytes | None = None,
        legacy_channels: bool = False,
        ports: tuple[int, int] | None = None,
        reuse_port: bool = False,
        api: bool = True,
        announce: bool = True,
        kernel: KernelStart | None = None,
    ) -> None:
        """``ports``, ``reuse_port``, ``api``, ``announce`` and ``kernel`` are for worker
        processes (`turn_relay.workers`): a share of the relay port range, listeners shared with
        the other workers, the HTTP API left to the parent, one "listening" line for all of
        them, and the kernel offload the parent opened (else `start` opens it)."""
        self.config = config
        self.secrets = secrets
        self.events = EventLog()
        self.core = build_core(
            config,
            secrets,
            nonce_key=nonce_key,
            legacy_channels=legacy_channels,
            dont_fragment=CAN_SET_DONT_FRAGMENT,
            ports=ports,
        )
        self.core.observer = self.events
        self.started_at = time.time()
        self.drain_deadline: float | None = None  # monotonic; set while draining
        self.last_reload: dict[str, object] | None = None  # when, ok, error
        self.admin: AdminView | None = None  # set by the process entry when it serves the API
        self.fleet: RelayFleetLike | None = None  # set by the process entry in a fleet
        self._housekeeping: asyncio.TimerHandle | None = None
        self._reuse_port = reuse_port
        self._serve_api = api
        self._announce = announce
        # A bandwidth cap needs every packet counted, so the core sees them all (no fast path).
        self._fast_path = not self.core.settings.max_bandwidth
        self.stats = DataPathStats()
        self.check_view = CheckView()  # check-page tests: kept off the fast path, counted
        self.udp_listeners: dict[Address, UdpListener] = {}
        self.stream_servers: list[tuple[Transport, asyncio.Server]] = []
        self.connections: dict[FiveTuple, StreamConnection] = {}
        self.relays: dict[Address, RelaySocket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._api: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._tls: ReloadableCertificate | None = None  # made with the first TLS listener
        self.stream_caps = StreamCaps.for_limits(config.listen)
        self.setup_timeout = config.listen.stream_setup_timeout
        self._per_source: Counter[str] = Counter()
        self._refused_streams = RareWarning(
            "TCP/TLS connection refused at listen.max_stream_connections(_per_source)"
        )
        self._exhaustion = RareWarning(
            "out of file descriptors: Allocates answered 508 (raise LimitNOFILE, or lower"
            " quotas.max_allocations)"
        )
        self._kernel_start = kernel
        self.kernel = KernelRoutes(KernelStart(None, "off", "not started"), self.stats, self.core)
        self._kernel_poll: asyncio.TimerHandle | None = None

    # ================================================================ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        check_relay_addresses(self.config)
        self._load_revocations()
        self._keep_house()
        try:
            self._start_kernel()
            await self._start_listeners()
            await self._start_api()
            if self.fleet is not None:
                await self.fleet.start()
        except BaseException:
            await self.stop()
            raise
        logger.log(
            logging.INFO if self._announce else logging.DEBUG,
            "relay listening on %s; TCP/TLS connections: at most %d, %d per source",
            ", ".join(self.describe_listeners()),
            self.stream_caps.total,
            self.stream_caps.per_source,
        )

    async def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if self.fleet is not None:
            await self.fleet.stop()  # leaves the fleet first: siblings stop naming this relay
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            self._housekeeping = None
        self.events.flush(time.monotonic() + self.events.aggregator.window)
        if self._kernel_poll is not None:
            self._kernel_poll.cancel()
            self._kernel_poll = None
        self.kernel.close()
        for listener in self.udp_listeners.values():
            listener.close(loop)
        self.udp_listeners.clear()
        for _, server in self.stream_servers:
            server.close()
        for connection in list(self.connections.values()):
            if connection.transport is not None:
                connection.transport.abort()
        for _, server in self.stream_servers:
            await server.wait_closed()
        self.stream_servers.clear()
        self.connections.clear()
        for relay in self.relays.values():
            relay.close(loop)
        self.relays.clear()
        if self._api is not None:
            await self._api.cleanup()
            self._api = None
        self._loop = None

    def request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def serve(self) -> None:
        """Start, run until SIGTERM/SIGINT (or `request_stop`), then stop cleanly."""
        await self.start()
        loop = asyncio.get_running_loop()
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        loop.add_signal_handler(signal.SIGTERM, self.terminate)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            assert self._stopping is not None
            await self._stopping.wait()
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
            logger.log(
                logging.INFO if self._announce else logging.DEBUG,
                "relay stopping: %d allocation(s) dropped",
                len(self.core.table),
            )
            await self.stop()

    def reload(self) -> None:
        """SIGHUP: re-read the secrets and the TLS pair; on error keep the old ones (and say
        why)."""
        if self._tls is not None:
            self._tls.reload()
        try:
            secrets = relay_config.load_secrets(self.config)
        except ConfigError as exc:
            logger.error("reload failed, keeping the previous secrets: %s", exc)
            self.last_reload = {"at": time.time(), "ok": False, "error": str(exc)}
            return
        self.last_reload = {"at": time.time(), "ok": True, "error": None}
        self.secrets = secrets
        self.core.authenticator.auth = long_term_auth(self.config, secrets)
        logger.log(
            logging.INFO if self._announce else logging.DEBUG,
            "reloaded secrets: %d REST secret(s), %d static user(s)",
            len(secrets.rest_secrets),
            len(secrets.static_users),
        )

    async def _start_listeners(self) -> None:
        assert self._loop is not None
        listen = self.config.listen
        for listener in listen.listeners():
            address = (listener.address, listener.port)
            if listener.transport == "udp":
                sock = udp_socket(address, reuse_port=self._reuse_port)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _LISTENER_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _LISTENER_BUFFER)
                udp = UdpListener(self, sock)
                udp.start(self._loop)
                self.udp_listeners[udp.address] = udp
            else:
                await self._start_stream(Transport(listener.transport), address)

    def _start_kernel(self) -> None:
        """The kernel offload (the parent's in a worker); raises OffloadUnavailable with "on"."""
        start = self._kernel_start or start_kernel_offload(self.config)
        self.kernel = KernelRoutes(start, self.stats, self.core)
        if self.kernel.active:
            self._schedule_kernel_poll()

    def _schedule_kernel_poll(self) -> None:
        assert self._loop is not None
        self._kernel_poll = self._loop.call_later(POLL_INTERVAL, self._poll_kernel)

    def _poll_kernel(self) -> None:
        self._kernel_poll = None
        self.kernel.poll(time.monotonic())
        if self._loop is not None:
            self._schedule_kernel_poll()

    async def _start_stream(self, kind: Transport, address: Address) -> None:
        """A TCP listener; for TLS too: the connections run TLS themselves over memory BIOs
        (the loop's own TLS keeps ~300 KiB of heap per connection that glibc never returns,
        docs/operations.md "TLS memory"), each with the certificate current when it came."""
        assert self._loop is not None
        tls: Callable[[], ssl.SSLContext] | None = None
        if kind is Transport.TLS:
            certificate = self._tls = self._tls or _tls_certificate(self.config)
            tls = certificate.context
        sock = stream_socket(address, reuse_port=self._reuse_port)
        try:
            server = await self._loop.create_server(
                lambda: StreamConnection(self, kind, tls), sock=sock, backlog=_BACKLOG
            )
        except BaseException:
            sock.close()
            raise
        self.stream_servers.append((kind, server))

    async def _start_api(self) -> None:
        if self._serve_api:
            share = self.fleet.reports if self.fleet is not None else None
            self._api = await start_api(
                self.config,
                lambda: self.secrets,
                self.metrics,
                self.admin,
                self.observed,
                report_share=share,
            )

    # ================================================================ operations

    async def observed(self, test_id: str) -> list[dict[str, Any]]:
        """What this process saw of check-page test ``test_id`` (its allocations)."""
        return self.check_view.observed(test_id, time.monotonic())

    def terminate(self) -> None:
        """SIGTERM: drain for ``server.drain_seconds`` first, or stop when that is 0 or a
        drain is already under way (a second SIGTERM)."""
        seconds = self.config.server.drain_seconds
        if seconds and self.drain_deadline is None:
            self.drain(seconds)
        else:
            self.request_stop()

    def drain(self, seconds: float) -> None:
        """No new allocations from now on; stop when the last one ended or after ``seconds``
        (an earlier deadline than one already set wins)."""
        now = time.monotonic()
        watching = self.drain_deadline is not None
        if self.drain_deadline is None or now + seconds < self.drain_deadline:
            self.drain_deadline = now + seconds
        self._run(self.core.drain(now), now)
        if self._announce:
            logger.info(
                "draining: %d allocation(s) may run for up to %gs; new ones are refused",
                len(self.core.table),
                seconds,
            )
        if not watching:
            self._watch_drain()

    def _watch_drain(self) -> None:
        if self._loop is None or self.drain_deadline is None:
            return
        left = len(self.core.table)
        if not left or time.monotonic() >= self.drain_deadline:
            logger.log(
                logging.INFO if self._announce or left else logging.DEBUG,
                "drained: %d allocation(s) left at the deadline",
                left,
            )
            self.request_stop()
            return
        self._loop.call_later(_DRAIN_POLL, self._watch_drain)

    def operate(self, event: Callable[[float], list[Action]]) -> None:
        """Run an operator event on the core (``core.kick`` ...) and its actions."""
        now = time.monotonic()
        self.core.wall_offset = wall_offset()
        self._run(event(now), now)

    def _load_revocations(self) -> None:
        state_dir = self.config.server.state_dir
        if state_dir is None:
            return
        found = RevocationStore(state_dir).load(time.time())
        self.core.authenticator.revoked.update(found)
        if found and self._announce:
            logger.info("%d revoked user(s) loaded from %s", len(found), state_dir)

    def _keep_house(self) -> None:
        """Every event-log window: log the "N more like this" lines that are due."""
        self.events.flush(time.monotonic())
        if self._loop is not None:
            window = self.events.aggregator.window
            self._housekeeping = self._loop.call_later(window, self._keep_house)

    def describe_listeners(self) -> list[str]:
        described = [f"udp {a[0]}:{a[1]}" for a in self.udp_listeners]
        for kind, server in self.stream_servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                described.append(f"{kind.value} {host}:{port}")
        return described

    def listening(self, kind: Transport) -> list[Address]:
        """The bound addresses of ``kind`` listeners (useful with port 0 in tests)."""
        if kind is Transport.UDP:
            return list(self.udp_listeners)
        return [
            (sock.getsockname()[0], sock.getsockname()[1])
            for k, server in self.stream_servers
            if k is kind
            for sock in server.sockets
        ]

    # ================================================================ metrics

    def metrics(self) -> str:
        return prometheus_text(self.metrics_snapshot())

    def metrics_snapshot(self) -> dict[str, float]:
        """The flat metrics of this process (a worker's share, summed by the parent)."""
        return snapshot(
            self.core.stats,
            self.stats,
            allocations=len(self.core.table),
            relays=len(self.relays),
            connections=len(self.connections),
            by_transport=Counter(a.five_tuple.transport.value for a in self.core.sessions()),
            offload=offload_state(self.kernel.state, self.kernel.installed),
        ) | (self.fleet.metrics() if self.fleet is not None else {})

    # ================================================================ slow path into the core

    def from_client(self, data: bytes, five_tuple: FiveTuple) -> None:
        now = time.monotonic()
        self.core.wall_offset = wall_offset()
        try:
            actions = self.core.receive(data, five_tuple, now)
        except Exception:  # a core bug must cost one packet, not the listener's batch
            self._internal_error("client", five_tuple.client)
            return
        self._run(actions, now)

    def from_peer(self, data: bytes, relay: Address, peer: Address) -> None:
        now = time.monotonic()
        try:
            actions = self.core.receive_from_peer(data, relay, peer, now)
        except Exception:
            self._internal_error("peer", peer)
            return
        if self.check_view.watches_relay(relay) and any(isinstance(a, ToClient) for a in actions):
            self.check_view.from_peer(relay, len(data))
        self._run(actions, now)

    def _internal_error(self, side: str, source: Address) -> None:
        self.stats.dropped["internal-error"] += 1
        if self.stats.dropped["internal-error"] <= _LOGGED_INTERNAL_ERRORS:
            logger.exception("dropped a datagram from %s %s:%d", side, *source)

    def stream_opened(self, connection: StreamConnection) -> bool:
        """Admit a new TCP/TLS connection, or refuse it (False: the caller aborts it)."""
        assert connection.five_tuple is not None
        source = source_key(connection.five_tuple.client[0])
        if (
            len(self.connections) >= self.stream_caps.total
            or self._per_source[source] >= self.stream_caps.per_source
        ):
            self.stats.dropped["stream-connection-cap"] += 1
            self._refused_streams.happened(f"{source} ({len(self.connections)} open)")
            return False
        self._per_source[source] += 1
        self.connections[connection.five_tuple] = connection
        return True

    def stream_closed(self, connection: StreamConnection) -> None:
        assert connection.five_tuple is not None
        if self.connections.get(connection.five_tuple) is connection:
            del self.connections[connection.five_tuple]
            source = source_key(connection.five_tuple.client[0])
            self._per_source[source] -= 1
            if self._per_source[source] <= 0:
                del self._per_source[source]
        if self._loop is not None:
            now = time.monotonic()
            self._run(self.core.connection_closed(connection.five_tuple, now), now)

    def has_allocation(self, five_tuple: FiveTuple) -> bool:
        return five_tuple in self.core.table.by_five_tuple

    # ================================================================ actions

    def _run(self, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, ToClient):
                self._to_client(action)
            elif isinstance(action, ToPeer):
                self._to_peer(action)
            elif isinstance(action, OpenRelay):
                failure = self._open_relay(action.relay)
                if failure is not None:
                    if failure in _OUT_OF_FDS:
                        self._run(self.core.relay_exhausted(action.relay, now), now)
                    else:
                        self._run(self.core.relay_failed(action.relay, now), now)
                    return  # the core's replacement actions supersede the rest
            elif isinstance(action, CloseRelay):
                self._close_relay(action.relay)
            elif isinstance(action, CloseClient):
                connection = self.connections.get(action.five_tuple)
                if connection is not None:
                    connection.close()
            elif isinstance(action, RouteUp):
                self._activate(action.relay)
                self._route_up(action)
                if action.relay in self.relays:
                    self.kernel.up(action)
            elif isinstance(action, RouteDown):
                self._route_down(action)
                self.kernel.down(action, now)
            elif isinstance(action, PermitUp):
                self._activate(action.relay)
                self._permit_up(action)
            else:
                self._permit_down(action)
        self._arm_timer()

    def _to_client(self, action: ToClient) -> None:
        five_tuple = action.five_tuple
        self.check_view.answered(five_tuple, action.data)
        if five_tuple.transport is Transport.UDP:
            listener = self.udp_listeners.get(five_tuple.server)
            if listener is not None:
                listener.send(action.data, five_tuple.client)
            return
        connection = self.connections.get(five_tuple)
        if connection is not None:
            connection.write(action.data)

    def _to_peer(self, action: ToPeer) -> None:
        relay = self.relays.get(action.relay)
        if relay is not None:
            relay.send(action.data, action.peer, action.dont_fragment)
            self.check_view.to_peer(action.relay, len(action.data))

    def _open_relay(self, address: Address) -> int | None:
        """Bind ``address``; None when done, else the errno (0 if it had none)."""
        assert self._loop is not None
        if address in self.relays:
            return None  # a reserved port (EVEN-PORT R=1) now redeemed: already bound
        try:
            self.relays[address] = RelaySocket.open(self, address, self._loop)
        except OSError as exc:
            if exc.errno in _OUT_OF_FDS:
                self._exhaustion.happened(str(exc))
            else:
                logger.info("relay port %s:%d unavailable: %s", address[0], address[1], exc)
            return exc.errno or 0
        self.check_view.relay_opened(self.core.table.by_relay.get(address), address)
        return None

    def _activate(self, address: Address) -> None:
        relay = self.relays.get(address)
        if relay is not None:
            relay.activate()

    def _close_relay(self, address: Address) -> None:
        relay = self.relays.pop(address, None)
        if relay is not None and self._loop is not None:
            relay.close(self._loop)
        self.check_view.relay_closed(address, time.monotonic())

    def _route_up(self, route: RouteUp) -> None:
        relay = self.relays.get(route.relay)
        allocation = self.core.table.by_five_tuple.get(route.five_tuple)
        if (
            relay is None
            or allocation is None
            or not self._fast_path
            or self.check_view.watches(route.five_tuple)
        ):
            return
        relay.traffic = allocation.traffic
        five_tuple, header = route.five_tuple, route.channel.to_bytes(2, "big")
        if five_tuple.transport is Transport.UDP:
            listener = self.udp_listeners.get(five_tuple.server)
            if listener is None:
                return
            key = (five_tuple.client, route.channel)
            listener.routes[key] = (relay.sock, route.peer, allocation.traffic)
            relay.routes[route.peer] = _udp_deliver(listener, five_tuple.client, header, self.stats)
            return
        connection = self.connections.get(five_tuple)
        if connection is not None:
            connection.routes[route.channel] = (relay.sock, route.peer)
            connection.traffic = allocation.traffic
            relay.routes[route.peer] = connection.deliver_to(header)
            relay.after_batch = connection.flush

    def _permit_up(self, permit: PermitUp) -> None:
        """UDP clients: Send indications to ``permit.ip`` and Data indications from it are
        relayed by the sockets (`UdpListener.permits`, `RelaySocket.permitted`)."""
        five_tuple = permit.five_tuple
        if not self._fast_path or five_tuple.transport is not Transport.UDP:
            return
        if self.check_view.watches(five_tuple):
            return
        relay = self.relays.get(permit.relay)
        listener = self.udp_listeners.get(five_tuple.server)
        allocation = self.core.table.by_five_tuple.get(five_tuple)
        if relay is None or listener is None or allocation is None:
            return
        relay.traffic = allocation.traffic
        if permit.ip not in self.core.own_addresses:  # there the core checks each port
            listener.permits[(five_tuple.client, permit.ip)] = (relay.sock, allocation.traffic)
        relay.permit(permit.ip, _udp_indications(listener, five_tuple.client, self.stats))

    def _permit_down(self, permit: PermitDown) -> None:
        five_tuple = permit.five_tuple
        relay = self.relays.get(permit.relay)
        if relay is not None:
            relay.revoke(permit.ip)
        listener = self.udp_listeners.get(five_tuple.server)
        if listener is not None and five_tuple.transport is Transport.UDP:
            listener.permits.pop((five_tuple.client, permit.ip), None)

    def _route_down(self, route: RouteDown) -> None:
        relay = self.relays.get(route.relay)
        if relay is not None:
            relay.routes.pop(route.peer, None)
        five_tuple = route.five_tuple
        if five_tuple.transport is Transport.UDP:
            listener = self.udp_listeners.get(five_tuple.server)
            if listener is not None:
                listener.routes.pop((five_tuple.client, route.channel), None)
            return
        connection = self.connections.get(five_tuple)
        if connection is not None:
            connection.routes.pop(route.channel, None)

    # ================================================================ timers

    def _arm_timer(self) -> None:
        deadline = self.core.get_timer()
        if deadline is None or self._loop is None:
            return
        if self._timer is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - time.monotonic()) + _TIMER_SLACK
        self._timer = self._loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        self.core.wall_offset = wall_offset()
        self._run(self.core.handle_timer(now), now)


def _udp_deliver(
    listener: UdpListener, client: Address, header: bytes, stats: DataPathStats
) -> Deliver:
    sock = listener.sock

    def deliver(payloads: list[bytes]) -> None:
        failed = send_many(sock, client, payloads, header)
        if failed:
            stats.dropped["client-send-failed"] += failed
        stats.packets_to_client += len(payloads) - failed
        stats.bytes_to_client += sum(map(len, payloads))

    return deliver


def _udp_indications(
    listener: UdpListener, client: Address, stats: DataPathStats
) -> Callable[[Address], Deliver]:
    """For a permitted peer: a fast-path sender of its datagrams as Data indications."""
    sock, encode = listener.sock, listener.data_indications.encode

    def for_peer(peer: Address) -> Deliver:
        def deliver(payloads: list[bytes]) -> None:
            frames = [frame for p in payloads if (frame := encode(peer, p)) is not None]
            if len(frames) < len(payloads):
                stats.dropped["too-big"] += len(payloads) - len(frames)
            failed = send_many(sock, client, frames)
            if failed:
                stats.dropped["client-send-failed"] += failed
            stats.packets_to_client += len(frames) - failed
            stats.bytes_to_client += sum(map(len, payloads))

        return deliver

    return for_peer
