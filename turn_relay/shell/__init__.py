"""The asyncio shell around the core: listeners, relay sockets, workers, the process entry and
the metrics counters of the data path. It owns sockets and the clock, and starts the HTTP API.
"""
