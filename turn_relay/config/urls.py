"""The TURN URLs a relay hands out (RTCIceServer ``urls``): configured, or derived."""

from __future__ import annotations

from ipaddress import ip_address

from .model import ConfigError, ListenConfig, RelayConfig, ServerConfig, TurnConfig


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def url_hosts(server: ServerConfig, listen: ListenConfig, relay: RelayConfig) -> tuple[str, ...]:
    """Hosts for derived TURN URLs: server.public_host, else each listen address clients dial.

    A listen address that is also a relay address mapped in relay.external (1:1 NAT) becomes
    its advertised address; any other is dialled as it is, unless it is 0.0.0.0/``::`` (it
    names no address) or another address of its family is behind NAT (clients may not see it).
    Raises ValueError saying what to set instead.
    """
    if server.public_host is not None:
        return (server.public_host,)
    hint = "set server.public_host (--public-host) or api.urls"
    natted = {ip_address(local).version for local in relay.external}
    hosts: list[str] = []
    for address in listen.addresses:
        ip = ip_address(address)
        if address in relay.external:
            hosts.append(relay.external[address])
        elif ip.is_unspecified:
            raise ValueError(
                f"no URL to hand out: listen address {address} is a wildcard, not an address"
                f" clients can dial; {hint}"
            )
        elif ip.version in natted:
            raise ValueError(
                f"no URL to hand out: listen address {address} may be behind the 1:1 NAT of"
                f" relay.external, which does not map it; {hint}"
            )
        else:
            hosts.append(address)
    return tuple(dict.fromkeys(hosts))


def ice_urls(config: TurnConfig) -> tuple[str, ...]:
    """The URLs an RTCIceServer gets: ``api.urls`` if set, else derived.

    Derived: for each host (``server.public_host``, else each listen address, see
    `url_hosts`), one URL per enabled transport: ``turn:...?transport=udp``,
    ``turn:...?transport=tcp``, ``turns:...?transport=tcp``. Raises ConfigError (naming
    ``api.urls``) when no host can be derived.
    """
    if config.api.urls:
        return config.api.urls
    try:
        hosts = url_hosts(config.server, config.listen, config.relay)
    except ValueError as exc:
        raise ConfigError(f"api.urls: {exc}") from None
    listen = config.listen
    urls: list[str] = []
    for host in map(_bracketed, hosts):
        candidates = (
            (listen.udp_port, f"turn:{host}:{listen.udp_port}?transport=udp"),
            (listen.tcp_port, f"turn:{host}:{listen.tcp_port}?transport=tcp"),
            (listen.tls_port, f"turns:{host}:{listen.tls_port}?transport=tcp"),
        )
        urls += [url for port, url in candidates if port]
    return tuple(urls)


def api_base_url(config: TurnConfig) -> str:
    """The HTTP API as browsers reach it: ``check.public_url``, else derived from
    ``server.public_host`` (else ``api.listen``), ``api.port`` and whether the API has TLS."""
    if config.check.public_url:
        return config.check.public_url
    api = config.api
    scheme = "https" if api.tls_cert_file is not None else "http"
    host = _bracketed(config.server.public_host or api.listen)
    default_port = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if api.port == default_port else f":{api.port}")


def check_stun_urls(config: TurnConfig) -> tuple[str, ...]:
    """``stun:`` URLs for the relay's own UDP listeners (it answers Binding on them), one per
    host of `url_hosts`; two hosts let the check page compare mappings. Empty without UDP or
    when ``api.urls`` is configured (the hosts are then the operator's to name)."""
    if not config.listen.udp_port or config.api.urls:
        return ()
    try:
        hosts = url_hosts(config.server, config.listen, config.relay)
    except ValueError as exc:
        raise ConfigError(f"api.urls: {exc}") from None
    return tuple(f"stun:{_bracketed(host)}:{config.listen.udp_port}" for host in hosts)
