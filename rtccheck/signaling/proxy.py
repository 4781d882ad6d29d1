"""Which HTTP proxy, if any, the environment sends a signaling connection through.

The convention of curl and most HTTP clients: ``https_proxy``/``HTTPS_PROXY`` for ``wss:`` and
``https:``, ``http_proxy``/``HTTP_PROXY`` for ``ws:`` and ``http:`` (lower case wins), and
``no_proxy``/``NO_PROXY`` names hosts to reach directly (matched by the standard library's
``urllib.request.proxy_bypass_environment``: suffixes, a leading dot, ``*`` for all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib import request
from urllib.parse import urlsplit

from rtccheck.signaling.target import SignalingTarget


class ProxySettingError(ValueError):
    """A proxy variable that cannot be used (not an http:// URL)."""


@dataclass(frozen=True)
class ProxyChoice:
    #: the proxy URL to tunnel through, or None for a direct connection
    url: str | None
    #: the variable it came from (or the NO_PROXY variable that bypassed it)
    variable: str | None
    host: str | None = None
    port: int | None = None
    bypassed: bool = False

    def describe(self) -> str:
        if self.url is not None:
            return f"through the proxy {_without_password(self.url)} (from {self.variable})"
        if self.bypassed:
            return f"direct: {self.variable} exempts this host from the proxy"
        return "direct: no proxy variable is set for this scheme"


def choose_proxy(target: SignalingTarget, environ: Mapping[str, str]) -> ProxyChoice:
    names = ("https_proxy", "HTTPS_PROXY") if target.secure else ("http_proxy", "HTTP_PROXY")
    found = next(((name, environ[name]) for name in names if environ.get(name)), None)
    if found is None:
        return ProxyChoice(None, None)
    variable, url = found
    no_proxy_name = next((n for n in ("no_proxy", "NO_PROXY") if environ.get(n)), None)
    if no_proxy_name is not None and _bypassed(target.host, environ[no_proxy_name]):
        return ProxyChoice(None, no_proxy_name, bypassed=True)
    return _proxy(url, variable)


def _bypassed(host: str, no_proxy: str) -> bool:
    # the standard library's NO_PROXY matcher; typeshed does not list it
    matcher = request.proxy_bypass_environment  # type: ignore[attr-defined]
    return bool(matcher(host, {"no": no_proxy}))


def _proxy(url: str, variable: str) -> ProxyChoice:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ProxySettingError(
            f"{variable}={_without_password(url)!r}: only http:// proxies are supported"
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise ProxySettingError(f"{variable}: the proxy port is not a number") from None
    return ProxyChoice(parts.geturl(), variable, parts.hostname, port)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()
