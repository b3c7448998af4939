"""`getOpenApiCallInfo` read (vendor doc §2.2; research/sungrow.md §4.3): what the
gateway grants this appkey per hour and per day, and what it has counted.

The answer's numbers are strings except `max_call_times` (an integer in the doc's
sample); the per-hour lists are keyed by the gateway's hour (`"0"` in one list, `"00"`
in the other). The hour is taken as UTC (undocumented; the simulator's Decision too),
and only the current hour's grant is used: the budget's sliding hour then holds it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CallInfo:
    per_hour: int | None
    per_day: int | None
    hour_used: int | None
    day_used: int | None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        n = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return int(n) if n >= 0 and n.is_integer() else None


def read_call_info(data: Any, now: float) -> CallInfo | None:
    """The grant and the counts, or None when the answer holds neither limit."""
    if not isinstance(data, Mapping):
        return None
    hour = dt.datetime.fromtimestamp(now, dt.UTC).hour
    per_hour: int | None = None
    rows = data.get("per_hour_access_times_config")
    if isinstance(rows, list):
        grants = {}
        for row in rows:
            if isinstance(row, Mapping):
                h, n = _count(row.get("hour")), _count(row.get("max_call_times"))
                if h is not None and n is not None and n > 0:
                    grants[h] = n
        # This hour's grant; else the smallest (strict) when the list skips the hour.
        per_hour = grants.get(hour, min(grants.values()) if grants else None)
    per_day = _count(data.get("per_day_access_times_config")) or None
    if per_hour is None and per_day is None:
        return None
    return CallInfo(
        per_hour=per_hour,
        per_day=per_day,
        hour_used=_count(data.get("curr_hour_accessed_times")),
        day_used=_count(data.get("today_accessed_times")),
    )
