"""Server-side TLS over memory BIOs: ciphertext in, plaintext and ciphertext out, no sockets.

Why not the event loop's own TLS (``create_server(ssl=...)``)? Both uvloop's and asyncio's TLS
transports give every connection a 256 KiB receive buffer, and uvloop reads TLS records with
256 KiB reads, so each open TLS connection costs about 300 KiB of heap. A churn of short STUN
connections (a few hundred open at once) leaves that heap in glibc's hands, fragmented, and it
is not given back: measured (docs/operations.md, "TLS memory"): after 6,000 connections 200 at a
time, 62 MiB of the main arena free but kept, 3.9 MiB in use, the same as before the churn.
Here a connection costs what OpenSSL needs (some tens of KiB) and reads are `READ_SIZE` bytes.

`TlsSession.receive(data)` feeds ciphertext and returns (plaintext, ciphertext to send);
`send(plaintext)` returns ciphertext (`send_records`: one record per plaintext); `close()`
returns the close_notify alert. Every error is an `ssl.SSLError`; after the peer's close_notify
`peer_closed` is true (answer it with `close()`). Shared by the STUN server and the relay.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable

READ_SIZE = 16 * 1024  # one TLS record at most; STUN messages are far smaller


class TlsSession:
    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.handshake_done = False
        self.peer_closed = False

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Ciphertext from the peer -> (plaintext for the application, ciphertext to send)."""
        self._incoming.write(data)
        if not self.handshake_done:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return b"", self._outgoing.read()
            self.handshake_done = True
        return self._read_plaintext(), self._outgoing.read()

    def _read_plaintext(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self._tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            if not chunk:  # the peer's close_notify
                self.peer_closed = True
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> bytes:
        """Plaintext for the peer -> ciphertext to send (after the handshake)."""
        self._tls.write(plaintext)
        return self._outgoing.read()

    def send_records(self, plaintexts: Iterable[bytes]) -> bytes:
        """Each plaintext in a record of its own -> the ciphertext of them all, in order."""
        write = self._tls.write
        for plaintext in plaintexts:
            write(plaintext)
        return self._outgoing.read()

    def close(self) -> bytes:
        """The close_notify alert to send, if the handshake got that far."""
        if self.handshake_done:
            with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: no wait for the peer's
                self._tls.unwrap()
        return self._outgoing.read()
