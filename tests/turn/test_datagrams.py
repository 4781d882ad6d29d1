"""`send_many`: runs of datagrams leave as one UDP_SEGMENT send where Linux offers it, and
every receiver still sees separate datagrams, in order; without it (or when a run is
refused) they go one by one."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from turn_relay.shell import datagrams
from turn_relay.shell.datagrams import send_many


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    try:
        yield sender, receiver
    finally:
        sender.close()
        receiver.close()


def received(receiver: socket.socket, count: int) -> list[bytes]:
    return [receiver.recv(65536) for _ in range(count)]


@pytest.mark.parametrize("gso", [True, False], ids=["segmented", "one-by-one"])
def test_runs_arrive_as_separate_datagrams_in_order(
    pair: tuple[socket.socket, socket.socket], gso: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datagrams._Gso, "enabled", gso and datagrams._Gso.enabled)
    sender, receiver = pair
    payloads = [b"%03d" % i + bytes(97) for i in range(70)]  # more than one run of 64
    payloads += [b"short", b"x" * 300, b"y" * 300, b"", b"z"]
    assert send_many(sender, receiver.getsockname(), payloads) == 0
    assert received(receiver, len(payloads)) == payloads


def test_channel_data_header_is_put_before_each_payload(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = pair
    payloads = [b"abcd"] * 5 + [b"ab"]
    assert send_many(sender, receiver.getsockname(), payloads, b"\x40\x01") == 0
    assert received(receiver, 6) == [b"\x40\x01\x00\x04abcd"] * 5 + [b"\x40\x01\x00\x02ab"]


class _RefusingSocket:
    """Refuses segmented sends with ``code``; records what went out one by one."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.sent: list[bytes] = []

    def sendmsg(self, *args: Any) -> int:
        raise OSError(self.code, "refused")

    def sendto(self, data: bytes, address: Any) -> int:
        self.sent.append(bytes(data))
        return len(data)


def test_a_refused_run_is_sent_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datagrams._Gso, "enabled", True)
    sock = _RefusingSocket(errno.EINVAL)  # e.g. segments above the path MTU
    assert send_many(sock, ("127.0.0.1", 9), [b"ab", b"ab"], b"\x40\x00") == 0  # type: ignore[arg-type]
    assert sock.sent == [b"\x40\x00\x00\x02ab"] * 2
    assert datagrams._Gso.enabled  # only this run


def test_a_kernel_without_segmentation_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datagrams._Gso, "enabled", True)
    sock = _RefusingSocket(errno.ENOPROTOOPT)
    assert send_many(sock, ("127.0.0.1", 9), [b"ab", b"ab"]) == 0  # type: ignore[arg-type]
    assert sock.sent == [b"ab", b"ab"]
    assert not datagrams._Gso.enabled
