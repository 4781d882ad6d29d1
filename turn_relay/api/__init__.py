"""The relay's HTTP service (aiohttp), one module per route group. Started by the shell."""
