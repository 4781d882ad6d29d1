"""Wiring a `TurnConfig` and its `Secrets` into a sans-I/O `RelayCore` (no sockets here)."""

from __future__ import annotations

import dataclasses
import time
from ipaddress import ip_address, ip_network

from turn_relay.auth.authenticate import Authenticator
from turn_relay.auth.challenge import ChallengeBudget, Rate
from turn_relay.auth.longterm import LongTermAuth
from turn_relay.auth.nonce import NonceIssuer, new_key
from turn_relay.config import Secrets, TurnConfig
from turn_relay.core.peer_policy import PeerPolicy
from turn_relay.core.relay import RelayCore
from turn_relay.core.settings import CoreSettings, RelayAddress


def long_term_auth(config: TurnConfig, secrets: Secrets) -> LongTermAuth:
    return LongTermAuth(
        realm=config.server.realm,
        static_users=secrets.static_users,
        rest_secrets=secrets.rest_secrets,
        separator=config.auth.separator,
        strict_expiry=config.auth.strict_expiry,
    )


def build_core(
    config: TurnConfig,
    secrets: Secrets,
    *,
    nonce_key: bytes | None = None,
    legacy_channels: bool = False,
    dont_fragment: bool = False,
    ports: tuple[int, int] | None = None,
) -> RelayCore:
    """The sans-I/O core for ``config``; ``now`` is ``time.monotonic()``.

    ``ports``: the part of the relay port range this process allocates from (a worker's share);
    the peer policy still knows the whole range as the relay's own ports.
    """
    settings = settings_from_config(
        config, dont_fragment=dont_fragment, legacy_channels=legacy_channels
    )
    if ports is not None:
        settings = dataclasses.replace(settings, port_min=ports[0], port_max=ports[1])
    authenticator = Authenticator(
        long_term_auth(config, secrets),
        NonceIssuer(nonce_key or new_key(), lifetime=config.auth.nonce_lifetime),
        challenge_budget(config),
    )
    return RelayCore(settings, authenticator, peer_policy(config), wall_offset=wall_offset())


def challenge_budget(config: TurnConfig) -> ChallengeBudget:
    budget = config.auth.challenge_budget
    return ChallengeBudget(
        unproven=Rate(budget.unproven_rate, budget.unproven_burst),
        proven=Rate(budget.proven_rate, budget.proven_burst),
        total=Rate(budget.total_rate, max(1.0, budget.total_rate)),  # one second's worth
        proof_lifetime=budget.proof_lifetime,
        max_sources=budget.max_sources,
    )


def peer_policy(config: TurnConfig) -> PeerPolicy:
    """The peer policy, with the relay's own addresses allowed (relay ports only).

    Adapter: `PeerPolicy` judges its own addresses before the allow list, so a relay bound to
    127.0.0.1 would refuse every loopback peer that is not a relay port even with
    ``allowed_peers = ["127.0.0.0/8"]``. An address the operator re-opened explicitly is
    therefore not passed as "own": the allow list decides for it (every port).
    """
    allowed = [ip_network(n) for n in config.peer_policy.allowed_peers]
    relay = config.relay
    candidates = {*relay.addresses, *(relay.advertised(a) for a in relay.addresses)}
    own = [a for a in sorted(candidates) if not any(ip_address(a) in n for n in allowed)]
    return PeerPolicy(
        allowed_peers=config.peer_policy.allowed_peers,
        denied_peers=config.peer_policy.denied_peers,
        own_addresses=own,
        own_ports=(relay.port_min, relay.port_max),
    )


def wall_offset() -> float:
    """Unix time minus the monotonic clock: what the core adds to ``now`` for REST expiry."""
    return time.time() - time.monotonic()


def settings_from_config(
    config: TurnConfig,
    *,
    dont_fragment: bool = False,
    legacy_channels: bool = False,
    software: str | None = "turnkit",
) -> CoreSettings:
    relay, allocation, quotas = config.relay, config.allocation, config.quotas
    return CoreSettings(
        relays=tuple(RelayAddress(a, relay.advertised(a)) for a in relay.addresses),
        port_min=relay.port_min,
        port_max=relay.port_max,
        default_lifetime=allocation.default_lifetime,
        max_lifetime=allocation.max_lifetime,
        permission_lifetime=allocation.permission_lifetime,
        channel_lifetime=allocation.channel_lifetime,
        max_allocations_per_user=quotas.max_allocations_per_user,
        max_allocations=quotas.max_allocations,
        max_permissions_per_allocation=quotas.max_permissions_per_allocation,
        max_bandwidth=quotas.max_bandwidth_per_allocation,
        dont_fragment=dont_fragment,
        legacy_channels=legacy_channels or config.allocation.rfc5766_channels,
        software=software,
        alternates=config.server.alternates,
        listeners=tuple((x.address, x.port) for x in config.listen.listeners()),
    )
