"""The signaling check's pure parts: URL parsing, proxy choice, what counts as a reply."""

from __future__ import annotations

import pytest

from rtccheck.signaling.proxy import ProxyChoice, ProxySettingError, choose_proxy
from rtccheck.signaling.round_trip import Expectation, ExpectMode, reply_text
from rtccheck.signaling.target import Protocol, SignalingUrlError, parse_target


@pytest.mark.parametrize(
    ("url", "protocol", "port", "resource", "secure"),
    [
        ("ws://app.example.test/ws", Protocol.WEBSOCKET, 80, "/ws", False),
        ("wss://app.example.test", Protocol.WEBSOCKET, 443, "/", True),
        ("wss://app.example.test:8443/a?b=c", Protocol.WEBSOCKET, 8443, "/a?b=c", True),
        ("https://app.example.test", Protocol.SOCKETIO, 443, "/", True),
        ("http://app.example.test:3000", Protocol.SOCKETIO, 3000, "/", False),
        (
            "wss://app.example.test/socket.io/?EIO=4",
            Protocol.SOCKETIO,
            443,
            "/socket.io/?EIO=4",
            True,
        ),
    ],
)
def test_parse_target(url: str, protocol: Protocol, port: int, resource: str, secure: bool) -> None:
    target = parse_target(url)
    assert (target.protocol, target.port, target.resource, target.secure) == (
        protocol,
        port,
        resource,
        secure,
    )
    assert target.host == "app.example.test"


def test_protocol_override_and_socketio_path() -> None:
    assert parse_target("https://a.test/ws", "websocket").protocol is Protocol.WEBSOCKET
    assert parse_target("wss://a.test/chat/socket.io/").socketio_path == "chat/socket.io"
    assert parse_target("https://a.test/").socketio_path == "socket.io"
    assert parse_target("wss://[2001:db8::1]:9000/").authority == "[2001:db8::1]:9000"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://a.test/", "give a ws://, wss://, http:// or https:// URL"),
        ("wss:///path", "the URL has no host"),
        ("wss://a.test:99999/", "the port is not a number in 0-65535"),
    ],
)
def test_unusable_urls(url: str, message: str) -> None:
    with pytest.raises(SignalingUrlError, match=message):
        parse_target(url)


WSS = parse_target("wss://app.example.test/ws")
WS = parse_target("ws://app.example.test/ws")


def test_no_proxy_variable_means_direct() -> None:
    assert choose_proxy(WSS, {}) == ProxyChoice(None, None)
    assert choose_proxy(WSS, {"HTTP_PROXY": "http://p.test:3128"}) == ProxyChoice(None, None)


def test_secure_urls_use_https_proxy_and_plain_ones_http_proxy() -> None:
    environ = {"HTTPS_PROXY": "http://s.test:3128", "HTTP_PROXY": "http://p.test:8080"}
    assert choose_proxy(WSS, environ) == ProxyChoice(
        "http://s.test:3128", "HTTPS_PROXY", "s.test", 3128
    )
    assert choose_proxy(WS, environ) == ProxyChoice(
        "http://p.test:8080", "HTTP_PROXY", "p.test", 8080
    )


def test_lower_case_wins_and_a_bare_host_is_http() -> None:
    environ = {"https_proxy": "low.test:3128", "HTTPS_PROXY": "http://up.test:3128"}
    choice = choose_proxy(WSS, environ)
    assert (choice.variable, choice.host, choice.port) == ("https_proxy", "low.test", 3128)


@pytest.mark.parametrize("no_proxy", ["*", "example.test", ".example.test", "app.example.test"])
def test_no_proxy_exempts_matching_hosts(no_proxy: str) -> None:
    choice = choose_proxy(WSS, {"HTTPS_PROXY": "http://s.test:3128", "no_proxy": no_proxy})
    assert choice == ProxyChoice(None, "no_proxy", bypassed=True)


def test_no_proxy_for_another_host_keeps_the_proxy() -> None:
    choice = choose_proxy(WSS, {"HTTPS_PROXY": "http://s.test:3128", "NO_PROXY": "other.test"})
    assert choice.url == "http://s.test:3128"


def test_the_password_in_a_proxy_url_is_not_shown() -> None:
    choice = choose_proxy(WSS, {"HTTPS_PROXY": "http://u:secret@s.test:3128"})
    assert choice.describe() == "through the proxy http://u:***@s.test:3128 (from HTTPS_PROXY)"


def test_a_non_http_proxy_is_refused() -> None:
    with pytest.raises(ProxySettingError, match="only http:// proxies are supported"):
        choose_proxy(WSS, {"HTTPS_PROXY": "https://s.test:3128"})


def test_expectations() -> None:
    probe = "rtccheck-probe 1"
    assert Expectation().accepts(probe, "anything")
    assert Expectation(ExpectMode.ECHO).accepts(probe, probe)
    assert not Expectation(ExpectMode.ECHO).accepts(probe, probe + " ")
    assert Expectation(ExpectMode.TEXT, "pong").accepts(probe, '{"type": "pong"}')
    assert not Expectation(ExpectMode.TEXT, "pong").accepts(probe, "ping")
    assert reply_text(b"\xff") == "\ufffd"
    assert reply_text({"a": 1}) == '{"a": 1}'
