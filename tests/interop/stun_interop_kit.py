"""Runs ``stun-server`` as a process on loopback for the interop tests (coturn tools, aioice)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STUN_SERVER = str(Path(sys.executable).parent / "stun-server")
TOOL_TIMEOUT = 20  # seconds; turnutils_* hang when nothing answers, so always under `timeout`


def tool_missing(name: str) -> bool:
    return shutil.which(name) is None or shutil.which("timeout") is None


def _answers(address: tuple[str, int]) -> bool:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    request = struct.pack("!HHI", 1, 0, 0x2112A442) + os.urandom(12)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(request, address)
        try:
            return sock.recv(2048)[:2] == b"\x01\x01"
        except TimeoutError:
            return False


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    log_path: Path

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)


@contextmanager
def stun_server(args: list[str], log_dir: Path, probe: tuple[str, int]) -> Iterator[RunningServer]:
    """``stun-server ARGS`` until the block ends; waits until ``probe`` answers Binding."""
    log_path = log_dir / "stun-server.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [STUN_SERVER, *args], stdout=log_file, stderr=subprocess.STDOUT, text=True
        )
    server = RunningServer(process, log_path)
    try:
        deadline = time.monotonic() + 10
        while not _answers(probe):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"stun-server did not start: {log_path.read_text()}")
        yield server
    finally:
        server.stop()


def run_tool(*argv: str, seconds: int = TOOL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """A coturn tool under `timeout` (they wait forever for an answer that never comes)."""
    return subprocess.run(
        ["timeout", str(seconds), *argv], capture_output=True, text=True, check=False
    )
