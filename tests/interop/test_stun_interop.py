"""Third-party STUN clients against ``stun-server``: coturn's turnutils and aioice."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, cast

import pytest
from stun_interop_kit import run_tool, stun_server, tool_missing
from turnkit_testing import free_port_pair, ipv6_loopback_available, second_loopback_available

pytestmark = pytest.mark.interop

REFLEXIVE = re.compile(r"UDP reflexive addr: (?P<ip>[0-9a-f.:]+):(?P<port>\d+)$", re.MULTILINE)
LOCAL = re.compile(r"Local addr: : (?P<ip>[0-9a-f.:]+):(?P<port>\d+)$", re.MULTILINE)


needs_stunclient = pytest.mark.skipif(
    tool_missing("turnutils_stunclient"), reason="turnutils_stunclient (coturn) not installed"
)
needs_natdiscovery = pytest.mark.skipif(
    tool_missing("turnutils_natdiscovery"), reason="turnutils_natdiscovery (coturn) not installed"
)


@needs_stunclient
@pytest.mark.parametrize("ip", ["127.0.0.1", "::1"])
def test_turnutils_stunclient_gets_the_mapped_address(tmp_path: Path, ip: str) -> None:
    if ip == "::1" and not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback")
    port = free_port_pair((ip,))
    listen = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    with stun_server(["--listen", listen], tmp_path, (ip, port)):
        result = run_tool("turnutils_stunclient", "-p", str(port), ip)
    assert result.returncode == 0, result.stdout + result.stderr
    family = "IPv6" if ":" in ip else "IPv4"
    found = REFLEXIVE.findall(result.stdout)
    assert found, result.stdout
    assert f"{family}. UDP reflexive addr: " in result.stdout
    assert {mapped_ip for mapped_ip, _ in found} == {ip}
    assert all(1024 <= int(mapped_port) <= 65535 for _, mapped_port in found)


@needs_stunclient
def test_turnutils_stunclient_rfc5780_mode_without_second_address_gets_no_other_address(
    tmp_path: Path,
) -> None:
    """With -f it asks CHANGE-REQUEST; a one-address server answers 420, and the tool then
    waits for ever (as it does against coturn with one address): give it 3 seconds."""
    port = free_port_pair()
    with stun_server(["--listen", f"127.0.0.1:{port}"], tmp_path, ("127.0.0.1", port)):
        result = run_tool("turnutils_stunclient", "-f", "-p", str(port), "127.0.0.1", seconds=3)
    assert "UDP reflexive addr: 127.0.0.1:" in result.stdout
    assert "Other addr" not in result.stdout


def _natdiscovery(tmp_path: Path, *extra: str) -> str:
    port = free_port_pair(("127.0.0.1", "127.0.0.2"))
    args = ["--listen", f"127.0.0.1:{port}", "--alternate", "127.0.0.2"]
    with stun_server(args, tmp_path, ("127.0.0.1", port)):
        result = run_tool(
            "turnutils_natdiscovery", "-m", "-f", *extra, "-p", str(port), "127.0.0.1"
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Other addr: : 127.0.0.2:{port + 1}" in result.stdout
    assert f"Response origin: : 127.0.0.2:{port}" in result.stdout  # mapping test II
    assert f"Response origin: : 127.0.0.2:{port + 1}" in result.stdout  # filtering test II
    return result.stdout


@needs_natdiscovery
@pytest.mark.skipif(not second_loopback_available(), reason="127.0.0.2 unusable")
def test_turnutils_natdiscovery_completes_mapping_and_filtering(tmp_path: Path) -> None:
    output = _natdiscovery(tmp_path)
    assert "-= Mapping Behavior Discovery =-" in output
    assert "-= Filtering Behavior Discovery =-" in output
    assert "NAT with Endpoint Independent Mapping!" in output
    assert "NAT with Endpoint Independent Filtering!" in output
    assert "No ALG: Mapped == XOR-Mapped" in output
    reflexive = REFLEXIVE.findall(output)
    local = LOCAL.findall(output)
    assert reflexive and {port for _, port in reflexive} <= {port for _, port in local}


@needs_natdiscovery
@pytest.mark.skipif(not second_loopback_available(), reason="127.0.0.2 unusable")
def test_turnutils_natdiscovery_sees_no_nat_given_its_own_address(tmp_path: Path) -> None:
    output = _natdiscovery(tmp_path, "-L", "127.0.0.1")
    assert "No NAT! (Endpoint Independent Mapping)" in output
    assert "NAT with Endpoint Independent Filtering!" in output


@needs_natdiscovery
@pytest.mark.skipif(not second_loopback_available(), reason="127.0.0.2 unusable")
def test_turnutils_natdiscovery_with_padding(tmp_path: Path) -> None:
    output = _natdiscovery(tmp_path, "-P")
    assert "NAT with Endpoint Independent Mapping!" in output
    assert "NAT with Endpoint Independent Filtering!" in output


class _NoReceiver:
    """The least an aioice StunProtocol needs from its Connection."""

    def protocol_lost(self, protocol: Any) -> None: ...
    def data_received(self, data: bytes, component: int) -> None: ...
    def request_received(self, message: Any, addr: Any, protocol: Any) -> None: ...


@pytest.mark.asyncio
@pytest.mark.parametrize("fingerprint", [False, True])
async def test_aioice_gets_its_server_reflexive_candidate(
    tmp_path: Path, fingerprint: bool
) -> None:
    from aioice import ice, stun
    from aioice.candidate import Candidate

    port = free_port_pair()
    with stun_server(["--listen", f"127.0.0.1:{port}"], tmp_path, ("127.0.0.1", port)):
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: ice.StunProtocol(cast(Any, _NoReceiver())), local_addr=("127.0.0.1", 0)
        )
        try:
            host, host_port = transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = Candidate(
                foundation="1",
                component=1,
                transport="udp",
                priority=1,
                host=host,
                port=host_port,
                type="host",
            )
            if fingerprint:
                request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
                request.add_fingerprint()
                response, _ = await asyncio.wait_for(
                    protocol.request(request, ("127.0.0.1", port)), 10
                )
                assert response.attributes["XOR-MAPPED-ADDRESS"] == (host, host_port)
                assert response.attributes["SOFTWARE"] == "turnkit"
                assert "FINGERPRINT" in response.attributes
            else:
                candidate, _ = await asyncio.wait_for(
                    ice.server_reflexive_candidate(protocol, ("127.0.0.1", port)), 10
                )
                assert candidate.type == "srflx"
                assert (candidate.host, candidate.port) == (host, host_port)
        finally:
            transport.close()
