"""What an operator can do to one relay process: list, kick, revoke, drain, describe.

Synchronous and local: the single-process admin view calls these directly, and a worker runs
them when its parent asks over the control socket (`turn_relay.shell.workers`), so one
implementation serves ``--workers 1`` and ``--workers N``. Persistence is not done here: the
process that serves the admin API writes the revocation store.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from .server import RelayServer
from .sessions import session_record

Record = dict[str, Any]
OFFLOAD = "off"  # a process that says nothing of its kernel offload


class RelayOperations:
    def __init__(self, server: RelayServer) -> None:
        self.server = server

    def sessions(self, user: str | None = None) -> list[Record]:
        core, now = self.server.core, time.monotonic()
        offset = time.time() - now
        return [
            session_record(a, now, offset)
            for a in core.sessions()
            if user is None or a.credentials.user == user
        ]

    def kick(self, target: str) -> int:
        before = len(self.server.core.table)
        self.server.operate(lambda now: self.server.core.kick(target, now))
        return before - len(self.server.core.table)

    def revoke(self, user: str, until: float) -> int:
        before = len(self.server.core.table)
        self.server.operate(lambda now: self.server.core.revoke(user, until, now))
        return before - len(self.server.core.table)

    def unrevoke(self, user: str) -> bool:
        return self.server.core.unrevoke(user)

    def revocations(self) -> dict[str, float]:
        wall = time.time()
        revoked = self.server.core.authenticator.revoked
        return {user: until for user, until in revoked.items() if until > wall}

    def drain(self, seconds: float) -> None:
        self.server.drain(seconds)

    def status(self) -> Record:
        """This process: its sessions by transport, drain and reload state."""
        server = self.server
        transports = Counter(a.five_tuple.transport.value for a in server.core.sessions())
        deadline = server.drain_deadline
        return {
            "pid": os.getpid(),
            "started": round(server.started_at, 3),
            "sessions": len(server.core.table),
            "sessions_by_transport": dict(sorted(transports.items())),
            "relay_sockets": len(server.relays),
            "listeners": server.describe_listeners(),
            "offload": server.kernel.state,
            "offload_reason": server.kernel.reason,
            "draining": server.core.draining,
            "drain_left": None if deadline is None else max(0.0, deadline - time.monotonic()),
            "reload": server.last_reload,
        }

    def control(self, request: Record) -> Any:
        """One request from the parent (a decoded JSON line); the reply to send back."""
        op = request.get("op")
        if op == "metrics":
            return self.server.metrics_snapshot()
        if op == "sessions":
            return self.sessions(request.get("user"))
        if op == "kick":
            return self.kick(str(request["target"]))
        if op == "revoke":
            return self.revoke(str(request["user"]), float(request["until"]))
        if op == "revocations":
            return self.revocations()
        if op == "unrevoke":
            return self.unrevoke(str(request["user"]))
        if op == "drain":
            self.drain(float(request["seconds"]))
            return True
        if op == "status":
            return self.status()
        if op == "observed":
            return self.server.check_view.observed(str(request["test_id"]), time.monotonic())
        return {"error": f"unknown op {op!r}"}
