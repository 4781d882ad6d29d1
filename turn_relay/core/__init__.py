"""The sans-I/O relay: fed bytes, addresses and ``now``; returns actions and timers.

`relay.RelayCore` dispatches; `allocate` (Allocate), `peers` (CreatePermission, ChannelBind),
`table` (allocations, permissions, channels, expiry), `ports` (relay ports), `bandwidth`,
`fastpath` (data-path parsing), `peer_policy` (who may be a peer), `responses` and `actions` are
its parts. Imports no asyncio, socket, time, aiohttp or config; the shell owns sockets and clocks.
"""
