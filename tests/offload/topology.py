"""Three network namespaces for the offload tests: client | relay | peer, joined by veth pairs.

    client  c0 203.0.113.2/24 2001:db8:1::2/64
              |
    relay   r0 203.0.113.1/24 2001:db8:1::1/64   (the listener addresses)
            r1 198.51.100.1/24 2001:db8:2::1/64  (the relayed addresses)
              |
    peer    p0 198.51.100.2/24 2001:db8:2::2/64

The relay namespace does not forward IP (``ip_forward`` stays 0): whatever reaches the peer went
through the eBPF program. Every veth is created inside a lab namespace; the root namespace is
never touched. Namespace names start with ``tkof-<token>-`` and are all deleted by `close`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from pyroute2 import netns

CLIENT4: Final = "203.0.113.2"
LISTENER4: Final = "203.0.113.1"
RELAYED4: Final = "198.51.100.1"
PEER4: Final = "198.51.100.2"
CLIENT6: Final = "2001:db8:1::2"
LISTENER6: Final = "2001:db8:1::1"
RELAYED6: Final = "2001:db8:2::1"
PEER6: Final = "2001:db8:2::2"
RELAY_INTERFACES: Final = ("r0", "r1")


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Topology:
    token: str
    client: str
    relay: str
    peer: str

    @classmethod
    def create(cls) -> Topology:
        token = secrets.token_hex(4)
        lab = cls(token, f"tkof-{token}-client", f"tkof-{token}-relay", f"tkof-{token}-peer")
        try:
            lab._build()
        except BaseException:
            lab.close()
            raise
        return lab

    def namespaces(self) -> tuple[str, str, str]:
        return (self.client, self.relay, self.peer)

    def _build(self) -> None:
        for name in self.namespaces():
            run("ip", "netns", "add", name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", self.client, "link", "add", "c0", "type", "veth", "peer", "name", "r0",
            "netns", self.relay)  # fmt: skip
        run("ip", "-n", self.peer, "link", "add", "p0", "type", "veth", "peer", "name", "r1",
            "netns", self.relay)  # fmt: skip
        self._address(self.client, "c0", f"{CLIENT4}/24", f"{CLIENT6}/64")
        self._address(self.relay, "r0", f"{LISTENER4}/24", f"{LISTENER6}/64")
        self._address(self.relay, "r1", f"{RELAYED4}/24", f"{RELAYED6}/64")
        self._address(self.peer, "p0", f"{PEER4}/24", f"{PEER6}/64")
        for name, gateway4, gateway6 in (
            (self.client, LISTENER4, LISTENER6),
            (self.peer, RELAYED4, RELAYED6),
        ):
            run("ip", "-n", name, "route", "add", "default", "via", gateway4)
            run("ip", "-n", name, "-6", "route", "add", "default", "via", gateway6)

    @staticmethod
    def _address(namespace: str, device: str, ipv4: str, ipv6: str) -> None:
        run("ip", "-n", namespace, "addr", "add", ipv4, "dev", device)
        run("ip", "-n", namespace, "addr", "add", ipv6, "dev", device, "nodad")
        run("ip", "-n", namespace, "link", "set", device, "up")

    def tx_checksumming(self, namespace: str, device: str, on: bool) -> None:
        """Whether ``device`` leaves UDP checksums to be computed later (CHECKSUM_PARTIAL)."""
        run("ip", "netns", "exec", namespace, "ethtool", "-K", device, "tx", "on" if on else "off")

    def close(self) -> None:
        for name in self.namespaces():
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """Run the block (sockets it opens, netlink it speaks) in ``namespace``; then return."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        netns.setns(namespace, flags=0)
        try:
            yield
        finally:
            netns.setns(home, flags=0)
    finally:
        os.close(home)
