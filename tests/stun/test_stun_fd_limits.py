"""``stun-server`` with few file descriptors: RLIMIT_NOFILE raised and logged, exhaustion of
descriptors logged at warning, UDP answering throughout, TCP back once descriptors free up."""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Callable
from pathlib import Path

from stun_testkit import binding_request, stream_binding, stun_server_process, udp_exchange
from turnkit_testing import free_port_pair


def nofile(soft: int, hard: int) -> Callable[[], None]:
    def limit() -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


def open_idle(target: tuple[str, int], count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.create_connection(target, timeout=2)
        held.append(sock)
    return held


def wait_for_log(server_log: Callable[[], str], text: str, within: float = 5.0) -> str:
    deadline = time.monotonic() + within
    while text not in server_log():
        assert time.monotonic() < deadline, f"{text!r} not logged"
        time.sleep(0.05)
    return server_log()


def test_out_of_descriptors_is_logged_and_udp_and_tcp_keep_serving(tmp_path: Path) -> None:
    port = free_port_pair()
    server_address = ("127.0.0.1", port)
    args = ["--listen", f"127.0.0.1:{port}", "--rate-limit", "0", "--max-connections", "500"]
    with stun_server_process(args, tmp_path, server_address, preexec_fn=nofile(48, 48)) as server:
        held = open_idle(server_address, 120)  # the kernel queues what the server cannot accept
        try:
            wait_for_log(server.log, "accept failed: out of file descriptors")
            time.sleep(1.6)  # accept is retried every 0.5 s and fails again each time
            assert server.log().count("accept failed") == 1  # one line for the lot
            for _ in range(5):
                assert udp_exchange(server_address, binding_request()) is not None
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 10
        while stream_binding(server_address, timeout=1) is None:  # the listener survived
            assert time.monotonic() < deadline, "TCP never answered again"
        assert server.stop() == 0
    assert "Traceback" not in server.log()
    assert "accept_exhausted" in server.log()  # the counters at the stop


def test_soft_limit_is_raised_and_the_total_cap_follows_it(tmp_path: Path) -> None:
    port = free_port_pair()
    server_address = ("127.0.0.1", port)
    args = ["--listen", f"127.0.0.1:{port}", "--rate-limit", "0"]
    with stun_server_process(args, tmp_path, server_address, preexec_fn=nofile(40, 64)) as server:
        assert "RLIMIT_NOFILE soft raised from 40 to 64 (hard 64)" in server.log()
        held = open_idle(server_address, 30)  # the derived total cap here is 16
        try:
            log = wait_for_log(server.log, "16 connections open (the total cap)")
            assert "WARNING" in log
            assert udp_exchange(server_address, binding_request()) is not None
        finally:
            for sock in held:
                sock.close()
        assert server.stop() == 0
    assert "Traceback" not in server.log()
