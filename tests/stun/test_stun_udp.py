"""The UDP serving threads: both engines answer, survive responder bugs, and stop promptly."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from stun_testkit import binding_request, udp_exchange

from stun_server import mmsg
from stun_server.responder import Address, BindingResponder, Datagram, ResponderConfig
from stun_server.udp import BatchUdpLoop, UdpLoop, udp_loop

ENGINES = [
    pytest.param(True, id="recvmmsg", marks=pytest.mark.skipif(not mmsg.available(), reason="")),
    pytest.param(False, id="recvfrom"),
]


class FlakyResponder(BindingResponder):
    """Raises on b"boom", as a responder bug would."""

    def receive_datagram(
        self, data: bytes, local_addr: Address, remote_addr: Address, now: float
    ) -> list[Datagram]:
        if data == b"boom":
            raise RuntimeError("bug")
        return super().receive_datagram(data, local_addr, remote_addr, now)


@pytest.fixture
def udp_socket() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def start(sock: socket.socket, batch: bool) -> UdpLoop:
    responder = FlakyResponder(ResponderConfig(rate_limit=0))
    loop = udp_loop(sock, responder, {sock.getsockname(): sock}, 2048, batch=batch)
    loop.start()
    return loop


@pytest.mark.parametrize("batch", ENGINES)
def test_engine_choice(udp_socket: socket.socket, batch: bool) -> None:
    loop = start(udp_socket, batch)
    try:
        assert isinstance(loop, BatchUdpLoop) == batch
    finally:
        loop.stop()
        loop.join(2)


@pytest.mark.parametrize("batch", ENGINES)
def test_a_responder_bug_is_logged_and_serving_goes_on(
    udp_socket: socket.socket, batch: bool, caplog: pytest.LogCaptureFixture
) -> None:
    loop = start(udp_socket, batch)
    try:
        with caplog.at_level(logging.ERROR, logger="stun_server"):
            assert udp_exchange(udp_socket.getsockname(), b"boom", timeout=0.3) is None
            assert udp_exchange(udp_socket.getsockname(), binding_request()) is not None
        assert "failure #1" in caplog.text
    finally:
        loop.stop()
        loop.join(2)


@pytest.mark.parametrize("batch", ENGINES)
def test_stop_wakes_a_blocked_reader(udp_socket: socket.socket, batch: bool) -> None:
    loop = start(udp_socket, batch)
    time.sleep(0.05)  # let it block in the receive call
    started = time.monotonic()
    loop.stop()
    loop.join(2)
    assert time.monotonic() - started < 0.5
    assert not loop._thread.is_alive()
