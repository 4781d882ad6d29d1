"""The DNS check against a DNS responder on 127.0.0.1 (never a real DNS server)."""

from __future__ import annotations

import pytest
from rtccheck_dns_responder import Mode, Responder, Zone, dns_responder, forbid_real_dns

from rtccheck.checks import dns as dns_check
from rtccheck.checks.base import CheckContext, CheckOptions, Nameserver
from rtccheck.results import CheckResult, Status
from rtccheck.uri import parse_uri

ZONE: Zone = {
    "turn.example.test": {"A": ["203.0.113.10"], "AAAA": ["2001:db8::10"]},
    "v4.example.test": {"A": ["203.0.113.11", "203.0.113.12"]},
    "v6.example.test": {"AAAA": ["2001:db8::11"]},
    "lan.example.test": {"A": ["10.1.2.3"]},
    "empty.example.test": {"TXT": ['"nothing here"']},
    "_turn._udp.turn.example.test": {"SRV": ["10 5 3478 turn.example.test."]},
    "_turns._tcp.turn.example.test": {"SRV": ["10 5 443 turn.example.test."]},
    "_stun._udp.v4.example.test": {"SRV": ["0 0 3479 v4.example.test."]},
}


@pytest.fixture(autouse=True)
def _local_dns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_real_dns(monkeypatch)


def context(responder: Responder, *uris: str, timeout: float = 2.0) -> CheckContext:
    options = CheckOptions(nameservers=(Nameserver("127.0.0.1", responder.port),))
    targets = tuple(parse_uri(uri) for uri in uris)
    return CheckContext(targets=targets, timeout=timeout, options=options)


async def run_against(*uris: str, mode: Mode = "answer", timeout: float = 2.0) -> list[CheckResult]:
    async with dns_responder(ZONE, mode) as responder:
        return await dns_check.run(context(responder, *uris, timeout=timeout))


def only(results: list[CheckResult], check: str, target: str) -> CheckResult:
    (result,) = [r for r in results if r.check == check and r.target == target]
    return result


@pytest.mark.asyncio
async def test_a_and_aaaa_records() -> None:
    results = await run_against("turn:turn.example.test")
    resolve = only(results, "dns.resolve", "turn.example.test")
    assert resolve.status is Status.PASS
    assert resolve.summary == "resolves to 203.0.113.10, 2001:db8::10"
    assert resolve.metrics["a"] == 1 and resolve.metrics["aaaa"] == 1
    assert isinstance(resolve.metrics["rtt_ms"], float)
    assert resolve.details == {"a": ["203.0.113.10"], "aaaa": ["2001:db8::10"]}
    assert resolve.capabilities == ("dns",)


@pytest.mark.asyncio
async def test_the_local_responder_is_the_one_asked() -> None:
    async with dns_responder(ZONE) as responder:
        await dns_check.run(context(responder, "stun:v4.example.test"))
    assert ("v4.example.test.", "A") in responder.queries
    assert ("v4.example.test.", "AAAA") in responder.queries
    assert ("_stun._udp.v4.example.test.", "SRV") in responder.queries


@pytest.mark.asyncio
async def test_each_host_is_resolved_once() -> None:
    results = await run_against(
        "turn:v4.example.test", "turns:v4.example.test", "stun:v4.example.test"
    )
    assert [r.check for r in results] == ["dns.resolve", "dns.srv"]


@pytest.mark.asyncio
async def test_ip_literals_need_no_lookup() -> None:
    async with dns_responder(ZONE) as responder:
        results = await dns_check.run(context(responder, "turn:192.0.2.1", "stun:[2001:db8::1]"))
    assert responder.queries == []
    assert [(r.target, r.status) for r in results] == [
        ("192.0.2.1", Status.PASS),
        ("2001:db8::1", Status.PASS),
    ]
    assert results[0].summary == "IP address: no DNS lookup needed"


@pytest.mark.asyncio
async def test_nxdomain_fails_with_cause_and_fix() -> None:
    results = await run_against("turn:missing.example.test")
    resolve = only(results, "dns.resolve", "missing.example.test")
    assert resolve.status is Status.FAIL
    assert resolve.summary == "the name does not exist in DNS (NXDOMAIN)"
    assert resolve.cause is not None and "missing.example.test" in resolve.cause
    assert resolve.fix is not None and "spelling" in resolve.fix
    srv = only(results, "dns.srv", "missing.example.test")
    assert srv.status is Status.PASS and srv.summary.startswith("no SRV records")


@pytest.mark.asyncio
async def test_name_without_addresses_fails() -> None:
    resolve = only(
        await run_against("turn:empty.example.test"), "dns.resolve", "empty.example.test"
    )
    assert resolve.status is Status.FAIL
    assert resolve.summary == "no A or AAAA records"


@pytest.mark.asyncio
async def test_ipv6_only_warns() -> None:
    resolve = only(await run_against("turn:v6.example.test"), "dns.resolve", "v6.example.test")
    assert resolve.status is Status.WARN
    assert resolve.summary.endswith("(IPv6 only)")
    assert resolve.cause is not None and "without IPv6" in resolve.cause


@pytest.mark.asyncio
async def test_private_address_warns() -> None:
    resolve = only(await run_against("turn:lan.example.test"), "dns.resolve", "lan.example.test")
    assert resolve.status is Status.WARN
    assert resolve.cause is not None and resolve.cause.startswith("10.1.2.3 is a private")


@pytest.mark.asyncio
async def test_srv_records_are_discovered() -> None:
    srv = only(await run_against("turn:turn.example.test"), "dns.srv", "turn.example.test")
    assert srv.status is Status.PASS
    assert srv.summary == "SRV records: _turn._udp (1), _turns._tcp (1)"
    assert srv.details == {
        "_turn._udp": [{"priority": 10, "weight": 5, "port": 3478, "target": "turn.example.test."}],
        "_turns._tcp": [{"priority": 10, "weight": 5, "port": 443, "target": "turn.example.test."}],
    }
    assert srv.metrics == {"records": 2}


@pytest.mark.asyncio
async def test_srv_port_that_disagrees_with_the_uri_warns() -> None:
    results = await run_against("stun:v4.example.test:3478", "turns:turn.example.test:5349")
    stun = only(results, "dns.srv", "v4.example.test")
    assert stun.status is Status.WARN
    assert "_stun._udp lists port 3479, stun:v4.example.test:3478 uses 3478" in stun.summary
    turns = only(results, "dns.srv", "turn.example.test")
    assert turns.status is Status.WARN
    assert "_turns._tcp lists port 443" in turns.summary


@pytest.mark.asyncio
async def test_timeout_fails_resolution_and_warns_srv() -> None:
    results = await run_against("turn:turn.example.test", mode="silent", timeout=0.3)
    resolve = only(results, "dns.resolve", "turn.example.test")
    assert resolve.status is Status.FAIL
    assert resolve.summary == "no answer within 0.3 s"
    srv = only(results, "dns.srv", "turn.example.test")
    assert srv.status is Status.WARN and "timed out" not in srv.summary
    assert srv.summary == "SRV lookups failed: no answer within 0.3 s"


@pytest.mark.asyncio
async def test_servfail() -> None:
    results = await run_against("turn:turn.example.test", mode="servfail")
    resolve = only(results, "dns.resolve", "turn.example.test")
    assert resolve.status is Status.FAIL
    assert "SERVFAIL" in resolve.summary


def test_resolver_uses_exactly_the_given_nameservers() -> None:
    options = CheckOptions(nameservers=(Nameserver("127.0.0.1", 5353), Nameserver("::1")))
    resolver = dns_check.make_resolver(CheckContext(targets=(), timeout=1.5, options=options))
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [  # type: ignore[union-attr]
        ("127.0.0.1", 5353),
        ("::1", 53),
    ]
    assert resolver.lifetime == 1.5


@pytest.mark.asyncio
async def test_the_guard_stops_queries_to_real_dns_servers() -> None:
    options = CheckOptions(nameservers=(Nameserver("192.0.2.53"),))
    resolver = dns_check.make_resolver(CheckContext(targets=(), options=options))
    with pytest.raises(AssertionError, match=r"test asked DNS at 192\.0\.2\.53"):
        await resolver.resolve("example.test", "A")
