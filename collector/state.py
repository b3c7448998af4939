"""The collector's own durable state: one SQLite file in `state_dir`.

Holds quota call logs and vendor pauses (so a restart never resets a count),
tokens, backfill checkpoints and the last data time delivered per device and
stream. The budget records a call *before* making it, committed and fsync'd,
so a crash after the call cannot lose the count.

Writes are few per poll, whatever the number of devices (issue #6: an SD card
must not wear out on a large fleet): a call is one row however many devices it
covers (the device set is stored once, in `call_groups`), and the app groups a
poll's cursor writes into one transaction (`transaction()`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.clock import Clock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budgets (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS call_groups (
    id INTEGER PRIMARY KEY,
    budget INTEGER NOT NULL,
    members TEXT NOT NULL,
    UNIQUE (budget, members)
);
CREATE TABLE IF NOT EXISTS budget_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    budget INTEGER NOT NULL,
    grp INTEGER NOT NULL,
    ts REAL NOT NULL,
    priority INTEGER NOT NULL,
    n INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS slots (
    slot TEXT PRIMARY KEY,
    last REAL NOT NULL,
    held_until REAL NOT NULL DEFAULT 0,
    holder TEXT NOT NULL DEFAULT ''
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
PAGE_SIZE = 1024


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
        # 1 KiB pages: a commit writes each page it touches to the WAL, and a poll's
        # commits touch a few rows each, so small pages write a quarter of the bytes
        # of SQLite's default 4 KiB (bench/state_bench.py). Only a new file takes it;
        # a 0.1 file is rebuilt with it when it is migrated.
        self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit is fsync'd. A recorded call must survive a power cut
        # (NORMAL in WAL mode may lose the last few hundred commits), or the
        # budget would spend again calls the vendor has already counted.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """State of 0.1 builds: one `calls` row per counter (account or `account/SN`) per call.

        Its rows of the last day become `budget_calls` rows: a device's row a one-device
        group, an account row an account-level call; the copies of account-level calls on
        device counters (priority 2) are dropped, the new counting adds account-level calls
        to every device itself. `slots` gains its hold columns.
        """
        db = self._db
        cols = [r[1] for r in db.execute("PRAGMA table_info(slots)").fetchall()]
        if cols and "held_until" not in cols:
            db.execute("ALTER TABLE slots ADD COLUMN held_until REAL NOT NULL DEFAULT 0")
            db.execute("ALTER TABLE slots ADD COLUMN holder TEXT NOT NULL DEFAULT ''")
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'").fetchone():
            return
        cols = [r[1] for r in db.execute("PRAGMA table_info(calls)").fetchall()]
        order = "id" if "id" in cols else "rowid"
        with self.transaction():
            rows = db.execute(
                f"SELECT counter, ts, priority FROM calls WHERE ts > ? AND priority != 2 ORDER BY {order}",
                (self._now() - DAY,),
            ).fetchall()
            for counter, ts, prio in rows:
                key, _, device = str(counter).partition("/")
                bid = self.budget_id(key)
                grp = self.group_id(bid, (device,)) if device else 0
                self.record_call(bid, grp, float(ts), int(prio))
            db.execute("DROP TABLE calls")
        self._rebuild()

    def _rebuild(self) -> None:
        """Give back the space the 0.1 call log took, in 1 KiB pages (best effort: not
        while another process has the file open)."""
        db = self._db
        try:
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            db.execute("VACUUM")
        except sqlite3.OperationalError:
            pass  # busy: it keeps its pages, and works as it is
        finally:
            db.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (one commit, one fsync) for everything inside; nests.

        `BEGIN IMMEDIATE` takes the write lock at once, so budget decisions made
        inside are serialised across processes (the daemon and a `backfill`
        command may share one state_dir).
        """
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    #: The budget's name for `transaction()`.
    exclusive = transaction

    @contextlib.contextmanager
    def relaxed(self) -> Iterator[None]:
        """Commits inside are not fsync'd (the next full commit makes them durable).

        For writes that a crash may lose without harm: when a per-second slot's
        call left. Its hold, committed in full before, stands in for it until it
        expires, so the next call can only be later, never sooner.
        """
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    # -- quota ----------------------------------------------------------------
    def budget_id(self, key: str) -> int:
        """The small integer that stands for an account's budget key in `budget_calls`."""
        self._db.execute("INSERT OR IGNORE INTO budgets(key) VALUES (?)", (key,))
        row = self._db.execute("SELECT id FROM budgets WHERE key = ?", (key,)).fetchone()
        return int(row[0])

    def group_id(self, budget: int, members: tuple[str, ...]) -> int:
        """The id of a set of devices one call covers (created once, then reused)."""
        text = "\n".join(members)
        self._db.execute("INSERT OR IGNORE INTO call_groups(budget, members) VALUES (?, ?)", (budget, text))
        row = self._db.execute(
            "SELECT id FROM call_groups WHERE budget = ? AND members = ?", (budget, text)
        ).fetchone()
        return int(row[0])

    def groups(self, budget: int) -> dict[int, tuple[str, ...]]:
        """Every device set recorded for a budget: group id → devices."""
        rows = self._db.execute("SELECT id, members FROM call_groups WHERE budget = ?", (budget,)).fetchall()
        return {int(g): tuple(str(m).split("\n")) for g, m in rows}

    def record_call(self, budget: int, group: int, ts: float, priority: int, n: int = 1) -> None:
        """Record `n` calls at `ts` covering `group`'s devices (0: an account-level call).

        Inside the budget's transaction, committed before the call is made."""
        self._db.execute(
            "INSERT INTO budget_calls(budget, grp, ts, priority, n) VALUES (?, ?, ?, ?, ?)",
            (budget, group, ts, priority, n),
        )

    def calls_after(self, after_id: int, since: float) -> list[tuple[int, int, int, float, int, int]]:
        """(row id, budget, group, time, priority, n) of every call after row `after_id`
        and time `since`, in row order (by us or another process)."""
        rows = self._db.execute(
            "SELECT id, budget, grp, ts, priority, n FROM budget_calls WHERE id > ? AND ts > ? ORDER BY id",
            (after_id, since),
        ).fetchall()
        return [(int(i), int(b), int(g), float(t), int(p), int(n)) for i, b, g, t, p, n in rows]

    def prune_calls(self, before: float) -> None:
        """Forget calls older than every window (ids never repeat: AUTOINCREMENT)."""
        self._db.execute("DELETE FROM budget_calls WHERE ts <= ?", (before,))

    def slot(self, slot: str) -> tuple[float, float, str]:
        """A per-second slot: (when its last call left, until when a call holds it, by whom)."""
        row = self._db.execute(
            "SELECT last, held_until, holder FROM slots WHERE slot = ?", (slot,)
        ).fetchone()
        return (float(row[0]), float(row[1]), str(row[2])) if row else (0.0, 0.0, "")

    def set_slot(self, slot: str, last: float, held_until: float = 0.0, holder: str = "") -> None:
        self._db.execute(
            "INSERT INTO slots(slot, last, held_until, holder) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(slot) DO UPDATE SET last = excluded.last,"
            " held_until = excluded.held_until, holder = excluded.holder",
            (slot, last, held_until, holder),
        )

    def slot_sent(self, slot: str, ts: float, holder: str) -> None:
        """The holder's call left at `ts`: the slot's last call is then, the hold ends."""
        self._db.execute(
            "UPDATE slots SET last = max(last, ?),"
            " held_until = CASE WHEN holder = ? THEN 0 ELSE held_until END,"
            " holder = CASE WHEN holder = ? THEN '' ELSE holder END WHERE slot = ?",
            (ts, holder, holder, slot),
        )

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
        """Advance the newest buffered data time per device (never moves backwards);
        one transaction for all devices (autocommit would commit, and fsync, each)."""
        with self.transaction():
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
