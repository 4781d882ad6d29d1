"""Cross-check the lab's NATs with an independent implementation: coturn 4.6.1.

coturn's ``turnserver`` runs in the ``inet`` namespace in RFC 5780 mode (two listening addresses,
alternate port = 3479) and ``turnutils_natdiscovery`` runs in every client namespace. All clients
probe concurrently, so the whole check takes about as long as the slowest run (~6 s: two 3 s
receive timeouts of an address-and-port-dependent filter).

What natdiscovery prints, captured on this lab: the verdict lines of its ``========`` boxes, in
order, per section (mapping | filtering); left out are the "RFC 5780 response N" blocks with their
"Response origin", "Other addr", "UDP reflexive addr" and "Local addr" lines.

``-m -f -L <client addr> 203.0.113.1``

* none:               "No NAT! (Endpoint Independent Mapping)", "NAT with Endpoint Independent
                      Mapping!" | "No NAT! (Endpoint Independent Mapping)", "NAT with Endpoint
                      Independent Filtering!"  (the "No NAT!" lines need ``-L``: without it the
                      local address is 0.0.0.0 and never equals the reflexive one)
* full_cone:          "NAT with Endpoint Independent Mapping!" |
                      "NAT with Endpoint Independent Filtering!"
* address_restricted: "NAT with Endpoint Independent Mapping!" | "STUN receive timeout..",
                      "NAT with Address Dependent Filtering!"
* port_restricted, double_nat, hairpin:
                      "NAT with Endpoint Independent Mapping!" | "STUN receive timeout.." x2,
                      "NAT with Address and Port Dependent Filtering!"
* symmetric:          "NAT with Address and Port Dependent Mapping!" (three different reflexive
                      ports) | "STUN receive timeout.." x2,
                      "NAT with Address and Port Dependent Filtering!"
* udp_blocked:        "-= Mapping Behavior Discovery =-" "STUN receive timeout.."
                      "-= Filtering Behavior Discovery =-" "STUN receive timeout.." and no verdict
                      at all; natdiscovery still exits 0 (it always does), so only the text tells.

``-H -L <client addr> 203.0.113.1`` (hairpinning)

* hairpin, none:      "Received a request (maybe a successful hairpinning)"
* every other NAT:    "STUN receive timeout.." x2 (no hairpinning)

natdiscovery exits 0 whatever it finds, and it hangs forever on some failures, so every run is
wrapped in ``timeout``. Quirk seen here: coturn answers a request to the alternate address
203.0.113.2:3478 with OTHER-ADDRESS 203.0.113.2:3479 (RFC 5780 would give 203.0.113.1:3479);
natdiscovery's third mapping probe therefore goes to 203.0.113.2:3479, which still tells
address-dependent from address-and-port-dependent mapping.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from . import probes
from .lab import Behaviour, Host, Lab, NatType

pytestmark = pytest.mark.natlab

STUN_PORT = 3478
ALT_PORT = 3479
NATDISCOVERY_TIMEOUT_S = 25  # the slowest run needs ~6 s
PROBES = [sys.executable, probes.PROBES_PATH]

NO_NAT = "No NAT! (Endpoint Independent Mapping)"
RECEIVE_TIMEOUT = "STUN receive timeout.."
HAIRPIN_OK = "Received a request (maybe a successful hairpinning)"
MAPPING_VERDICTS = {
    "NAT with Endpoint Independent Mapping!": Behaviour.ENDPOINT_INDEPENDENT,
    "NAT with Address Dependent Mapping!": Behaviour.ADDRESS_DEPENDENT,
    "NAT with Address and Port Dependent Mapping!": Behaviour.ADDRESS_AND_PORT_DEPENDENT,
}
FILTERING_VERDICTS = {
    "NAT with Endpoint Independent Filtering!": Behaviour.ENDPOINT_INDEPENDENT,
    "NAT with Address Dependent Filtering!": Behaviour.ADDRESS_DEPENDENT,
    "NAT with Address and Port Dependent Filtering!": Behaviour.ADDRESS_AND_PORT_DEPENDENT,
}
_HEADER = re.compile(r"^-= (\w+) Behavior Discovery =-$", re.MULTILINE)
_REFLEXIVE = re.compile(r"UDP reflexive addr: ?:? ?(\d+\.\d+\.\d+\.\d+):(\d+)")


@dataclass(frozen=True)
class Section:
    """One "-= X Behavior Discovery =-" part of natdiscovery's output."""

    text: str

    def lines(self) -> list[str]:
        return [line.strip() for line in self.text.splitlines()]

    def verdicts(self, table: dict[str, Behaviour]) -> list[Behaviour]:
        return [table[line] for line in self.lines() if line in table]

    def reflexive(self) -> list[tuple[str, int]]:
        return [(ip, int(port)) for ip, port in _REFLEXIVE.findall(self.text)]

    def count(self, line: str) -> int:
        return self.lines().count(line)


def sections(output: str) -> dict[str, Section]:
    """Split natdiscovery output into its "Mapping", "Filtering", "Hairpinning" parts."""
    parts = _HEADER.split(output)
    return {parts[i]: Section(parts[i + 1]) for i in range(1, len(parts) - 1, 2)}


@pytest.fixture(scope="module")
def coturn(lab: Lab) -> Iterator[subprocess.Popen[bytes]]:
    for tool in ("turnserver", "turnutils_natdiscovery"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian package coturn; scripts/bootstrap.sh)")
    proc = lab.popen(
        lab.inet,
        [
            "turnserver",
            "-n",
            "-L",
            lab.server_addr,
            "-L",
            lab.alt_server_addr,
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--log-file",
            "stdout",
            "--simple-log",
            "--pidfile",
            str(lab.workdir / "turnserver.pid"),
            "--userdb",
            str(lab.workdir / "turndb"),
        ],
        name="turnserver",
    )
    try:
        for addr in lab.server_addrs:
            for port in (STUN_PORT, ALT_PORT):
                lab.wait_listening(lab.inet, port, proto="udp", addr=addr)
        yield proc
    finally:
        lab.stop(proc)


@pytest.fixture(scope="module")
def natdiscovery(lab: Lab, coturn: subprocess.Popen[bytes]) -> dict[tuple[NatType, str], str]:
    """Run ``natdiscovery -m -f`` and ``natdiscovery -H`` from every client at once; return the
    outputs by (NAT type, "mf" | "H")."""
    lab.reset_nat_state()
    keys: list[tuple[NatType, str]] = []
    jobs: list[tuple[Host, list[str]]] = []
    for site in lab.sites.values():
        for mode, flags in (("mf", ["-m", "-f"]), ("H", ["-H"])):
            keys.append((site.nat, mode))
            jobs.append(
                (
                    site.client,
                    [
                        "timeout",
                        "-k",
                        "2",
                        str(NATDISCOVERY_TIMEOUT_S),
                        "turnutils_natdiscovery",
                        *flags,
                        "-L",
                        site.client.addr,
                        lab.server_addr,
                    ],
                )
            )
    done = lab.run_parallel(jobs, timeout=NATDISCOVERY_TIMEOUT_S + 5)
    return {key: result.stdout for key, result in zip(keys, done, strict=True)}


UDP_NATS = [nat for nat in NatType if nat is not NatType.UDP_BLOCKED]


@pytest.mark.parametrize("nat", UDP_NATS, ids=str)
def test_natdiscovery_mapping_and_filtering(
    lab: Lab, natdiscovery: dict[tuple[NatType, str], str], nat: NatType
) -> None:
    site = lab.site(nat)
    out = natdiscovery[nat, "mf"]
    parts = sections(out)
    assert set(parts) == {"Mapping", "Filtering"}, out

    mapping = parts["Mapping"].verdicts(MAPPING_VERDICTS)
    filtering = parts["Filtering"].verdicts(FILTERING_VERDICTS)
    assert mapping == [site.expected.mapping], out
    assert filtering == [site.expected.filtering], out

    # "No NAT!" exactly when the lab routes without translation
    assert (parts["Mapping"].count(NO_NAT) == 1) is (not site.expected.nat), out
    assert (parts["Filtering"].count(NO_NAT) == 1) is (not site.expected.nat), out

    # every reflexive address is the site's public address (for double NAT: the carrier's)
    reflexive = parts["Mapping"].reflexive() + parts["Filtering"].reflexive()
    assert reflexive, out
    assert {ip for ip, _ in reflexive} == {site.public_ip()}, out
    mapped_ports = {port for _, port in parts["Mapping"].reflexive()}
    if site.expected.mapping is Behaviour.ENDPOINT_INDEPENDENT:
        assert len(mapped_ports) == 1, out
    else:
        assert len(mapped_ports) == 3, out  # a new public port per destination

    # filtered probes show up as receive timeouts: 0 for EIF, 1 for ADF, 2 for APDF
    timeouts = {
        Behaviour.ENDPOINT_INDEPENDENT: 0,
        Behaviour.ADDRESS_DEPENDENT: 1,
        Behaviour.ADDRESS_AND_PORT_DEPENDENT: 2,
    }
    assert site.expected.filtering is not None
    assert parts["Filtering"].count(RECEIVE_TIMEOUT) == timeouts[site.expected.filtering], out
    assert parts["Mapping"].count(RECEIVE_TIMEOUT) == 0, out


def test_natdiscovery_udp_blocked(natdiscovery: dict[tuple[NatType, str], str]) -> None:
    out = natdiscovery[NatType.UDP_BLOCKED, "mf"]
    parts = sections(out)
    assert set(parts) == {"Mapping", "Filtering"}, out
    for part in parts.values():
        assert part.lines().count(RECEIVE_TIMEOUT) == 1, out
        assert not part.reflexive(), out
    assert "RFC 5780 response" not in out
    assert not any(verdict in out for verdict in (*MAPPING_VERDICTS, *FILTERING_VERDICTS, NO_NAT))


@pytest.mark.parametrize("nat", UDP_NATS, ids=str)
def test_natdiscovery_hairpinning(
    lab: Lab, natdiscovery: dict[tuple[NatType, str], str], nat: NatType
) -> None:
    # udp_blocked is left out on purpose: without a first answer natdiscovery -H sends its
    # hairpin probe to 0.0.0.0:<port>, i.e. to itself, and would report a false success.
    site = lab.site(nat)
    out = natdiscovery[nat, "H"]
    parts = sections(out)
    assert set(parts) == {"Hairpinning"}, out
    hairpin = parts["Hairpinning"]
    assert [ip for ip, _ in hairpin.reflexive()] == [site.public_ip()], out
    if site.expected.hairpin:
        assert hairpin.count(HAIRPIN_OK) == 1, out
        assert hairpin.count(RECEIVE_TIMEOUT) == 0, out
    else:
        assert hairpin.count(HAIRPIN_OK) == 0, out
        assert hairpin.count(RECEIVE_TIMEOUT) == 2, out


# ----------------------------------------------------------------------------- plain sockets

REFLECTOR_PORT = 4000


@pytest.fixture(scope="module")
def reflector(lab: Lab) -> Iterator[str]:
    """A UDP reflector in ``inet`` (answers "seen <source>"); yields its ip:port."""
    where = f"{lab.server_addr}:{REFLECTOR_PORT}"
    proc = lab.popen(lab.inet, [*PROBES, "serve", "--udp", where], name="reflector")
    try:
        lab.wait_for_log(proc, r"^ready$")
        yield where
    finally:
        lab.stop(proc)


@pytest.fixture(scope="module")
def socket_hairpin(lab: Lab, reflector: str) -> dict[NatType, dict[str, object]]:
    """Run the plain-socket hairpin probe from every client at once."""
    jobs: list[tuple[Host, list[str]]] = []
    for nat in UDP_NATS:
        client = lab.site(nat).client
        argv = [*PROBES, "hairpin", "--bind", client.addr, "--server", reflector, "--seconds", "1"]
        jobs.append((client, argv))
    done = lab.run_parallel(jobs, timeout=15)
    return {nat: probes.parse_json(r.stdout) for nat, r in zip(UDP_NATS, done, strict=True)}


@pytest.mark.parametrize("nat", UDP_NATS, ids=str)
def test_socket_hairpin(
    lab: Lab, socket_hairpin: dict[NatType, dict[str, object]], nat: NatType
) -> None:
    """Socket A learns its public mapping from the reflector; socket B on the same client sends
    to it. Only the hairpin NAT (and no NAT at all) delivers; the hairpin NAT rewrites the
    source to B's public mapping, as RFC 4787 REQ-9 asks."""
    site = lab.site(nat)
    result = socket_hairpin[nat]
    assert str(result["mapped_a"]).startswith(site.public_ip() + ":"), result
    assert result["hairpin"] is site.expected.hairpin, result
    if site.expected.hairpin:
        assert result["seen_from"] == result["mapped_b"], result
