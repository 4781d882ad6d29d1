"""Tiny socket probes to run inside lab namespaces (``python probes.py <command> ...``).

They use plain sockets only, so they check the lab independently of STUN code (ours or coturn's).
Addresses are written ``ip:port``. Every command prints one line per event and exits by itself.

  serve   --udp IP:PORT ... --tcp IP:PORT ... [--seconds S]
          UDP reflector: answers each datagram with "seen <src ip:port>". TCP: sends
          "seen <src ip:port>\\n" and closes. Prints "ready" once every socket is bound.
  listen  --bind IP:PORT --server IP:PORT [--server ...] [--seconds S]
          Asks each reflector in turn, printing "mapped <server> <ip:port>", then "listening",
          then "from <ip:port> <payload>" for every datagram received within S seconds.
  send    --bind IP:PORT --to IP:PORT [--to ...] [--payload TEXT]
          Sends one datagram to each target from a fixed source.
  hairpin --bind IP --server IP:PORT [--seconds S]
          Socket A learns its mapping from the reflector; socket B (new port) sends to that
          mapping. Prints JSON {"mapped_a", "mapped_b", "hairpin", "seen_from"}.
  tcp     --to IP:PORT [--seconds S]       prints "ok <first line>" | "timeout" | "refused"
  udp     --to IP:PORT [--seconds S]       prints "ok <answer>" | "timeout"
"""

from __future__ import annotations

import argparse
import json
import secrets
import selectors
import socket
import sys
import time

PROBES_PATH = __file__


def parse_json(text: str) -> dict[str, object]:
    """The JSON object printed by a probe (for tests)."""
    value = json.loads(text.strip().splitlines()[-1])
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object: {text!r}")
    return {str(key): item for key, item in value.items()}


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _fmt(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"


def _say(line: str) -> None:
    print(line, flush=True)


def _udp_socket(bind: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(bind)
    return sock


def serve(udp: list[str], tcp: list[str], seconds: float) -> int:
    sel = selectors.DefaultSelector()
    for spec in udp:
        sel.register(_udp_socket(_addr(spec)), selectors.EVENT_READ, "udp")
    for spec in tcp:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(_addr(spec))
        lsock.listen(16)
        sel.register(lsock, selectors.EVENT_READ, "tcp")
    _say("ready")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        for key, _ in sel.select(timeout=min(left, 1.0)):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "udp":
                _, src = sock.recvfrom(2048)
                sock.sendto(f"seen {_fmt(src)}".encode(), src)
            else:
                conn, src = sock.accept()
                with conn:
                    conn.sendall(f"seen {_fmt(src)}\n".encode())
    return 0


def _mapping(sock: socket.socket, server: tuple[str, int]) -> str | None:
    sock.sendto(b"hello", server)
    try:
        data, _ = sock.recvfrom(2048)
    except TimeoutError:
        return None
    return data.decode().split()[1]


def listen(bind: str, servers: list[str], seconds: float) -> int:
    sock = _udp_socket(_addr(bind))
    sock.settimeout(2.0)
    for server in servers:
        mapped = _mapping(sock, _addr(server))
        if mapped is None:
            _say(f"timeout {server}")
            return 1
        _say(f"mapped {server} {mapped}")
    _say("listening")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, src = sock.recvfrom(2048)
        except TimeoutError:
            break
        _say(f"from {_fmt(src)} {data.decode(errors='replace')}")
    return 0


def send(bind: str, targets: list[str], payload: str) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(_addr(bind))
    for target in targets:
        sock.sendto(payload.encode(), _addr(target))
    return 0


def hairpin(bind: str, server: str, seconds: float) -> int:
    sock_a = _udp_socket((bind, 0))
    sock_b = _udp_socket((bind, 0))
    sock_a.settimeout(2.0)
    sock_b.settimeout(2.0)
    mapped_a = _mapping(sock_a, _addr(server))
    mapped_b = _mapping(sock_b, _addr(server))
    result: dict[str, object] = {"mapped_a": mapped_a, "mapped_b": mapped_b, "hairpin": False}
    if mapped_a is not None:
        nonce = secrets.token_hex(4)
        sock_b.sendto(f"hairpin {nonce}".encode(), _addr(mapped_a))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            sock_a.settimeout(left)
            try:
                data, src = sock_a.recvfrom(2048)
            except TimeoutError:
                break
            if data.decode(errors="replace") == f"hairpin {nonce}":
                result.update(hairpin=True, seen_from=_fmt(src))
                break
    _say(json.dumps(result))
    return 0


def tcp(to: str, seconds: float) -> int:
    try:
        with socket.create_connection(_addr(to), timeout=seconds) as conn:
            line = conn.makefile().readline().strip()
    except TimeoutError:
        _say("timeout")
        return 1
    except ConnectionRefusedError:
        _say("refused")
        return 1
    _say(f"ok {line}")
    return 0


def udp(to: str, seconds: float) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(seconds)
    sock.sendto(b"hello", _addr(to))
    try:
        data, _ = sock.recvfrom(2048)
    except TimeoutError:
        _say("timeout")
        return 1
    _say(f"ok {data.decode(errors='replace')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--udp", action="append", default=[])
    p.add_argument("--tcp", action="append", default=[])
    p.add_argument("--seconds", type=float, default=300.0)
    p = sub.add_parser("listen")
    p.add_argument("--bind", required=True)
    p.add_argument("--server", action="append", required=True)
    p.add_argument("--seconds", type=float, default=3.0)
    p = sub.add_parser("send")
    p.add_argument("--bind", required=True)
    p.add_argument("--to", action="append", required=True)
    p.add_argument("--payload", default="poke")
    p = sub.add_parser("hairpin")
    p.add_argument("--bind", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--seconds", type=float, default=1.5)
    for name in ("tcp", "udp"):
        p = sub.add_parser(name)
        p.add_argument("--to", required=True)
        p.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        return serve(args.udp, args.tcp, args.seconds)
    if args.cmd == "listen":
        return listen(args.bind, args.server, args.seconds)
    if args.cmd == "send":
        return send(args.bind, args.to, args.payload)
    if args.cmd == "hairpin":
        return hairpin(args.bind, args.server, args.seconds)
    if args.cmd == "tcp":
        return tcp(args.to, args.seconds)
    return udp(args.to, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
