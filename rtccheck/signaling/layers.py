"""The connection under the signaling protocol, one step at a time: DNS, TCP, the proxy's
CONNECT tunnel, TLS. Each step raises LayerFailedError with its diagnosis.

The HTTP client libraries (aiohttp, which python-socketio uses) do these steps inside one
call and report a failure without saying which step broke, so the check takes them one by one
here first; the libraries then make their own connection for the upgrade and the messages.
The CONNECT request is written by hand for the same reason: aiohttp opens its tunnel inside its
connector, and a tunnel that the proxy refuses must be told apart from a refused upgrade.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from rtccheck.signaling import diagnoses
from rtccheck.signaling.diagnoses import LayerFailedError
from rtccheck.tlsinfo.certificate import CertificateFacts, parse_certificate
from rtccheck.tlsinfo.trust import client_context, verification_diagnosis

#: the longest proxy answer header read
MAX_PROXY_HEADER = 16 * 1024


@dataclass(frozen=True)
class Stream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    #: the address connected to, ``ip:port``
    address: str


@dataclass(frozen=True)
class TlsFacts:
    version: str
    cipher: str
    certificate: CertificateFacts | None


async def resolve(host: str, port: int, timeout: float) -> list[str]:
    """The addresses of ``host``, IPv6 and IPv4 as the system resolver orders them."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise LayerFailedError(diagnoses.unresolved(host, f"no answer in {timeout:g} s")) from None
    except socket.gaierror as error:
        reason = error.strerror or str(error)
        raise LayerFailedError(diagnoses.unresolved(host, reason)) from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def connect(addresses: list[str], port: int, timeout: float) -> Stream:
    """A TCP connection to the first address that accepts; the last failure otherwise."""
    failure: LayerFailedError | None = None
    for address in addresses:
        where = _where(address, port)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(address, port)
        except TimeoutError:
            failure = LayerFailedError(diagnoses.connect_timeout(where, timeout))
        except ConnectionRefusedError:
            failure = LayerFailedError(diagnoses.refused(where))
        except OSError as error:
            failure = LayerFailedError(diagnoses.os_failure(where, error))
        else:
            return Stream(reader, writer, where)
    assert failure is not None, "connect() needs at least one address"
    raise failure


async def tunnel(stream: Stream, proxy_url: str, authority: str, timeout: float) -> int:
    """Ask the proxy to CONNECT to ``authority``; its status (200) when it opens the tunnel."""
    stream.writer.write(_connect_request(proxy_url, authority))
    try:
        async with asyncio.timeout(timeout):
            await stream.writer.drain()
            head = await stream.reader.readuntil(b"\r\n\r\n")
    except TimeoutError:
        diagnosis = diagnoses.http_no_answer(stream.address, f"CONNECT {authority}", timeout)
        raise LayerFailedError(diagnosis) from None
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        raise LayerFailedError(diagnoses.closed(stream.address, "CONNECT")) from None
    status, reason = _status_line(head)
    if status != 200:
        diagnosis = diagnoses.proxy_refused(stream.address, authority, status, reason)
        raise LayerFailedError(diagnosis, http_status=status)
    return status


def _connect_request(proxy_url: str, authority: str) -> bytes:
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    parts = urlsplit(proxy_url)
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(pair.encode()).decode())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _status_line(head: bytes) -> tuple[int, str]:
    first = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = first.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return 0, first.strip()
    return int(parts[1]), parts[2].strip() if len(parts) > 2 else ""


async def secure(stream: Stream, host: str, ca_file: Path | None, timeout: float) -> TlsFacts:
    """A verifying TLS handshake for ``host`` over the stream (direct or tunnelled)."""
    context = client_context(ca_file)
    try:
        async with asyncio.timeout(timeout):
            await stream.writer.start_tls(context, server_hostname=host)
    except TimeoutError:
        raise LayerFailedError(diagnoses.tls_timeout(host, timeout)) from None
    except ssl.SSLCertVerificationError as refused:
        raise LayerFailedError(verification_diagnosis(refused, host, ca_file)) from None
    except (ssl.SSLError, ConnectionError) as error:
        reason = getattr(error, "reason", None) or str(error) or type(error).__name__
        raise LayerFailedError(diagnoses.tls_failed(host, str(reason))) from None
    tls = stream.writer.get_extra_info("ssl_object")
    assert isinstance(tls, ssl.SSLObject)
    der = tls.getpeercert(binary_form=True)
    cipher = tls.cipher()
    return TlsFacts(
        version=tls.version() or "unknown",
        cipher=cipher[0] if cipher else "unknown",
        certificate=parse_certificate(der) if der else None,
    )


async def close(stream: Stream, timeout: float) -> None:
    stream.writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            await stream.writer.wait_closed()


def _where(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
