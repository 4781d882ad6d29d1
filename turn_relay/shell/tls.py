"""The TLS listeners' certificate, replaceable while they run (SIGHUP).

Each TLS connection runs its own `stun_server.tlsbio.TlsSession`, made with the context
`ReloadableCertificate.context` returns when the connection is admitted: the one holding the
newest certificate and key. A reload builds a new context after checking the files
(`turn_relay.config.tls_files`); connections already up keep the context they started with,
and a bad new pair leaves the old one serving.
"""

from __future__ import annotations

import datetime
import logging
import ssl
from pathlib import Path

from turn_relay.config.tls_files import check_certificate_pair, errors, summarize

logger = logging.getLogger(__name__)


class TlsFilesError(Exception):
    """The certificate or key cannot be used; the message has one line per problem."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def checked_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for the pair, or TlsFilesError naming every problem of the files."""
    problems = errors(check_certificate_pair(cert, key, datetime.datetime.now(datetime.UTC)))
    if problems:
        raise TlsFilesError("; ".join(f.message for f in problems))
    try:
        return server_context(cert, key)
    except (ssl.SSLError, OSError) as exc:  # changed since the check
        raise TlsFilesError(f"{cert}: {exc}") from None


class ReloadableCertificate:
    """`context` is what a new connection gets; `reload` swaps it."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = cert, key
        self.current = server_context(cert, key)

    def context(self) -> ssl.SSLContext:
        return self.current

    def reload(self) -> bool:
        """Re-read the files; on a problem keep the previous pair (logged at warning)."""
        try:
            self.current = checked_context(self.cert, self.key)
        except TlsFilesError as exc:
            logger.warning("TLS reload failed, keeping the previous certificate: %s", exc)
            return False
        logger.info("reloaded TLS certificate %s: %s", self.cert, summarize(self.cert))
        return True
