"""The collector's own durable state: one SQLite file in `state_dir`.

Holds quota call logs and vendor pauses (so a restart never resets a count),
tokens, backfill checkpoints and the last data time delivered per device and
stream. Every write commits at once: the budget records a call *before* making
it, so a crash after the call cannot lose the count.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.clock import Clock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    counter TEXT NOT NULL,
    ts REAL NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS calls_counter_ts ON calls(counter, ts);
CREATE TABLE IF NOT EXISTS slots (
    slot TEXT PRIMARY KEY,
    last REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pauses (
    budget TEXT PRIMARY KEY,
    until REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires REAL
);
CREATE TABLE IF NOT EXISTS last_seen (
    source TEXT NOT NULL,
    device TEXT NOT NULL,
    stream TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (source, device, stream)
);
CREATE TABLE IF NOT EXISTS gaps (
    source TEXT NOT NULL,
    device TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    PRIMARY KEY (source, device, start)
);
CREATE TABLE IF NOT EXISTS windows_done (
    source TEXT NOT NULL,
    device TEXT NOT NULL,
    stream TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    PRIMARY KEY (source, device, stream, start)
);
"""

DAY = 86400.0


class State:
    """A thin typed wrapper over the state database; synchronous and fast."""

    def __init__(self, state_dir: Path, clock: Clock | None = None) -> None:
        #: Expiry of cached values follows the app's clock (fake in tests).
        self._now: Callable[[], float] = clock.time if clock is not None else time.time
        state_dir.mkdir(parents=True, exist_ok=True)
        # Tokens live here: keep the directory and file private to the user.
        with contextlib.suppress(OSError):
            os.chmod(state_dir, 0o700)
        self.path = state_dir / "state.db"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit is fsync'd. A recorded call must survive a power cut
        # (NORMAL in WAL mode may lose the last few hundred commits), or the
        # budget would spend again calls the vendor has already counted.
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()
        self._db.executescript(_SCHEMA)

    def _migrate(self) -> None:
        """State from 0.1.0 development builds: `calls` without its `id` column."""
        cols = [r[1] for r in self._db.execute("PRAGMA table_info(calls)").fetchall()]
        if cols and "id" not in cols:
            self._db.executescript(
                "BEGIN; ALTER TABLE calls RENAME TO calls_old;"
                "CREATE TABLE calls (id INTEGER PRIMARY KEY AUTOINCREMENT, counter TEXT NOT NULL,"
                " ts REAL NOT NULL, priority INTEGER NOT NULL DEFAULT 0);"
                "INSERT INTO calls(counter, ts, priority) SELECT counter, ts, priority FROM calls_old"
                " ORDER BY rowid;"
                "DROP TABLE calls_old; COMMIT;"
            )

    def close(self) -> None:
        self._db.close()

    # -- quota ----------------------------------------------------------------
    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """A write transaction that serialises budget decisions across processes
        (the daemon and a `backfill` command may share one state_dir)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def record_call(self, counters: Iterable[str], ts: float, priority: int) -> None:
        """Record one call against each counter (committed before the call is made)."""
        self._db.executemany(
            "INSERT INTO calls(counter, ts, priority) VALUES (?, ?, ?)",
            [(c, ts, priority) for c in counters],
        )

    def load_calls(self, counter: str, since: float, after_id: int = 0) -> list[tuple[int, float, int]]:
        """(row id, time, priority) of the counter's calls after `since` and row `after_id`."""
        rows = self._db.execute(
            "SELECT id, ts, priority FROM calls WHERE counter = ? AND ts > ? AND id > ? ORDER BY id",
            (counter, since, after_id),
        ).fetchall()
        return [(int(r), float(ts), int(p)) for r, ts, p in rows]

    def slot_last(self, slot: str) -> float:
        row = self._db.execute("SELECT last FROM slots WHERE slot = ?", (slot,)).fetchone()
        return float(row[0]) if row else 0.0

    def set_slot_last(self, slot: str, ts: float) -> None:
        self._db.execute(
            "INSERT INTO slots(slot, last) VALUES (?, ?)"
            " ON CONFLICT(slot) DO UPDATE SET last = excluded.last",
            (slot, ts),
        )

    def prune_calls(self, before: float) -> None:
        """Forget calls older than every window (ids never repeat: AUTOINCREMENT)."""
        self._db.execute("DELETE FROM calls WHERE ts <= ?", (before,))

    def counters_like(self, prefix: str) -> list[str]:
        """Names of the counters recorded under `prefix` (e.g. an account's devices)."""
        rows = self._db.execute(
            "SELECT DISTINCT counter FROM calls WHERE substr(counter, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def set_pause(self, budget: str, until: float, reason: str) -> None:
        self._db.execute(
            "INSERT INTO pauses(budget, until, reason) VALUES (?, ?, ?) "
            # never shorten a pause another process set
            "ON CONFLICT(budget) DO UPDATE SET until = max(until, excluded.until), reason = excluded.reason",
            (budget, until, reason),
        )

    def get_pause(self, budget: str) -> tuple[float, str] | None:
        row = self._db.execute("SELECT until, reason FROM pauses WHERE budget = ?", (budget,)).fetchone()
        return (float(row[0]), str(row[1])) if row else None

    # -- key/value (tokens, caches) ------------------------------------------
    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        expires = self._now() + ttl if ttl is not None else None
        self._db.execute(
            "INSERT INTO kv(key, value, expires) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
            (key, value, expires),
        )

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value, expires FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None or (row[1] is not None and row[1] < self._now()):
            return None
        return str(row[0])

    def delete(self, key: str) -> None:
        self._db.execute("DELETE FROM kv WHERE key = ?", (key,))

    # -- delivery cursors ------------------------------------------------------
    def set_last_seen(self, source: str, stream: str, latest: dict[str, int]) -> None:
        """Advance the newest buffered data time per device (never moves backwards)."""
        self._db.executemany(
            "INSERT INTO last_seen(source, device, stream, ts) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(source, device, stream) DO UPDATE SET ts = max(ts, excluded.ts)",
            [(source, dev, stream, int(ts)) for dev, ts in latest.items()],
        )

    def last_seen(self, source: str, stream: str) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT device, ts FROM last_seen WHERE source = ? AND stream = ?", (source, stream)
        ).fetchall()
        return {str(d): int(t) for d, t in rows}

    # -- gaps seen while running (refilled from history) ----------------------
    def add_gap(self, source: str, device: str, start: int, end: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO gaps(source, device, start, end) VALUES (?, ?, ?, ?)",
            (source, device, start, end),
        )

    def gaps(self, source: str) -> list[tuple[str, int, int]]:
        rows = self._db.execute(
            "SELECT device, start, end FROM gaps WHERE source = ? ORDER BY start", (source,)
        ).fetchall()
        return [(str(d), int(s), int(e)) for d, s, e in rows]

    def remove_gap(self, source: str, device: str, start: int, end: int) -> None:
        """Forget a gap that is filled up to `end` (a wider gap with the same start stays)."""
        self._db.execute(
            "DELETE FROM gaps WHERE source = ? AND device = ? AND start = ? AND end <= ?",
            (source, device, start, end),
        )

    # -- backfill checkpoints --------------------------------------------------
    def mark_window_done(self, source: str, device: str, stream: str, start: int, end: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO windows_done(source, device, stream, start, end) VALUES (?, ?, ?, ?, ?)",
            (source, device, stream, start, end),
        )

    def windows_done(self, source: str, device: str, stream: str) -> list[tuple[int, int]]:
        rows = self._db.execute(
            "SELECT start, end FROM windows_done"
            " WHERE source = ? AND device = ? AND stream = ? ORDER BY start",
            (source, device, stream),
        ).fetchall()
        return [(int(s), int(e)) for s, e in rows]
