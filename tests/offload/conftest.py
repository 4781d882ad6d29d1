"""Fixtures of the offload tier: the eBPF object built from this checkout, a client | relay | peer
namespace lab per test (always torn down), and the offload opened in the relay namespace.

Without root, ``ip netns``, clang or ethtool every test here is skipped with the reason, except
under CI (``CI=true``), where bootstrap installs them and a missing one fails the test instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from turn_relay.offload import KernelOffload
from turn_relay.offload.build import build

from .topology import RELAY_INTERFACES, Topology, inside

_HERE = Path(__file__).parent
# The relay tests' core kit (tests/turn) and coturn's uclient parser (tests/interop) are plain
# modules of folders without __init__.py, importable by their own names as there.
for _kit in ("turn", "interop"):
    if str(_HERE.parent / _kit) not in sys.path:
        sys.path.append(str(_HERE.parent / _kit))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.offload)


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, BPF)"
    for tool in ("ip", "clang", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (scripts/bootstrap.sh installs it)"
    return None


@pytest.fixture(scope="session")
def offload_ready() -> None:
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"offload tests cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bpf_object(offload_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program compiled from this checkout's source (never a stale cached object)."""
    return build(tmp_path_factory.mktemp("offload") / "channel_forward.bpf.o")


@pytest.fixture
def lab(offload_ready: None) -> Iterator[Topology]:
    topology = Topology.create()
    try:
        yield topology
    finally:
        topology.close()


@pytest.fixture
def offload(lab: Topology, bpf_object: Path) -> Iterator[KernelOffload]:
    with inside(lab.relay):
        kernel = KernelOffload.open(RELAY_INTERFACES, bpf_object)
    try:
        yield kernel
    finally:
        with inside(lab.relay):
            kernel.close()
