"""A bounded loopback Binding load generator: N processes, each keeping W requests in flight.

    .venv/bin/python tests/stun/binding_load.py --port 3478 --processes 3 --window 32 --seconds 4

Each process owns one connected UDP socket (its own source port, so SO_REUSEPORT workers share
the load), sends W plain Binding requests, then sends one more for every success response it
reads. A lost datagram is replaced after a 200 ms silence. The run stops after ``--seconds``
(at most 60). Prints requests answered per second; only loopback targets are allowed.
"""

from __future__ import annotations

import argparse
import ipaddress
import multiprocessing
import os
import socket
import struct
import time
from dataclasses import dataclass

MAX_SECONDS = 60.0
_SILENCE = 0.2


@dataclass(frozen=True, slots=True)
class LoadResult:
    answered: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def _binding_request() -> tuple[bytes, bytes]:
    transaction_id = os.urandom(12)
    return struct.pack("!HHI", 0x0001, 0, 0x2112A442) + transaction_id, transaction_id


def _flood(host: str, port: int, seconds: float, window: int) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        sock.settimeout(_SILENCE)
        request, transaction_id = _binding_request()
        expected = b"\x01\x01"
        buffer = bytearray(2048)
        view = memoryview(buffer)
        answered = 0
        deadline = time.monotonic() + seconds
        for _ in range(window):
            sock.send(request)
        while True:
            try:
                size = sock.recv_into(buffer)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    return answered
                for _ in range(window):  # the window was lost; refill it
                    sock.send(request)
                continue
            if size >= 20 and view[:2] == expected and view[8:20] == transaction_id:
                answered += 1
            sock.send(request)
            if not answered & 1023 and time.monotonic() >= deadline:
                return answered


def _worker(
    host: str, port: int, seconds: float, window: int, queue: multiprocessing.Queue[int]
) -> None:
    queue.put(_flood(host, port, seconds, window))


def run_load(
    host: str, port: int, *, processes: int = 3, window: int = 32, seconds: float = 4.0
) -> LoadResult:
    """Flood ``host:port`` (loopback only) and count answered Binding requests."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host} is not a loopback address")
    seconds = min(seconds, MAX_SECONDS)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [
        context.Process(target=_worker, args=(host, port, seconds, window, queue))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    answered = sum(queue.get(timeout=seconds + 10) for _ in workers)
    for worker in workers:
        worker.join(timeout=5)
    return LoadResult(answered, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    result = run_load(
        args.host, args.port, processes=args.processes, window=args.window, seconds=args.seconds
    )
    print(f"{result.rate:.0f} Binding requests/s ({result.answered} in {result.seconds:g} s)")


if __name__ == "__main__":
    main()
