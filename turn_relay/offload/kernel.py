"""`KernelOffload`: the eBPF program loaded, attached to the relay's interfaces, and its routes.

Loading goes through libbpf (`turn_relay.offload.libbpf`), attaching through pyroute2: a
``clsact`` qdisc on each interface (created if missing, removed at `close` only if we created
it) and a direct-action ``bpf`` filter on its ingress hook. Routes are written to the maps
directly; each direction's egress (interface and MTU, or "local") is looked up in the routing
table when the route goes up, through the same netlink socket, so in the namespace the offload
was opened in.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .libbpf import BpfObject, LibbpfError, MapHandle
from .maps import (
    CHANNEL_KEY,
    CHANNEL_ROUTE,
    LOCAL,
    PEER_KEY,
    PEER_ROUTE,
    Egress,
    Route,
    RouteCounters,
    Traffic,
    channel_entry,
    family_of,
    peer_entry,
    read_channel_counters,
    read_peer_counters,
)

__all__ = ["KernelOffload", "OffloadUnavailable", "interfaces_holding", "missing_capability"]

PROGRAM_NAME: Final = "channel_forward"
#: The tc filter's name and priority, so that `close` removes exactly ours.
FILTER_NAME: Final = "turnkit_channel_forward"
FILTER_PRIORITY: Final = 0xC0D
_INGRESS: Final = "ffff:fff2"
_RTN_LOCAL: Final = 2
_ARPHRD_ETHER: Final = 1
_ARPHRD_LOOPBACK: Final = 772
_CAP_NET_ADMIN: Final = 12
_CAP_SYS_ADMIN: Final = 21
_CAP_BPF: Final = 39


class Netlink:
    """pyroute2's `IPRoute` on a thread of its own; every call runs there and its result is
    read there (lists, not lazy generators).

    The synchronous IPRoute of pyroute2 0.9 runs an asyncio loop of its own inside each call,
    which cannot run on a thread whose loop is already running (the relay's event loop). The
    thread starts in the constructor, from the calling thread, so it lives in the caller's
    network namespace (a namespace is per thread).
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="offload-netlink")
        try:
            self._ipr: IPRoute = self._pool.submit(IPRoute).result()
        except BaseException:
            self._pool.shutdown(wait=False)
            raise

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._ipr, name)

        def run(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if result is None or isinstance(result, (list, tuple, dict, str, bytes, int)):
                return result
            return list(result) if hasattr(result, "__iter__") else result

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._pool.submit(run, *args, **kwargs).result()

        return call

    def close(self) -> None:
        try:
            self._pool.submit(self._ipr.close).result()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OffloadUnavailable(Exception):  # noqa: N818 (a state, not an error: `auto` expects it)
    """The offload cannot run here; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def missing_capability(status: Path = Path("/proc/self/status")) -> str | None:
    """None when this process may load and attach BPF programs, else what it lacks."""
    try:
        lines = status.read_text().splitlines()
    except OSError as error:
        return f"cannot read capabilities: {error}"
    effective = next((line.split()[1] for line in lines if line.startswith("CapEff:")), "0")
    caps = int(effective, 16)
    lacking = []
    if not caps & (1 << _CAP_NET_ADMIN):
        lacking.append("CAP_NET_ADMIN")
    if not caps & ((1 << _CAP_BPF) | (1 << _CAP_SYS_ADMIN)):
        lacking.append("CAP_BPF")
    return " and ".join(lacking) or None


def _verifier_reason(error: LibbpfError) -> str:
    """The one line of libbpf's log that says why (the verifier's last complaint if any)."""
    log = list(error.log)
    if "-- END PROG LOAD LOG --" in log:
        end = log.index("-- END PROG LOAD LOG --")
        complaints = [
            line
            for line in log[:end]
            if line and not line[0].isdigit() and not line.startswith(("processed", ";"))
        ]
        if complaints:
            return f"{error}: {complaints[-1].strip()}"
    libbpf_lines = [line.removeprefix("libbpf: ") for line in log if line.startswith("libbpf:")]
    return f"{error}: {libbpf_lines[-1]}" if libbpf_lines else str(error)


class _Attachment:
    """Our filter on one interface's ingress hook, and whether we created its clsact qdisc.

    A filter of ours already there (same priority on the ingress hook) was left by a relay that
    died without detaching (SIGKILL, a crash): it still forwards the routes that relay had, so
    it is removed before ours goes in, and ``replaced_stale`` says so.
    """

    def __init__(self, ipr: Netlink, name: str, index: int, prog_fd: int) -> None:
        self.name = name
        self.index = index
        self.created_qdisc = False
        self.replaced_stale = False
        try:
            ipr.tc("add", "clsact", index)
            self.created_qdisc = True
        except NetlinkError as error:
            if error.code != errno.EEXIST:
                raise
            self.replaced_stale = _remove_our_filter(ipr, index)
        ipr.tc(
            "add-filter",
            "bpf",
            index,
            ":1",
            fd=prog_fd,
            name=FILTER_NAME,
            parent=_INGRESS,
            classid=1,
            prio=FILTER_PRIORITY,
            direct_action=True,
        )

    def detach(self, ipr: Netlink) -> None:
        try:
            if self.created_qdisc:
                ipr.tc("del", "clsact", self.index)
            else:
                ipr.tc("del-filter", "bpf", self.index, parent=_INGRESS, prio=FILTER_PRIORITY)
        except NetlinkError as error:
            if error.code not in (errno.ENOENT, errno.ENODEV, errno.EINVAL):
                raise


def _remove_our_filter(ipr: Netlink, index: int) -> bool:
    """Delete the filter at our priority on ``index``'s ingress hook; True if there was one."""
    try:
        ipr.tc("del-filter", "bpf", index, parent=_INGRESS, prio=FILTER_PRIORITY)
    except NetlinkError as error:
        if error.code in (errno.ENOENT, errno.EINVAL):
            return False
        raise
    return True


def interfaces_holding(addresses: Iterable[str]) -> list[str]:
    """The names of the interfaces that hold ``addresses`` (in this network namespace), in order.

    Raises `OffloadUnavailable` for a wildcard (0.0.0.0, ``::``: the program matches the address
    a client sent to, which a wildcard listener does not name) or an address no interface has.
    """
    found: list[str] = []
    with Netlink() as ipr:
        for address in dict.fromkeys(addresses):
            wanted = ipaddress.ip_address(address.split("%", 1)[0])
            if wanted.is_unspecified:
                raise OffloadUnavailable(
                    f"listening on {address}: the kernel path needs concrete addresses"
                )
            family = 10 if wanted.version == 6 else 2
            held = [
                a
                for a in ipr.get_addr(family=family)
                if ipaddress.ip_address(a.get_attr("IFA_ADDRESS")) == wanted
            ]
            if not held:
                raise OffloadUnavailable(f"no interface holds {address}")
            link = ipr.get_links(held[0]["index"])[0]
            found.append(str(link.get_attr("IFLA_IFNAME")))
    return list(dict.fromkeys(found))


class KernelOffload:
    """The ChannelData program attached to ``interfaces``; see the package docstring."""

    def __init__(self, program: BpfObject, ipr: Netlink) -> None:
        self._program = program
        self._ipr = ipr
        self._channels: MapHandle = program.map("channels", CHANNEL_KEY.size, CHANNEL_ROUTE.size)
        self._peers: MapHandle = program.map("peers", PEER_KEY.size, PEER_ROUTE.size)
        self._attachments: list[_Attachment] = []
        self._routes: dict[Route, tuple[Egress, Egress]] = {}
        self._lock = threading.Lock()
        self._owner = True  # False in a forked worker: the parent detaches, not this process

    @classmethod
    def open(cls, interfaces: Iterable[str], object_path: Path | str) -> KernelOffload:
        """Load ``object_path`` and attach it to the ingress of each of ``interfaces``.

        Raises `OffloadUnavailable` with a one-line reason: no capability, no object, an unknown
        or unsuitable interface, or the kernel refused the program (with the verifier's word).
        Nothing stays attached or loaded when it raises.
        """
        names = list(dict.fromkeys(interfaces))
        if not names:
            raise OffloadUnavailable("no interface to attach to")
        lacking = missing_capability()
        if lacking:
            raise OffloadUnavailable(f"no capability: needs root or {lacking}")
        path = Path(object_path)
        if not path.is_file():
            raise OffloadUnavailable(
                f"no object: {path} does not exist (build it: python -m turn_relay.offload.build)"
            )
        try:
            program = BpfObject(os.fspath(path))
        except LibbpfError as error:
            raise OffloadUnavailable(
                f"kernel refused the program: {_verifier_reason(error)}"
            ) from None
        except OSError as error:
            raise OffloadUnavailable(f"libbpf unavailable: {error}") from None
        ipr = Netlink()
        try:
            offload = cls(program, ipr)
            offload._attach_all(names)
        except (LibbpfError, NetlinkError, OffloadUnavailable) as error:
            if "offload" in locals():
                offload.close()
            else:
                program.close()
                ipr.close()
            if isinstance(error, OffloadUnavailable):
                raise
            raise OffloadUnavailable(f"kernel refused the program: {error}") from None
        return offload

    def _attach_all(self, names: list[str]) -> None:
        prog_fd = self._program.program_fd(PROGRAM_NAME)
        for name in names:
            links = self._ipr.get_links(ifname=name)
            if not links:
                raise OffloadUnavailable(f"no interface named {name!r}")
            link = links[0]
            if link["ifi_type"] not in (_ARPHRD_ETHER, _ARPHRD_LOOPBACK):
                raise OffloadUnavailable(f"interface {name!r} has no Ethernet header")
            self._attachments.append(_Attachment(self._ipr, name, link["index"], prog_fd))

    @property
    def interfaces(self) -> tuple[str, ...]:
        return tuple(attachment.name for attachment in self._attachments)

    @property
    def replaced_stale(self) -> tuple[str, ...]:
        """Interfaces where a filter left by an earlier relay was removed when this one opened."""
        return tuple(a.name for a in self._attachments if a.replaced_stale)

    def after_fork(self) -> None:
        """Call in a forked worker process: it keeps the shared program and maps (their file
        descriptors were inherited) and writes its own routes into them, but the attachment
        stays the parent's, so this process's `close` never detaches. Netlink sockets must not
        be shared between processes: this one opens its own."""
        self._attachments = []
        self._routes = {}
        self._owner = False
        self._ipr = Netlink()

    def _egress(self, destination: str) -> Egress:
        """Where the routing table sends ``destination`` from here: local, or (interface, MTU)."""
        replies: list[Any] = list(self._ipr.route("get", dst=destination.split("%", 1)[0]))
        reply = replies[0]
        if reply["type"] == _RTN_LOCAL:
            return LOCAL
        ifindex = int(reply.get_attr("RTA_OIF"))
        mtu = int(self._ipr.get_links(ifindex)[0].get_attr("IFLA_MTU"))
        return Egress(ifindex, mtu)

    def route_up(self, route: Route) -> bool:
        """Forward ``route`` in the kernel, both ways, from now on.

        False (nothing installed) when the kernel cannot carry it: the client's and the peer's
        address families differ (the program does not translate between IPv4 and IPv6). Going up
        again with the same route keeps its counters and re-reads the egress.
        """
        if family_of(route.client[0]) != family_of(route.listener[0]) or family_of(
            route.relayed[0]
        ) != family_of(route.peer[0]):
            raise ValueError(f"mixed address families within one side: {route}")
        if family_of(route.client[0]) != family_of(route.peer[0]):
            return False
        to_peer, to_client = self._egress(route.peer[0]), self._egress(route.client[0])
        with self._lock:
            kept = self._read(route) if route in self._routes else RouteCounters()
            self._channels.update(*channel_entry(route, to_peer, kept.to_peer))
            self._peers.update(*peer_entry(route, to_client, kept.to_client))
            self._routes[route] = (to_peer, to_client)
        return True

    def route_down(self, route: Route) -> RouteCounters | None:
        """Stop forwarding ``route``; returns its final counters (None if it was not up)."""
        with self._lock:
            if route not in self._routes:
                return None
            final = self._read(route)
            to_peer, to_client = self._routes.pop(route)
            self._channels.delete(channel_entry(route, to_peer)[0])
            self._peers.delete(peer_entry(route, to_client)[0])
        return final

    def _read(self, route: Route) -> RouteCounters:
        to_peer, to_client = self._routes[route]
        channel_value = self._channels.lookup(channel_entry(route, to_peer)[0])
        peer_value = self._peers.lookup(peer_entry(route, to_client)[0])
        return RouteCounters(
            read_channel_counters(channel_value) if channel_value else Traffic(),
            read_peer_counters(peer_value) if peer_value else Traffic(),
        )

    def counters(self) -> dict[Route, RouteCounters]:
        """Every route that is up, with what the kernel forwarded since it went up."""
        with self._lock:
            return {route: self._read(route) for route in self._routes}

    def routes(self) -> tuple[Route, ...]:
        with self._lock:
            return tuple(self._routes)

    def close(self) -> None:
        """Detach from every interface and unload the program and its maps.

        In a forked worker (`after_fork`): remove this process's routes from the shared maps,
        close its own handles, leave the attachment to the parent."""
        if not self._owner:
            for route in self.routes():
                self.route_down(route)
        with self._lock:
            attachments, self._attachments = self._attachments, []
            self._routes.clear()
        try:
            for attachment in attachments:
                attachment.detach(self._ipr)
        finally:
            self._ipr.close()
            self._program.close()

    def __enter__(self) -> KernelOffload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
