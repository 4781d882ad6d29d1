"""Several relays as one service, with Redis as the shared state.

`view` is pure: it merges what the other relays published (their per-user allocation counts,
load, draining flag, alternates) into the facts this relay's core is fed as events: remote
per-user counts (a fleet-wide quota), revocations, and the least-loaded sibling for 300 Try
Alternate. `link` is the asyncio adapter (redis-py's asyncio client): it publishes this relay's
snapshot with a heartbeat TTL, reads the siblings', carries commands over pub/sub and keeps
serving from its cache while Redis is away. Nothing on the allocation or data path waits on it.
"""
