"""STUN/TURN URI parsing (RFC 7064, RFC 7065): what is accepted and how mistakes are explained."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtccheck.uri import IceServer, UriError, parse_uri

VALID = [
    # uri, scheme, host, port, transport, secure, port_given
    ("stun:stun.example.com", "stun", "stun.example.com", 3478, "udp", False, False),
    ("stun:stun.example.com:19302", "stun", "stun.example.com", 19302, "udp", False, True),
    ("stuns:stun.example.com", "stuns", "stun.example.com", 5349, "tcp", True, False),
    ("turn:turn.example.com", "turn", "turn.example.com", 3478, "udp", False, False),
    ("turn:turn.example.com?transport=tcp", "turn", "turn.example.com", 3478, "tcp", False, False),
    ("turn:turn.example.com:80?transport=udp", "turn", "turn.example.com", 80, "udp", False, True),
    ("turns:turn.example.com", "turns", "turn.example.com", 5349, "tcp", True, False),
    (
        "turns:turn.example.com:443?transport=tcp",
        "turns",
        "turn.example.com",
        443,
        "tcp",
        True,
        True,
    ),
    ("turns:turn.example.com?transport=udp", "turns", "turn.example.com", 5349, "udp", True, False),
    ("turn:192.0.2.1", "turn", "192.0.2.1", 3478, "udp", False, False),
    ("turn:192.0.2.1:3479", "turn", "192.0.2.1", 3479, "udp", False, True),
    ("turn:[2001:db8::1]", "turn", "2001:db8::1", 3478, "udp", False, False),
    ("turn:[2001:DB8:0::1]:5000?transport=tcp", "turn", "2001:db8::1", 5000, "tcp", False, True),
    ("stun:[::1]:3478", "stun", "::1", 3478, "udp", False, True),
    ("TURN:Turn.Example.COM?TRANSPORT=TCP", "turn", "turn.example.com", 3478, "tcp", False, False),
    ("  stun:localhost  ", "stun", "localhost", 3478, "udp", False, False),
    ("stun:stun.example.com.", "stun", "stun.example.com.", 3478, "udp", False, False),
    ("turn:_relay.example.com", "turn", "_relay.example.com", 3478, "udp", False, False),
]


@pytest.mark.parametrize(("uri", "scheme", "host", "port", "transport", "secure", "given"), VALID)
def test_valid_uris(
    uri: str, scheme: str, host: str, port: int, transport: str, secure: bool, given: bool
) -> None:
    server = parse_uri(uri)
    assert (server.scheme, server.host, server.port) == (scheme, host, port)
    assert (server.transport, server.secure, server.port_given) == (transport, secure, given)
    assert server.uri == uri.strip()
    assert server.username is None and server.credential is None


INVALID = [
    ("", "empty URI"),
    ("   ", "empty URI"),
    ("stun.example.com", "has no scheme: write stun:stun.example.com"),
    ("https://turn.example.com", "not a STUN/TURN scheme"),
    ("tls:turn.example.com", "not a STUN/TURN scheme"),
    ("turnx:turn.example.com", "unknown scheme 'turnx'"),
    ("turn://turn.example.com", "have no '//': write turn:turn.example.com"),
    ("turn:", "has no host"),
    ("turn::3478", "has no host before the port"),
    ("turn:user@turn.example.com", "credentials do not belong in the URI"),
    ("turn:user:pass@turn.example.com", "credentials do not belong in the URI"),
    ("turn:turn.example.com/path", "has no path; remove '/path'"),
    ("stun:stun.example.com?transport=udp", "stun: URIs take no query"),
    ("stuns:stun.example.com?transport=tcp", "stun: URIs take no query"),
    ("turn:turn.example.com?transport=tls", "for TLS write turns:"),
    ("turn:turn.example.com?transport=sctp", "transport must be udp or tcp, not 'sctp'"),
    ("turn:turn.example.com?proto=udp", "only query a TURN URI takes"),
    ("turn:turn.example.com?transport=udp&x=1", "only query a TURN URI takes"),
    ("turn:turn.example.com?transport", "only query a TURN URI takes"),
    ("turn:turn.example.com:0", "outside 1-65535"),
    ("turn:turn.example.com:65536", "outside 1-65535"),
    ("turn:turn.example.com:http", "is not a number"),
    ("turn:turn.example.com:", "is not a number"),
    ("turn:turn.example.com:-1", "is not a number"),
    ("turn:2001:db8::1", "put an IPv6 address in brackets"),
    ("turn:[2001:db8::1", "without a closing ']'"),
    ("turn:[not-ipv6]:3478", "is not an IPv6 address"),
    ("turn:[192.0.2.1]", "is not an IPv6 address"),
    ("turn:[::1]3478", "expected ':port' after ']'"),
    ("turn:999.1.1.1", "is not a valid IPv4 address"),
    ("turn:turn example.com", "is not a valid host name"),
    ("turn:-bad.example.com", "is not a valid host name"),
    ("turn:" + "a" * 64 + ".example.com", "is not a valid host name"),
]


@pytest.mark.parametrize(("uri", "message"), INVALID)
def test_invalid_uris_explain_the_mistake(uri: str, message: str) -> None:
    with pytest.raises(UriError) as raised:
        parse_uri(uri)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("uri", "canonical"),
    [
        ("turn:a.example", "turn:a.example:3478?transport=udp"),
        ("turns:a.example", "turns:a.example:5349?transport=tcp"),
        ("stun:[::1]", "stun:[::1]:3478"),
        ("stuns:192.0.2.9:443", "stuns:192.0.2.9:443"),
    ],
)
def test_canonical_form_spells_out_defaults(uri: str, canonical: str) -> None:
    assert parse_uri(uri).canonical == canonical


def test_server_properties() -> None:
    turn = parse_uri("turn:192.0.2.1")
    assert turn.is_turn and turn.host_is_ip and not turn.has_credentials
    stun = parse_uri("stun:stun.example.com")
    assert not stun.is_turn and not stun.host_is_ip
    with_credentials: IceServer = turn.with_credentials("u", "p")
    assert with_credentials.has_credentials and turn.username is None


# a name made only of digits and dots reads as an IPv4 address, so labels start with a letter
LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
HOSTS = st.one_of(
    st.lists(LABEL, min_size=1, max_size=4).map(".".join),
    st.ip_addresses().map(str),
)


@given(
    scheme=st.sampled_from(["stun", "stuns", "turn", "turns"]),
    host=HOSTS,
    port=st.integers(1, 65535),
    transport=st.sampled_from(["udp", "tcp"]),
)
def test_canonical_form_parses_back_to_the_same_server(
    scheme: str, host: str, port: int, transport: str
) -> None:
    written = f"[{host}]" if ":" in host else host
    query = f"?transport={transport}" if scheme.startswith("turn") else ""
    server = parse_uri(f"{scheme}:{written}:{port}{query}")
    again = parse_uri(server.canonical)
    assert (again.scheme, again.host, again.port, again.transport) == (
        server.scheme,
        server.host,
        server.port,
        server.transport,
    )
    assert server.port == port
