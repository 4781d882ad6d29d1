"""Reports kept in an SQLite database under the relay's state directory.

Synchronous and small on purpose: the HTTP API runs it off the event loop (asyncio.to_thread).
One connection guarded by a lock, so calls from worker threads are serialised. Every method
takes ``now`` (Unix seconds, wall clock, since stored times must survive a restart).

Bounds, applied after each ``put``: reports older than ``max_age_s`` are deleted, then the
oldest ones until at most ``max_count`` reports of at most ``max_total_bytes`` together are
left. ``get`` and ``list`` never return an expired report, even before it is deleted.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turn_relay.reports.result_id import new_result_id, parse_result_id
from turn_relay.reports.validation import DEFAULT_MAX_REPORT_BYTES, parse_report

DATABASE_FILE = "reports.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id TEXT PRIMARY KEY,
    stored_at REAL NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    verdict TEXT NOT NULL,
    size INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_by_age ON reports (stored_at);
CREATE TABLE IF NOT EXISTS used_tests (
    id TEXT PRIMARY KEY,
    keep_until REAL NOT NULL
);
"""
#: a new id is drawn again on a collision (40 bits: rare), this many times at most
ID_ATTEMPTS = 8


class ReportReusedError(ValueError):
    """A check-page test whose report was already uploaded (its token is spent)."""


@dataclass(frozen=True)
class StoreLimits:
    max_count: int = 10_000
    max_total_bytes: int = 256 * 1024 * 1024
    max_age_s: float = 30 * 86400
    max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES

    def __post_init__(self) -> None:
        if self.max_count < 1 or self.max_age_s <= 0:
            raise ValueError("max_count and max_age_s must be positive")
        if not 0 < self.max_report_bytes <= self.max_total_bytes:
            raise ValueError("max_report_bytes must be positive and at most max_total_bytes")


@dataclass(frozen=True)
class ReportSummary:
    id: str
    stored_at: float
    source: str
    status: str
    verdict: str
    size: int


@dataclass(frozen=True)
class StoredReport:
    summary: ReportSummary
    document: dict[str, Any]


class ReportStore:
    def __init__(self, state_dir: Path, limits: StoreLimits | None = None) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DATABASE_FILE
        self.limits = limits or StoreLimits()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ReportStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def put(self, body: bytes, now: float) -> str:
        """Validate and store an uploaded report; its new result id. Raises
        ReportTooLargeError or ReportInvalidError and stores nothing when it is refused."""
        document = parse_report(body, self.limits.max_report_bytes)
        row = _row(document)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            ident = self._insert(now, row)
            self._evict(now)
        return ident

    def put_once(self, body: bytes, now: float, result_id: str, keep_until: float) -> str:
        """Store the report of check-page test ``result_id`` (its id), once: a second upload
        raises ReportReusedError, even after the first report was evicted, until
        ``keep_until`` (the token's expiry). Validation errors as in `put`; nothing is stored
        when anything is refused."""
        ident = parse_result_id(result_id)
        document = parse_report(body, self.limits.max_report_bytes)
        row = _row(document)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM used_tests WHERE keep_until <= ?", (now,))
            try:
                self._db.execute(
                    "INSERT INTO used_tests (id, keep_until) VALUES (?, ?)", (ident, keep_until)
                )
                self._db.execute(
                    "INSERT INTO reports (id, stored_at, source, status, verdict, size, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (ident, now, *row),
                )
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                raise ReportReusedError(f"test {ident} already has a report") from None
            self._evict(now)
        return ident

    def was_used(self, result_id: str, now: float) -> bool:
        """Whether test ``result_id`` already uploaded its report."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM used_tests WHERE id = ? AND keep_until > ?",
                (parse_result_id(result_id), now),
            ).fetchone()
        return row is not None

    def _insert(self, now: float, row: tuple[str, str, str, int, str]) -> str:
        for _ in range(ID_ATTEMPTS):
            ident = new_result_id()
            try:
                self._db.execute(
                    "INSERT INTO reports (id, stored_at, source, status, verdict, size, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (ident, now, *row),
                )
            except sqlite3.IntegrityError:
                continue
            return ident
        raise RuntimeError("no free result id after several attempts")

    def _evict(self, now: float) -> None:
        self._db.execute("DELETE FROM reports WHERE stored_at <= ?", (now - self.limits.max_age_s,))
        count, total = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM reports"
        ).fetchone()
        oldest_first = self._db.execute("SELECT id, size FROM reports ORDER BY stored_at, rowid")
        doomed: list[str] = []
        for ident, size in oldest_first.fetchall():
            if count <= self.limits.max_count and total <= self.limits.max_total_bytes:
                break
            doomed.append(ident)
            count, total = count - 1, total - size
        self._db.executemany("DELETE FROM reports WHERE id = ?", [(i,) for i in doomed])

    def expire(self, now: float) -> int:
        """Delete reports past their age; how many went."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "DELETE FROM reports WHERE stored_at <= ?", (now - self.limits.max_age_s,)
            )
            return cursor.rowcount

    def get(self, result_id: str, now: float) -> StoredReport | None:
        """The report with this id (as a person typed it), unless unknown or expired.
        Raises ResultIdError for text that is no result id."""
        ident = parse_result_id(result_id)
        with self._lock:
            row = self._db.execute(
                f"SELECT {_SUMMARY_COLUMNS}, body FROM reports WHERE id = ? AND stored_at > ?",
                (ident, now - self.limits.max_age_s),
            ).fetchone()
        if row is None:
            return None
        return StoredReport(ReportSummary(*row[:-1]), json.loads(row[-1]))

    def list(self, limit: int, now: float) -> list[ReportSummary]:
        """The newest ``limit`` reports, newest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM reports WHERE stored_at > ?"
                " ORDER BY stored_at DESC, rowid DESC LIMIT ?",
                (now - self.limits.max_age_s, max(limit, 0)),
            ).fetchall()
        return [ReportSummary(*row) for row in rows]

    def totals(self) -> tuple[int, int]:
        """Reports kept and their size in bytes (expired ones not yet deleted included)."""
        with self._lock:
            count, total = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM reports"
            ).fetchone()
        return int(count), int(total)


_SUMMARY_COLUMNS = "id, stored_at, source, status, verdict, size"


def _row(document: dict[str, Any]) -> tuple[str, str, str, int, str]:
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return (
        str(document.get("source", "cli")),
        str(document["status"]),
        str(document["verdict"]),
        len(text.encode("utf-8")),
        text,
    )
