"""One allocation as the admin API shows it: a JSON-ready record, built on request."""

from __future__ import annotations

from typing import Any

from turn_relay.core.allocation import Allocation, format_address


def session_record(allocation: Allocation, now: float, wall_offset: float) -> dict[str, Any]:
    """Who, from where, relayed where, to which peers, how much, for how long.

    ``now`` is the core's clock; ``wall_offset`` turns it into Unix time (``created``).
    """
    five_tuple, credentials, traffic = (
        allocation.five_tuple,
        allocation.credentials,
        allocation.traffic,
    )
    return {
        "id": allocation.session_id,
        "user": credentials.user,
        "username": credentials.username,
        "client": format_address(five_tuple.client),
        "transport": five_tuple.transport.value,
        "listener": format_address(five_tuple.server),
        "relayed": [
            format_address(allocation.advertised[f]) for f in sorted(allocation.advertised)
        ],
        "permissions": sorted(allocation.permissions),
        "channels": [
            {"channel": number, "peer": format_address(binding.peer)}
            for number, binding in sorted(allocation.channels.items())
        ],
        "bytes_to_peer": traffic.bytes_to_peer,
        "bytes_to_client": traffic.bytes_to_client,
        "packets_to_peer": traffic.packets_to_peer,
        "packets_to_client": traffic.packets_to_client,
        "age": round(now - allocation.created_at, 3),
        "created": round(allocation.created_at + wall_offset, 3),
        "expires_in": allocation.lifetime_left(now),
        "credential_expires": credentials.expires_at,
    }
