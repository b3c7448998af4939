"""The point ids the client asks for, per device type, read from the mapping tables.

* `LIVE_POINTS` — bare ids (`"13003"`) for getDeviceRealTimeData's `point_id_list`
  (doc §2.14.5; the simulator answers `"p13003"` with null), ≤ 100 per call (notes §7.1).
* `MINUTE_POINTS` — `p`-prefixed (`"p13003"`) for getDevicePointMinuteDataList's `points`
  (bare ids give success with no data, notes §5.8), < 50 per call (doc §2.7.1).
* `DAY_POINTS` — `p`-prefixed daily energy counters for getDevicePointsDayMonthYearDataList's
  `data_point`, with `data_type` from `mapping.day_data_type`.

A point the device does not have comes back `null` (realtime) or is omitted (history):
counted, never written. Device types: 1 PV inverter, 14 energy storage / hybrid, 7 meter,
11 plant (`<ps_id>_11_0_0`); other types have no points here and are not asked for.
"""

from __future__ import annotations

from collections.abc import Mapping

from collector.vendors.sungrow.mapping import DAY_TABLES, LIVE_TABLES

#: getDeviceRealTimeData allows at most 100 point ids (notes §7.1: result_code 010 beyond).
REALTIME_MAX_POINTS = 100
#: getDevicePointMinuteDataList takes fewer than 50 points (doc §2.7.1).
MINUTE_MAX_POINTS = 49

MINUTE_POINTS: Mapping[int, tuple[str, ...]] = {t: table.sources for t, table in LIVE_TABLES.items()}
LIVE_POINTS: Mapping[int, tuple[str, ...]] = {
    t: tuple(p.removeprefix("p") for p in points) for t, points in MINUTE_POINTS.items()
}
DAY_POINTS: Mapping[int, tuple[str, ...]] = {t: table.sources for t, table in DAY_TABLES.items()}

for _t, _points in MINUTE_POINTS.items():
    assert len(_points) <= MINUTE_MAX_POINTS, f"device type {_t}: {len(_points)} minute points"

__all__ = ["DAY_POINTS", "LIVE_POINTS", "MINUTE_MAX_POINTS", "MINUTE_POINTS", "REALTIME_MAX_POINTS"]
