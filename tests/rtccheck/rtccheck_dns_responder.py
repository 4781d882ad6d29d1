"""A tiny authoritative DNS responder on 127.0.0.1 for the rtccheck DNS tests.

It answers from an in-memory zone built with dnspython's message module: records for known
names, NOERROR with no answer for a known name without that type, NXDOMAIN for unknown names.
``mode`` makes it drop queries (timeouts) or answer SERVFAIL. Tests point the resolver at it
explicitly, so no test ever asks a real DNS server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import dns.asyncresolver
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

Zone = dict[str, dict[str, list[str]]]
Mode = Literal["answer", "silent", "servfail"]


@dataclass
class Responder:
    port: int
    queries: list[tuple[str, str]] = field(default_factory=list)


def answer(zone: Zone, mode: Mode, query: dns.message.Message) -> dns.message.Message | None:
    """The response to ``query`` from ``zone``; None when the responder stays silent."""
    if mode == "silent":
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if mode == "servfail":
        response.set_rcode(dns.rcode.SERVFAIL)
        return response
    question = query.question[0]
    records = _normalised(zone).get(question.name.to_text().lower())
    rdtype = dns.rdatatype.to_text(question.rdtype)
    if records is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif records.get(rdtype):
        rrset = dns.rrset.from_text_list(
            question.name, 60, dns.rdataclass.IN, rdtype, records[rdtype]
        )
        response.answer.append(rrset)
    return response


def _normalised(zone: Zone) -> Zone:
    return {name.lower().rstrip(".") + ".": records for name, records in zone.items()}


def _note(responder: Responder, query: dns.message.Message) -> None:
    question = query.question[0]
    responder.queries.append((question.name.to_text(), dns.rdatatype.to_text(question.rdtype)))


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone, mode: Mode, responder: Responder) -> None:
        self.zone, self.mode, self.responder = zone, mode, responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        _note(self.responder, query)
        response = answer(self.zone, self.mode, query)
        if response is not None and self.transport is not None:
            self.transport.sendto(response.to_wire(), addr)


@asynccontextmanager
async def dns_responder(zone: Zone, mode: Mode = "answer") -> AsyncIterator[Responder]:
    """Serve ``zone`` on 127.0.0.1 (a free UDP port) for the duration of the block."""
    loop = asyncio.get_running_loop()
    responder = Responder(port=0)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Protocol(zone, mode, responder), local_addr=("127.0.0.1", 0)
    )
    responder.port = transport.get_extra_info("sockname")[1]
    try:
        yield responder
    finally:
        transport.close()


@contextmanager
def dns_responder_thread(zone: Zone, mode: Mode = "answer") -> Iterator[Responder]:
    """The same responder on a thread, for code that runs its own event loop (the CLI)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    responder = Responder(port=sock.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            _note(responder, query)
            response = answer(zone, mode, query)
            if response is not None:
                sock.sendto(response.to_wire(), addr)

    thread = threading.Thread(target=serve, name="test-dns-responder", daemon=True)
    thread.start()
    try:
        yield responder
    finally:
        stop.set()
        thread.join(timeout=2)
        sock.close()


def forbid_real_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any DNS query to a non-loopback server fail the test instead of leaving the host."""
    original = dns.asyncresolver.Resolver.resolve

    async def loopback_only(
        self: dns.asyncresolver.Resolver, *args: Any, **kwargs: Any
    ) -> dns.resolver.Answer:
        for nameserver in self.nameservers:
            address = str(getattr(nameserver, "address", nameserver))
            assert ipaddress.ip_address(address).is_loopback, f"test asked DNS at {address}"
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(dns.asyncresolver.Resolver, "resolve", loopback_only)
