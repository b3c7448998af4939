"""Fault start / end detection from `currentFault`, persisted across restarts.

FoxESS reports only the faults active *now* (`currentFault`, research/foxess.md §4.1);
the `fault` measurement wants a point when a fault begins (active 1) and when it ends
(active 0). `FaultTracker` compares each new snapshot with the faults open before it.
The open set lives in the state database, so a restart neither re-opens a fault that
was already written as open nor forgets one that closed while we were down (its end
is written at the first data time that no longer shows it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collector.schema.mapping import MappingStats
from collector.schema.point import Point
from collector.state import State
from collector.vendors.foxess.mapping import fault_point


@dataclass(frozen=True)
class FaultEvent:
    """A fault `code` of device `sn` began (`active`) or ended at data time `time`."""

    sn: str
    code: int
    time: int
    active: bool


class FaultTracker:
    """The open faults of every device of one source, kept in `State` under `key`.

    Per device it keeps the open set after the newest snapshot it saw (`open`, at data
    time `t`) and the set before it (`prev`). If the app never made that snapshot's
    points durable (the delivery cursor is still below `t`), the snapshot comes again
    and is compared with `prev`, so its fault events are produced again rather than lost.
    """

    def __init__(self, state: State, key: str) -> None:
        self._state = state
        self._key = key

    def _load(self) -> dict[str, dict[str, Any]]:
        raw = self._state.get(self._key)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _codes(entry: object) -> dict[int, int]:
        if not isinstance(entry, dict):
            return {}
        return {int(c): int(t) for c, t in entry.items() if str(c).isdigit() and isinstance(t, int)}

    def open_faults(self) -> dict[str, dict[int, int]]:
        """Device → {code: the data time it was first seen}, after the newest snapshot."""
        return {sn: codes for sn, e in self._load().items() if (codes := self._codes(e.get("open")))}

    def observe(self, sn: str, time: int, codes: Iterable[int], *, delivered: int) -> list[FaultEvent]:
        """The events between the faults open before `time` and `codes` active at `time`.

        `delivered` is the newest data time of `sn` already made durable. Ends come first
        (in code order), then starts (in the vendor's order). The state is saved at once.
        """
        current = list(dict.fromkeys(codes))
        data = self._load()
        entry = data.get(sn) if isinstance(data.get(sn), dict) else None
        if entry is None:
            before: dict[int, int] = {}
        elif int(entry.get("t", 0)) > delivered:
            before = self._codes(entry.get("prev"))  # that snapshot's points never landed
        else:
            before = self._codes(entry.get("open"))
        events = [FaultEvent(sn, c, time, False) for c in sorted(set(before) - set(current))]
        events += [FaultEvent(sn, c, time, True) for c in current if c not in before]
        now_open = {c: before.get(c, time) for c in current}
        if now_open or before:
            data[sn] = {
                "t": time,
                "open": {str(c): t for c, t in now_open.items()},
                "prev": {str(c): t for c, t in before.items()},
            }
        else:
            data.pop(sn, None)
        self._state.put(self._key, json.dumps(data))
        return events


def fault_points(
    events: Sequence[FaultEvent],
    messages: Mapping[str, str],
    tags_for: Callable[[str], Mapping[str, str]],
    stats: MappingStats,
) -> list[Point]:
    """`fault` points for events; several events of one device at one data time are
    written one second apart, because the `fault` series has no per-code tag and
    InfluxDB would keep only the last point at one timestamp."""
    out: list[Point] = []
    taken: dict[tuple[str, int], int] = {}
    for ev in events:
        offset = taken.get((ev.sn, ev.time), 0)
        taken[(ev.sn, ev.time)] = offset + 1
        point = fault_point(
            code=ev.code,
            message=messages.get(str(ev.code)),
            active=ev.active,
            tags=tags_for(ev.sn),
            time=ev.time + offset,
            stats=stats,
        )
        if point is not None:
            out.append(point)
    return out
