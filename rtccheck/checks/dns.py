"""Resolve each server's host name (A/AAAA) and discover SRV records.

Looks up A and AAAA for every host name (IP addresses need no lookup) and the SRV names
_stun._udp, _turn._udp, _turn._tcp and _turns._tcp under each domain, as RFC 5389/5766
clients may. Flags names that do not exist, have no addresses, resolve only to IPv6 or to
private addresses, and SRV ports that disagree with the URI. --nameserver asks a given DNS
server instead of the system's.

\b
Examples:
  rtccheck dns turn:turn.example.com turns:turn.example.com:443
  rtccheck dns --nameserver 9.9.9.9 --ice-config ice.json
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckContext
from rtccheck.results import CheckResult, JsonValue, Metrics, Status
from rtccheck.uri import IceServer

CAPABILITY = ("dns",)
#: SRV service names and the (scheme, transport) of URIs they serve
SRV_SERVICES: dict[str, tuple[str, str]] = {
    "_stun._udp": ("stun", "udp"),
    "_turn._udp": ("turn", "udp"),
    "_turn._tcp": ("turn", "tcp"),
    "_turns._tcp": ("turns", "tcp"),
}
_UNREACHABLE_FROM_INTERNET = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


@dataclass(frozen=True)
class Lookup:
    """One query's outcome: the records, or why there are none."""

    records: tuple[str, ...] = ()
    problem: str | None = None
    missing_name: bool = False


async def run(ctx: CheckContext) -> list[CheckResult]:
    try:
        resolver = make_resolver(ctx)
    except dns.resolver.NoResolverConfiguration:
        return [_no_resolver()]
    hosts = _distinct(server.host for server in ctx.targets)
    domains = [host for host in hosts if not _is_ip(host)]
    address_checks = [resolve_host(resolver, host, ctx) for host in hosts]
    srv_checks = [discover_srv(resolver, domain, ctx.targets) for domain in domains]
    return list(await asyncio.gather(*address_checks, *srv_checks))


def make_resolver(ctx: CheckContext) -> dns.asyncresolver.Resolver:
    """The system's resolver, or exactly the --nameserver servers (tests use a local one)."""
    configured = bool(ctx.options.nameservers)
    resolver = dns.asyncresolver.Resolver(configure=not configured)
    if configured:
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(ns.host, ns.port) for ns in ctx.options.nameservers
        ]
    resolver.lifetime = ctx.timeout
    resolver.timeout = ctx.timeout
    resolver.cache = None
    return resolver


def _distinct(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def query(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str) -> Lookup:
    try:
        answer = await resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return Lookup(problem="the name does not exist (NXDOMAIN)", missing_name=True)
    except dns.resolver.NoNameservers:
        return Lookup(problem="every DNS server failed to answer (SERVFAIL or refused)")
    except dns.exception.Timeout:
        return Lookup(problem=f"no answer within {resolver.lifetime:g} s")
    except dns.exception.DNSException as error:
        return Lookup(problem=f"lookup failed: {error}")
    return Lookup(tuple(rdata.to_text() for rdata in answer.rrset or ()))


async def resolve_host(
    resolver: dns.asyncresolver.Resolver, host: str, ctx: CheckContext
) -> CheckResult:
    if _is_ip(host):
        return _address_result(host, Status.PASS, "IP address: no DNS lookup needed", {})
    started = ctx.monotonic()
    ipv4, ipv6 = await asyncio.gather(query(resolver, host, "A"), query(resolver, host, "AAAA"))
    metrics: Metrics = {
        "a": len(ipv4.records),
        "aaaa": len(ipv6.records),
        "rtt_ms": round((ctx.monotonic() - started) * 1000, 1),
    }
    details: dict[str, JsonValue] = {"a": list(ipv4.records), "aaaa": list(ipv6.records)}
    return judge_addresses(host, ipv4, ipv6, metrics, details)


def judge_addresses(
    host: str,
    ipv4: Lookup,
    ipv6: Lookup,
    metrics: Metrics,
    details: dict[str, JsonValue],
) -> CheckResult:
    addresses = ipv4.records + ipv6.records
    if ipv4.missing_name or ipv6.missing_name:
        return _address_result(
            host,
            Status.FAIL,
            "the name does not exist in DNS (NXDOMAIN)",
            metrics,
            cause_id=CauseId.DNS_FAILURE,
            cause=f"No DNS record exists for {host}, so no client can find the server.",
            fix="Check the spelling in the URI, or create A/AAAA records for the name.",
        )
    if not addresses:
        problem = ipv4.problem or ipv6.problem
        return _address_result(
            host,
            Status.FAIL,
            problem or "no A or AAAA records",
            metrics,
            cause_id=CauseId.DNS_FAILURE,
            cause=f"DNS gave no address for {host}: {problem or 'the name has no A/AAAA records'}.",
            fix="Publish A (and AAAA) records for the server, and check the DNS servers answer.",
        )
    private = [a for a in addresses if _unreachable_from_internet(a)]
    summary = f"resolves to {', '.join(addresses[:4])}" + (" ..." if len(addresses) > 4 else "")
    if private:
        return _address_result(
            host,
            Status.WARN,
            summary,
            metrics,
            cause_id=CauseId.DNS_PRIVATE_ADDRESS,
            cause=f"{', '.join(private)} is a private, loopback or link-local address: "
            "clients outside this network cannot reach it.",
            fix="Publish the server's public address (fine to ignore for a LAN-only deployment).",
            details=details,
        )
    if not ipv4.records:
        return _address_result(
            host,
            Status.WARN,
            summary + " (IPv6 only)",
            metrics,
            cause_id=CauseId.DNS_IPV6_ONLY,
            cause="The name has only AAAA records: clients without IPv6 cannot reach the server.",
            fix="Publish an A record as well.",
            details=details,
        )
    return _address_result(host, Status.PASS, summary, metrics, details=details)


def _unreachable_from_internet(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in _UNREACHABLE_FROM_INTERNET)


def _address_result(
    host: str,
    status: Status,
    summary: str,
    metrics: Metrics,
    *,
    cause_id: CauseId | None = None,
    cause: str | None = None,
    fix: str | None = None,
    details: dict[str, JsonValue] | None = None,
) -> CheckResult:
    return CheckResult(
        check="dns.resolve",
        target=host,
        status=status,
        summary=summary,
        metrics=metrics,
        cause_id=cause_id,
        cause=cause,
        fix=fix,
        details=details or {},
        capabilities=CAPABILITY,
    )


async def discover_srv(
    resolver: dns.asyncresolver.Resolver, domain: str, targets: Sequence[IceServer]
) -> CheckResult:
    names = [f"{service}.{domain}" for service in SRV_SERVICES]
    lookups = await asyncio.gather(*(query(resolver, name, "SRV") for name in names))
    found = {
        service: [_srv_record(text) for text in lookup.records]
        for service, lookup in zip(SRV_SERVICES, lookups, strict=True)
        if lookup.records
    }
    failures = [lk.problem for lk in lookups if lk.problem and not lk.missing_name]
    conflicts = _port_conflicts(domain, found, targets)
    return judge_srv(domain, found, failures, conflicts)


def _srv_record(text: str) -> dict[str, JsonValue]:
    priority, weight, port, target = text.split()
    return {"priority": int(priority), "weight": int(weight), "port": int(port), "target": target}


def _port_conflicts(
    domain: str, found: dict[str, list[dict[str, JsonValue]]], targets: Sequence[IceServer]
) -> list[str]:
    conflicts = []
    for service, records in found.items():
        scheme, transport = SRV_SERVICES[service]
        ports = {record["port"] for record in records}
        for server in targets:
            same_service = (server.scheme, server.transport) == (scheme, transport)
            if server.host == domain and same_service and server.port not in ports:
                listed = ", ".join(str(p) for p in sorted(ports, key=str))
                conflicts.append(f"{service} lists port {listed}, {server.uri} uses {server.port}")
    return conflicts


def judge_srv(
    domain: str,
    found: dict[str, list[dict[str, JsonValue]]],
    failures: list[str],
    conflicts: list[str],
) -> CheckResult:
    details: dict[str, JsonValue] = {service: list(records) for service, records in found.items()}
    metrics: Metrics = {"records": sum(len(records) for records in found.values())}
    listing = ", ".join(f"{service} ({len(records)})" for service, records in found.items())
    if conflicts:
        return _srv_result(
            domain,
            Status.WARN,
            "SRV port differs from the URI: " + "; ".join(conflicts),
            metrics,
            details,
            cause_id=CauseId.DNS_SRV_PORT_MISMATCH,
            cause="Clients that follow SRV records connect to another port than the URI names.",
            fix="Make the SRV records and the URIs agree on the port.",
        )
    if failures and not found:
        return _srv_result(
            domain,
            Status.WARN,
            f"SRV lookups failed: {failures[0]}",
            metrics,
            details,
            cause_id=CauseId.DNS_SRV_FAILED,
            cause="The DNS servers did not answer the SRV queries.",
            fix="Check the DNS servers for the domain (SRV records are optional).",
        )
    if not found:
        summary = "no SRV records (optional: WebRTC clients use the URI's host and port)"
        return _srv_result(domain, Status.PASS, summary, metrics, details)
    return _srv_result(domain, Status.PASS, f"SRV records: {listing}", metrics, details)


def _srv_result(
    domain: str,
    status: Status,
    summary: str,
    metrics: Metrics,
    details: dict[str, JsonValue],
    *,
    cause_id: CauseId | None = None,
    cause: str | None = None,
    fix: str | None = None,
) -> CheckResult:
    return CheckResult(
        check="dns.srv",
        target=domain,
        status=status,
        summary=summary,
        metrics=metrics,
        cause_id=cause_id,
        cause=cause,
        fix=fix,
        details=details,
    )


def _no_resolver() -> CheckResult:
    return CheckResult(
        check="dns.resolve",
        target="-",
        status=Status.FAIL,
        summary="no DNS resolver configured on this machine",
        cause_id=CauseId.DNS_NO_RESOLVER,
        cause="This machine has no DNS servers configured (no /etc/resolv.conf nameserver).",
        fix="Configure DNS, or pass --nameserver ADDRESS[:PORT].",
        capabilities=CAPABILITY,
    )
