"""Kernel data path for UDP ChannelData: an eBPF (tc ingress) program and its Python control.

For a bound channel the kernel forwards ChannelData itself, IPv4 and IPv6: client -> peer loses
the 4-byte ChannelData header and leaves from the allocation's relayed address; peer -> client
gains it and leaves from the listener address. Everything else (STUN/TURN control messages,
Send/Data indications, TCP and TLS, unbound channels and peers, padded ChannelData, IPv4 options
and fragments, IPv6 extension headers, TTL/hop limit 1, datagrams over the egress MTU, IPv4 <->
IPv6 routes) reaches the relay's sockets unchanged, so the userspace path stays the fallback
for every packet the kernel does not take. ``channel_forward.bpf.c`` explains the choices.

Interface (what the relay shell uses)::

    from turn_relay.offload import OffloadMode, Route, start_offload, build

    started = start_offload(OffloadMode.AUTO, ["eth0"], build.default_object_path())
    if started.offload is None:
        log.info("kernel offload: %s", started.reason)    # one line: why userspace
    offload = started.offload
    offload.route_up(Route(client, listener, channel, relayed, peer))    # on the core's RouteUp
    final = offload.route_down(Route(...))   # on RouteDown: the route's last counters
    offload.counters()   # {Route: RouteCounters(to_peer=Traffic(packets, bytes), to_client=...)}
    offload.close()      # detaches from every interface, unloads

- `Route` holds ``(host, port)`` addresses: ``client`` and ``listener`` (the five-tuple's two
  ends), ``channel`` (0x4000-0x7FFF), ``relayed`` (the allocation's relayed address) and
  ``peer``. It maps one to one onto the core's ``RouteUp``/``RouteDown`` actions.
- `KernelOffload.route_up` returns False when the kernel cannot carry the route (client and peer
  in different address families); the shell keeps it in userspace then.
- Counters are cumulative per route since it went up; bytes are application bytes (the
  ChannelData payload), the same measure in both directions. The shell adds the difference
  since its last read to its metrics, quotas and bandwidth buckets; `route_down` returns the
  final reading so nothing is lost between the last poll and the removal.
- `start_offload`: ``OFF`` never loads; ``AUTO`` returns ``offload=None`` and a reason (no
  capability, no object, no such interface, the kernel refused the program); ``ON`` raises
  `OffloadUnavailable` with the same reason.
- The object is built from source on the target machine: ``python -m turn_relay.offload.build``
  (clang, libbpf-dev). `KernelOffload.open` needs root, or CAP_BPF and CAP_NET_ADMIN, and the
  interfaces are names in the caller's network namespace.

What this package does not do: quotas and bandwidth caps are not enforced in the kernel (the
shell reads the counters and takes routes down); XDP is not used (see the C source's header).
"""

from __future__ import annotations

from .kernel import KernelOffload, OffloadUnavailable, missing_capability
from .maps import Address, Route, RouteCounters, Traffic
from .mode import OffloadMode, OffloadStart, start_offload

__all__ = [
    "Address",
    "KernelOffload",
    "OffloadMode",
    "OffloadStart",
    "OffloadUnavailable",
    "Route",
    "RouteCounters",
    "Traffic",
    "missing_capability",
    "start_offload",
]
