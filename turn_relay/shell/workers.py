"""Worker processes for ``turn-relay serve --workers N`` (0 = one per core).

The parent checks that every listener can be bound, makes one nonce key, splits the relay port
range into one block per worker, and forks. Each worker is a full `RelayServer` whose
listeners (UDP, TCP, TLS) share their addresses with SO_REUSEPORT, so the kernel spreads
clients over the workers by 4-tuple hash (a client's 5-tuple always reaches the same worker).
A worker allocates relay ports only from its own block, so workers never collide, while the
peer policy of each still treats the whole range as the relay's own ports (relay-to-relay
traffic crosses workers). Secrets are loaded before the fork and the nonce key is shared, so a
nonce issued by one worker is accepted by all (the nonce clock, CLOCK_MONOTONIC, is
system-wide). The 401 rate limit is per worker: a source may get up to N times its budget.

The parent keeps no sockets on the data path. It forwards SIGTERM/SIGINT (stop) and SIGHUP
(re-read the secrets) to the workers, re-reads the secrets itself for the HTTP API, which it
serves when enabled, and exits when the workers have: 0 after a requested stop, 1 when a
worker failed (the others are then stopped). A worker whose parent disappears stops too (its
socketpair reads EOF).

The control socketpair carries one JSON object per line each way: the parent asks
(``{"op": "metrics"}``, ``sessions``, ``kick``, ``revoke``, ``unrevoke``, ``revocations``,
``drain``, ``status``; `turn_relay.shell.operations.RelayOperations.control`) and the worker
answers with one line. /metrics sums the workers' counters; the admin API asks every worker
and merges (`turn_relay.shell.admin_view.WorkersAdmin`).

The kernel offload (`turn_relay.shell.offload`) is opened by the parent before it forks: one
program and map pair shared by every worker, each writing its own routes; the parent detaches
when the workers are gone, so a worker's exit never breaks the others' kernel routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from turn_relay import config as relay_config
from turn_relay.auth.nonce import new_key
from turn_relay.config import ConfigError, Secrets, TurnConfig

from .admin_view import WorkersAdmin
from .datagrams import udp_socket
from .metrics import offload_state, prometheus_text
from .offload import KernelStart, start_kernel_offload
from .operations import RelayOperations
from .server import RelayServer, check_relay_addresses, start_api, stream_socket
from .tuning import tune_gc

logger = logging.getLogger(__name__)

_CLEAN_EXITS = (0, -signal.SIGTERM, -signal.SIGINT)  # a signal before the loop took it over
_CONTROL_TIMEOUT = 2.0  # seconds to wait for one worker's answer
_POLL_CHILDREN = 0.5  # seconds, where pidfd_open is missing


def worker_count(configured: int) -> int:
    """``server.workers``: 0 means one per CPU this process may run on."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def split_ports(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    """``low..high`` cut into ``parts`` contiguous, disjoint, nearly equal blocks."""
    total = high - low + 1
    if not 1 <= parts <= total:
        raise ValueError(f"cannot split {total} relay port(s) among {parts} worker(s)")
    size, extra = divmod(total, parts)
    blocks, start = [], low
    for index in range(parts):
        end = start + size + (1 if index < extra else 0) - 1
        blocks.append((start, end))
        start = end + 1
    return blocks


def check_listeners(config: TurnConfig) -> None:
    """Bind (and close) every listener with SO_REUSEPORT: fail in the parent, not N times."""
    check_relay_addresses(config)
    for listener in config.listen.listeners():
        address = (listener.address, listener.port)
        if listener.transport == "udp":
            sock = udp_socket(address, reuse_port=True)
        else:
            sock = stream_socket(address, reuse_port=True)
        sock.close()


def run_workers(config: TurnConfig, secrets: Secrets, workers: int) -> int:
    """Fork ``workers`` relay processes and supervise them; the exit status.

    Raises OSError (before forking) when a listener or relay address cannot be bound.
    """
    relay = config.relay
    available = relay.port_max - relay.port_min + 1
    if workers > available:
        logger.warning("only %d relay port(s): running %d worker(s)", available, available)
        workers = available
    check_listeners(config)
    kernel = start_kernel_offload(config)  # raises OffloadUnavailable with "on"
    try:
        return _Supervisor(config, secrets, workers, kernel).run()
    finally:
        if kernel.offload is not None:
            kernel.offload.close()


class _Supervisor:
    def __init__(
        self, config: TurnConfig, secrets: Secrets, workers: int, kernel: KernelStart
    ) -> None:
        self.config = config
        self.secrets = secrets
        self.workers = workers
        self.kernel = kernel
        self.children: dict[int, socket.socket] = {}  # pid -> control socket (parent's end)
        self.stopping = False
        self.status = 0
        self._done: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pidfds: dict[int, int] = {}  # pid -> pidfd
        self._control_lock = threading.Lock()  # one exchange at a time on the sockets
        self.admin = WorkersAdmin(config, self._ask_workers, workers)

    def run(self) -> int:
        nonce_key = new_key()
        blocks = split_ports(self.config.relay.port_min, self.config.relay.port_max, self.workers)
        try:
            for index, block in enumerate(blocks):
                self._fork(index, block, nonce_key)
        except OSError:
            self._signal_children(signal.SIGTERM)
            raise
        logger.info(
            "%d worker processes share the listeners (SO_REUSEPORT); relay ports %s",
            self.workers,
            ", ".join(f"{low}-{high}" for low, high in blocks),
        )
        return _run_loop(self._supervise())

    # ------------------------------------------------------------ the workers

    def _fork(self, index: int, ports: tuple[int, int], nonce_key: bytes) -> None:
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            parent_end.close()
            for other in self.children.values():
                other.close()
            status = 1
            try:
                if self.kernel.offload is not None:
                    self.kernel.offload.after_fork()
                server = RelayServer(
                    self.config,
                    self.secrets,
                    nonce_key=nonce_key,
                    ports=ports,
                    reuse_port=True,
                    api=False,
                    announce=index == 0,
                    kernel=self.kernel,
                )

                tune_gc()
                status = _run_loop(_worker(server, child_end))
            except OSError as exc:
                logger.error("worker %d cannot serve: %s", index, exc)
            except BaseException:
                logger.exception("worker %d (relay ports %d-%d) failed", index, *ports)
            finally:
                logging.shutdown()
                os._exit(status)
        child_end.close()
        self.children[pid] = parent_end

    # ------------------------------------------------------------ the parent

    async def _supervise(self) -> int:
        loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, self._stop)
        loop.add_signal_handler(signal.SIGINT, self._stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        self._watch_children(loop)
        self._reap()  # a worker may have exited before the watch began
        api: web.AppRunner | None = None
        try:
            if not self._done.is_set():
                try:
                    api = await start_api(
                        self.config, lambda: self.secrets, self.metrics, self.admin, self.observed
                    )
                except OSError as exc:
                    logger.error("cannot start the HTTP API: %s", exc)
                    self.status = 1
                    self._stop()
            await self._done.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            for pid in list(self._pidfds):
                self._unwatch(pid)
            if api is not None:
                await api.cleanup()
        return self.status

    def _watch_children(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reap on exit: a pidfd per worker turns readable when it exits (uvloop keeps
        SIGCHLD to itself); without pidfd_open, look every `_POLL_CHILDREN` seconds."""
        self._loop = loop
        try:
            for pid in self.children:
                self._pidfds[pid] = os.pidfd_open(pid)
        except (AttributeError, OSError):
            for fd in self._pidfds.values():
                os.close(fd)
            self._pidfds.clear()
            self._poll_children(loop)
            return
        for fd in self._pidfds.values():
            loop.add_reader(fd, self._reap)

    def _unwatch(self, pid: int) -> None:
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            if self._loop is not None:
                self._loop.remove_reader(fd)
            os.close(fd)

    def _poll_children(self, loop: asyncio.AbstractEventLoop) -> None:
        self._reap()
        if self.children:
            loop.call_later(_POLL_CHILDREN, self._poll_children, loop)

    def _stop(self) -> None:
        if self.config.server.drain_seconds and not self.stopping:
            self.admin.is_draining = True  # the workers drain on this SIGTERM first
        self.stopping = True
        self._signal_children(signal.SIGTERM)

    def _reload(self) -> None:
        try:
            self.secrets = relay_config.load_secrets(self.config)
        except ConfigError as exc:  # the workers say so too, and keep their secrets
            logger.debug("reload failed in the parent: %s", exc)
        self._signal_children(signal.SIGHUP)

    def _signal_children(self, signum: int) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self._unwatch(pid)
            control = self.children.pop(pid, None)
            if control is None:
                continue
            control.close()
            code = os.waitstatus_to_exitcode(wait_status)
            if not (self.stopping and code in _CLEAN_EXITS):
                logger.error("worker %d exited with status %d; stopping the others", pid, code)
                self.status = 1
                self._stop()
        if not self.children and self._done is not None:
            self._done.set()

    def metrics(self) -> str:
        """The workers' metrics summed (a worker that does not answer in time is left out)."""
        total: dict[str, float] = {}
        for snapshot in self._ask_each({"op": "metrics"}):
            if not isinstance(snapshot, dict):
                continue
            for key, value in snapshot.items():
                total[key] = total.get(key, 0) + float(value)
        routes = total.get("turnkit_relay_kernel_routes", 0.0)
        total.update(offload_state(self.kernel.state, int(routes)))  # one state, not N
        return prometheus_text(total)

    async def observed(self, test_id: str) -> list[dict[str, Any]]:
        """A check-page test's allocations as every worker saw them (each allocation lives in
        the one worker its client's 5-tuple reaches)."""
        replies = await self._ask_workers({"op": "observed", "test_id": test_id})
        found = [a for reply in replies if isinstance(reply, list) for a in reply]
        return [a for a in found if isinstance(a, dict)]

    async def _ask_workers(self, request: dict[str, Any]) -> list[Any]:
        """Every worker's answer to ``request``, asked from a thread (off the event loop)."""
        return await asyncio.to_thread(self._ask_each, request)

    def _ask_each(self, request: dict[str, Any]) -> list[Any]:
        replies: list[Any] = []
        with self._control_lock:
            for control in list(self.children.values()):
                try:
                    replies.append(_ask(control, request))
                except (OSError, ValueError) as exc:
                    logger.warning("a worker did not answer %s: %s", request.get("op"), exc)
        return replies


def _ask(control: socket.socket, request: dict[str, Any]) -> Any:
    """One JSON line to a worker, one JSON line back."""
    control.settimeout(_CONTROL_TIMEOUT)
    control.sendall(json.dumps(request).encode() + b"\n")
    chunks: list[bytes] = []
    while not chunks or not chunks[-1].endswith(b"\n"):
        chunk = control.recv(1 << 20)
        if not chunk:
            raise OSError("worker closed its control socket")
        chunks.append(chunk)
    return json.loads(b"".join(chunks))


async def _worker(server: RelayServer, control: socket.socket) -> int:
    """Serve until SIGTERM/SIGINT or until the parent goes away; answer the parent's
    requests (one JSON line each)."""
    loop = asyncio.get_running_loop()
    serving = asyncio.ensure_future(server.serve())
    operations = RelayOperations(server)
    pending = bytearray()

    def on_control() -> None:
        try:
            received = control.recv(65536)
        except OSError:
            received = b""
        if not received:  # the parent is gone
            loop.remove_reader(control.fileno())
            server.request_stop()
            return
        pending.extend(received)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            reply = json.dumps(_answer(operations, line)).encode() + b"\n"
            with contextlib.suppress(OSError):
                control.sendall(reply)

    control.setblocking(True)
    loop.add_reader(control.fileno(), on_control)
    try:
        await serving
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(control.fileno())
        control.close()
    return 0


def _answer(operations: RelayOperations, line: bytes) -> Any:
    try:
        request = json.loads(line)
        return operations.control(request if isinstance(request, dict) else {})
    except (ValueError, KeyError, TypeError) as exc:
        return {"error": str(exc)}


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
