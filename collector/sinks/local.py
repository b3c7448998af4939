"""The embedded default sink: a SQLite file (``state_dir/local.db``) with InfluxDB's semantics.

Used when the config has no ``influxdb`` section, and read by ``demo`` and
``export``. It behaves like InfluxDB where users could notice (stack.md §2.2,
§2.4):

* a point is identified by measurement + tag set + timestamp; writing it again
  gives the union of the field sets, the newer value winning per field;
* a field keeps the type it was first written with (per measurement); a point
  with a conflicting type is rejected whole, like 1.x's ``field type conflict``;
* a malformed line is rejected (counted, with a message), never fatal.

One row per field value: ``points(measurement, tags, time, field, kind, value)``
where ``tags`` is the canonical escaped tag set (``,k=v,...`` sorted by key),
so overwrite is an upsert on the primary key and ``export`` rebuilds lines
without re-escaping tags. The commit is durable (``synchronous=FULL``) before
``write`` returns, because the forwarder acks the spool right after.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp

from collector.schema.point import FieldValue
from collector.sinks.base import WriteReport

Kind = str  # "f" float, "i" integer, "u" unsigned, "s" string, "b" boolean
Value = float | int | str | bool

_MEAS_ESC = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STR_ESC = str.maketrans({'"': r"\"", "\\": "\\\\"})
_TRUE = frozenset(("t", "T", "true", "True", "TRUE"))
_FALSE = frozenset(("f", "F", "false", "False", "FALSE"))
_KIND_NAMES = {"f": "float", "i": "integer", "u": "unsigned", "s": "string", "b": "boolean"}


class LineProtocolError(ValueError):
    """A line that is not valid line protocol."""


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """One line of line protocol, unescaped. ``time`` is None when the line has none."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, Kind, Value], ...]
    time: int | None


def _scan(line: str, i: int, escapable: str, stops: str) -> tuple[str, int]:
    """Read an escaped name from line[i:] up to an unescaped stop character."""
    out: list[str] = []
    n = len(line)
    start = i
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n and line[i + 1] in escapable:
            out.append(line[start:i])
            out.append(line[i + 1])
            i += 2
            start = i
            continue
        if c in stops:
            break
        i += 1
    out.append(line[start:i])
    return "".join(out), i


def _field_value(line: str, i: int) -> tuple[Kind, Value, int]:
    n = len(line)
    if i < n and line[i] == '"':
        out: list[str] = []
        i += 1
        start = i
        while i < n:
            c = line[i]
            if c == "\\" and i + 1 < n and line[i + 1] in '"\\':
                out.append(line[start:i])
                out.append(line[i + 1])
                i += 2
                start = i
                continue
            if c == '"':
                out.append(line[start:i])
                return "s", "".join(out), i + 1
            i += 1
        raise LineProtocolError("unterminated string field value")
    end = i
    while end < n and line[end] not in ", ":
        end += 1
    raw = line[i:end]
    if not raw:
        raise LineProtocolError("missing field value")
    if raw in _TRUE:
        return "b", True, end
    if raw in _FALSE:
        return "b", False, end
    try:
        if raw.endswith("i"):
            integer = int(raw[:-1])
            if not -(2**63) <= integer < 2**63:  # InfluxDB refuses these too
                raise LineProtocolError(f"integer out of int64 range {raw!r}")
            return "i", integer, end
        if raw.endswith("u"):
            unsigned = int(raw[:-1])
            if not 0 <= unsigned < 2**64:
                raise LineProtocolError(f"unsigned value out of range {raw!r}")
            return "u", unsigned, end
        number = float(raw)
    except ValueError as err:
        raise LineProtocolError(f"invalid field value {raw!r}") from err
    if not math.isfinite(number) or raw.lower() in ("nan", "inf", "+inf", "-inf", "infinity"):
        raise LineProtocolError(f"invalid number {raw!r}")
    return "f", number, end


def parse_line(line: str) -> ParsedLine:
    """Parse one line of line protocol (InfluxDB docs "Line protocol"; the escapes
    Point.to_line writes: ``\\,`` ``\\ `` in measurements, ``\\,`` ``\\=`` ``\\ `` in keys,
    ``\\"`` ``\\\\`` in strings). Raises LineProtocolError."""
    line = line.rstrip("\r\n")
    n = len(line)
    measurement, i = _scan(line, 0, ", ", ", ")
    if not measurement:
        raise LineProtocolError("missing measurement")
    tags: list[tuple[str, str]] = []
    while i < n and line[i] == ",":
        key, i = _scan(line, i + 1, ",= ", ",= ")
        if i >= n or line[i] != "=" or not key:
            raise LineProtocolError("missing tag key or '='")
        tag_value, i = _scan(line, i + 1, ",= ", ", ")
        if not tag_value:
            raise LineProtocolError(f"missing tag value for {key!r}")
        tags.append((key, tag_value))
    if i >= n or line[i] != " ":
        raise LineProtocolError("missing fields")
    i += 1
    fields: list[tuple[str, Kind, Value]] = []
    while True:
        key, i = _scan(line, i, ",= ", ",= ")
        if i >= n or line[i] != "=" or not key:
            raise LineProtocolError("invalid field format")
        kind, value, i = _field_value(line, i + 1)
        fields.append((key, kind, value))
        if i < n and line[i] == ",":
            i += 1
            continue
        break
    ts: int | None = None
    if i < n:
        if line[i] != " ":
            raise LineProtocolError("invalid field format")
        rest = line[i + 1 :].strip()
        if rest:
            try:
                ts = int(rest)
            except ValueError as err:
                raise LineProtocolError(f"invalid timestamp {rest!r}") from err
    tags.sort()
    return ParsedLine(measurement, tuple(tags), tuple(fields), ts)


def escape_tags(tags: Sequence[tuple[str, str]]) -> str:
    """The canonical escaped tag set: ``,k=v`` per tag, sorted by key."""
    return "".join(f",{k.translate(_KEY_ESC)}={v.translate(_KEY_ESC)}" for k, v in sorted(tags))


def _format_value(kind: Kind, value: Value) -> str:
    if kind == "f":
        return repr(float(value))
    if kind == "i":
        return f"{int(value)}i"
    if kind == "u":
        return f"{int(value)}u"
    if kind == "b":
        return "true" if value else "false"
    return '"' + str(value).translate(_STR_ESC) + '"'


def _from_db(kind: Kind, value: object) -> Value:
    if kind == "b":
        return bool(value)
    if kind == "f":
        return float(value)  # type: ignore[arg-type]
    if kind in ("i", "u"):
        return int(value)  # type: ignore[call-overload,no-any-return]
    return str(value)


@dataclass(frozen=True, slots=True)
class Series:
    """One series (measurement + tag set) with the latest value of each of its fields.

    ``time``: the latest timestamp of the series; ``fields``: field → latest value;
    ``field_times``: field → the timestamp of that value.
    """

    measurement: str
    tags: Mapping[str, str]
    time: int
    fields: Mapping[str, FieldValue | bool]
    field_times: Mapping[str, int]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    time INTEGER NOT NULL,
    field TEXT NOT NULL,
    kind TEXT NOT NULL,
    value,
    PRIMARY KEY (measurement, tags, time, field)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_time ON points (time);
CREATE TABLE IF NOT EXISTS field_types (
    measurement TEXT NOT NULL,
    field TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (measurement, field)
) WITHOUT ROWID;
"""


class LocalStore:
    """The SQLite file behind the embedded sink, with the read helpers for ``demo`` and ``export``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used by one thread at a time (the lock), possibly a worker thread.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")  # readers (demo, export) beside the daemon
        self._db.execute("PRAGMA synchronous=FULL")  # durable at commit: the spool is acked after
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._types: dict[tuple[str, str], Kind] = {
            (m, f): k for m, f, k in self._db.execute("SELECT measurement, field, kind FROM field_types")
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def write_lines(self, lines: Sequence[str], *, now: int | None = None) -> WriteReport:
        """Store lines with InfluxDB's overwrite semantics; bad lines are rejected and counted."""
        rows: list[tuple[str, str, int, str, Kind, object]] = []
        new_types: list[tuple[str, str, Kind]] = []
        messages: list[str] = []
        written = rejected = 0
        default_time = int(time.time()) if now is None else now
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                point = parse_line(line)
            except LineProtocolError as err:
                rejected += 1
                messages.append(f"unable to parse {line[:200]!r}: {err}")
                continue
            conflict = None
            pending_types: list[tuple[str, str, Kind]] = []
            for key, kind, _ in point.fields:
                known = self._types.get((point.measurement, key))
                if known is None:
                    pending_types.append((point.measurement, key, kind))
                elif known != kind:
                    conflict = (
                        f"field type conflict: input field {key!r} on measurement {point.measurement!r} "
                        f"is type {_KIND_NAMES[kind]}, already exists as type {_KIND_NAMES[known]}"
                    )
                    break
            if conflict:
                rejected += 1
                messages.append(conflict)
                continue
            for m, f, k in pending_types:
                self._types.setdefault((m, f), k)
                new_types.append((m, f, k))
            tags = escape_tags(point.tags)
            ts = point.time if point.time is not None else default_time
            for key, kind, value in point.fields:
                rows.append((point.measurement, tags, ts, key, kind, int(value) if kind == "b" else value))
            written += 1
        if rows:
            with self._lock:
                self._db.execute("BEGIN")
                try:
                    self._db.executemany("INSERT OR IGNORE INTO field_types VALUES (?, ?, ?)", new_types)
                    self._db.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?)", rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    for m, f, _ in new_types:
                        self._types.pop((m, f), None)
                    raise
        return WriteReport(written, rejected, messages[:100])

    def series(self) -> list[Series]:
        """Every series with the latest time and the latest value of each field."""
        with self._lock:
            rows = self._db.execute(
                "SELECT measurement, tags, field, MAX(time), kind, value FROM points "
                "GROUP BY measurement, tags, field ORDER BY measurement, tags, field"
            ).fetchall()
        out: list[Series] = []
        current: tuple[str, str] | None = None
        fields: dict[str, FieldValue | bool] = {}
        times: dict[str, int] = {}
        for measurement, tags, field, ts, kind, value in rows:
            if (measurement, tags) != current:
                if current is not None:
                    out.append(_series(current, fields, times))
                current, fields, times = (measurement, tags), {}, {}
            fields[field] = _from_db(kind, value)
            times[field] = int(ts)
        if current is not None:
            out.append(_series(current, fields, times))
        return out

    def export(
        self, since: int | None = None, until: int | None = None, measurement: str | None = None
    ) -> Iterator[str]:
        """Line protocol (second precision) in time order, for ``influx write``.

        ``since`` inclusive, ``until`` exclusive (Unix seconds); None means unbounded.
        """
        where: list[str] = []
        args: list[object] = []
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if until is not None:
            where.append("time < ?")
            args.append(until)
        if measurement is not None:
            where.append("measurement = ?")
            args.append(measurement)
        sql = "SELECT time, measurement, tags, field, kind, value FROM points"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time, measurement, tags, field"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        key: tuple[int, str, str] | None = None
        parts: list[str] = []
        for ts, meas, tags, field, kind, value in rows:
            if (ts, meas, tags) != key:
                if key is not None:
                    yield f"{key[1].translate(_MEAS_ESC)}{key[2]} {','.join(parts)} {key[0]}"
                key, parts = (ts, meas, tags), []
            parts.append(f"{field.translate(_KEY_ESC)}={_format_value(kind, _from_db(kind, value))}")
        if key is not None:
            yield f"{key[1].translate(_MEAS_ESC)}{key[2]} {','.join(parts)} {key[0]}"


def _series(key: tuple[str, str], fields: dict[str, FieldValue | bool], times: dict[str, int]) -> Series:
    measurement, tags = key
    parsed = parse_line(f"m{tags} x=1").tags if tags else ()
    return Series(measurement, dict(parsed), max(times.values()), fields, times)


class LocalSink:
    """The embedded default sink (see the module docstring); ``path`` is the SQLite file."""

    name = "local"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._store: LocalStore | None = None

    def __repr__(self) -> str:
        return f"LocalSink({str(self.path)!r})"

    async def open(self, session: aiohttp.ClientSession | None) -> None:
        """Open (create) the database; the HTTP session is not used."""
        if self._store is None:
            self._store = await asyncio.to_thread(LocalStore, self.path)

    async def write(self, lines: Sequence[str]) -> WriteReport:
        if self._store is None:
            raise RuntimeError("LocalSink: write before open()")
        # SQLite work (and its fsync) off the event loop.
        return await asyncio.to_thread(self._store.write_lines, list(lines))

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await asyncio.to_thread(store.close)

    @property
    def store(self) -> LocalStore | None:
        return self._store
