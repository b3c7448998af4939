"""SolaX-family records → schema points (layer 3): declarative tables, applied by `schema.mapping.apply`.

Units and signs follow research/solax.md §3.1 (the v2 doc gives none): powers in W, `yieldtoday`
/ `yieldtotal` in kWh at 0.1, `feedinenergy` / `consumeenergy` in kWh at 0.01, `soc` in %.
`feedinpower` positive = export to the grid, negative = import (the notes' live samples, the
openHAB README, evcc's × −1); `batPower` positive = charging (A1, A9, openHAB, evcc). The sign of
`feedinpowerM2` is unconfirmed (notes §9.5): it is read like `feedinpower`, positive = export.

`yieldtoday` / `yieldtotal` are the inverter's AC output energy (they include battery
discharge: notes §3.1), so they go to `yield_energy_*`, not to PV energy. `consumeenergy` is
the lifetime energy drawn *from the grid*, not house consumption.

Models without a battery (`tables.has_battery`: type 4, X1-Boost/Air/Mini, …) get no battery
or EPS field even where the cloud sends `0` placeholders: a PV-only inverter must not show 0 %
state of charge. An unknown type keeps what the cloud sent (nulls are left out as always).

The data time: `utcDateTime` (v2, undocumented, a real UTC instant: notes §3.2) when present and
readable, else `uploadTime` read in the source's time zone. In the hour the clocks repeat in
autumn `uploadTime` is read as its first pass unless the device's previous record is already
later (then the second pass); in the spring gap it is shifted forward (as `to_utc_seconds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from collector.schema.mapping import (
    FieldMap,
    MappingStats,
    MappingTable,
    SplitMap,
    TimeParseError,
    apply,
    as_number,
    to_utc_seconds,
)
from collector.schema.plausible import Memory
from collector.schema.point import Point
from collector.vendors.solax.responses import PileInfo, Realtime
from collector.vendors.solax.tables import charger_state, has_battery, inverter_state

PV_TOTAL = "_pv_total"
"""A derived key: the sum of the `powerdc*` the record has (the API sends no total)."""
EPS_TOTAL = "_eps_total"
"""A derived key: the sum of the `peps*` the record has."""

_STRINGS = ("powerdc1", "powerdc2", "powerdc3", "powerdc4")
_EPS = ("peps1", "peps2", "peps3")
#: Fields a model without a battery never has (the cloud may send 0 for them).
BATTERY_KEYS = frozenset({"soc", "batPower", "batStatus", *_EPS, EPS_TOTAL})


def _state(value: Any) -> str:
    code = as_number(value)
    return inverter_state(None if code is None or not code.is_integer() else int(code))


def _charger_state(value: Any) -> str:
    code = as_number(value)
    return charger_state(None if code is None or not code.is_integer() else int(code))


INVERTER_TABLE = MappingTable(
    "inverter",
    (
        FieldMap(PV_TOTAL, "pv_power_w", "W", quantum="1"),
        *(FieldMap(key, f"pv{n}_power_w", "W", quantum="1") for n, key in enumerate(_STRINGS, 1)),
        FieldMap("acpower", "ac_power_w", "W", quantum="1"),
        SplitMap("feedinpower", "grid_export_power_w", "grid_import_power_w", "W", quantum="1"),
        SplitMap("batPower", "battery_charge_power_w", "battery_discharge_power_w", "W", quantum="1"),
        FieldMap("soc", "battery_soc_pct", "%", quantum="1"),
        FieldMap(EPS_TOTAL, "eps_power_w", "W", quantum="1"),
        FieldMap("peps1", "eps_phase_a_power_w", "W", quantum="1"),
        FieldMap("peps2", "eps_phase_b_power_w", "W", quantum="1"),
        FieldMap("peps3", "eps_phase_c_power_w", "W", quantum="1"),
        SplitMap("feedinpowerM2", "meter2_export_power_w", "meter2_import_power_w", "W", quantum="1"),
        FieldMap("yieldtoday", "yield_energy_today_wh", "kWh", "counter", quantum="0.1"),
        FieldMap("yieldtotal", "yield_energy_total_wh", "kWh", "counter", quantum="0.1"),
        FieldMap("feedinenergy", "grid_export_energy_total_wh", "kWh", "counter", quantum="0.01"),
        FieldMap("consumeenergy", "grid_import_energy_total_wh", "kWh", "counter", quantum="0.01"),
        FieldMap("inverterStatus", "status_code", kind="code"),
        FieldMap("inverterStatus", "state", kind="text", transform=_state),
        FieldMap("batStatus", "battery_status_code", kind="code"),
    ),
)
"""`realtimeInfo/get` → `inverter` (doc §7.1; units and signs: notes §3.1)."""

CHARGER_TABLE = MappingTable(
    "ev_charger",
    (
        FieldMap("chargingPower", "charge_power_w", "W", quantum="1"),
        FieldMap("chargeEnergy", "charge_energy_wh", "kWh", "counter", quantum="0.01"),
        FieldMap("chargerStatus", "status_code", kind="code"),
        FieldMap("chargerStatus", "state", kind="text", transform=_charger_state),
        FieldMap("chargingMode", "charging_mode", kind="code"),
    ),
)
"""`getPileInfo` → `ev_charger` (EV doc §3.2.6). Units are undocumented (notes §5.3): power is
read as W (the Developer API's and the local API's unit), energy as kWh; see `pile_values`."""


def _sum(values: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    parts = [n for n in (as_number(values.get(k)) for k in keys) if n is not None]
    return sum(parts) if parts else None


def inverter_type(rec: Realtime) -> int | None:
    code = as_number(rec.values.get("inverterType"))
    return int(code) if code is not None and code.is_integer() else None


def realtime_values(rec: Realtime) -> dict[str, Any]:
    """The record's values with the derived totals, and without a PV-only model's battery fields."""
    values = dict(rec.values)
    values[PV_TOTAL] = _sum(values, _STRINGS)
    values[EPS_TOTAL] = _sum(values, _EPS)
    if has_battery(inverter_type(rec)) is False:
        for key in BATTERY_KEYS:
            values.pop(key, None)
    return values


def data_time(rec: Realtime, zone: tzinfo, *, after: int | None = None) -> int:
    """The record's data time in UTC seconds (see the module docstring); TimeParseError if none."""
    utc = rec.utc_time
    if isinstance(utc, str) and utc.strip():
        try:
            return to_utc_seconds(utc.strip(), UTC)
        except TimeParseError:
            pass  # unreadable: fall back to uploadTime
    text = rec.upload_time
    if not isinstance(text, str) or not text.strip():
        raise TimeParseError("no uploadTime")
    try:
        naive = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise TimeParseError(f"unreadable uploadTime {text!r}") from None
    # fold=0: the summer reading in the repeated hour, and the offset before the gap in spring.
    first = to_utc_seconds(naive.replace(tzinfo=zone, fold=0))
    second = to_utc_seconds(naive.replace(tzinfo=zone, fold=1))
    if second > first and after is not None and after >= first:
        return second  # the repeated hour's second pass
    return first


def inverter_point(
    rec: Realtime,
    tags: Mapping[str, str],
    time: int,
    stats: MappingStats,
    memory: Memory | None = None,
) -> Point | None:
    """The `inverter` point of one realtime record at `time` (see `data_time`)."""
    return apply(INVERTER_TABLE, realtime_values(rec), tags=tags, time=time, stats=stats, memory=memory)


#: A charger draws at least 6 A on one phase (IEC 61851: 1.4 kW): a "power" of 50 or less while
#: charging can only be kW (notes §5.3's heuristic).
KW_BELOW = 50.0


def pile_values(pile: PileInfo) -> tuple[dict[str, Any], bool]:
    """The charger's values, and whether `chargingPower` was read as kW (see `KW_BELOW`)."""
    values = dict(pile.values)
    power = as_number(values.get("chargingPower"))
    status = as_number(values.get("chargerStatus"))
    if power is not None and status == 2 and 0 < power <= KW_BELOW:
        values["chargingPower"] = power * 1000.0
        return values, True
    return values, False


def charger_point(
    pile: PileInfo, tags: Mapping[str, str], time: int, stats: MappingStats
) -> tuple[Point | None, bool]:
    """The `ev_charger` point at the poll time (the API gives none), and the kW flag."""
    values, kw = pile_values(pile)
    return apply(CHARGER_TABLE, values, tags=tags, time=time, stats=stats), kw
