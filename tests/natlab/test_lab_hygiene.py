"""The lab keeps its promises: allowed address ranges only, nothing in the root namespace,
forwarding only in routers, unique names, and teardown that leaves nothing behind."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess

import pytest

from . import lab as lab_module
from .conftest import root_namespace_state
from .lab import LOCK_DIR, NS_PREFIX, Lab, LabError, NatType, cleanup_stale

pytestmark = pytest.mark.natlab

ALLOWED = [
    ipaddress.IPv4Network(net)
    for net in ("203.0.113.0/24", "198.51.100.0/24", "100.64.0.0/10", "198.18.0.0/15")
]


def _netns() -> list[str]:
    argv = ["ip", "-json", "netns", "list"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [str(entry["name"]) for entry in json.loads(out)] if out.strip() else []


@pytest.fixture(params=["lab", "twin_lab"])
def each_lab(request: pytest.FixtureRequest) -> Lab:
    """Both session labs: the one-site-per-NAT lab and the one with two sites of a type."""
    built = request.getfixturevalue(request.param)
    assert isinstance(built, Lab)
    return built


def test_addresses_and_routes_use_only_allowed_ranges(each_lab: Lab) -> None:
    lab = each_lab
    for host in lab.hosts.values():
        addrs = json.loads(lab.run(host, ["ip", "-json", "-4", "addr"], check=True).stdout)
        for link in addrs:
            for info in link.get("addr_info", []):
                addr = ipaddress.ip_address(info["local"])
                if addr.is_loopback:
                    continue
                assert any(addr in net for net in ALLOWED), (host.name, str(addr))
        routes = json.loads(lab.run(host, ["ip", "-json", "-4", "route"], check=True).stdout)
        for route in routes:
            for key in ("dst", "gateway"):
                value = route.get(key, "default")
                if value == "default":
                    continue
                net = ipaddress.IPv4Network(value, strict=False)
                assert any(net.subnet_of(ok) for ok in ALLOWED), (host.name, route)
        v6 = lab.run(host, ["ip", "-6", "addr"], check=True).stdout
        assert "inet6" not in v6, (host.name, v6)  # IPv6 off unless Lab(ipv6=True)


def test_root_namespace_untouched(each_lab: Lab, root_state_before: dict[str, object]) -> None:
    lab = each_lab
    assert lab.namespaces  # the lab is up right now
    assert root_namespace_state() == root_state_before


def test_forwarding_only_in_router_namespaces(each_lab: Lab) -> None:
    lab = each_lab
    routers = {lab.inet.ns} | {r.ns for site in lab.all_sites for r in site.routers}
    for host in lab.hosts.values():
        value = lab.run(host, ["cat", "/proc/sys/net/ipv4/ip_forward"], check=True).stdout.strip()
        assert value == ("1" if host.ns in routers else "0"), host.name


def test_names_carry_the_run_prefix(lab: Lab) -> None:
    assert lab.prefix.startswith(NS_PREFIX)
    present = set(_netns())
    assert set(lab.namespaces) <= present
    assert all(ns.startswith(lab.prefix) for ns in lab.namespaces)
    assert len({Lab().prefix for _ in range(20)}) == 20  # unique per Lab


def test_addresses_are_known_before_start() -> None:
    lab = Lab([NatType.SYMMETRIC, NatType.DOUBLE_NAT], clients_per_site=2)
    sym = lab.site("symmetric")
    assert (sym.router.addr, sym.public_addr) == ("198.18.5.1", "203.0.113.15")
    assert [c.addr for c in sym.clients] == ["198.18.5.2", "198.18.5.3"]
    dbl = lab.site(NatType.DOUBLE_NAT)
    assert dbl.carrier is not None
    assert (dbl.router_wan_addr, dbl.carrier.addr, dbl.public_addr) == (
        "100.64.7.2",
        "100.64.7.1",
        "203.0.113.17",
    )
    with pytest.raises(LabError):
        lab.run(sym.client, ["true"])  # not started


def test_cleanup_stale_removes_only_dead_runs(lab: Lab) -> None:
    dead, alive = secrets.token_hex(4), secrets.token_hex(4)
    dead_ns, alive_ns = f"{NS_PREFIX}{dead}-x", f"{NS_PREFIX}{alive}-x"
    LOCK_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    alive_lock = LOCK_DIR / f"{alive}.lock"
    held = lab_module._try_lock(alive_lock)  # plays a parallel run that is still going
    assert held is not None
    sleeper: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["ip", "netns", "add", dead_ns], check=True)
        subprocess.run(["ip", "netns", "add", alive_ns], check=True)
        # a leftover process of the "crashed" run, keeping its namespace busy
        sleeper = subprocess.Popen(["ip", "netns", "exec", dead_ns, "sleep", "300"])
        removed = cleanup_stale()
        assert dead_ns in removed
        assert sleeper.wait(5) != 0  # ended by the cleanup
        names = _netns()
        assert dead_ns not in names
        assert alive_ns in names  # its lock is held
        assert set(lab.namespaces) <= set(names)  # and so is the session lab's
        assert not set(lab.namespaces) & set(removed)
    finally:
        if sleeper is not None and sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        os.close(held)
        cleanup_stale()
    assert alive_ns not in _netns()
    assert not alive_lock.exists()
    assert not (LOCK_DIR / f"{dead}.lock").exists()


def test_failed_setup_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = Lab([NatType.FULL_CONE, NatType.SYMMETRIC])

    def broken(self: Lab, ns: str, ruleset: str) -> None:
        raise LabError("injected failure while loading nftables rules")

    monkeypatch.setattr(Lab, "_nft", broken)
    with pytest.raises(LabError, match="injected"):
        lab.start()
    assert not [ns for ns in _netns() if ns.startswith(lab.prefix)]
    assert not (LOCK_DIR / f"{lab.token}.lock").exists()


def test_close_ends_processes_and_namespaces() -> None:
    with Lab([NatType.NONE]) as small:
        client = small.site("none").client
        tracked = small.popen(client, ["sleep", "300"])
        # started behind the lab's back, but inside its namespace: ended at close as well
        stray = subprocess.Popen(small.command(client, ["sleep", "300"]))
        done = small.run(client, ["sh", "-c", "echo hi; exit 3"])
        assert (done.returncode, done.stdout) == (3, "hi\n")
        with pytest.raises(subprocess.TimeoutExpired):
            small.run(client, ["sleep", "30"], timeout=0.3)
        workdir = small.workdir
    assert tracked.poll() is not None
    assert stray.wait(5) != 0
    assert not [ns for ns in _netns() if ns.startswith(small.prefix)]
    assert not workdir.exists()
    assert not (LOCK_DIR / f"{small.token}.lock").exists()


def test_skip_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where namespaces are impossible the tier is skipped with a reason, never passed."""
    with monkeypatch.context() as patch:
        patch.setattr(os, "geteuid", lambda: 1000)
        assert "root" in (lab_module.unavailable_reason() or "")
    real_which = shutil.which

    def which(name: str) -> str | None:
        return None if name == "nft" else real_which(name)

    with monkeypatch.context() as patch:
        patch.setattr(shutil, "which", which)
        assert "`nft`" in (lab_module.unavailable_reason() or "")
    assert lab_module.unavailable_reason() is None  # this machine can
