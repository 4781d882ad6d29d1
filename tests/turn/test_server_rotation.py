"""REST secret rotation under load against ``turn-relay serve`` (docs/operations.md, "Rotation"):
clients keep sending through their allocations while the secrets file gains a new first secret
(the old one second) and SIGHUP arrives, and again while the old one is removed. Not a packet is
lost; allocations made with the old secret keep relaying, and refresh while that secret is still
listed; credentials minted with the new secret allocate and refresh; once the old secret is gone
its credentials get 401, and the allocations made with them still relay until their lifetime ends.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from load_kit import Client, Load, allocate_all, codes, refresh
from process_kit import Relay, running_relay

from stun_server.wire import Message, MessageClass, Method
from stun_server.wire import attributes as attrs

OLD, NEW = "old-rotation-secret", "new-rotation-secret"
CLIENTS = 100  # per generation


class Traffic:
    """Numbered data rounds over every client that holds an allocation, counted."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.number = 0
        self.sent = self.echoed = 0

    def round(self, clients: list[Client], meanwhile: Callable[[], object] | None = None) -> None:
        echoed = self.load.data_round(clients, self.number, meanwhile=meanwhile)
        self.number += 1
        self.sent += len(clients)
        self.echoed += echoed
        assert echoed == len(clients), f"round {self.number}: {echoed} of {len(clients)}"

    def until_logged(self, clients: list[Client], relay: Relay, text: str) -> None:
        """Keep the rounds going until the relay's log holds ``text`` (at most 10 s)."""
        deadline = time.monotonic() + 10
        while text not in relay.log_text():
            assert time.monotonic() < deadline, f"{text!r} not in the log:\n{relay.log_text()}"
            self.round(clients)


def log_in(clients: list[Client], secret: str, prefix: str) -> list[Client]:
    for client in clients:
        client.log_in(secret, f"{prefix}{client.index}", 600, time.time())
    return clients


def rotate(relay: Relay, directory: Path, *secrets: str) -> None:
    """Write the secrets file the way an operator does, then SIGHUP."""
    file = directory / "rest-secrets"
    staged = file.with_suffix(".new")
    staged.write_text("".join(f"{secret}\n" for secret in secrets))
    staged.chmod(0o600)
    staged.replace(file)
    relay.process.send_signal(signal.SIGHUP)


def unsigned_allocate(_client: Client) -> Message:
    return Message(Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_rotation_under_load_loses_nothing(tmp_path: Path) -> None:
    with running_relay(tmp_path, "--port-range", "20000-20999", secret=OLD) as relay:
        load = Load(relay.address)
        traffic = Traffic(load)
        try:
            old = log_in(load.add(CLIENTS), OLD, "old")
            allocate_all(load, old)
            for _ in range(5):
                traffic.round(old)

            # 1. the new secret first, the old one second
            traffic.round(old, meanwhile=lambda: rotate(relay, tmp_path, NEW, OLD))
            traffic.until_logged(old, relay, "reloaded secrets: 2 REST secret(s)")
            new = log_in(load.add(CLIENTS), NEW, "new")
            allocate_all(load, new)
            everyone = old + new
            assert codes(load.transact(everyone, refresh(600))) == [None] * len(everyone)
            for _ in range(5):
                traffic.round(everyone)

            # 2. the old secret removed
            traffic.round(everyone, meanwhile=lambda: rotate(relay, tmp_path, NEW))
            traffic.until_logged(everyone, relay, "reloaded secrets: 1 REST secret(s)")
            assert codes(load.transact(new, refresh(600))) == [None] * CLIENTS
            assert codes(load.transact(old, refresh(600))) == [401] * CLIENTS
            for _ in range(5):
                traffic.round(everyone)  # the old allocations still relay
            latest = log_in(load.add(CLIENTS), NEW, "latest")
            allocate_all(load, latest)
            stale = log_in(load.add(10), OLD, "stale")
            assert codes(load.transact(stale, unsigned_allocate)) == [401] * 10
            signed = load.transact(
                stale, lambda c: c.signed(Method.ALLOCATE, attrs.RequestedTransport(17))
            )
            assert codes(signed) == [401] * 10
            for _ in range(5):
                traffic.round(everyone + latest)
            assert codes(load.transact(new + latest, refresh(0))) == [None] * 2 * CLIENTS
        finally:
            load.close()
        print(f"{traffic.echoed} of {traffic.sent} packets echoed in {traffic.number} rounds")
        assert traffic.echoed == traffic.sent == load.echoes
        assert relay.process.poll() is None
