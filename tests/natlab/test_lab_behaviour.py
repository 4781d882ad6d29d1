"""Prove each NAT's behaviour with plain sockets, independent of any STUN implementation.

Every client binds a fresh port, learns its public mapping from three UDP reflectors in ``inet``
(203.0.113.1:4100, 203.0.113.2:4100, 203.0.113.1:4101) and then listens. Two endpoints it never
contacted send to its first mapping: 203.0.113.1:<fresh> (a contacted address, another port) and
the peer host 198.51.100.2:<fresh> (an address never contacted). What arrives is the filtering
behaviour; whether the three mappings are equal is the mapping behaviour.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from . import probes
from .lab import PEER_ADDR, UDP_BLOCKED_TCP_PORTS, Behaviour, Host, Lab, NatType

pytestmark = pytest.mark.natlab

PROBES = [sys.executable, probes.PROBES_PATH]
REFLECTOR_PORTS = (4100, 4101)
LISTEN_SECONDS = 3.0
UDP_NATS = [nat for nat in NatType if nat is not NatType.UDP_BLOCKED]


@dataclass(frozen=True)
class Observation:
    mapped: dict[str, str]
    """reflector ip:port -> public ip:port it saw"""
    received: dict[str, str]
    """payload -> source ip:port, for the unsolicited datagrams that got through"""
    log: str


@pytest.fixture(scope="module")
def reflectors(lab: Lab) -> Iterator[list[str]]:
    a, b = lab.server_addr, lab.alt_server_addr
    where = [f"{a}:{REFLECTOR_PORTS[0]}", f"{b}:{REFLECTOR_PORTS[0]}", f"{a}:{REFLECTOR_PORTS[1]}"]
    argv = [*PROBES, "serve"]
    for spec in where:
        argv += ["--udp", spec]
    proc = lab.popen(lab.inet, argv, name="reflectors")
    try:
        lab.wait_for_log(proc, r"^ready$")
        yield where
    finally:
        lab.stop(proc)


@pytest.fixture(scope="module")
def observations(lab: Lab, reflectors: list[str]) -> dict[NatType, Observation]:
    lab.reset_nat_state()
    listeners = {}
    for nat in UDP_NATS:
        site = lab.site(nat)
        argv = [*PROBES, "listen", "--bind", f"{site.client.addr}:{lab.fresh_port()}"]
        for spec in reflectors:
            argv += ["--server", spec]
        argv += ["--seconds", str(LISTEN_SECONDS)]
        listeners[nat] = lab.popen(site.client, argv, name=f"listen-{nat}")
    try:
        mapped: dict[NatType, dict[str, str]] = {}
        for nat, proc in listeners.items():
            lab.wait_for_log(proc, r"^listening$", timeout=10)
            mapped[nat] = dict(
                re.findall(r"^mapped (\S+) (\S+)$", lab.read_log(proc), re.MULTILINE)
            )
        targets = [mapped[nat][reflectors[0]] for nat in listeners]
        same_addr = [*PROBES, "send", "--bind", f"{lab.server_addr}:{lab.fresh_port()}"]
        other_addr = [*PROBES, "send", "--bind", f"{PEER_ADDR}:{lab.fresh_port()}"]
        for target in targets:
            same_addr += ["--to", target]
            other_addr += ["--to", target]
        lab.run(lab.inet, [*same_addr, "--payload", "same-address"], timeout=10, check=True)
        lab.run(lab.peer, [*other_addr, "--payload", "other-address"], timeout=10, check=True)
        result: dict[NatType, Observation] = {}
        for nat, proc in listeners.items():
            proc.wait(LISTEN_SECONDS + 10)
            log = lab.read_log(proc)
            received = {
                payload: src
                for src, payload in re.findall(r"^from (\S+) (\S+)$", log, re.MULTILINE)
            }
            result[nat] = Observation(mapped[nat], received, log)
        return result
    finally:
        for proc in listeners.values():
            lab.stop(proc)


@pytest.mark.parametrize("nat", UDP_NATS, ids=str)
def test_mapping_behaviour(
    lab: Lab, observations: dict[NatType, Observation], nat: NatType
) -> None:
    site = lab.site(nat)
    seen = observations[nat]
    assert len(seen.mapped) == 3, seen.log
    assert {m.rsplit(":", 1)[0] for m in seen.mapped.values()} == {site.public_ip()}, seen.log
    distinct = len(set(seen.mapped.values()))
    if site.expected.mapping is Behaviour.ENDPOINT_INDEPENDENT:
        assert distinct == 1, seen.log
    else:
        assert site.expected.mapping is Behaviour.ADDRESS_AND_PORT_DEPENDENT
        assert distinct == 3, seen.log


@pytest.mark.parametrize("nat", UDP_NATS, ids=str)
def test_filtering_behaviour(
    lab: Lab, observations: dict[NatType, Observation], nat: NatType
) -> None:
    site = lab.site(nat)
    seen = observations[nat]
    expected = {
        Behaviour.ENDPOINT_INDEPENDENT: {"same-address", "other-address"},
        Behaviour.ADDRESS_DEPENDENT: {"same-address"},
        Behaviour.ADDRESS_AND_PORT_DEPENDENT: set(),
    }
    assert site.expected.filtering is not None
    assert set(seen.received) == expected[site.expected.filtering], seen.log
    if "other-address" in seen.received:  # the datagram kept its real source through the NAT
        assert seen.received["other-address"].startswith(PEER_ADDR + ":"), seen.log


# ----------------------------------------------------------------------------- firewall


@pytest.fixture(scope="module")
def peer_services(lab: Lab) -> Iterator[None]:
    argv = [*PROBES, "serve"]
    for port in (*UDP_BLOCKED_TCP_PORTS, 8443):
        argv += ["--tcp", f"{PEER_ADDR}:{port}"]
    for port in (443, 3478):
        argv += ["--udp", f"{PEER_ADDR}:{port}"]
    proc = lab.popen(lab.peer, argv, name="peer-services")
    try:
        lab.wait_for_log(proc, r"^ready$")
        yield
    finally:
        lab.stop(proc)


FIREWALL_PROBES = [
    ("tcp", 443),
    ("tcp", 3478),
    ("tcp", 8443),
    ("udp", 443),
    ("udp", 3478),
]


@pytest.mark.usefixtures("peer_services")
def test_udp_blocked_firewall(lab: Lab) -> None:
    """udp_blocked lets out TCP to 443 and 3478 only (NATed); a port-restricted NAT is the
    control: everything gets through it."""
    blocked, control = lab.site(NatType.UDP_BLOCKED), lab.site(NatType.PORT_RESTRICTED)
    jobs: list[tuple[Host, list[str]]] = []
    for site in (blocked, control):
        for proto, port in FIREWALL_PROBES:
            jobs.append(
                (site.client, [*PROBES, proto, "--to", f"{PEER_ADDR}:{port}", "--seconds", "1.5"])
            )
    results = [r.stdout.strip() for r in lab.run_parallel(jobs, timeout=20)]
    keys = [(s.nat, p) for s in (blocked, control) for p in FIREWALL_PROBES]
    outcome = dict(zip(keys, results, strict=True))
    for proto, port in FIREWALL_PROBES:
        got = outcome[blocked.nat, (proto, port)]
        if proto == "tcp" and port in UDP_BLOCKED_TCP_PORTS:
            assert got.startswith(f"ok seen {blocked.public_ip()}:"), (proto, port, got)
        else:
            assert got == "timeout", (proto, port, got)  # dropped silently, not rejected
        assert outcome[control.nat, (proto, port)].startswith(f"ok seen {control.public_ip()}:"), (
            proto,
            port,
            outcome,
        )


# ----------------------------------------------------------------------------- double NAT


def test_double_nat_goes_through_both_nats(lab: Lab, reflectors: list[str]) -> None:
    """The home router translates 198.18.7.0/24 to its 100.64/10 address, the carrier NAT
    translates that to its public address: both conntrack tables show their half."""
    site = lab.site(NatType.DOUBLE_NAT)
    assert site.carrier is not None
    port = lab.fresh_port()
    done = lab.run(
        site.client,
        [
            *PROBES,
            "listen",
            "--bind",
            f"{site.client.addr}:{port}",
            "--server",
            reflectors[0],
            "--seconds",
            "0",
        ],
        timeout=10,
        check=True,
    )
    assert f"mapped {reflectors[0]} {site.public_ip()}:" in done.stdout, done.stdout
    home = lab.run(site.router, ["conntrack", "-L", "-p", "udp", "--sport", str(port)], check=True)
    assert f"src={site.client.addr} dst={lab.server_addr}" in home.stdout, home.stdout
    assert f"dst={site.router_wan_addr}" in home.stdout, home.stdout  # reply side: 100.64.x.2
    carrier = lab.run(site.carrier, ["conntrack", "-L", "-p", "udp"], check=True)
    assert f"src={site.router_wan_addr} dst={lab.server_addr}" in carrier.stdout, carrier.stdout
    assert f"dst={site.public_ip()}" in carrier.stdout, carrier.stdout
    assert site.client.addr not in carrier.stdout, carrier.stdout  # the LAN stays hidden
