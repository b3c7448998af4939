"""Vendor timestamps → whole Unix seconds, UTC (schema.md: the vendor's data time, in UTC).

`to_utc_seconds(value, tz)` accepts:

* numbers and digit strings as epoch time, the unit decided by magnitude:
  below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, below
  1e20 nanoseconds. Fractions of a second are floored.
* 14- or 12-digit numbers / strings that form a valid local date-time,
  `yyyyMMddHHmmss` / `yyyyMMddHHmm` (Sungrow `device_time`, `time_stamp`,
  sometimes an unquoted JSON number) — before the epoch reading, which would
  put them centuries away.
* ISO-8601 with `Z` or an offset (`2026-10-06T13:23:04Z`, `…+08:00`, `…+0800`).
* Date-times with a zone abbreviation and a numeric offset, FoxESS style
  (`2024-01-02 10:05:00 CET+0100`, `… BST+0100`, `… +03+0300`): the offset wins,
  the abbreviation is ignored. `UTC`/`GMT`/`Z` alone mean UTC; any other
  abbreviation without an offset is ambiguous and refused.
* Naive local `YYYY-MM-DD HH:MM[:SS[.fff]]` (`T` or space; `/` also accepted as
  the date separator) and a bare date `YYYY-MM-DD` (local midnight), read in
  `tz`. Without `tz` a naive time is refused — never guessed.
* `datetime` (aware, or naive → `tz`) and `date` (local midnight).

DST for naive local times (PEP 495 `fold=0`): a time that occurs twice at the
autumn change takes the first occurrence (the summer-time one); a time that
does not exist at the spring change is read with the offset in force before the
gap, i.e. shifted forward by the gap (Europe/Berlin 02:30 on the spring day →
03:30 CEST = 01:30 UTC).

The result must lie in 2000-01-01 … 2099-12-31 UTC; anything else (a vendor's
0 or a garbled number) is a `TimeParseError`, so no point lands in 1970.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["EARLIEST", "LATEST", "TimeParseError", "parse_zone", "to_utc_seconds"]

EARLIEST = 946_684_800
"""2000-01-01T00:00:00Z: no vendor data time is older."""
LATEST = 4_102_444_800
"""2100-01-01T00:00:00Z: no vendor data time is this late."""


class TimeParseError(ValueError):
    """A vendor timestamp we cannot read, or that lies outside 2000–2099."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
# (magnitude below which, divisor to seconds): s, ms, µs, ns.
_EPOCH_UNITS = (
    (Decimal("1e11"), 1),
    (Decimal("1e14"), 1000),
    (Decimal("1e17"), 10**6),
    (Decimal("1e20"), 10**9),
)
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?$")
_DATETIME = re.compile(
    r"""^(?P<y>\d{4})[-/](?P<mo>\d{1,2})[-/](?P<d>\d{1,2})
    (?:(?:T|\s+)(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,]\d+)?)?)?
    \s*(?P<zone>.*?)$""",
    re.X,
)
_ZONE = re.compile(r"^(?:(?P<abbr>[A-Za-z]{1,6}|[+-]\d{2})\s*)?(?P<off>Z|[+-]\d{1,2}(?::?\d{2})?)?$")
_UTC_WORDS = frozenset({"Z", "UTC", "GMT", "UT"})
_FIXED = re.compile(r"^(?:UTC|GMT|UT)?\s*(?P<off>[+-]\d{1,2}(?::?\d{2})?)$", re.I)


def _offset(text: str) -> timezone:
    """`Z`, `+01`, `+1`, `+0100`, `+01:00`, `-0530` → a fixed-offset tzinfo."""
    if text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    body = text[1:].replace(":", "")
    hours, minutes = (body, "0") if len(body) <= 2 else (body[:-2], body[-2:])
    h, m = int(hours), int(minutes)
    if h > 18 or m > 59:
        raise TimeParseError(f"bad UTC offset {text!r}")
    return timezone(sign * timedelta(hours=h, minutes=m))


def _seconds(dt: datetime, original: object) -> int:
    secs = (dt - _EPOCH) // _SECOND
    if not EARLIEST <= secs < LATEST:
        raise TimeParseError(f"time {original!r} is outside 2000–2099 ({secs})")
    return secs


def _localize(dt: datetime, tz: tzinfo | None, original: object) -> datetime:
    if dt.tzinfo is not None and dt.utcoffset() is not None:
        return dt
    if tz is None:
        raise TimeParseError(f"local time {original!r} needs the site's time zone")
    return dt.replace(tzinfo=tz, fold=0)


def _compact(digits: str) -> datetime | None:
    m = _COMPACT.match(digits)
    if not m or len(digits) not in (12, 14):
        return None
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    if not 2000 <= y < 2100:
        return None
    try:
        return datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None


def _epoch(number: Decimal, original: object) -> int:
    magnitude = abs(number)
    for limit, divisor in _EPOCH_UNITS:
        if magnitude < limit:
            secs = math.floor(number / divisor)
            if not EARLIEST <= secs < LATEST:
                raise TimeParseError(f"epoch time {original!r} is outside 2000–2099")
            return secs
    raise TimeParseError(f"epoch time {original!r} is too large")


def _parse_text(text: str, tz: tzinfo | None, original: object) -> int:
    if _NUMBER.match(text):
        local = _compact(text)
        if local is not None:
            return _seconds(_localize(local, tz, original), original)
        try:
            return _epoch(Decimal(text), original)
        except InvalidOperation:  # pragma: no cover - the regex only admits numbers
            raise TimeParseError(f"bad epoch time {original!r}") from None
    m = _DATETIME.match(text)
    if not m:
        raise TimeParseError(f"unrecognised time {original!r}")
    try:
        naive = datetime(
            int(m["y"]),
            int(m["mo"]),
            int(m["d"]),
            int(m["h"] or 0),
            int(m["mi"] or 0),
            int(m["s"] or 0),
        )
    except ValueError as err:
        raise TimeParseError(f"bad date/time {original!r}: {err}") from None
    zone = m["zone"]
    if not zone:
        return _seconds(_localize(naive, tz, original), original)
    z = _ZONE.match(zone)
    if not z:
        raise TimeParseError(f"unrecognised time zone {zone!r} in {original!r}")
    abbr, off = z["abbr"], z["off"]
    if off is None and abbr is not None:
        if abbr[0] in "+-":  # a numeric abbreviation alone is an offset (`+03`)
            off = abbr
        elif abbr.upper() in _UTC_WORDS:
            off = "Z"
        else:
            raise TimeParseError(f"zone abbreviation {abbr!r} without an offset is ambiguous: {original!r}")
    assert off is not None  # the zone text is non-empty, so abbr or off matched
    return _seconds(naive.replace(tzinfo=_offset(off)), original)


def to_utc_seconds(value: object, tz: tzinfo | None = None) -> int:
    """A vendor timestamp as whole Unix seconds, UTC (see the module doc for the forms).

    `tz` is the site's zone, used only for times without an offset. Raises
    TimeParseError (a ValueError) for anything unreadable or outside 2000–2099.
    """
    if value is None or isinstance(value, bool):
        raise TimeParseError(f"not a time: {value!r}")
    if isinstance(value, datetime):
        return _seconds(_localize(value, tz, value), value)
    if isinstance(value, date):
        return _seconds(_localize(datetime(value.year, value.month, value.day), tz, value), value)
    if isinstance(value, int):
        local = _compact(str(value)) if value > 0 else None
        if local is not None:
            return _seconds(_localize(local, tz, value), value)
        return _epoch(Decimal(value), value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TimeParseError(f"not a time: {value!r}")
        if value.is_integer() and value > 0:
            local = _compact(str(int(value)))
            if local is not None:
                return _seconds(_localize(local, tz, value), value)
        return _epoch(Decimal(repr(value)), value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise TimeParseError("empty time string")
        return _parse_text(text, tz, value)
    raise TimeParseError(f"not a time: {type(value).__name__} {value!r}")


def parse_zone(text: str) -> tzinfo:
    """A site time zone from config or a vendor: an IANA name, `UTC`, or a fixed offset.

    Fixed offsets are read the way vendors write them: `GMT+1` (Sungrow
    `ps_current_time_zone`) and `UTC+08:00` mean UTC **plus** the offset — unlike
    POSIX `Etc/GMT+1`, which is an IANA name and keeps its IANA meaning.
    A fixed offset knows no DST; prefer the IANA name where there is one.
    """
    name = text.strip() if isinstance(text, str) else ""
    if not name:
        raise TimeParseError("empty time zone")
    if name.upper() in _UTC_WORDS:
        return UTC
    m = _FIXED.match(name)
    if m:
        return _offset(m["off"])
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeParseError(f"unknown time zone {name!r}") from None
