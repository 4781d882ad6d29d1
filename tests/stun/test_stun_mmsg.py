"""recvmmsg/sendmmsg batches (Linux): many datagrams per call, answers to the right senders."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from turnkit_testing import ipv6_loopback_available

from stun_server import mmsg

pytestmark = pytest.mark.skipif(not mmsg.available(), reason="recvmmsg/sendmmsg not available")


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def family(request: pytest.FixtureRequest) -> int:
    if request.param == socket.AF_INET6 and not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback")
    return int(request.param)


def loopback(family: int) -> str:
    return "::1" if family == socket.AF_INET6 else "127.0.0.1"


@pytest.fixture
def server(family: int) -> Iterator[socket.socket]:
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((loopback(family), 0))
        yield sock


def clients(family: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((loopback(family), 0))
        sock.settimeout(2)
        sockets.append(sock)
    return sockets


def test_one_call_receives_several_and_one_call_answers_each_sender(
    family: int, server: socket.socket
) -> None:
    batch = mmsg.DatagramBatch(family, slots=8, recv_size=64, send_size=128)
    senders = clients(family, 5)
    try:
        for index, sender in enumerate(senders):
            sender.sendto(f"hello {index}".encode(), server.getsockname())
        count = batch.receive(server.fileno())
        assert 1 <= count <= 5
        received = []
        while True:
            for slot in range(count):
                payload, source = batch.payload(slot), batch.source(slot)
                received.append((payload, source))
                assert batch.add_reply(slot, payload.upper() + b"!")
            assert batch.flush(server.fileno()) == []
            if len(received) == 5:
                break
            count = batch.receive(server.fileno())
        names = {sender.getsockname()[:2]: sender for sender in senders}
        assert {source for _, source in received} == set(names)
        for payload, source in received:
            assert names[source].recv(100) == payload.upper() + b"!"
    finally:
        for sender in senders:
            sender.close()


def test_replies_that_do_not_fit_are_refused(family: int, server: socket.socket) -> None:
    batch = mmsg.DatagramBatch(family, slots=2, recv_size=64, send_size=16)
    (sender,) = clients(family, 1)
    with sender:
        sender.sendto(b"x", server.getsockname())
        assert batch.receive(server.fileno()) == 1
        assert not batch.add_reply(0, b"y" * 17)
        assert batch.add_reply(0, b"y" * 16)
        assert batch.add_reply(0, b"z")
        assert not batch.add_reply(0, b"w")  # both send slots are taken
        assert batch.flush(server.fileno()) == []
        assert sender.recv(100) == b"y" * 16
        assert sender.recv(100) == b"z"


def test_truncated_datagram_keeps_its_slot_size(family: int, server: socket.socket) -> None:
    batch = mmsg.DatagramBatch(family, slots=1, recv_size=8, send_size=8)
    (sender,) = clients(family, 1)
    with sender:
        sender.sendto(b"0123456789", server.getsockname())
        assert batch.receive(server.fileno()) == 1
        assert batch.payload(0) == b"01234567"


def test_receive_on_a_bad_descriptor_raises_oserror(family: int) -> None:
    batch = mmsg.DatagramBatch(family, slots=1, recv_size=8, send_size=8)
    with pytest.raises(OSError):
        batch.receive(-1)
