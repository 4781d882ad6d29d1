"""Who may use the relay: TURN REST credentials, stateless nonces, long-term key lookup, the
per-source challenge budget, and the RFC 8489 long-term mechanism that ties them to a request.

Imports nothing of the relay above it (no core, config, shell or api) and no I/O.
"""
