"""What held up stays held: fuzzed datagrams and stream frames against a real relay (issue 11).

Seeded, bounded in count and time: mutated valid requests (Allocate with and without
credentials, Binding, Refresh, ChannelData, Send indications) and random bytes. Afterwards the
relay process is still up, still allocates, and holds no more file descriptors than before.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time
from pathlib import Path

import pytest
from process_kit import (
    REALM,
    SECRET,
    close_all,
    drive,
    logins,
    open_fds,
    running_relay,
    udp_socket,
)

from stun_server.wire import Message, MessageClass, Method, encode, long_term_key
from stun_server.wire import attributes as attrs
from turn_relay.auth.credentials import issue

pytestmark = pytest.mark.slow

DATAGRAMS = 200_000
FRAMES = 20_000
SEED = 11


def seeds() -> list[bytes]:
    credential = issue(SECRET, "fuzz", 3600, time.time())
    key = long_term_key(credential.username, REALM, credential.password)
    signed: list[attrs.AnyAttribute] = [
        attrs.Username(credential.username),
        attrs.Realm(REALM),
        attrs.Nonce("x" * 45),
    ]
    messages = [
        Message(Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)]),
        Message(Method.BINDING, MessageClass.REQUEST),
        Message(Method.REFRESH, MessageClass.REQUEST, attributes=[attrs.Lifetime(0), *signed]),
        Message(
            Method.CREATE_PERMISSION,
            MessageClass.REQUEST,
            attributes=[attrs.XorPeerAddress("127.0.0.1", 9), *signed],
        ),
        Message(
            Method.SEND,
            MessageClass.INDICATION,
            attributes=[attrs.XorPeerAddress("127.0.0.1", 9), attrs.Data(b"payload")],
        ),
    ]
    found = [encode(m, key=key) if m.get(attrs.Username) else encode(m) for m in messages]
    found.append(b"\x40\x00\x00\x04abcd")  # ChannelData
    return found


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    choice = rng.random()
    if choice < 0.1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 120)))
    if choice < 0.2:
        return bytes(data[: rng.randrange(0, len(data) + 1)])
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] = rng.getrandbits(8)
    if rng.random() < 0.1:
        data += bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 40)))
    return bytes(data)


def still_allocates(address: tuple[str, int], ip: str) -> None:
    found = logins(1, ip, prefix="after")
    try:
        drive(found, address, time.monotonic() + 10.0)
        assert found[0].allocated_at is not None, found[0].error
    finally:
        close_all(found)


def test_fuzzed_datagrams_to_the_udp_listener(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    corpus = seeds()
    with running_relay(tmp_path) as relay:
        before = open_fds(relay.process.pid)
        socks = [udp_socket("127.0.0.4") for _ in range(16)]
        try:
            started = time.monotonic()
            for index in range(DATAGRAMS):
                data = mutate(rng, corpus[index % len(corpus)])
                with contextlib.suppress(BlockingIOError):
                    socks[index % len(socks)].sendto(data, relay.address)
                if index % 2000 == 1999:
                    time.sleep(0.03)  # about 50,000/s: the relay reads, the kernel queues
                    for sock in socks:  # drop what came back
                        with contextlib.suppress(BlockingIOError):
                            while sock.recv(65536):
                                pass
            assert time.monotonic() - started < 40
        finally:
            for sock in socks:
                sock.close()
        time.sleep(0.5)
        assert relay.process.poll() is None, relay.log_text()[-2000:]
        still_allocates(relay.address, "127.0.0.5")
        assert open_fds(relay.process.pid) <= before + 2  # at most the allocation just made
        assert "Traceback" not in relay.log_text()


def test_fuzzed_frames_to_the_tcp_listener(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    corpus = seeds()
    with running_relay(tmp_path) as relay:
        before = open_fds(relay.process.pid)
        sent = connections = 0
        started = time.monotonic()
        while sent < FRAMES:
            connections += 1
            with socket.create_connection(relay.address, timeout=5.0) as sock:
                try:
                    for _ in range(200):
                        sock.sendall(mutate(rng, corpus[sent % len(corpus)]))
                        sent += 1
                except OSError:
                    pass  # garbage closes the connection: open another
            assert time.monotonic() - started < 40
        time.sleep(0.5)
        assert relay.process.poll() is None, relay.log_text()[-2000:]
        still_allocates(relay.address, "127.0.0.6")
        deadline = time.monotonic() + 5.0
        while open_fds(relay.process.pid) > before + 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # closed connections go as the relay reads their end
        assert open_fds(relay.process.pid) <= before + 2
        assert "Traceback" not in relay.log_text()
        assert connections > 1
