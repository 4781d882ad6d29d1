"""Revoked users, kept in SQLite under ``server.state_dir`` so they survive restarts.

One row per user: ``until`` is the Unix time the revocation ends, NULL for "until lifted".
Written only by the process serving the admin API (the parent of the workers); read by every
relay process at start. Each call opens its own connection, so it may run in a thread
(``asyncio.to_thread``) off the event loop.
"""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from pathlib import Path

FILE_NAME = "revocations.sqlite3"
_SCHEMA = "CREATE TABLE IF NOT EXISTS revocations (user TEXT PRIMARY KEY, until REAL)"


class RevocationStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=5.0)
        connection.execute(_SCHEMA)
        return connection

    def load(self, wall_now: float) -> dict[str, float]:
        """The revocations still in force at ``wall_now``; ended ones are deleted."""
        with closing(self._connect()) as connection, connection:
            connection.execute("DELETE FROM revocations WHERE until <= ?", (wall_now,))
            rows = connection.execute("SELECT user, until FROM revocations").fetchall()
        return {str(user): math.inf if until is None else float(until) for user, until in rows}

    def put(self, user: str, until: float) -> None:
        stored = None if math.isinf(until) else until
        with closing(self._connect()) as connection, connection:
            connection.execute(
                "INSERT INTO revocations (user, until) VALUES (?, ?)"
                " ON CONFLICT(user) DO UPDATE SET until = excluded.until",
                (user, stored),
            )

    def remove(self, user: str) -> bool:
        with closing(self._connect()) as connection, connection:
            cursor = connection.execute("DELETE FROM revocations WHERE user = ?", (user,))
            return cursor.rowcount > 0
