"""Real NATs in Linux network namespaces, for tests.

`Lab` builds a small "internet" out of network namespaces and nftables rules, runs processes inside
it and tears everything down again. See README.md in this directory for the topology and examples.

Design rules:

* Nothing is added to the root namespace: every veth is created inside a lab namespace with its
  peer moved straight into another lab namespace, IP forwarding is switched on only in the
  namespaces that route (the internet core and the NAT routers), and no route, rule or sysctl of
  the root namespace is touched.
* Only documentation / benchmarking / shared address space is used: 203.0.113.0/24 and
  198.51.100.0/24 for the internet, 100.64.0.0/10 between a carrier NAT and a home NAT,
  198.18.0.0/15 for the LANs.
* Every namespace name starts with ``tknl-<token>-`` where ``<token>`` is random per `Lab`. The
  lab holds an exclusive ``flock`` on ``/run/turnkit-natlab/<token>.lock`` for its whole life, so a
  later run can tell a crashed run's leftovers (lock free) from a parallel run in progress (lock
  held) and only removes the former (`cleanup_stale`).
* Processes are started with ``ip netns exec`` in their own session, tracked by PID and stopped at
  teardown (SIGTERM to their process group, then SIGKILL). At teardown any process still inside
  one of this lab's namespaces is ended by PID too: only this lab's user can have started it.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final

__all__ = [
    "ALT_SERVER_ADDR",
    "EXPECTED",
    "LOCK_DIR",
    "NS_PREFIX",
    "PEER_ADDR",
    "SERVER_ADDR",
    "UDP_BLOCKED_TCP_PORTS",
    "Behaviour",
    "Expected",
    "Host",
    "Lab",
    "LabError",
    "NatType",
    "Site",
    "cleanup_stale",
    "unavailable_reason",
    "venv_script",
]

NS_PREFIX: Final = "tknl-"
LOCK_DIR: Final = Path("/run/turnkit-natlab")
_NS_RE: Final = re.compile(r"^tknl-([0-9a-f]{8})-")

#: The two public addresses of the internet namespace, both on its bridge ``br0``.
SERVER_ADDR: Final = "203.0.113.1"
ALT_SERVER_ADDR: Final = "203.0.113.2"
#: A public host on a second internet segment (the "peer" namespace), and its gateway in ``inet``.
PEER_ADDR: Final = "198.51.100.2"
PEER_GATEWAY: Final = "198.51.100.1"
#: TCP ports the `udp_blocked` firewall lets out; everything else (all UDP) is dropped silently.
UDP_BLOCKED_TCP_PORTS: Final = (443, 3478)
#: Highest site index: LANs are 198.18.<index>.0/24, edge routers 203.0.113.<10 + index>.
MAX_SITE_INDEX: Final = 200
#: Timeout of the dynamic NAT maps/sets of the cone NATs (kept longer than conntrack's UDP timeout).
NAT_MAP_TIMEOUT_S: Final = 120


class LabError(RuntimeError):
    """A lab command failed, or teardown left something behind."""


class NatType(enum.StrEnum):
    """The NAT behind which a site's clients sit."""

    NONE = "none"
    FULL_CONE = "full_cone"
    ADDRESS_RESTRICTED = "address_restricted"
    PORT_RESTRICTED = "port_restricted"
    SYMMETRIC = "symmetric"
    UDP_BLOCKED = "udp_blocked"
    DOUBLE_NAT = "double_nat"
    HAIRPIN = "hairpin"


class Behaviour(enum.StrEnum):
    """RFC 4787 / RFC 5780 mapping or filtering behaviour."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


@dataclass(frozen=True)
class Expected:
    """What a NAT type is built to do, for UDP. Tests compare measurements against this."""

    nat: bool
    """Whether source addresses are translated at all."""
    udp: bool
    """Whether UDP to the internet works at all."""
    mapping: Behaviour | None
    """Mapping behaviour (None when UDP is blocked)."""
    filtering: Behaviour | None
    """Filtering behaviour for inbound UDP (None when UDP is blocked)."""
    hairpin: bool
    """Whether a client reaches another client's (or its own) public UDP mapping."""


_EI, _AD, _APD = (
    Behaviour.ENDPOINT_INDEPENDENT,
    Behaviour.ADDRESS_DEPENDENT,
    Behaviour.ADDRESS_AND_PORT_DEPENDENT,
)

EXPECTED: Final[Mapping[NatType, Expected]] = {
    # Plain routing: no translation, no firewall; "hairpin" is trivially true (own address).
    NatType.NONE: Expected(nat=False, udp=True, mapping=_EI, filtering=_EI, hairpin=True),
    NatType.FULL_CONE: Expected(nat=True, udp=True, mapping=_EI, filtering=_EI, hairpin=False),
    NatType.ADDRESS_RESTRICTED: Expected(
        nat=True, udp=True, mapping=_EI, filtering=_AD, hairpin=False
    ),
    NatType.PORT_RESTRICTED: Expected(
        nat=True, udp=True, mapping=_EI, filtering=_APD, hairpin=False
    ),
    NatType.SYMMETRIC: Expected(nat=True, udp=True, mapping=_APD, filtering=_APD, hairpin=False),
    NatType.UDP_BLOCKED: Expected(nat=True, udp=False, mapping=None, filtering=None, hairpin=False),
    NatType.DOUBLE_NAT: Expected(nat=True, udp=True, mapping=_EI, filtering=_APD, hairpin=False),
    # A port-restricted cone that also hairpins (RFC 4787 REQ-9, external source address).
    NatType.HAIRPIN: Expected(nat=True, udp=True, mapping=_EI, filtering=_APD, hairpin=True),
}


@dataclass(frozen=True)
class Host:
    """One network namespace and its main IPv4 address."""

    name: str
    """Logical name, e.g. ``"inet"`` or ``"symmetric-client1"``."""
    ns: str
    """The namespace name (``ip netns``), unique per lab."""
    addr: str
    """Main IPv4 address (for a router: its LAN-side gateway address)."""

    def __str__(self) -> str:
        return self.ns


@dataclass(frozen=True)
class Site:
    """A LAN with one or more clients behind a NAT (or a plain router for `NatType.NONE`)."""

    nat: NatType
    index: int
    """The LAN is 198.18.<index>.0/24, the edge router's WAN address 203.0.113.<10 + index>. The
    first site of a NAT type has its fixed index 1-8 (`NatType` order); further sites (second
    symmetric, second full cone ...) get 9, 10, ..., also in `NatType` order."""
    router: Host
    """The (home) router; ``addr`` is its LAN address, the clients' default gateway."""
    router_wan_addr: str
    """The router's outside address (on 203.0.113.0/24, or 100.64/10 for `double_nat`)."""
    public_addr: str | None
    """The address the internet sees for the clients (None for `NatType.NONE`: their own)."""
    clients: tuple[Host, ...]
    lan: str
    carrier: Host | None = None
    """For `double_nat`: the carrier-grade NAT; ``addr`` is its 100.64/10 inside address."""
    number: int = 1
    """1 for the first site of its NAT type, 2 for the second (a separate NAT) and so on."""

    @property
    def name(self) -> str:
        """``"symmetric"`` for the first symmetric site, ``"symmetric2"`` for the second; the
        logical names of its hosts start with it (``"symmetric2-client1"``)."""
        return str(self.nat) if self.number == 1 else f"{self.nat}{self.number}"

    @property
    def edge_wan_addr(self) -> str:
        """The outside address of the site's edge router (the carrier NAT for `double_nat`)."""
        return f"203.0.113.{10 + self.index}"

    @property
    def client(self) -> Host:
        return self.clients[0]

    @property
    def expected(self) -> Expected:
        return EXPECTED[self.nat]

    def public_ip(self, client: Host | None = None) -> str:
        """The source address the internet sees for ``client`` (default: the first client)."""
        return self.public_addr or (client or self.client).addr

    @property
    def routers(self) -> tuple[Host, ...]:
        """Every namespace of this site that runs NAT/firewall rules (home router first)."""
        return (self.router,) if self.carrier is None else (self.router, self.carrier)


def venv_script(name: str) -> str:
    """Path of a console script (``stun-server``, ``turn-relay``, ``rtccheck``) of this venv."""
    return str(Path(sys.executable).parent / name)


# --------------------------------------------------------------------------- low-level helpers


def _run(argv: Sequence[str], *, input_text: str | None = None, timeout: float = 30.0) -> str:
    """Run a host-side command (``ip``, ``nft`` ...), raising LabError with its stderr."""
    try:
        done = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.strip() or done.stdout.strip()
        raise LabError(f"{' '.join(argv)} exited {done.returncode}: {detail}")
    return done.stdout


def _list_netns() -> list[str]:
    try:
        out = _run(["ip", "-json", "netns", "list"])
    except LabError:
        return []
    if not out.strip():
        return []
    return [str(entry["name"]) for entry in json.loads(out)]


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 (after the parenthesised command name) is the state; a zombie has ended already.
    return stat.rsplit(")", 1)[-1].split()[0] not in {"Z", "X"}


def _pids_in_namespaces(names: Iterable[str]) -> list[int]:
    """PIDs of the processes whose network namespace is one of ``names`` (one pass over /proc,
    as ``ip netns pids`` does per namespace)."""
    wanted = set()
    for name in names:
        with contextlib.suppress(OSError):
            st = os.stat(Path("/run/netns", name))
            wanted.add((st.st_dev, st.st_ino))
    pids: list[int] = []
    if not wanted:
        return pids
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                st = os.stat(f"/proc/{entry.name}/ns/net")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in wanted:
                pids.append(int(entry.name))
    return pids


def _end_pids(pids: Iterable[int], grace: float = 2.0) -> None:
    """SIGTERM, wait up to ``grace`` s, then SIGKILL. Only for PIDs found in our namespaces."""
    pending = [pid for pid in pids if pid != os.getpid()]
    for pid in pending:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if _pid_alive(pid)]
        if pending:
            time.sleep(0.02)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _delete_namespaces(names: Iterable[str]) -> list[str]:
    """End every process inside the given namespaces, delete them; return those still present."""
    names = [name for name in names if Path("/run/netns", name).exists()]
    pids = _pids_in_namespaces(names)
    if pids:
        _end_pids(pids)
    for name in names:
        with contextlib.suppress(LabError):
            _run(["ip", "netns", "delete", name])
    return [name for name in names if Path("/run/netns", name).exists()]


def _try_lock(path: Path) -> int | None:
    """Take an exclusive flock on ``path`` without blocking; return the fd, or None if held."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def cleanup_stale() -> list[str]:
    """Remove namespaces left behind by crashed labs; never touches a lab that is still running.

    A namespace ``tknl-<token>-*`` is stale when nobody holds the lock file ``<token>.lock`` in
    LOCK_DIR. The directory is fixed on purpose: a lab looking elsewhere would take every live lab
    for a crashed one. Returns the names removed.
    """
    lock_dir = LOCK_DIR
    by_token: dict[str, list[str]] = {}
    for name in _list_netns():
        match = _NS_RE.match(name)
        if match:
            by_token.setdefault(match.group(1), []).append(name)
    removed: list[str] = []
    for token, names in sorted(by_token.items()):
        lock_path = lock_dir / f"{token}.lock"
        with contextlib.suppress(OSError):
            lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = _try_lock(lock_path)
        if fd is None:
            continue  # a live lab owns these
        try:
            left = _delete_namespaces(names)
            removed.extend(name for name in names if name not in left)
            if not left:
                lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed


def _teardown(prefix: str, lock_path: Path, lock_fd: int) -> list[str]:
    """Final teardown (also the weakref finalizer, so it runs at interpreter exit if forgotten)."""
    left = _delete_namespaces(name for name in _list_netns() if name.startswith(prefix))
    if not left:
        lock_path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        os.close(lock_fd)
    return left


def unavailable_reason() -> str | None:
    """Why this machine cannot run the NAT lab, or None if it can (creates a probe namespace)."""
    if not sys.platform.startswith("linux"):
        return "natlab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "natlab needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN) to create network namespaces"
    for tool in ("ip", "nft", "conntrack"):
        if shutil.which(tool) is None:
            return f"natlab needs the `{tool}` command (iproute2, nftables, conntrack)"
    token = secrets.token_hex(4)
    try:
        LOCK_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return f"natlab cannot create its lock directory {LOCK_DIR}: {exc}"
    lock_path = LOCK_DIR / f"{token}.lock"
    fd = _try_lock(lock_path)
    if fd is None:
        return f"natlab cannot lock {lock_path}"
    probe = f"{NS_PREFIX}{token}-probe"
    try:
        _run(["ip", "netns", "add", probe])
        _run(
            ["ip", "netns", "exec", probe, "nft", "-f", "-"],
            input_text=(
                "table ip probe {\n  chain p {\n    type nat hook postrouting priority srcnat;\n"
                '    oifname "x" masquerade fully-random\n  }\n}\n'
            ),
        )
        _run(["ip", "netns", "exec", probe, "conntrack", "-F"])
    except LabError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else repr(exc)
        return f"natlab cannot create a namespace with nftables NAT here: {first_line}"
    finally:
        _teardown(f"{NS_PREFIX}{token}-", lock_path, fd)
    return None


# --------------------------------------------------------------------------- nftables rule sets

_INPUT_GUARD = """
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" meta l4proto icmp accept
    iifname "wan0" drop
  }
"""

_FORWARD_NAT = """
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan0" accept
    ct status dnat accept
  }
"""

_EIM_MAP = f"""
  map eim {{
    type inet_service : ipv4_addr . inet_service
    flags dynamic,timeout
    timeout {NAT_MAP_TIMEOUT_S}s
  }}
"""

_RECORD_EIM = """
  chain record {
    type filter hook postrouting priority srcnat + 10; policy accept;
    oifname "wan0" meta l4proto udp ct direction original update @eim { ct reply proto-dst : ct original ip saddr . ct original proto-src }
    %s
  }
"""  # noqa: E501


def _ruleset(kind: str, wan_addr: str, lan: str, allow_out: Sequence[str] | None = None) -> str:
    """The nftables rules of one router. ``wan0`` faces the internet, ``lan0`` the inside.
    ``allow_out`` (``udp_blocked`` only): the nft matches let out instead of TCP to
    `UDP_BLOCKED_TCP_PORTS`."""
    body: list[str]
    if kind == "route":
        body = []
    elif kind in {"masquerade", "symmetric"}:
        flag = " fully-random" if kind == "symmetric" else ""
        body = [
            _INPUT_GUARD,
            _FORWARD_NAT,
            "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    oifname "wan0" masquerade{flag}\n  }}\n',
        ]
    elif kind == "full_cone":
        # Mapping: masquerade keeps the source port (EIM). Every outbound UDP flow records
        # public port -> inside address.port in @eim; any outside host can then reach the inside
        # endpoint through that public port (endpoint-independent filtering).
        body = [
            _EIM_MAP,
            _INPUT_GUARD,
            _FORWARD_NAT,
            "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
            '    iifname "wan0" udp dport @eim dnat ip to udp dport map @eim\n  }\n',
            "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
            '    oifname "wan0" masquerade\n  }\n',
            _RECORD_EIM % "",
        ]
    elif kind == "address_restricted":
        # As full cone, but inbound only from addresses the public port has sent to:
        # @contacted holds (public port . remote address).
        body = [
            _EIM_MAP,
            f"  set contacted {{\n    type inet_service . ipv4_addr\n"
            f"    flags dynamic,timeout\n    timeout {NAT_MAP_TIMEOUT_S}s\n  }}\n",
            _INPUT_GUARD,
            _FORWARD_NAT,
            "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
            '    iifname "wan0" udp dport . ip saddr @contacted dnat ip to udp dport map @eim\n'
            "  }\n",
            "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
            '    oifname "wan0" masquerade\n  }\n',
            _RECORD_EIM
            % (
                'oifname "wan0" meta l4proto udp ct direction original '
                "update @contacted { ct reply proto-dst . ip daddr }"
            ),
        ]
    elif kind == "hairpin":
        # Port-restricted cone (conntrack filtering) plus hairpinning: a LAN packet to our public
        # address and a recorded public port is sent back into the LAN with the public address as
        # its source (RFC 4787 REQ-9).
        body = [
            _EIM_MAP,
            _INPUT_GUARD,
            _FORWARD_NAT,
            "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
            f'    iifname "lan0" ip daddr {wan_addr} udp dport @eim '
            "dnat ip to udp dport map @eim\n  }\n",
            "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
            '    oifname "wan0" masquerade\n'
            f'    oifname "lan0" ip saddr {lan} ct status dnat snat ip to {wan_addr}\n  }}\n',
            _RECORD_EIM % "",
        ]
    elif kind == "udp_blocked":
        ports = ", ".join(str(port) for port in UDP_BLOCKED_TCP_PORTS)
        allow = (f"tcp dport {{ {ports} }}",) if allow_out is None else allow_out
        rules = "".join(f'    iifname "lan0" oifname "wan0" {rule} accept\n' for rule in allow)
        body = [
            _INPUT_GUARD,
            "  chain forward {\n    type filter hook forward priority filter; policy drop;\n"
            "    ct state established,related accept\n"
            f"{rules}  }}\n",
            "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
            '    oifname "wan0" masquerade\n  }\n',
        ]
    else:  # pragma: no cover - programming error
        raise ValueError(kind)
    return "table ip natlab {\n" + "".join(body) + "}\n"


_ROUTER_KIND: Final[Mapping[NatType, str]] = {
    NatType.NONE: "route",
    NatType.FULL_CONE: "full_cone",
    NatType.ADDRESS_RESTRICTED: "address_restricted",
    NatType.PORT_RESTRICTED: "masquerade",
    NatType.SYMMETRIC: "symmetric",
    NatType.UDP_BLOCKED: "udp_blocked",
    NatType.DOUBLE_NAT: "masquerade",
    NatType.HAIRPIN: "hairpin",
}


# --------------------------------------------------------------------------- the lab


@dataclass
class _Tracked:
    proc: subprocess.Popen[bytes]
    ns: str
    log_path: Path
    log_file: IO[bytes]


class Lab:
    """A namespace topology with one NAT site per `NatType` (or the subset asked for).

    A NAT type named more than once in ``nats`` gets that many sites, each a separate NAT (its own
    router and client namespaces, public address and LAN): ``Lab([NatType.SYMMETRIC] * 2)``.

    Use as a context manager (or call `start` / `close`). Addresses are known right after
    construction; namespaces exist between `start` and `close`.
    """

    def __init__(
        self,
        nats: Iterable[NatType | str] = tuple(NatType),
        *,
        clients_per_site: int = 1,
        ipv6: bool = False,
    ) -> None:
        if not 1 <= clients_per_site <= 50:
            raise ValueError("clients_per_site must be between 1 and 50")
        counts: dict[NatType, int] = {}
        for nat in nats:
            counts[NatType(nat)] = counts.get(NatType(nat), 0) + 1
        if len(NatType) + sum(counts.values()) - len(counts) > MAX_SITE_INDEX:
            raise ValueError(f"too many sites (site indexes stop at {MAX_SITE_INDEX})")
        self.token: Final = secrets.token_hex(4)
        self.prefix: Final = f"{NS_PREFIX}{self.token}-"
        self.ipv6 = ipv6
        self._lock_path = LOCK_DIR / f"{self.token}.lock"
        self._lock_fd: int | None = None
        self._finalizer: weakref.finalize[..., Lab] | None = None
        self._procs: dict[int, _Tracked] = {}
        self._finished_logs: dict[int, Path] = {}
        self._seq = 0
        self._workdir: Path | None = None
        self._port = 20000 + secrets.randbelow(5000)
        self._started = False
        self._closed = False

        self.server_addr: Final = SERVER_ADDR
        self.alt_server_addr: Final = ALT_SERVER_ADDR
        self.inet: Final = Host("inet", self.prefix + "inet", SERVER_ADDR)
        self.peer: Final = Host("peer", self.prefix + "peer", PEER_ADDR)

        order = list(NatType)
        sites: list[Site] = []
        next_index = len(order) + 1  # the first site of a type has its fixed index 1..8
        for nat in order:
            for number in range(1, counts.get(nat, 0) + 1):
                if number == 1:
                    index = order.index(nat) + 1
                else:
                    index, next_index = next_index, next_index + 1
                sites.append(self._plan_site(nat, number, index, clients_per_site))
        self.all_sites: Final[tuple[Site, ...]] = tuple(sites)
        """Every site, in `NatType` order (the sites of one type together, first one first)."""
        self.sites: Final[dict[NatType, Site]] = {s.nat: s for s in sites if s.number == 1}
        """The first site of each NAT type (see `all_sites` / `sites_of` for the others)."""

    def _plan_site(self, nat: NatType, number: int, index: int, clients_per_site: int) -> Site:
        name = str(nat) if number == 1 else f"{nat}{number}"

        def host(role: str, addr: str) -> Host:
            return Host(f"{name}-{role}", f"{self.prefix}{name}-{role}", addr)

        carrier = None
        router_wan = f"203.0.113.{10 + index}"
        if nat is NatType.DOUBLE_NAT:
            carrier = host("carrier", f"100.64.{index}.1")
            router_wan = f"100.64.{index}.2"
        return Site(
            nat=nat,
            index=index,
            router=host("router", f"198.18.{index}.1"),
            router_wan_addr=router_wan,
            public_addr=None if nat is NatType.NONE else f"203.0.113.{10 + index}",
            clients=tuple(
                host(f"client{k}", f"198.18.{index}.{k + 1}")
                for k in range(1, clients_per_site + 1)
            ),
            lan=f"198.18.{index}.0/24",
            carrier=carrier,
            number=number,
        )

    # ----------------------------------------------------------------- introspection

    @property
    def server_addrs(self) -> tuple[str, str]:
        return (self.server_addr, self.alt_server_addr)

    @property
    def hosts(self) -> dict[str, Host]:
        """Every namespace of the lab by logical name."""
        hosts = {self.inet.name: self.inet, self.peer.name: self.peer}
        for site in self.all_sites:
            for host in (*site.routers, *site.clients):
                hosts[host.name] = host
        return hosts

    @property
    def namespaces(self) -> list[str]:
        return [host.ns for host in self.hosts.values()]

    def site(self, nat: NatType | str) -> Site:
        """The first site of a NAT type."""
        return self.sites[NatType(nat)]

    def sites_of(self, nat: NatType | str) -> tuple[Site, ...]:
        """Every site of a NAT type, first one first (empty if the lab has none)."""
        return tuple(site for site in self.all_sites if site.nat == NatType(nat))

    @property
    def workdir(self) -> Path:
        """A private temporary directory (process logs, scratch files), removed at close."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}"))
        return self._workdir

    # ----------------------------------------------------------------- life cycle

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except LabError:
            if exc is None:
                raise

    def start(self) -> Lab:
        """Build the topology. On any failure everything built so far is removed again."""
        if self._started:
            raise LabError("lab already started")
        self._started = True
        try:
            LOCK_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = _try_lock(self._lock_path)
            if fd is None:
                raise LabError(f"cannot lock {self._lock_path}")
            self._lock_fd = fd
            self._finalizer = weakref.finalize(self, _teardown, self.prefix, self._lock_path, fd)
            cleanup_stale()
            self._build()
        except BaseException:
            with contextlib.suppress(LabError):
                self.close()
            raise
        return self

    def close(self) -> None:
        """Stop processes, delete every namespace of this lab. Idempotent; safe after a failed
        `start`. Raises LabError if a namespace could not be removed."""
        if self._closed:
            return
        self._closed = True
        for pid in list(self._procs):
            with contextlib.suppress(Exception):
                self.stop(self._procs[pid].proc, timeout=3.0)
        left: list[str] = []
        if self._finalizer is not None and self._finalizer.alive:
            left = self._finalizer() or []
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        if left:
            raise LabError(f"namespaces left behind: {left}")

    # ----------------------------------------------------------------- building

    def _ip_batch(self, ns: str | None, commands: Sequence[str]) -> None:
        if not commands:
            return
        argv = ["ip", "-batch", "-"] if ns is None else ["ip", "-n", ns, "-batch", "-"]
        _run(argv, input_text="\n".join(commands) + "\n")

    def _build(self) -> None:
        inet, peer = self.inet.ns, self.peer.ns
        # 1. namespaces (names registered first so cleanup sees half-built ones)
        self._ip_batch(None, [f"netns add {ns}" for ns in self.namespaces])

        links: dict[str, list[str]] = {ns: [] for ns in self.namespaces}
        conf: dict[str, list[str]] = {ns: ["link set lo up"] for ns in self.namespaces}

        # 2. the internet: br0 carries both server addresses and every edge router's WAN
        links[inet] += [
            "link add br0 type bridge",
            f"link add peer0 type veth peer name eth0 netns {peer}",
        ]
        conf[inet] += [
            f"addr add {SERVER_ADDR}/24 dev br0",
            f"addr add {ALT_SERVER_ADDR}/24 dev br0",
            "link set br0 up",
            f"addr add {PEER_GATEWAY}/24 dev peer0",
            "link set peer0 up",
        ]
        conf[peer] += [
            f"addr add {PEER_ADDR}/24 dev eth0",
            "link set eth0 up",
            f"route add default via {PEER_GATEWAY}",
        ]

        for site in self.all_sites:
            edge = site.carrier or site.router
            edge_wan = site.edge_wan_addr
            rt_if = f"rt{site.index}"
            links[edge.ns].append(f"link add wan0 type veth peer name {rt_if} netns {inet}")
            conf[inet] += [f"link set {rt_if} master br0", f"link set {rt_if} up"]
            conf[edge.ns] += [
                f"addr add {edge_wan}/24 dev wan0",
                "link set wan0 up",
                f"route add default via {SERVER_ADDR}",
            ]
            if site.carrier is not None:
                links[site.carrier.ns].append(
                    f"link add lan0 type veth peer name wan0 netns {site.router.ns}"
                )
                conf[site.carrier.ns] += [
                    f"addr add {site.carrier.addr}/24 dev lan0",
                    "link set lan0 up",
                ]
                conf[site.router.ns] += [
                    f"addr add {site.router_wan_addr}/24 dev wan0",
                    "link set wan0 up",
                    f"route add default via {site.carrier.addr}",
                ]
            # the LAN: a bridge lan0 in the router, one veth per client
            links[site.router.ns].append("link add lan0 type bridge")
            conf[site.router.ns] += [f"addr add {site.router.addr}/24 dev lan0", "link set lan0 up"]
            for k, client in enumerate(site.clients, start=1):
                links[site.router.ns].append(
                    f"link add cl{k} type veth peer name eth0 netns {client.ns}"
                )
                conf[site.router.ns] += [f"link set cl{k} master lan0", f"link set cl{k} up"]
                conf[client.ns] += [
                    f"addr add {client.addr}/24 dev eth0",
                    "link set eth0 up",
                    f"route add default via {site.router.addr}",
                ]
            if site.nat is NatType.NONE:
                conf[inet].append(f"route add {site.lan} via {edge_wan}")

        # 3. sysctls before addresses (no IPv6 link-local chatter unless asked for)
        routers = {inet} | {r.ns for s in self.all_sites for r in s.routers}
        for ns in self.namespaces:
            # br_netfilter (when loaded) would run bridged frames through the ip hooks and treat a
            # DNAT back into the same bridge as "bridged DNAT", which breaks hairpinning: our
            # bridges are plain switches. -e: the keys are absent without br_netfilter.
            settings = [
                "net.bridge.bridge-nf-call-iptables=0",
                "net.bridge.bridge-nf-call-ip6tables=0",
                "net.bridge.bridge-nf-call-arptables=0",
            ]
            if not self.ipv6:
                settings += [
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ]
            if ns in routers:
                settings += [
                    "net.ipv4.ip_forward=1",
                    "net.ipv4.conf.all.send_redirects=0",
                    "net.ipv4.conf.default.send_redirects=0",
                ]
            _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-e", "-w", *settings])

        for ns, cmds in links.items():
            self._ip_batch(ns, cmds)
        for ns, cmds in conf.items():
            self._ip_batch(ns, cmds)

        # 4. NAT / firewall rules
        for site in self.all_sites:
            kind = _ROUTER_KIND[site.nat]
            self._nft(site.router.ns, _ruleset(kind, site.router_wan_addr, site.lan))
            if site.carrier is not None:
                self._nft(
                    site.carrier.ns,
                    _ruleset("masquerade", site.edge_wan_addr, f"{site.carrier.addr}/24"),
                )

    @contextlib.contextmanager
    def egress_only(self, allowed: Sequence[str]) -> Iterator[Site]:
        """The `NatType.UDP_BLOCKED` site with a stricter firewall for the block: it lets out
        only what the nft matches in ``allowed`` say (e.g. ``"tcp dport 443"``, or
        ``"ip daddr 203.0.113.3 tcp dport 443"``: nothing at all but one web server). The
        site's own rules (and fresh conntrack state) come back afterwards, even on failure."""
        self._require_running()
        site = self.site(NatType.UDP_BLOCKED)
        own = _ruleset("udp_blocked", site.router_wan_addr, site.lan)
        strict = _ruleset("udp_blocked", site.router_wan_addr, site.lan, tuple(allowed))
        self._nft(site.router.ns, "delete table ip natlab\n" + strict)
        _run(["ip", "netns", "exec", site.router.ns, "conntrack", "-F"])
        try:
            yield site
        finally:
            self._nft(site.router.ns, "delete table ip natlab\n" + own)
            _run(["ip", "netns", "exec", site.router.ns, "conntrack", "-F"])

    def _nft(self, ns: str, ruleset: str) -> None:
        _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input_text=ruleset)

    # ----------------------------------------------------------------- NAT state

    def reset_nat_state(self, nats: Iterable[NatType | str] | None = None) -> None:
        """Forget every NAT mapping: flush conntrack and the dynamic cone maps in the routers.

        Leftover state fakes results (a reused port can make a restricted cone look full cone);
        call this between probes, and prefer `fresh_port` for local ports. ``nats`` selects NAT
        types (every site of each); None means every site.
        """
        self._require_running()
        chosen = self.all_sites
        if nats is not None:
            wanted = {NatType(nat) for nat in nats}
            if missing := wanted - set(self.sites):
                raise LabError(f"this lab has no site of type {', '.join(sorted(missing))}")
            chosen = tuple(site for site in self.all_sites if site.nat in wanted)
        for site in chosen:
            for router in site.routers:
                kind = _ROUTER_KIND[site.nat] if router is site.router else "masquerade"
                flush = []
                if kind in {"full_cone", "address_restricted", "hairpin"}:
                    flush.append("flush map ip natlab eim")
                if kind == "address_restricted":
                    flush.append("flush set ip natlab contacted")
                if flush:
                    self._nft(router.ns, "\n".join(flush) + "\n")
                _run(["ip", "netns", "exec", router.ns, "conntrack", "-F"])

    def fresh_port(self) -> int:
        """A local port not handed out before by this lab (20000-32767, below the ephemeral
        range), for probes that must not meet an earlier probe's NAT state."""
        self._port += 1
        if self._port > 32767:
            self._port = 20000
        return self._port

    # ----------------------------------------------------------------- processes

    def _ns_of(self, ns: Host | str) -> str:
        name = ns.ns if isinstance(ns, Host) else ns
        hosts = self.hosts
        if name in hosts:  # a logical name such as "inet"
            name = hosts[name].ns
        if name not in self.namespaces:
            raise LabError(f"{name!r} is not a namespace of this lab")
        return name

    def _require_running(self) -> None:
        if not self._started or self._closed:
            raise LabError("lab is not running (use `with Lab() as lab:` or lab.start())")

    def command(self, ns: Host | str, argv: Sequence[str]) -> list[str]:
        """The argv that runs ``argv`` inside namespace ``ns``."""
        return ["ip", "netns", "exec", self._ns_of(ns), *argv]

    def run(
        self,
        ns: Host | str,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        check: bool = False,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion inside ``ns`` (a `Host`, namespace or logical name).

        Like `subprocess.run` with captured text output, but on timeout the whole process group
        is killed and `subprocess.TimeoutExpired` (with the output so far) is raised.
        """
        self._require_running()
        cmd = self.command(ns, argv)
        with subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        ) as proc:
            try:
                out, err = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                raise subprocess.TimeoutExpired(cmd, timeout, out, err) from None
            finally:
                if proc.poll() is None:
                    _kill_group(proc.pid, signal.SIGKILL)
                    proc.wait()
        done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        if check:
            done.check_returncode()
        return done

    def run_parallel(
        self, jobs: Sequence[tuple[Host | str, Sequence[str]]], *, timeout: float = 30.0
    ) -> list[subprocess.CompletedProcess[str]]:
        """Run several commands at once (e.g. one probe per client) and wait for all of them.

        Output is captured through files, so chatty commands cannot block each other. A command
        still running after ``timeout`` seconds is killed and gets return code -9.
        """
        self._require_running()
        started = [(self.popen(ns, argv), self.command(ns, argv)) for ns, argv in jobs]
        deadline = time.monotonic() + timeout
        results: list[subprocess.CompletedProcess[str]] = []
        for proc, cmd in started:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
            self.stop(proc)
            results.append(
                subprocess.CompletedProcess(cmd, proc.returncode, self.read_log(proc), "")
            )
        return results

    def python(
        self, ns: Host | str, code: str, *args: str, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a Python snippet with this interpreter inside ``ns``."""
        return self.run(ns, [sys.executable, "-c", code, *args], timeout=timeout)

    def popen(
        self,
        ns: Host | str,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process inside ``ns``; stdout+stderr go to a log file
        (`read_log`). The process is tracked by PID and ended by `stop` or at `close`."""
        self._require_running()
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", name or Path(argv[0]).name)
        self._seq += 1
        log_path = self.workdir / f"{self._seq:03d}-{label}.log"
        log_file = log_path.open("wb")
        try:
            proc = subprocess.Popen(
                self.command(ns, argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
        except BaseException:
            log_file.close()
            raise
        self._procs[proc.pid] = _Tracked(proc, self._ns_of(ns), log_path, log_file)
        return proc

    def read_log(self, proc: subprocess.Popen[bytes]) -> str:
        """Everything the process has written so far."""
        tracked = self._procs.get(proc.pid)
        path = tracked.log_path if tracked else self._finished_logs.get(proc.pid)
        if path is None:
            raise LabError(f"process {proc.pid} was not started by this lab")
        return path.read_bytes().decode(errors="replace")

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
        """End a process started by `popen` (SIGTERM to its group, SIGKILL after ``timeout``);
        returns its exit status."""
        tracked = self._procs.pop(proc.pid, None)
        if tracked is None:
            raise LabError(f"process {proc.pid} was not started by this lab")
        if proc.poll() is None:
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
        else:
            _kill_group(proc.pid, signal.SIGKILL)  # stragglers of an exited leader
        tracked.log_file.close()
        self._finished_logs[proc.pid] = tracked.log_path
        return proc.returncode

    def wait_for_log(
        self, proc: subprocess.Popen[bytes], pattern: str, timeout: float = 10.0
    ) -> re.Match[str]:
        """Wait until the process's log matches the regular expression ``pattern``."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE)
        while True:
            match = regex.search(self.read_log(proc))
            if match:
                return match
            if proc.poll() is not None:
                raise LabError(
                    f"process exited ({proc.returncode}) before logging {pattern!r}:\n"
                    + self.read_log(proc)[-2000:]
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {pattern!r} in log after {timeout}s")
            time.sleep(0.05)

    def wait_listening(
        self,
        ns: Host | str,
        port: int,
        *,
        proto: str = "udp",
        addr: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Wait until something in ``ns`` listens on ``port`` (optionally on ``addr``)."""
        if proto not in {"udp", "tcp"}:
            raise ValueError("proto must be 'udp' or 'tcp'")
        flag = "-Hlnu" if proto == "udp" else "-Hlnt"
        deadline = time.monotonic() + timeout
        while True:
            out = self.run(ns, ["ss", flag], timeout=5.0).stdout
            for line in out.splitlines():
                fields = line.split()
                if len(fields) < 4:
                    continue
                host, _, lport = fields[3].rpartition(":")
                if lport == str(port) and (addr is None or host in {addr, "0.0.0.0", "*"}):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {proto} {addr or '*'}:{port} in {ns}")
            time.sleep(0.05)

    def processes(self) -> Iterator[subprocess.Popen[bytes]]:
        """The processes started by `popen` and not stopped yet."""
        return iter([tracked.proc for tracked in self._procs.values()])


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group we created (``start_new_session``: pgid == leader PID)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
