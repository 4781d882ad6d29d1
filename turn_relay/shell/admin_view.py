"""The `turn_relay.api.admin.AdminView`s the shell hands the HTTP API.

`LocalAdmin` serves one relay process; `WorkersAdmin` serves the parent of ``--workers N``,
asking every worker over its control socket and summing (sessions are concatenated, a kick or
a revocation goes to every worker). Both write revocations to the store under
``server.state_dir`` (off the event loop) before the relay processes apply them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from turn_relay.api.admin import AdminError, Record
from turn_relay.config import TurnConfig

from .operations import OFFLOAD, RelayOperations
from .revocations import RevocationStore

Ask = Callable[[Record], Awaitable[list[Any]]]  # one request to every worker: their replies


def drain_seconds(config: TurnConfig, seconds: float | None) -> float:
    """An explicit ``seconds``, else ``server.drain_seconds``, else the longest an
    allocation can live without a refresh (``allocation.max_lifetime``)."""
    if seconds is not None:
        return seconds
    return float(config.server.drain_seconds or config.allocation.max_lifetime)


class _Persisting:
    """Revocations in the store first (so a restart keeps them), then in the relays."""

    def __init__(self, config: TurnConfig) -> None:
        self.config = config
        state_dir = config.server.state_dir
        self.store = None if state_dir is None else RevocationStore(state_dir)

    async def _persist(self, user: str, until: float) -> None:
        if self.store is None:
            raise AdminError(
                409, "revocations must survive restarts: set server.state_dir (--state-dir)"
            )
        await asyncio.to_thread(self.store.put, user, until)

    async def _forget(self, user: str) -> bool:
        if self.store is None:
            return False
        return await asyncio.to_thread(self.store.remove, user)


class LocalAdmin(_Persisting):
    def __init__(self, config: TurnConfig, operations: RelayOperations) -> None:
        super().__init__(config)
        self.operations = operations

    def draining(self) -> bool:
        return self.operations.server.core.draining

    async def sessions(self, user: str | None) -> list[Record]:
        return self.operations.sessions(user)

    async def kick(self, target: str) -> int:
        return self.operations.kick(target)

    async def revoke(self, user: str, until: float) -> int:
        await self._persist(user, until)
        return self.operations.revoke(user, until)

    async def unrevoke(self, user: str) -> bool:
        stored = await self._forget(user)
        return self.operations.unrevoke(user) or stored

    async def revocations(self) -> dict[str, float]:
        return self.operations.revocations()

    async def drain(self, seconds: float | None) -> Record:
        self.operations.drain(drain_seconds(self.config, seconds))
        return await self.status()

    async def status(self) -> Record:
        process = self.operations.status()
        return overall(self.operations.server.started_at, [process], 1, process["draining"])


class WorkersAdmin(_Persisting):
    def __init__(self, config: TurnConfig, ask: Ask, workers: int) -> None:
        super().__init__(config)
        self._ask = ask
        self.workers = workers
        self.started_at = time.time()
        self.is_draining = False

    def draining(self) -> bool:
        return self.is_draining

    async def sessions(self, user: str | None) -> list[Record]:
        found = [s for reply in await self._ask({"op": "sessions", "user": user}) for s in reply]
        return sorted(found, key=lambda s: float(s["created"]))

    async def kick(self, target: str) -> int:
        return sum(int(n) for n in await self._ask({"op": "kick", "target": target}))

    async def revoke(self, user: str, until: float) -> int:
        await self._persist(user, until)
        replies = await self._ask({"op": "revoke", "user": user, "until": until})
        return sum(int(n) for n in replies)

    async def unrevoke(self, user: str) -> bool:
        stored = await self._forget(user)
        replies = await self._ask({"op": "unrevoke", "user": user})
        return any(replies) or stored

    async def revocations(self) -> dict[str, float]:
        merged: dict[str, float] = {}
        for reply in await self._ask({"op": "revocations"}):
            for user, until in reply.items():
                merged[user] = max(float(until), merged.get(user, 0.0))
        return merged

    async def drain(self, seconds: float | None) -> Record:
        self.is_draining = True
        await self._ask({"op": "drain", "seconds": drain_seconds(self.config, seconds)})
        return await self.status()

    async def status(self) -> Record:
        processes = await self._ask({"op": "status"})
        return overall(self.started_at, processes, self.workers, self.is_draining)


def overall(started_at: float, processes: list[Record], workers: int, draining: bool) -> Record:
    """The relay's status from its processes' (summed where it adds up)."""
    by_transport: Counter[str] = Counter()
    for process in processes:
        by_transport.update(process["sessions_by_transport"])
    reloads = [p["reload"] for p in processes if p.get("reload")]
    return {
        "uptime": round(time.time() - started_at, 3),
        "started": round(started_at, 3),
        "sessions": sum(int(p["sessions"]) for p in processes),
        "sessions_by_transport": dict(sorted(by_transport.items())),
        "workers": workers,
        "workers_answering": len(processes),
        "offload": processes[0].get("offload", OFFLOAD) if processes else OFFLOAD,
        "draining": draining or any(p["draining"] for p in processes),
        "reload": max(reloads, key=lambda r: float(r["at"])) if reloads else None,
        "processes": processes,
    }
