"""Crowds and spoofers against a real ``turn-relay serve`` with its default challenge budget.

Loopback stands in for the internet: clients behind one address are sockets on one 127.0.0.x
address with distinct ports, and a spoofer is simply another port on that address (that is all
a spoofed datagram looks like to the relay). Issue 11 measured the old defaults: 38 of 100 such
clients ever allocated, and 2 spoofed Allocates per second left 0 of 10 with a relay.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from process_kit import (
    allocated_within,
    close_all,
    drive,
    logins,
    running_relay,
    udp_socket,
    unauthenticated_allocate,
)


def test_a_hundred_clients_behind_one_address_allocate_within_two_seconds(
    tmp_path: Path,
) -> None:
    with running_relay(tmp_path) as relay:
        crowd = logins(100)
        try:
            drive(crowd, relay.address, time.monotonic() + 5.0)
            assert [c.error for c in crowd if c.error] == []
            assert allocated_within(crowd, 2.0) == 100
        finally:
            close_all(crowd)


class Spoofer:
    """Unauthenticated Allocates "from" an address: a burst, then ``rate`` per second."""

    def __init__(self, ip: str, server: tuple[str, int], rate: float, burst: int) -> None:
        self.sock = udp_socket(ip)
        self.server = server
        self.rate = rate
        self.request = unauthenticated_allocate()
        self.start = time.monotonic()
        self.sent = 0
        self.burst = burst

    def tick(self) -> None:
        due = self.burst + int((time.monotonic() - self.start) * self.rate)
        while self.sent < due:
            self.sock.sendto(self.request, self.server)
            self.sent += 1

    def close(self) -> None:
        self.sock.close()


def test_ten_clients_allocate_while_a_spoofer_sends_two_per_second(tmp_path: Path) -> None:
    with running_relay(tmp_path) as relay:
        spoofer = Spoofer("127.0.0.1", relay.address, 2.0, burst=10)
        spoofer.tick()
        time.sleep(0.5)
        clients = logins(10)
        try:
            drive(clients, relay.address, time.monotonic() + 8.0, tick=spoofer.tick)
            assert sum(1 for c in clients if c.allocated_at is not None) == 10
            assert spoofer.sent >= 10
        finally:
            close_all(clients)
            spoofer.close()


class Flood:
    """``rate`` unauthenticated Allocates per second "from" ``ip`` for ``seconds``, sent from
    sockets on ``ip`` that count what the relay sends back (the victim's view)."""

    def __init__(self, ip: str, server: tuple[str, int], rate: float, seconds: float) -> None:
        self.socks = [udp_socket(ip) for _ in range(8)]
        for sock in self.socks:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.server, self.rate, self.seconds = server, rate, seconds
        self.request = unauthenticated_allocate()
        self.start = time.monotonic()
        self.sent = self.bytes_sent = 0
        self.answers = self.bytes_received = 0

    def tick(self) -> None:
        elapsed = min(time.monotonic() - self.start, self.seconds)
        due = int(elapsed * self.rate)
        while self.sent < due:
            sock = self.socks[self.sent % len(self.socks)]
            try:
                sock.sendto(self.request, self.server)
            except BlockingIOError:
                break
            self.sent += 1
            self.bytes_sent += len(self.request)
        self.collect()

    def collect(self) -> None:
        for sock in self.socks:
            while True:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    break
                self.answers += 1
                self.bytes_received += len(data)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


@pytest.mark.slow
def test_a_flood_from_a_victims_address_reflects_within_the_bound(tmp_path: Path) -> None:
    with running_relay(tmp_path) as relay:
        flood = Flood("127.0.0.5", relay.address, 20_000, 3.0)
        others = logins(5, "127.0.0.2") + logins(5, "127.0.0.3", prefix="other")
        try:
            time.sleep(0.2)  # the flood runs first, then the other addresses log in
            flood.tick()
            drive(others, relay.address, flood.start + 3.0, tick=flood.tick)
            total = int(flood.rate * flood.seconds)
            while flood.sent < total and time.monotonic() < flood.start + flood.seconds + 1.0:
                flood.tick()
                time.sleep(0.001)
            time.sleep(0.5)  # answers still in flight
            flood.collect()
            elapsed = time.monotonic() - flood.start
            print(
                f"flood: {flood.sent} sent ({flood.bytes_sent} B) in {elapsed:.2f} s,"
                f" {flood.answers} answers ({flood.bytes_received} B) back; others allocated in",
                sorted(round(c.allocated_at - c.started, 3) for c in others if c.allocated_at),
                [c.sent for c in others],
            )
            assert flood.sent >= 0.9 * 20_000 * 3.0, "the flood did not reach its rate"
            # docs/operations.md: at most unproven_burst + unproven_rate * t answers, t the
            # attack's duration, towards an address that never authenticated
            assert flood.answers <= 20 + 5 * elapsed
            assert flood.bytes_received <= flood.bytes_sent / 100
            assert all(c.allocated_at is not None for c in others), [c.error for c in others]
            assert allocated_within(others, 2.0) == 10
        finally:
            close_all(others)
            flood.close()
