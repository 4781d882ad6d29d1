"""The shell's kernel routes follow the core's RouteUp/RouteDown actions (UDP clients only), feed
the kernel's counters into the metrics and the bandwidth cap, and take an allocation over its cap
out of the kernel until it has repaid its debt. The kernel is a fake here (no root needed); the
core is the real one, stepped by hand."""

from __future__ import annotations

from turn_testkit import PEER, T0, allocated, make_core, of_type

from turn_relay.core.actions import Action, RouteDown, RouteUp
from turn_relay.core.allocation import Transport
from turn_relay.core.relay import RelayCore
from turn_relay.offload import Route, RouteCounters, Traffic
from turn_relay.shell.metrics import DataPathStats, offload_state, snapshot
from turn_relay.shell.offload import KernelRoutes, KernelStart


class FakeKernel:
    """`KernelOffload`'s route interface: routes held in a dict, counters set by the test."""

    def __init__(self) -> None:
        self.routes: dict[Route, RouteCounters] = {}
        self.closed = False
        self.ups = 0

    def route_up(self, route: Route) -> bool:
        self.ups += 1
        self.routes.setdefault(route, RouteCounters())
        return True

    def route_down(self, route: Route) -> RouteCounters | None:
        return self.routes.pop(route, None)

    def counters(self) -> dict[Route, RouteCounters]:
        return dict(self.routes)

    def close(self) -> None:
        self.closed = True

    def forward(self, route: Route, to_peer: int, to_client: int, size: int) -> None:
        """The kernel forwarded ``to_peer`` and ``to_client`` more datagrams of ``size`` bytes."""
        old = self.routes[route]
        self.routes[route] = RouteCounters(
            Traffic(old.to_peer.packets + to_peer, old.to_peer.bytes + to_peer * size),
            Traffic(old.to_client.packets + to_client, old.to_client.bytes + to_client * size),
        )


def routes_for(core: RelayCore, kernel: FakeKernel) -> tuple[KernelRoutes, DataPathStats]:
    stats = DataPathStats()
    start = KernelStart(kernel, "active", "kernel offload on lo")  # type: ignore[arg-type]
    return KernelRoutes(start, stats, core), stats


def run(routes: KernelRoutes, actions: list[Action], now: float) -> None:
    """What the server's `_run` does with route actions."""
    for action in actions:
        if isinstance(action, RouteUp):
            routes.up(action)
        elif isinstance(action, RouteDown):
            routes.down(action, now)


def kernel_route(action: RouteUp | RouteDown) -> Route:
    f = action.five_tuple
    return Route(f.client, f.server, action.channel, action.relay, action.peer)


def test_a_bound_channel_goes_into_the_kernel_and_its_expiry_takes_it_out() -> None:
    core, kernel = make_core(), FakeKernel()
    routes, stats = routes_for(core, kernel)
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    run(routes, client.actions, T0)
    (up,) = of_type(client.actions, RouteUp)
    assert isinstance(up, RouteUp)
    route = kernel_route(up)
    assert list(kernel.routes) == [route] and routes.installed == 1

    kernel.forward(route, to_peer=3, to_client=2, size=100)
    routes.poll(T0 + 1)
    assert (stats.kernel_packets_to_peer, stats.kernel_bytes_to_peer) == (3, 300)
    assert (stats.kernel_packets_to_client, stats.kernel_bytes_to_client) == (2, 200)

    kernel.forward(route, to_peer=1, to_client=0, size=50)  # after the last poll
    down = core.handle_timer(T0 + 300)  # the permission expires; the channel is still bound
    assert of_type(down, RouteDown)
    run(routes, down, T0 + 300)
    assert kernel.routes == {} and routes.installed == 0
    # the final reading came with the RouteDown: nothing lost between polls
    assert (stats.kernel_packets_to_peer, stats.kernel_bytes_to_peer) == (4, 350)


def test_deleting_the_allocation_takes_the_kernel_route_down() -> None:
    core, kernel = make_core(), FakeKernel()
    routes, _ = routes_for(core, kernel)
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    run(routes, client.actions, T0)
    client.refresh(0, now=T0 + 1)
    run(routes, client.actions, T0 + 1)
    assert kernel.routes == {}


def test_stream_clients_stay_in_userspace() -> None:
    core, kernel = make_core(), FakeKernel()
    routes, _ = routes_for(core, kernel)
    client = allocated(core)
    client.five_tuple = client.five_tuple._replace(transport=Transport.TCP)
    tcp = RouteUp(client.five_tuple, 0x4000, ("127.0.0.1", 50000), PEER)
    routes.up(tcp)
    routes.down(RouteDown(*tcp), T0)
    assert kernel.ups == 0 and kernel.routes == {}


def test_metrics_count_kernel_traffic_in_the_relayed_totals_and_alone() -> None:
    core, kernel = make_core(), FakeKernel()
    routes, stats = routes_for(core, kernel)
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    run(routes, client.actions, T0)
    stats.packets_to_peer = 10  # the userspace fast path's share
    kernel.forward(next(iter(kernel.routes)), to_peer=5, to_client=7, size=10)
    routes.poll(T0 + 1)
    flat = snapshot(
        core.stats,
        stats,
        allocations=1,
        relays=1,
        connections=0,
        offload=offload_state(routes.state, routes.installed),
    )
    assert flat['turnkit_relay_relayed_packets_total{direction="to_peer"}'] == 15
    assert flat['turnkit_relay_relayed_packets_total{direction="to_client"}'] == 7
    assert flat['turnkit_relay_kernel_packets_total{direction="to_peer"}'] == 5
    assert flat['turnkit_relay_kernel_bytes_total{direction="to_client"}'] == 70
    assert flat['turnkit_relay_kernel_offload{state="active"}'] == 1
    assert flat['turnkit_relay_kernel_offload{state="unavailable"}'] == 0
    assert flat["turnkit_relay_kernel_routes"] == 1


def test_over_its_cap_an_allocation_leaves_the_kernel_until_it_repaid() -> None:
    core, kernel = make_core(max_bandwidth=10_000), FakeKernel()  # bytes per second
    routes, stats = routes_for(core, kernel)
    client = allocated(core, T0)
    client.bind(0x4000, PEER, now=T0)
    run(routes, client.actions, T0)
    route = next(iter(kernel.routes))

    kernel.forward(route, to_peer=50, to_client=0, size=100)  # 5000 B: within the 10 kB burst
    routes.poll(T0 + 1)
    assert not routes.suspended(client.five_tuple) and route in kernel.routes

    kernel.forward(route, to_peer=250, to_client=0, size=100)  # 25 kB in one second: over
    routes.poll(T0 + 2)
    assert routes.suspended(client.five_tuple) and kernel.routes == {}
    assert stats.kernel_suspensions == 1
    # meanwhile userspace relays, and the core's bucket refuses: the debt is not repaid yet
    assert client.channel_data(0x4000, b"x" * 100, T0 + 2.5) == []
    assert core.stats.dropped["bandwidth-cap"] == 1

    routes.poll(T0 + 3)  # 1 s of refill: 10 kB of the 15 kB owed
    assert routes.suspended(client.five_tuple) and kernel.routes == {}
    routes.poll(T0 + 4)  # repaid: back in the kernel, counted from zero
    assert not routes.suspended(client.five_tuple)
    assert kernel.routes == {route: RouteCounters()}
    assert stats.kernel_bytes_to_peer == 30_000


def test_a_route_that_ends_while_suspended_does_not_come_back() -> None:
    core, kernel = make_core(max_bandwidth=1000), FakeKernel()
    routes, _ = routes_for(core, kernel)
    client = allocated(core, T0)
    client.bind(0x4000, PEER, now=T0)
    run(routes, client.actions, T0)
    kernel.forward(next(iter(kernel.routes)), to_peer=100, to_client=0, size=100)
    routes.poll(T0 + 1)
    assert routes.suspended(client.five_tuple)
    client.refresh(0, now=T0 + 2)
    run(routes, client.actions, T0 + 2)
    routes.poll(T0 + 100)
    assert kernel.routes == {} and not routes.suspended(client.five_tuple)


def test_close_reads_the_last_counters_and_closes_the_kernel() -> None:
    core, kernel = make_core(), FakeKernel()
    routes, stats = routes_for(core, kernel)
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    run(routes, client.actions, T0)
    kernel.forward(next(iter(kernel.routes)), to_peer=2, to_client=2, size=8)
    routes.close()
    assert kernel.closed and stats.kernel_packets_to_peer == 2 and not routes.active


def test_off_and_unavailable_do_nothing() -> None:
    core = make_core()
    for state in ("off", "unavailable"):
        routes = KernelRoutes(KernelStart(None, state, "why"), DataPathStats(), core)
        client = allocated(core, port=40000 + len(state))
        client.bind(0x4000, PEER, now=T0)
        run(routes, client.actions, T0)
        routes.poll(T0 + 1)
        assert routes.installed == 0 and routes.state == state
