"""The tls check against in-process TLS servers on 127.0.0.1, one per certificate problem.

Every server here is an asyncio server in the test's own event loop: a TLS listener with a
throwaway certificate, a plain TCP listener that never answers (handshake timeout), one that
answers garbage (not TLS), one that speaks only TLS 1.1.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest
from rtccheck_ice_servers import HOST, free_port, make_certs
from turnkit_testing.tls import CertFiles

from rtccheck.checks import tls
from rtccheck.checks.base import CheckContext, CheckOptions
from rtccheck.results import CheckResult, Status
from rtccheck.tlsinfo.certificate import parse_certificate
from rtccheck.uri import parse_uri

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _drain_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError, ssl.SSLError):
        await reader.read()
    writer.close()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(10)
    writer.close()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
    await writer.drain()
    writer.close()


def server_context(certs: CertFiles, *, old_only: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert, certs.key)
    if old_only:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


@asynccontextmanager
async def listening(
    context: ssl.SSLContext | None, handler: Handler = _drain_and_close
) -> AsyncIterator[int]:
    handlers: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        await handler(reader, writer)

    server = await asyncio.start_server(tracked, HOST, 0, ssl=context)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


async def check(
    port: int,
    *,
    ca_file: Path | None = None,
    host: str = HOST,
    scheme: str = "turns",
    timeout: float = 2.0,
    now_offset: float = 0.0,
) -> CheckResult:
    ctx = CheckContext(
        targets=(parse_uri(f"{scheme}:{host}:{port}"),),
        timeout=timeout,
        now=lambda: time.time() + now_offset,
        options=CheckOptions(ca_file=ca_file),
    )
    (result,) = await tls.run(ctx)
    return result


@pytest.mark.asyncio
async def test_trusted_certificate_passes_with_every_figure(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    async with listening(server_context(certs)) as port:
        result = await check(port, ca_file=certs.ca)
    assert result.status is Status.PASS, result
    assert result.check == "tls.handshake" and result.capabilities == ("tls",)
    assert result.metrics["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert isinstance(result.metrics["cipher"], str) and result.metrics["cipher"]
    assert 89 < float(result.metrics["days_left"] or 0) <= 90
    assert result.details["verified"] is True and result.details["name_match"] is True
    assert result.cause_id is None and result.details["cause_ids"] == []
    assert "chain trusted by --ca-file" in result.summary


@pytest.mark.asyncio
async def test_stuns_is_checked_too(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    async with listening(server_context(certs)) as port:
        result = await check(port, ca_file=certs.ca, scheme="stuns")
    assert result.status is Status.PASS and result.target.startswith("stuns:")


@pytest.mark.asyncio
async def test_name_mismatch(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, names=("turn.example.test",))
    async with listening(server_context(certs)) as port:
        result = await check(port, ca_file=certs.ca)
    assert result.status is Status.FAIL
    assert result.cause_id == "tls-name-mismatch"
    assert result.details["name_match"] is False
    assert result.cause is not None and "subjectAltName" in result.cause
    assert result.summary == f"the certificate does not match {HOST}"


@pytest.mark.asyncio
async def test_expired_certificate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, expired=True)
    async with listening(server_context(certs)) as port:
        result = await check(port, ca_file=certs.ca)
    assert result.status is Status.FAIL
    assert result.cause_id == "tls-expired"
    assert float(result.metrics["days_left"] or 0) < 0
    assert result.details["verify_message"] == "certificate has expired"


@pytest.mark.asyncio
async def test_self_signed_without_ca_file(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, self_signed=True)
    async with listening(server_context(certs)) as port:
        result = await check(port)
    assert result.status is Status.FAIL
    assert result.cause_id == "tls-self-signed"
    assert result.cause is not None and "the system trust store" in result.cause
    assert result.fix is not None and "--ca-file" in result.fix


@pytest.mark.asyncio
async def test_self_signed_trusted_with_ca_file(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, self_signed=True)
    async with listening(server_context(certs)) as port:
        result = await check(port, ca_file=certs.ca)
    assert result.status is Status.PASS


@pytest.mark.asyncio
async def test_private_ca_without_ca_file_is_untrusted_and_every_problem_is_listed(
    tmp_path: Path,
) -> None:
    certs = make_certs(tmp_path, names=("turn.example.test",), expired=True)
    async with listening(server_context(certs)) as port:
        result = await check(port)
    assert result.status is Status.FAIL
    assert result.cause_id == "tls-untrusted"
    assert result.details["cause_ids"] == ["tls-untrusted", "tls-name-mismatch", "tls-expired"]


@pytest.mark.asyncio
async def test_expiring_soon_warns(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, valid_days=5)
    async with listening(server_context(certs)) as port:
        result = await check(port, ca_file=certs.ca)
    assert result.status is Status.WARN
    assert result.cause_id == "tls-expires-soon"
    assert result.summary.startswith("the certificate expires in 4.9") or result.summary.startswith(
        "the certificate expires in 5.0"
    )


@pytest.mark.asyncio
async def test_expiry_is_judged_by_the_context_clock(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, valid_days=30)
    async with listening(server_context(certs)) as port:
        result = await check(port, ca_file=certs.ca, now_offset=40 * 86400)
    assert result.status is Status.FAIL and result.cause_id == "tls-expired"


@pytest.mark.asyncio
async def test_old_protocol_warns(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    try:
        context = server_context(certs, old_only=True)
    except ssl.SSLError as error:
        pytest.skip(f"this OpenSSL cannot serve TLS 1.1: {error}")
    async with listening(context) as port:
        result = await check(port, ca_file=certs.ca)
    assert result.status is Status.WARN
    assert result.cause_id == "tls-old-protocol"
    assert result.metrics["protocol"] == "TLSv1.1"


@pytest.mark.asyncio
async def test_connection_refused() -> None:
    result = await check(free_port())
    assert result.status is Status.FAIL
    assert result.cause_id == "connection-refused"
    assert "nothing listens" in (result.cause or "")


@pytest.mark.asyncio
async def test_handshake_timeout_on_a_port_that_never_answers() -> None:
    async with listening(None, _silent) as port:
        result = await check(port, timeout=0.5)
    assert result.status is Status.FAIL
    assert result.cause_id == "tls-handshake-timeout"
    assert "plain TURN/STUN port" in (result.cause or "")


@pytest.mark.asyncio
async def test_a_port_that_does_not_speak_tls() -> None:
    async with listening(None, _garbage) as port:
        result = await check(port)
    assert result.status is Status.FAIL
    assert result.cause_id == "tls-handshake-failed"


@pytest.mark.asyncio
async def test_nothing_to_check_without_secure_servers() -> None:
    ctx = CheckContext(targets=(parse_uri("turn:127.0.0.1:3478"),))
    (result,) = await tls.run(ctx)
    assert result.status is Status.SKIP


def test_wildcard_and_ip_names(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, names=("*.example.test", "192.0.2.7"))
    facts = parse_certificate(ssl.PEM_cert_to_DER_cert(certs.cert.read_text()))
    assert facts.names_host("turn.example.test")
    assert facts.names_host("TURN.example.test.")
    assert not facts.names_host("a.b.example.test")
    assert not facts.names_host("example.test")
    assert facts.names_host("192.0.2.7") and not facts.names_host("192.0.2.8")
    assert not facts.self_signed
