"""Every way a signaling connection fails, explained: one function per cause."""

from __future__ import annotations

from rtccheck.causes import CauseId
from rtccheck.diagnosis import Diagnosis
from rtccheck.probe.errors import FailureKind, from_os_error


class LayerFailedError(Exception):
    """A step of the connection failed; carries the diagnosis (and the HTTP status, if any)."""

    def __init__(self, diagnosis: Diagnosis, http_status: int | None = None) -> None:
        super().__init__(diagnosis.summary)
        self.diagnosis = diagnosis
        self.http_status = http_status


def unresolved(host: str, reason: str) -> Diagnosis:
    return Diagnosis(
        CauseId.DNS_FAILURE,
        f"cannot resolve {host}: {reason}",
        "The name has no address this machine can find (NXDOMAIN, no A/AAAA record, or no "
        "answer from the DNS servers).",
        "Fix the DNS name in the URL (or the proxy variable), or this machine's resolver.",
    )


def connect_timeout(where: str, timeout: float) -> Diagnosis:
    return Diagnosis(
        CauseId.CONNECT_TIMEOUT,
        f"no TCP connection to {where} within {timeout:g} s",
        "Nothing answered the TCP connection: the host is down, or a firewall drops the "
        "traffic (a network that allows only its proxy often does this).",
        "Open the port in the firewall, or set HTTPS_PROXY/HTTP_PROXY to the network's proxy.",
    )


def refused(where: str) -> Diagnosis:
    return Diagnosis(
        CauseId.CONNECTION_REFUSED,
        f"connection refused by {where}",
        "The host answered, but nothing listens on this TCP port (or a firewall rejects it).",
        "Start the signaling server, or fix the port in the URL.",
    )


def os_failure(where: str, error: OSError) -> Diagnosis:
    reason = error.strerror or str(error) or type(error).__name__
    unreachable = from_os_error(error).kind is FailureKind.UNREACHABLE
    return Diagnosis(
        CauseId.UNREACHABLE if unreachable else CauseId.SOCKET_ERROR,
        f"cannot reach {where}: {reason}",
        f"The operating system could not connect ({reason}).",
        "Check the address, routing and local firewall.",
    )


def closed(where: str, step: str) -> Diagnosis:
    return Diagnosis(
        CauseId.CONNECTION_CLOSED,
        f"{where} closed the connection during {step}",
        "The server (or a middlebox: a proxy, a load balancer) accepted the connection and "
        "then dropped it.",
        "Look at the server's and the proxy's logs for this connection.",
    )


def http_no_answer(where: str, step: str, timeout: float) -> Diagnosis:
    return Diagnosis(
        CauseId.HTTP_NO_ANSWER,
        f"no HTTP answer from {where} to {step} within {timeout:g} s",
        "The connection is open but nothing answered the request: the port may not speak "
        "HTTP, or a proxy or load balancer holds the request.",
        "Check that the URL's port is the signaling server's, and the timeouts of any "
        "proxy or load balancer in front of it.",
    )


def proxy_refused(proxy: str, authority: str, status: int, reason: str) -> Diagnosis:
    why = {
        407: "The proxy wants credentials (407): put them in the proxy URL "
        "(http://user:password@proxy:port).",
        403: "The proxy's policy forbids tunnels to this host or port (403).",
    }.get(status, f"The proxy answered {status} {reason} instead of opening a tunnel.")
    return Diagnosis(
        CauseId.PROXY_REFUSED,
        f"the proxy {proxy} refused CONNECT {authority}: {status} {reason}".rstrip(),
        why,
        "Allow CONNECT to the signaling host and port in the proxy (many allow only 443), "
        "or exempt the host with NO_PROXY if it is reachable directly.",
    )


def tls_failed(host: str, reason: str) -> Diagnosis:
    return Diagnosis(
        CauseId.TLS_HANDSHAKE_FAILED,
        f"TLS handshake with {host} failed: {reason}",
        "The port may not speak TLS (a ws:// server given as wss://), or client and server "
        "share no protocol version or cipher; a proxy that inspects TLS can cause it too.",
        "Use ws:// for a plain port, or fix the server's TLS setup.",
    )


def tls_timeout(host: str, timeout: float) -> Diagnosis:
    return Diagnosis(
        CauseId.TLS_HANDSHAKE_TIMEOUT,
        f"connected to {host}, but no TLS handshake within {timeout:g} s",
        "The port accepts connections but does not answer TLS: a plain HTTP port, or a "
        "middlebox stalls the handshake.",
        "Use the server's TLS port in the wss:/https: URL.",
    )


def upgrade_refused(url: str, status: int, reason: str, *, socketio: bool) -> Diagnosis:
    request = "the Engine.IO handshake" if socketio else "the WebSocket upgrade"
    if status in (401, 403):
        why = "The server (or a proxy in front of it) refuses this client: a missing "
        why += "cookie or token, an Origin it does not allow, or an IP filter."
    elif status == 400:
        why = "The server found the request malformed: a wrong path, a missing parameter, "
        why += "or a load balancer that strips the Upgrade and Connection headers."
    elif status == 404:
        why = "Nothing is served at this path: the URL's path is not the signaling endpoint."
    elif 200 <= status < 300:
        why = "A plain HTTP server answered: nothing at this URL speaks WebSocket."
    else:
        why = f"The server answered {status} instead of switching protocols."
    return Diagnosis(
        CauseId.UPGRADE_REFUSED,
        f"{request} at {url} was answered {status} {reason}".rstrip(),
        why,
        "Check the URL's path, and that every proxy and load balancer passes WebSocket "
        "upgrades (nginx: proxy_set_header Upgrade/Connection).",
    )


def socketio_refused(url: str, message: str) -> Diagnosis:
    return Diagnosis(
        CauseId.SOCKETIO_REFUSED,
        f"the Socket.IO server at {url} refused the connection: {message}",
        "The Engine.IO transport opened, but the Socket.IO connection to the namespace was "
        "refused: the server's connect handler rejected this client (authentication), or the "
        "namespace does not exist, or the client and server versions differ.",
        "Check the server's connect handler and its authentication, and use a Socket.IO "
        "server of protocol version 5 (python-socketio 5, socket.io 3 and later).",
    )


def no_answer(url: str, timeout: float, expectation: str) -> Diagnosis:
    return Diagnosis(
        CauseId.ROUND_TRIP_NO_ANSWER,
        f"no message back from {url} within {timeout:g} s",
        f"The connection is up, but nothing came back after the probe ({expectation}): the "
        "server does not answer this message, or a proxy passes the upgrade but not the "
        "frames.",
        "Send a message the server answers (--send, --event), or check the proxy's "
        "WebSocket support and idle timeouts.",
    )


def unexpected_reply(url: str, count: int, expectation: str) -> Diagnosis:
    return Diagnosis(
        CauseId.ROUND_TRIP_UNEXPECTED,
        f"{count} message(s) came back from {url}, none of them {expectation}",
        "The server answers, but not with what this check waits for.",
        "Adjust --expect/--expect-text to what the server sends back, or use --expect any.",
    )
