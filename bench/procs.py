"""Process plumbing for the benchmarks: start, watch, measure and stop subprocesses.

Everything here works on PIDs we started ourselves. CPU time and memory come from /proc, summed
over the process and its live descendants (so a server with worker processes is measured whole),
plus the CPU time of children it has already reaped (cutime/cstime).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


# --------------------------------------------------------------------------- /proc readings


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 = state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def _ppid_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    """The PID and all its live descendants (breadth first)."""
    children = _ppid_map()
    tree = [pid]
    i = 0
    while i < len(tree):
        tree.extend(children.get(tree[i], []))
        i += 1
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the given processes and their reaped children."""
    return sum(cpu_split(pids))


def cpu_split(pids: Sequence[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of the given processes and their reaped children."""
    user = system = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        # utime stime cutime cstime ...
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    return user / CLK_TCK, system / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    return cpu_seconds(process_tree(pid))


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid``, its descendants and their reaped children."""
    return cpu_split(process_tree(pid))


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class Memory:
    rss_kib: int  # sum of VmRSS over the process tree (counts shared pages once per process)
    pss_kib: int  # sum of proportional set sizes (shared pages split between sharers)
    processes: int


def tree_memory(pid: int) -> Memory:
    tree = process_tree(pid)
    return Memory(
        rss_kib=sum(_status_kib(p, "VmRSS") for p in tree),
        pss_kib=sum(_pss_kib(p) for p in tree),
        processes=len(tree),
    )


def system_cpu_seconds() -> tuple[float, float]:
    """Machine-wide CPU seconds (all cores) from /proc/stat: (process context, irq + softirq).

    Loopback packet processing mostly runs as softirq work, which is not charged to any process,
    so it is kept apart from the "other processes" figure."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + steal) / CLK_TCK, (irq + softirq) / CLK_TCK


def loadavg() -> tuple[float, float, float]:
    parts = Path("/proc/loadavg").read_text().split()
    return float(parts[0]), float(parts[1]), float(parts[2])


@dataclass(frozen=True)
class CpuSample:
    wall: float
    busy: float  # whole machine, process context
    irq: float  # whole machine, irq + softirq
    groups: dict[str, float]  # CPU seconds per named group of processes


def sample_cpu(groups: dict[str, Callable[[], float]]) -> CpuSample:
    busy, irq = system_cpu_seconds()
    return CpuSample(
        wall=time.monotonic(),
        busy=busy,
        irq=irq,
        groups={name: read() for name, read in groups.items()},
    )


@dataclass(frozen=True)
class CpuShares:
    """CPU use over a window in percent of one core (top style: 200 = both cores of 2)."""

    seconds: float
    groups: dict[str, float]
    other: float  # other processes on the machine (noise indicator)
    softirq: float  # kernel packet processing (irq + softirq), not charged to any process


def cpu_shares(a: CpuSample, b: CpuSample) -> CpuShares:
    dt = max(b.wall - a.wall, 1e-9)
    groups = {k: 100.0 * (b.groups[k] - a.groups.get(k, 0.0)) / dt for k in b.groups}
    busy = 100.0 * (b.busy - a.busy) / dt
    return CpuShares(
        seconds=dt,
        groups=groups,
        other=max(0.0, busy - sum(groups.values())),
        softirq=100.0 * (b.irq - a.irq) / dt,
    )


def wait_quiet(threshold: float, max_wait: float, step: float = 0.5) -> tuple[float, float]:
    """Wait until the machine's process CPU use stays below `threshold` percent of one core for
    one `step` (call it when none of our load runs), at most `max_wait` seconds.
    Returns (seconds waited, the last busy percentage seen)."""
    started = time.monotonic()
    busy_pct = 0.0
    while True:
        a_busy, _ = system_cpu_seconds()
        a_wall = time.monotonic()
        time.sleep(step)
        b_busy, _ = system_cpu_seconds()
        busy_pct = 100.0 * (b_busy - a_busy) / (time.monotonic() - a_wall)
        waited = time.monotonic() - started
        if busy_pct < threshold or waited >= max_wait:
            return waited, busy_pct


# --------------------------------------------------------------------------- ports


def free_port(host: str = "127.0.0.1", *, tcp_too: bool = True) -> int:
    """A port free for UDP (and TCP) on host right now, from 18000-23999: below the ephemeral
    range, so the kernel does not hand it to someone else's connect() meanwhile."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = 18000 + int.from_bytes(os.urandom(2), "big") % 6000
        if _port_free(family, host, port, tcp_too=tcp_too):
            return port
    raise RuntimeError("no free port found")


def free_port_block(size: int, host: str = "127.0.0.1") -> tuple[int, int]:
    """An even-aligned block of `size` UDP ports in 24000-29999 for relay addresses (spot-checked
    free; a server skips the odd port someone else holds)."""
    if not 0 < size < 6000:
        raise ValueError(f"a relay port block of {size} ports does not fit in 24000-29999")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        start = 24000 + 2 * (int.from_bytes(os.urandom(2), "big") % ((6000 - size) // 2))
        probes = [start, start + size // 2, start + size - 1]
        if all(_port_free(family, host, p, tcp_too=False) for p in probes):
            return start, start + size - 1
    raise RuntimeError("no free port block found")


def _port_free(family: int, host: str, port: int, *, tcp_too: bool) -> bool:
    kinds = [socket.SOCK_DGRAM, socket.SOCK_STREAM] if tcp_too else [socket.SOCK_DGRAM]
    for kind in kinds:
        with socket.socket(family, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


# --------------------------------------------------------------------------- managed processes


def _child_setup(cpus: frozenset[int] | None) -> Callable[[], None]:
    """What a child runs before exec: `_die_with_parent`, and with ``cpus`` an affinity that
    its threads and processes inherit."""

    def setup() -> None:
        _die_with_parent()
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    return setup


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the bench process dies (even by SIGKILL)."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


class Managed:
    """A subprocess we started. `stop()` ends it (and the descendants it made) by PID."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path | None = None,
        pipe_stdout: bool = False,
        stdin_pipe: bool = False,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        cpus: frozenset[int] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path is not None else None  # noqa: SIM115
        out: int | object = subprocess.PIPE if pipe_stdout else (self._log or subprocess.DEVNULL)
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                stdout=out,  # type: ignore[arg-type]
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                preexec_fn=_child_setup(cpus),  # noqa: PLW1509 - prctl and affinity, no locks
            )
        except OSError:
            if self._log is not None:
                self._log.close()
            raise
        self.pid = self.popen.pid
        self._buf = b""
        self.lines: list[str] = []  # every line read through read_lines (kept for diagnostics)

    def write_line(self, text: str) -> None:
        if self.popen.stdin is None:
            raise RuntimeError(f"{self.name}: stdin is not piped")
        self.popen.stdin.write(text.encode() + b"\n")
        self.popen.stdin.flush()

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def cpu_split(self) -> tuple[float, float]:
        return tree_cpu_split(self.pid)

    def memory(self) -> Memory:
        return tree_memory(self.pid)

    def read_lines(self, deadline: float) -> Iterator[tuple[float, str]]:
        """Lines of a piped stdout, each with the monotonic time it was read, until EOF or the
        deadline."""
        stream = self.popen.stdout
        if stream is None:
            raise RuntimeError(f"{self.name}: stdout is not piped")
        fd = stream.fileno()
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                self.lines.append(text)
                yield time.monotonic(), text
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                if self._buf:
                    text = self._buf.decode(errors="replace")
                    self._buf = b""
                    self.lines.append(text)
                    yield time.monotonic(), text
                return
            self._buf += chunk

    def stop(self, grace: float = 3.0) -> int | None:
        """SIGTERM the process and its descendants by PID, SIGKILL what is left after `grace`."""
        if self.popen.poll() is None:
            tree = [(pid, _start_time(pid)) for pid in process_tree(self.pid)]
            for pid, _ in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5)
            deadline = time.monotonic() + grace
            for pid, started in tree[1:]:
                # descendants (worker processes) re-parented after their parent ended: the same
                # PID *and* start time, so a recycled PID is never hit
                while _start_time(pid) == started and time.monotonic() < deadline:
                    time.sleep(0.05)
                if started is not None and _start_time(pid) == started:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.popen.returncode

    def log_tail(self, n: int = 20) -> str:
        if self.log_path is not None and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return "\n".join(self.lines[-n:])

    def __enter__(self) -> Managed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
