"""Sungrow iSolarCloud → the common schema (layer 3): declarative tables and pure mappers.

Raw `result_data` in, points out; no I/O, no clock (a caller may pass `now`). Unit
conversion happens only in `collector.schema.mapping.apply`: every row names the
vendor's unit — realtime, minute and day values are always in base units, W, Wh, V, A,
var (doc §2.6.1, §2.14.1, §2.8.1; notes §5.5) — and a per-value unit overrides it where
the vendor sends one (the plant list's `{value, unit}` maps) or where a quirk needs it
(a frequency in 0.1 Hz).

Sources: the vendor doc (`vendor-docs/sungrow-isolarcloud-open-api.txt`, "doc §n") and the
field notes (`research/sungrow.md`, "notes §n"); where neither decides we follow what the
simulator (`collector/simulators/sungrow.py`) decided and the docs page says so.

* Values are strings (`"190970.0"`); `null`, `""` and the placeholder `"--"` mean "no
  value" (notes §5.2): left out and counted, never 0. `"--"` is counted as `empty` (the
  vendor's own "nothing here"), not as a value we could not read.
* SOC and SOH are fractions 0–1 (notes §5.6): the rows' unit is `fraction` (× 100 → %).
* A grid frequency above 100 is in 0.1 Hz (doc §2.6.5 `"p27": "499.9"`, notes §5.7): read
  as `0.1Hz`, logged once per device.
* ESS flows come as non-negative pairs (notes §6.2); the meter's `p8018` is signed,
  negative = export (notes §6.4), and is split by its sign.
* `device_time` / `time_stamp` are plant-local `yyyyMMddHHmmss` (notes §5.3): read in the
  device's IANA zone (`Device.timezone`, the source's configured `timezone:`), with the
  autumn repeated hour and the spring gap handled (`local_candidates`).

`docs/vendors/sungrow.md` lists every row of these tables; a test holds the two together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any

from collector.log import get_logger
from collector.schema.mapping import (
    FieldMap,
    MappingStats,
    MappingTable,
    Row,
    SplitMap,
    TimeParseError,
    apply,
    as_number,
    parse_zone,
    to_utc_seconds,
)
from collector.schema.plausible import Memory
from collector.schema.point import Point
from collector.vendors.base import Device, load_saved, request_object
from collector.vendors.sungrow.codes import VENDOR, unwrap
from collector.vendors.sungrow.responses import (
    DayRequest,
    FaultRecord,
    MinuteRow,
    PlantRecord,
    read_day,
    read_day_request,
    read_faults,
    read_minute,
    read_plants,
    read_realtime,
)

_log = get_logger("collector.vendors.sungrow.mapping")

PV_INVERTER = 1
METER = 7
PLANT = 11
ESS = 14
#: Device types with a mapping (doc Appendix 1): PV inverter, meter, plant, energy storage /
#: hybrid. Others (43 battery, 22 communication module, …) are ignored.
DEVICE_TYPES: tuple[int, ...] = (PV_INVERTER, ESS, METER, PLANT)

# -- the vendor's resolution (issue #7 §3) -------------------------------------------------------

#: Realtime and minute values are strings with one decimal in every sample (doc §2.6.5
#: `"190970.0"`, `"493.6"`, `"8.4"`, `"51.1"`, `"20100.0"`; doc §2.7.5 `"2262800.0"`; notes
#: §5.2 `"108500.0"`): 0.1 of the base unit.
STEP = "0.1"
#: Ratios with three decimals: SOC `0.791` (notes §5.6), power factor `"0.999"` (doc §2.6.5).
#: Ratios (SOC / SOH fractions, the power factor) carry three decimals (`"0.999"`, `0.791`).
RATIO_STEP = "0.001"
#: Frequencies: `"499.9"` in 0.1 Hz (doc §2.6.5) is 0.01 Hz; the simulator sends the ESS and
#: meter frequencies with two decimals.
HZ_STEP = "0.01"
#: Day / month / year values carry four decimals, `"371600.0000"` (notes §5.2, CN-doc).
DAY_STEP = "0.0001"


def _g(pid: int, target: str, unit: str | None, quantum: str = STEP) -> FieldMap:
    return FieldMap(f"p{pid}", target, unit, "gauge", quantum=quantum)


def _c(pid: int, target: str, quantum: str = STEP) -> FieldMap:
    return FieldMap(f"p{pid}", target, "Wh", "counter", quantum=quantum)


def _split(pid: int, positive: str, negative: str) -> SplitMap:
    return SplitMap(f"p{pid}", positive, negative, "W", quantum=STEP)


# -- running state (p29, p13146) → state -----------------------------------------------------------

#: Running-state words of p29 / p13146 → `state`. The notes do not fix the values; the
#: simulator sends Sungrow's Modbus work-state words in decimal (its **Decision**), and the
#: table holds every word of that register (Sungrow string-inverter protocol, register
#: 5038, as OpenEMS's Sungrow `WorkState` lists them).
STATE_OF: Mapping[int, str] = {
    0x0000: "normal",  # Run
    0x8000: "permanent_fault",  # Stop: does not start by itself (the simulator's permanent fault)
    0x1300: "permanent_fault",  # Key stop
    0x1500: "permanent_fault",  # Emergency stop
    0x1400: "standby",  # Standby
    0x1200: "starting",  # Initial standby (the simulator's "starting")
    0x1600: "starting",  # Starting
    0x9100: "normal",  # Alarm run: feeds in with an alarm
    0x8100: "normal",  # Derating run
    0x8200: "normal",  # Dispatch run
    0x5500: "fault",  # Fault
    0x2500: "fault",  # Communicate fault
}

#: The vendor's word for each code of `STATE_OF` (for the docs page).
STATE_WORDS: Mapping[int, str] = {
    0x0000: "Run",
    0x8000: "Stop",
    0x1300: "Key stop",
    0x1500: "Emergency stop",
    0x1400: "Standby",
    0x1200: "Initial standby",
    0x1600: "Starting",
    0x9100: "Alarm run",
    0x8100: "Derating run",
    0x8200: "Dispatch run",
    0x5500: "Fault",
    0x2500: "Communicate fault",
}


def state_word(value: Any) -> str:
    """A running-state value → the normalized state word; a code not in the table → `unknown`."""
    number = as_number(value)
    if number is None or not number.is_integer():
        raise ValueError(f"not a whole number: {value!r}")
    return STATE_OF.get(int(number), "unknown")


def _state_rows(pid: int) -> tuple[FieldMap, FieldMap]:
    return (
        FieldMap(f"p{pid}", "status_code", kind="code"),
        FieldMap(f"p{pid}", "state", kind="text", transform=state_word),
    )


_ABC = ("a", "b", "c")

# -- device type 1: PV inverter (notes §6.1) -------------------------------------------------------

#: MPPT n → (voltage point, current point) (notes §6.1: MPPT1..3 p5/p6 … p9/p10, 4..10 p45/p46 … p57/p58).
PV_MPPT: tuple[tuple[int, int], ...] = (
    (5, 6), (7, 8), (9, 10), (45, 46), (47, 48), (49, 50), (51, 52), (53, 54), (55, 56), (57, 58),
)  # fmt: skip
#: PV n power points (notes §6.1: PV1..3 p11-p13, PV4..10 p59-p65).
PV_POWER: tuple[int, ...] = (11, 12, 13, 59, 60, 61, 62, 63, 64, 65)

PV_ROWS: tuple[Row, ...] = (
    _g(14, "pv_power_w", "W"),
    *(
        row
        for n, (v, a) in enumerate(PV_MPPT, 1)
        for row in (_g(v, f"pv{n}_voltage_v", "V"), _g(a, f"pv{n}_current_a", "A"))
    ),
    *(_g(p, f"pv{n}_power_w", "W") for n, p in enumerate(PV_POWER, 1)),
    _g(24, "ac_power_w", "W"),
    _g(25, "reactive_power_var", "var"),
    FieldMap("p26", "power_factor", quantum=RATIO_STEP),  # "0.999" (doc §2.6.5)
    _g(27, "grid_frequency_hz", "Hz", HZ_STEP),  # 0.1 Hz on some paths (notes §5.7): see unit_of
    *(_g(18 + i, f"phase_{x}_voltage_v", "V") for i, x in enumerate(_ABC)),
    *(_g(21 + i, f"phase_{x}_current_a", "A") for i, x in enumerate(_ABC)),
    _g(4, "inverter_temperature_c", "°C"),
    _c(1, "yield_energy_today_wh"),
    _c(2, "yield_energy_total_wh"),
    *_state_rows(29),
)
PV_TABLE = MappingTable("inverter", PV_ROWS)

# -- device type 14: energy storage system / hybrid inverter (notes §6.2) --------------------------

ESS_MPPT: tuple[tuple[int, int], ...] = ((13001, 13002), (13105, 13106), (13107, 13108), (13109, 13110))

ESS_ROWS: tuple[Row, ...] = (
    _g(13003, "pv_power_w", "W"),
    *(
        row
        for n, (v, a) in enumerate(ESS_MPPT, 1)
        for row in (_g(v, f"pv{n}_voltage_v", "V"), _g(a, f"pv{n}_current_a", "A"))
    ),
    _g(13011, "ac_power_w", "W"),
    _g(13119, "load_power_w", "W"),
    # notes §6.2: non-negative pairs ("all in W and >= 0", InkyPi), not one signed value
    _g(13149, "grid_import_power_w", "W"),
    _g(13121, "grid_export_power_w", "W"),
    _g(13126, "battery_charge_power_w", "W"),
    _g(13150, "battery_discharge_power_w", "W"),
    # notes §5.6: fractions 0–1 ("0.021 means 2.1%")
    FieldMap("p13141", "battery_soc_pct", "fraction", quantum=RATIO_STEP),
    FieldMap("p13142", "battery_soh_pct", "fraction", quantum=RATIO_STEP),
    _g(13138, "battery_voltage_v", "V"),
    _g(13139, "battery_current_a", "A"),  # positive = charging (the simulator's Decision)
    _g(13143, "battery_temperature_c", "°C"),
    _g(13012, "reactive_power_var", "var"),
    FieldMap("p13013", "power_factor", quantum=RATIO_STEP),
    _g(13007, "grid_frequency_hz", "Hz", HZ_STEP),
    *(_g(13157 + i, f"phase_{x}_voltage_v", "V") for i, x in enumerate(_ABC)),
    *(_g(13008 + i, f"phase_{x}_current_a", "A") for i, x in enumerate(_ABC)),
    _g(13019, "inverter_temperature_c", "°C"),
    # Backup (EPS) port: power A/B/C/total p18065-p18068, currents p18062-p18064, voltages
    # p18103-p18105 (notes §6.2).
    _g(18068, "eps_power_w", "W"),
    *(_g(18065 + i, f"eps_phase_{x}_power_w", "W") for i, x in enumerate(_ABC)),
    *(_g(18062 + i, f"eps_phase_{x}_current_a", "A") for i, x in enumerate(_ABC)),
    *(_g(18103 + i, f"eps_phase_{x}_voltage_v", "V") for i, x in enumerate(_ABC)),
    # "Daily / Total PV Yield": PV (DC) generation, not AC output (notes §6.2)
    _c(13112, "pv_energy_today_wh"),
    _c(13134, "pv_energy_total_wh"),
    _c(13148, "grid_import_energy_total_wh"),
    _c(13125, "grid_export_energy_total_wh"),
    _c(13034, "battery_charge_energy_total_wh"),
    _c(13035, "battery_discharge_energy_total_wh"),
    _c(13130, "load_energy_total_wh"),
    *_state_rows(13146),
)
ESS_TABLE = MappingTable("inverter", ESS_ROWS)

# -- device type 7: meter (notes §6.4) -------------------------------------------------------------

METER_ROWS: tuple[Row, ...] = (
    # notes §6.4 (ES-php, verified live): negative = exporting, positive = importing
    _split(8018, "grid_import_power_w", "grid_export_power_w"),
    # phase powers p8076-p8078: the same convention as p8018 (assumed; notes §6.4 gives no sign)
    *(
        _split(8076 + i, f"grid_phase_{x}_import_power_w", f"grid_phase_{x}_export_power_w")
        for i, x in enumerate(_ABC)
    ),
    *(_g(8000 + i, f"phase_{x}_voltage_v", "V") for i, x in enumerate(_ABC)),
    *(_g(8006 + i, f"phase_{x}_current_a", "A") for i, x in enumerate(_ABC)),
    _g(8064, "grid_frequency_hz", "Hz", HZ_STEP),
    _c(8030, "grid_import_energy_total_wh"),  # forward active energy
    _c(8031, "grid_export_energy_total_wh"),  # reverse active energy
)
METER_TABLE = MappingTable("inverter", METER_ROWS)

# -- device type 11: the plant, `<ps_id>_11_0_0` (notes §6.3) → `site` -----------------------------

PLANT_ROWS: tuple[Row, ...] = (
    _g(83033, "power_w", "W"),
    _c(83022, "yield_energy_today_wh"),
    _c(83024, "yield_energy_total_wh"),
)
PLANT_TABLE = MappingTable("site", PLANT_ROWS)

#: The table of each device type's realtime and minute points.
LIVE_TABLES: Mapping[int, MappingTable] = {
    PV_INVERTER: PV_TABLE,
    ESS: ESS_TABLE,
    METER: METER_TABLE,
    PLANT: PLANT_TABLE,
}

#: Points of the notes' tables deliberately not written, by device type, and why (the docs
#: page lists them too). They are not asked for.
NOT_WRITTEN: Mapping[int, Mapping[str, str]] = {
    PV_INVERTER: {
        "p87": "monthly yield: the month's total is the `energy` point (period=month)",
        "p88": "yearly yield: the year's total is the `energy` point (period=year)",
        "p43": "apparent power (VA): no schema field",
        "p15": "line voltage A-B: the phase voltages are written",
        "p16": "line voltage B-C: the phase voltages are written",
        "p17": "line voltage C-A: the phase voltages are written",
        "p33…p38": "module temperatures: no schema field",
        "p70…p85, p92, p93, p96…p113": "string currents / voltages: the MPPT inputs are written as pv{N}",
        "p94": "insulation resistance (kΩ): no schema field",
        "p95": "bus voltage: no schema field",
        "p304": "a fault flag (1 / 0), not a code: `state` comes from p29, codes from getFaultAlarmInfo",
        "p3": "grid-connected time (h): no schema field",
        "p7356": "running time (h): no schema field",
    },
    ESS: {
        "p13140": "battery capacity (Wh): a property, not the energy left (no schema field)",
        "p13018": "apparent power (VA): no schema field",
        "p13147": "purchased energy today: the day's total is the `energy` point (period=day)",
        "p13122": "feed-in energy today: as above",
        "p13028": "battery charge today: as above",
        "p13029": "battery discharge today: as above",
        "p13199": "load consumption today: as above",
        "p13173, p13175": "PV-only feed-in today / total: no schema field",
        "p13174, p13176": "battery charge from PV today / total: no schema field",
        "p13116, p13137, p13118": "direct self-consumption today / total / year: no schema field",
        "p13144, p13172": "self-consumption / self-sufficiency rate: derived, no schema field",
        "p18108…p18110": "meter phase voltages seen by the inverter: the inverter's own are written",
    },
    METER: {
        "p8062": "forward energy today: the day's total is the `energy` point (period=day)",
        "p8063": "reverse energy today: as above",
    },
    PLANT: {
        "p83067, p83002": "PV / inverter AC power of the plant: each device's own point carries it",
        "p83106, p83052": "plant load power: the devices' points carry it",
        "p83549": "plant grid power: sign undocumented (notes §6.3); the meter's p8018 is written",
        "p83252, p83129, p83334": "plant battery SOC: the ESS's p13141 is written",
        "p83238, p83326": "plant storage power: sign undocumented (notes §6.3)",
        "p83102, p83105, p83072, p83075, p83118, p83124": "plant grid / load energy: no `site` field",
        "p83097, p83100": "direct consumption: no schema field",
        "p83241…p83244": "plant battery energy: no `site` field",
        "p83016, p83017": "ambient / module temperature: no `site` field",
    },
}

# -- getDevicePointsDayMonthYearDataList → `energy` (notes §5.9) -----------------------------------


def _e(pid: int, target: str) -> FieldMap:
    return FieldMap(f"p{pid}", target, "Wh", "counter", quantum=DAY_STEP)


#: Daily counters whose day / month / year values are energy in the period (notes §5.9: the
#: peak of a daily counter on a day is its day total; the total of a month or year is the
#: period's energy). Lifetime counters are not asked for: their "total" is a level.
DAY_TABLES: Mapping[int, MappingTable] = {
    PV_INVERTER: MappingTable("energy", (_e(1, "yield_wh"),)),
    ESS: MappingTable(
        "energy",
        (
            _e(13112, "pv_wh"),
            _e(13147, "grid_import_wh"),
            _e(13122, "grid_export_wh"),
            _e(13028, "battery_charge_wh"),
            _e(13029, "battery_discharge_wh"),
            _e(13199, "load_wh"),
        ),
    ),
    METER: MappingTable("energy", (_e(8062, "grid_import_wh"), _e(8063, "grid_export_wh"))),
    PLANT: MappingTable(
        "energy",
        (
            _e(83022, "yield_wh"),
            _e(83102, "grid_import_wh"),
            _e(83072, "grid_export_wh"),
            _e(83243, "battery_charge_wh"),
            _e(83244, "battery_discharge_wh"),
            _e(83118, "load_wh"),
        ),
    ),
}

#: `query_type` → the `period` tag and the `time_stamp` format (doc §2.8.3).
PERIODS: Mapping[int, tuple[str, str]] = {1: ("day", "%Y%m%d"), 2: ("month", "%Y%m"), 3: ("year", "%Y")}


def day_data_type(query_type: int) -> str:
    """The `data_type` to ask for and read: `"2"` (peak) for days, `"4"` (total) for months and
    years (doc §2.8.3 "When query data in days, data_type is 2 … in months … 4"; notes §5.9)."""
    return "2" if query_type == 1 else "4"


# -- getPowerStationList → `site` (notes §5.5) -----------------------------------------------------

PLANT_LIST_TABLE = MappingTable(
    "site",
    (
        FieldMap("curr_power", "power_w", "W"),
        FieldMap("today_energy", "yield_energy_today_wh", "Wh", "counter"),
        FieldMap("total_energy", "yield_energy_total_wh", "Wh", "counter"),
        FieldMap("total_capcity", "capacity_w", "W"),  # sic; sent in kWp (doc §2.3.5)
    ),
)

#: Peak-power units of `total_capcity` (doc §2.3.5 `"kWp"`) → the power unit they stand for.
PEAK_UNITS: Mapping[str, str] = {"wp": "W", "kwp": "kW", "mwp": "MW"}

# -- getFaultAlarmInfo → `fault` (notes §5.10) -----------------------------------------------------

FAULT_TABLE = MappingTable(
    "fault",
    (
        FieldMap("fault_type_code", "code", kind="code"),
        FieldMap("fault_name", "message", kind="text"),
        FieldMap("fault_desc", "message", kind="text", alternative=True),
        FieldMap("fault_level", "level", kind="code"),
        FieldMap("active", "active", kind="code"),
    ),
)

#: The inverter fields a caller can add from getFaultAlarmInfo's open records (`faults=` of
#: `map_realtime`): how many are open for the device, and the newest one's code.
FAULT_STATE_TABLE = MappingTable(
    "inverter",
    (
        FieldMap("open_faults", "fault_count", kind="code"),
        FieldMap("newest_fault_type_code", "fault_code", kind="code"),
    ),
)

#: `process_status` values of a closed record (doc §2.9.4: 4 resolved, 9 closed).
CLOSED_STATUS: frozenset[int] = frozenset({4, 9})

TABLES: tuple[MappingTable, ...] = (
    PV_TABLE,
    ESS_TABLE,
    METER_TABLE,
    PLANT_TABLE,
    *DAY_TABLES.values(),
    PLANT_LIST_TABLE,
    FAULT_TABLE,
    FAULT_STATE_TABLE,
)
"""Every mapping table (the README reads units and quanta from them)."""


# -- devices ---------------------------------------------------------------------------------------


def ps_key_type(ps_key: str) -> int | None:
    """The device type in a ps_key `<ps_id>_<type>_<code>_<channel>` (notes §5.4); None if none."""
    parts = ps_key.split("_")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def device_type(device: Device, ps_key: str | None = None) -> int | None:
    """`Device.meta["device_type"]` (an int, or digits), else the type in its ps_key."""
    t = device.meta.get("device_type")
    if isinstance(t, int) and not isinstance(t, bool):
        return t
    if isinstance(t, str) and t.strip().isdigit():
        return int(t)
    key = device.meta.get("ps_key")
    key = key if isinstance(key, str) else ps_key
    return ps_key_type(key) if key else None


def device_for(
    ps_key: str,
    *,
    sn: str | None = None,
    device_type: int | None = None,
    timezone: str | None = None,
    name: str = "",
) -> Device:
    """A `Device` the mappers read: tag SN else ps_key, site = the ps_id, meta
    `device_type` (else from the ps_key) and `ps_key` (schema.md: Sungrow's device tag)."""
    dtype = device_type if device_type is not None else ps_key_type(ps_key)
    kind = {METER: "meter", PLANT: "plant"}.get(dtype or 0, "inverter")
    meta: dict[str, object] = {"ps_key": ps_key}
    if dtype is not None:
        meta["device_type"] = dtype
    return Device(sn or ps_key, ps_key.split("_")[0], kind, timezone, name, meta)


def device_tags(source: str, device: Device) -> dict[str, str]:
    return {"vendor": VENDOR, "source": source, "site": device.site, "device": device.sn}


def site_tags(source: str, site: str) -> dict[str, str]:
    return {"vendor": VENDOR, "source": source, "site": site}


def _tags(table: MappingTable, source: str, device: Device) -> dict[str, str]:
    """The plant's `site` point carries no device tag; the others carry the device's."""
    return site_tags(source, device.site) if table.measurement == "site" else device_tags(source, device)


# -- local times (notes §5.3) ----------------------------------------------------------------------

#: How far after `now` the later reading of a repeated hour may lie and still be taken.
FOLD_TOLERANCE = 900
_LOCAL_FORMATS = ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")


def _naive(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TimeParseError(f"not a local time: {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise TimeParseError(f"not a local time: {value!r}")
        value = int(value)  # an unquoted yyyyMMddHHmmss (notes §5.2, MLPE sample)
    text = str(value).strip()
    for fmt in _LOCAL_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise TimeParseError(f"unreadable local time {value!r}")


def local_candidates(value: Any, zone: tzinfo) -> tuple[int, int]:
    """The UTC seconds a plant-local wall-clock time can mean: (first, second).

    Equal unless the time falls in the hour the clocks repeat in autumn (then the summer
    reading first). A time in the spring gap does not exist; it is read with the offset
    before the gap, i.e. shifted forward by the gap (as `to_utc_seconds` reads naive times:
    Europe/Berlin 02:30 on 2026-03-29 → 01:30 UTC). Raises TimeParseError.
    """
    if isinstance(value, str):
        # A backfill answer repeats each time stamp for every device in it: read each once.
        return _str_candidates(value, zone)
    return _candidates(value, zone)


@lru_cache(maxsize=4096)
def _str_candidates(value: str, zone: tzinfo) -> tuple[int, int]:
    return _candidates(value, zone)


def _candidates(value: Any, zone: tzinfo) -> tuple[int, int]:
    naive = _naive(value)
    first = naive.replace(tzinfo=zone, fold=0)
    t0 = to_utc_seconds(first)
    t1 = to_utc_seconds(naive.replace(tzinfo=zone, fold=1))
    if t0 == t1 or first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return t0, t0  # unambiguous, or in the gap
    return min(t0, t1), max(t0, t1)


def local_seconds(value: Any, zone: tzinfo, *, now: float | None = None) -> int:
    """A plant-local time as UTC seconds. In the repeated hour: the later reading when it is
    not after `now` (+ `FOLD_TOLERANCE`), else — and without `now` — the earlier one."""
    first, second = local_candidates(value, zone)
    if second != first and now is not None and second <= now + FOLD_TOLERANCE:
        return second
    return first


def _zone(device: Device) -> tzinfo:
    if not device.timezone:
        raise TimeParseError("no time zone for the device")
    return parse_zone(device.timezone)


# -- value clean-up and per-value units ------------------------------------------------------------

#: Placeholders that mean "no value" (notes §5.2: `"--"`): counted as `empty`.
PLACEHOLDERS = frozenset({"--"})
#: Frequency points that may come in 0.1 Hz (notes §5.7).
FREQUENCY_POINTS = frozenset({"p27", "p13007", "p8064"})
#: A frequency above this is in 0.1 Hz (notes §5.7 suggestion: "if > 100, divide by 10").
DECIHERTZ_ABOVE = 100.0
_decihertz_logged: set[tuple[str, str]] = set()


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("" if isinstance(v, str) and v.strip() in PLACEHOLDERS else v) for k, v in values.items()}


def _frequency_unit(values: Mapping[str, Any], device: str) -> Callable[[str], str | None]:
    def unit_of(source: str) -> str | None:
        if source not in FREQUENCY_POINTS:
            return None
        number = as_number(values.get(source))
        if number is None or number <= DECIHERTZ_ABOVE:
            return None
        if (device, source) not in _decihertz_logged:  # once per device and point (notes §5.7)
            _decihertz_logged.add((device, source))
            _log.info("sungrow.frequency_decihertz", device=device, point=source, value=number)
        return "0.1Hz"

    return unit_of


def _merge(stats: MappingStats, a: Point | None, b: Point | None) -> Point | None:
    if a is None or b is None:
        return a or b
    stats.points -= 1  # two applies, one point
    return Point(a.measurement, a.tags, {**a.fields, **b.fields}, a.time)


# -- realtime --------------------------------------------------------------------------------------


def map_realtime(
    result_data: Any,
    devices: Mapping[str, Device],
    stats: MappingStats,
    *,
    source: str = "",
    now: float | None = None,
    faults: Mapping[str, Sequence[int]] | None = None,
    memory: Memory | None = None,
) -> tuple[list[Point], dict[str, int]]:
    """getDeviceRealTimeData / getPVInverterRealTimeData → points, and the newest data time
    (UTC seconds) per device tag.

    `devices`: ps_key → Device (`device_for`). Types 1, 14 and 7 give `inverter` points, the
    plant (11) a `site` point; other types are ignored. A record whose ps_key is not in
    `devices`, without a `device_time`, with an unreadable one or without a time zone is
    refused whole (`stats.drop_record`). `now` (Unix time of the call) places a
    `device_time` in the autumn's repeated hour (`local_seconds`). `faults` (from
    `active_faults`, device tag → open fault codes): when given, each inverter (types 1 and
    14) also gets `fault_count` (0 when none is open) and `fault_code` (the newest open
    one). `memory`: one per source, for the plausibility checks that compare records.
    """
    answer = read_realtime(result_data, stats)
    points: list[Point] = []
    latest: dict[str, int] = {}
    for rec in answer.records:
        device = devices.get(rec.ps_key)
        if device is None:
            stats.drop_record(rec.ps_key, "not_requested", "a device the request did not name")
            continue
        dtype = device_type(device, rec.ps_key)
        table = LIVE_TABLES.get(dtype or 0)
        if table is None:
            continue  # a device type without a mapping (battery 43, logger 22, …)
        ts = _record_time(rec.device_time, device, stats, now=now)
        if ts is None:
            continue
        values = _clean(rec.values)
        unit_of = _frequency_unit(values, device.sn)
        tags = _tags(table, source, device)
        point = apply(table, values, tags=tags, time=ts, stats=stats, unit_of=unit_of, memory=memory)
        if faults is not None and dtype in (PV_INVERTER, ESS):
            point = _merge(stats, point, _fault_state(faults.get(device.sn, ()), tags, ts, stats))
        if point is not None:
            points.append(point)
            # Only a record that gave a point counts as seen: an answer of placeholders
            # ("--" everywhere) must not make the same bucket's real values look old.
            latest[device.sn] = max(latest.get(device.sn, ts), ts)
    return points, latest


def _record_time(value: Any, device: Device, stats: MappingStats, *, now: float | None) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        stats.drop_record(device.sn, "no_time", "no device_time in the record")
        return None
    try:
        zone = _zone(device)
    except TimeParseError as err:
        stats.drop_record(device.sn, "bad_time", f"no usable time zone ({err})")
        return None
    try:
        return local_seconds(value, zone, now=now)
    except TimeParseError:
        stats.drop_record(device.sn, "bad_time", f"unreadable data time {value!r}")
        return None


def _fault_state(codes: Sequence[int], tags: Mapping[str, str], ts: int, stats: MappingStats) -> Point | None:
    raw: dict[str, Any] = {"open_faults": len(codes)}
    if codes:
        raw["newest_fault_type_code"] = codes[0]
    return apply(FAULT_STATE_TABLE, raw, tags=tags, time=ts, stats=stats)


# -- minute history --------------------------------------------------------------------------------


def map_minute(
    result_data: Any,
    devices: Mapping[str, Device],
    stats: MappingStats,
    *,
    source: str = "",
    memory: Memory | None = None,
) -> list[Point]:
    """getDevicePointMinuteDataList → points with the live tables (one series with live).

    Rows come oldest first per ps_key; a `time_stamp` in the autumn's repeated hour is read
    as its first occurrence unless the series has already passed it, then as the second
    (the gateway lists both passes: the simulator does, notes §5.3). Rows without some
    points are fine (doc §2.7.1: points without data are omitted — counted as missing).
    """
    points: list[Point] = []
    for series in read_minute(result_data, stats):
        device = devices.get(series.ps_key)
        if device is None:
            stats.drop_record(series.ps_key, "not_requested", "a device the request did not name")
            continue
        dtype = device_type(device, series.ps_key)
        table = LIVE_TABLES.get(dtype or 0)
        if table is None:
            continue
        try:
            zone = _zone(device)
        except TimeParseError as err:
            stats.drop_record(device.sn, "bad_time", f"no usable time zone ({err})")
            continue
        tags = _tags(table, source, device)
        for row, ts in _row_times(series.rows, zone, device, stats):
            values = _clean(row.values)
            point = apply(
                table, values, tags=tags, time=ts, stats=stats, unit_of=_frequency_unit(values, device.sn),
                memory=memory,
            )  # fmt: skip
            if point is not None:
                points.append(point)
    return points


def _row_times(
    rows: Iterable[MinuteRow], zone: tzinfo, device: Device, stats: MappingStats
) -> list[tuple[MinuteRow, int]]:
    out: list[tuple[MinuteRow, int]] = []
    prev: int | None = None
    for row in rows:
        if row.time_stamp is None or (isinstance(row.time_stamp, str) and not row.time_stamp.strip()):
            stats.drop_record(device.sn, "no_time", "a row without time_stamp")
            continue
        try:
            first, second = local_candidates(row.time_stamp, zone)
        except TimeParseError:
            stats.drop_record(device.sn, "bad_time", f"unreadable time_stamp {row.time_stamp!r}")
            continue
        ts = second if second != first and prev is not None and prev >= first else first
        prev = ts if prev is None else max(prev, ts)
        out.append((row, ts))
    return out


# -- day / month / year ----------------------------------------------------------------------------


def period_start(label: Any, query_type: int, zone: tzinfo) -> int:
    """The start of a day (`yyyyMMdd`), month (`yyyyMM`) or year (`yyyy`) in the site zone, as
    UTC seconds (a midnight the clocks repeat: its first occurrence). Raises TimeParseError."""
    fmt = PERIODS[query_type][1]
    text = str(label).strip() if isinstance(label, str | int) and not isinstance(label, bool) else ""
    try:
        naive = datetime.strptime(text, fmt)
    except ValueError:
        raise TimeParseError(f"time_stamp {label!r} is not {fmt}") from None
    if len(text) != {1: 8, 2: 6, 3: 4}[query_type]:
        raise TimeParseError(f"time_stamp {label!r} is not {fmt}")
    return local_candidates(naive.strftime("%Y%m%d%H%M%S"), zone)[0]


def map_day(
    result_data: Any,
    request: DayRequest | Mapping[str, Any] | str,
    devices: Mapping[str, Device],
    stats: MappingStats,
    *,
    source: str = "",
) -> list[Point]:
    """getDevicePointsDayMonthYearDataList → `energy` points, `period` from the request's
    `query_type`, timestamped at the start of the period in the site zone (UTC seconds).

    Reads `data_type` `"2"` for days and `"4"` for months and years (`day_data_type`);
    ValueError when the request did not ask for it (the answer would be a peak, not a total).
    """
    req = request if isinstance(request, DayRequest) else read_day_request(request)
    want = day_data_type(req.query_type)
    if req.data_types and want not in req.data_types:
        raise ValueError(
            f"query_type {req.query_type} needs data_type {want} (asked: {','.join(req.data_types)})"
        )
    period = PERIODS[req.query_type][0]
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for series in read_day(result_data, stats):
        grouped.setdefault(series.ps_key, {})
        for row in series.rows:
            label = str(row.time_stamp)
            raw = grouped[series.ps_key].setdefault(label, {})
            if want in row.values:
                raw[series.point] = row.values[want]
    points: list[Point] = []
    for ps_key, by_label in grouped.items():
        device = devices.get(ps_key)
        if device is None:
            stats.drop_record(ps_key, "not_requested", "a device the request did not name")
            continue
        table = DAY_TABLES.get(device_type(device, ps_key) or 0)
        if table is None:
            continue
        try:
            zone = _zone(device)
        except TimeParseError as err:
            stats.drop_record(device.sn, "bad_time", f"no usable time zone ({err})")
            continue
        tags = {**device_tags(source, device), "period": period}
        timed: list[tuple[int, dict[str, Any]]] = []
        for label, raw in by_label.items():
            try:
                timed.append((period_start(label, req.query_type, zone), raw))
            except TimeParseError:
                stats.drop_record(device.sn, "bad_time", f"unreadable time_stamp {label!r}")
        for ts, raw in sorted(timed, key=lambda x: x[0]):
            point = apply(table, raw, tags=tags, time=ts, stats=stats)
            if point is not None:
                points.append(point)
    return points


# -- faults ----------------------------------------------------------------------------------------


def _whole(value: Any) -> int | None:
    number = as_number(value)
    return int(number) if number is not None and number.is_integer() else None


def is_closed(rec: FaultRecord) -> bool:
    """Closed: an `over_time` (restore time) is given, or `process_status` 4 resolved / 9 closed."""
    over = rec.over_time
    if isinstance(over, str) and over.strip():
        return True
    return _whole(rec.process_status) in CLOSED_STATUS


@dataclass
class _FaultDevices:
    devices: Mapping[str, Device]
    zones: Mapping[str, str] | str
    by_ps_id: dict[str, Device] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for d in self.devices.values():
            if device_type(d) == PLANT:
                self.by_ps_id.setdefault(d.site, d)

    def device(self, rec: FaultRecord) -> Device | None:
        """The record's device: by ps_key, else by ps_id (a plant device), else one made from the
        row (tag ps_key, site ps_id; zone from `zones`)."""
        for key in (rec.ps_key, rec.ps_id):
            if key and key in self.devices:
                return self.devices[key]
        if rec.ps_id and rec.ps_id in self.by_ps_id:
            return self.by_ps_id[rec.ps_id]
        key = rec.ps_key or (f"{rec.ps_id}_11_0_0" if rec.ps_id else None)
        if key is None:
            return None
        site = rec.ps_id or key.split("_")[0]
        zone = self.zones if isinstance(self.zones, str) else self.zones.get(site)
        return device_for(key, timezone=zone)

    def zone(self, device: Device) -> tzinfo:
        name = device.timezone
        if not name:
            name = self.zones if isinstance(self.zones, str) else self.zones.get(device.site)
        if not name:
            raise TimeParseError(f"no time zone for site {device.site}")
        return parse_zone(name)


def map_faults(
    result_data: Any,
    devices: Mapping[str, Device],
    tz_of_site: Mapping[str, str] | str,
    stats: MappingStats,
    *,
    source: str = "",
) -> list[Point]:
    """getFaultAlarmInfo rows → `fault` points: `code` = fault_type_code, `message` =
    fault_name (else fault_desc), `level` = fault_level, `active` 1 at `create_time`; a
    closed record also gets `active` 0 at `over_time` (plant-local `yyyy-MM-dd HH:mm:ss`).

    `devices`: ps_key (or ps_id) → Device; a row of a device not in it is written under its
    ps_key. `tz_of_site`: ps_id → IANA zone, for devices without one (or one zone for all).
    Several points of one device at one second are written one second apart, ordered by
    the record's unique `fault_code` (the `fault` series has no per-code tag).
    """
    lookup = _FaultDevices(devices, tz_of_site)
    pending: list[tuple[Device, int, str, dict[str, Any]]] = []
    for rec in read_faults(result_data, stats).records:
        device = lookup.device(rec)
        if device is None:
            stats.drop_record("?", "bad_record", "a fault row without ps_key or ps_id")
            continue
        try:
            zone = lookup.zone(device)
        except TimeParseError as err:
            stats.drop_record(device.sn, "bad_time", str(err))
            continue
        if rec.create_time in (None, ""):
            stats.drop_record(device.sn, "no_time", "a fault without create_time")
            continue
        try:
            start = local_candidates(rec.create_time, zone)[0]
        except TimeParseError:
            stats.drop_record(device.sn, "bad_time", f"unreadable create_time {rec.create_time!r}")
            continue
        base = {
            "fault_type_code": rec.type_code,
            "fault_name": rec.name,
            "fault_desc": rec.desc,
            "fault_level": rec.level,
        }
        closed = is_closed(rec)
        end: int | None = None
        if closed and isinstance(rec.over_time, str) and rec.over_time.strip():
            try:
                end = local_candidates(rec.over_time, zone)[0]
            except TimeParseError:
                end = None
        if closed and end is None:
            stats.skip("no_time", "over_time")  # closed, end unknown: the start says closed
        uid = rec.uid or ""
        pending.append((device, start, uid, {**base, "active": 0 if closed and end is None else 1}))
        if end is not None:
            pending.append((device, max(end, start), uid + "~end", {**base, "active": 0}))
    points: list[Point] = []
    taken: dict[tuple[str, int], int] = {}
    for device, ts, _, raw in sorted(pending, key=lambda p: (p[0].sn, p[1], p[2])):
        offset = taken.get((device.sn, ts), 0)
        taken[(device.sn, ts)] = offset + 1
        point = apply(FAULT_TABLE, raw, tags=device_tags(source, device), time=ts + offset, stats=stats)
        if point is not None:
            points.append(point)
    return points


def active_faults(
    result_data: Any, devices: Mapping[str, Device], stats: MappingStats | None = None
) -> dict[str, tuple[int, ...]]:
    """Device tag → the `fault_type_code`s of its open getFaultAlarmInfo records, newest first.

    For `map_realtime(…, faults=…)` (`fault_count`, `fault_code`). Give it every page of an
    open-fault query (`process_status` 8): merge the pages' `pageList`s into one
    `{"pageList": […]}`. A device with no open record is absent (its count is 0).
    """
    lookup = _FaultDevices(devices, "UTC")
    found: dict[str, list[tuple[str, int]]] = {}
    for rec in read_faults(result_data, stats if stats is not None else MappingStats()).records:
        code = _whole(rec.type_code)
        device = lookup.device(rec)
        if device is None or code is None or is_closed(rec):
            continue
        found.setdefault(device.sn, []).append((str(rec.create_time or ""), code))
    # newest first; records of one second keep the gateway's order (a stable sort)
    return {
        sn: tuple(c for _, c in sorted(rows, key=lambda r: r[0], reverse=True)) for sn, rows in found.items()
    }


# -- plant list ------------------------------------------------------------------------------------


def _plant_unit(unit: str | None) -> str:
    if unit is None or not unit.strip():
        return "(none)"  # an auto-scaled value without its unit cannot be read (notes §5.5)
    return PEAK_UNITS.get(unit.strip().lower(), unit)


def map_plants(
    page_list: Any, stats: MappingStats, *, source: str = "", now: float | None = None
) -> list[Point]:
    """getPowerStationList rows (its `pageList`, or the whole `result_data`) → `site` points.

    Each `{value, unit}` is converted with its own unit (W/kW/MW, Wh/kWh/MWh, 度 = kWh,
    万度 = 10 MWh; kWp = kW for the capacity); another unit, or none, leaves the value out
    (counted as `unit`). Each value is timestamped with its own update time (ISO-8601 with
    offset, doc §2.3.4); the capacity, which has none in the samples, with the row's newest
    one. A row without any update time is refused whole; with `now`, so is a value whose
    update time lies more than an hour after it.
    """
    points: list[Point] = []
    for rec in read_plants(page_list, stats):
        groups = _plant_groups(rec, stats, now)
        if groups is None:
            continue
        units = {name: _plant_unit(m.unit) for name, m in rec.measures.items()}
        for ts, names in sorted(groups.items()):
            raw = {n: rec.measures[n].value for n in names}
            point = apply(
                PLANT_LIST_TABLE, raw, tags=site_tags(source, rec.ps_id), time=ts, stats=stats,
                unit_of=units.get,
            )  # fmt: skip
            if point is not None:
                points.append(point)
    return points


def _plant_groups(rec: PlantRecord, stats: MappingStats, now: float | None) -> dict[int, list[str]] | None:
    fallback: tzinfo | None = None
    if rec.time_zone:
        try:
            fallback = parse_zone(rec.time_zone)  # a fixed GMT±h, for an update time without offset
        except TimeParseError:
            fallback = None
    times: dict[str, int] = {}
    for name, text in rec.update_times.items():
        try:
            ts = to_utc_seconds(text, fallback)
        except TimeParseError:
            stats.skip("bad_time", f"{name} update time")
            continue
        if now is not None and ts > now + 3600:
            stats.skip("bad_time", f"{name} update time")
            continue
        times[name] = ts
    if not times:
        stats.drop_record(rec.ps_id, "no_time", "no usable update time in the plant row")
        return None
    newest = max(times.values())
    groups: dict[int, list[str]] = {}
    for name in rec.measures:
        if name in times:
            groups.setdefault(times[name], []).append(name)
        elif name == "total_capcity":
            groups.setdefault(newest, []).append(name)  # a property: no update time of its own
        else:
            stats.skip("no_time", name)
    return groups


# -- saved-response parsers (`solar-collector parse`) ----------------------------------------------


def result_of(text: str, *, endpoint: str) -> Any:
    """`result_data` of a saved answer: the envelope's `result_code` is checked
    (`codes.unwrap`); a bare `result_data` object is accepted too."""
    body = load_saved(text, title="iSolarCloud", vendor=VENDOR, endpoint=endpoint)
    if isinstance(body, dict) and "result_code" in body:
        return unwrap(200, text, endpoint=endpoint, now=0.0, content_type="application/json")
    return body


def _requested(request: str | None) -> set[str] | None:
    """The ps_keys a saved request body names (`ps_key_list`); None: any."""
    if request is None:
        return None
    body = request_object(request)
    keys = body.get("ps_key_list")
    if isinstance(keys, str):
        keys = keys.split(",")
    return {str(k).strip() for k in keys} if isinstance(keys, list) else None


def _devices(
    keys: Iterable[tuple[str, str | None]], tz: str | None, wanted: set[str] | None
) -> dict[str, Device]:
    return {key: device_for(key, sn=sn, timezone=tz) for key, sn in keys if wanted is None or key in wanted}


def parse_realtime(
    raw_text: str,
    *,
    tz: str | None = "UTC",
    request: str | None = None,
    source: str = "",
    stats: MappingStats | None = None,
) -> list[Point]:
    """A saved getDeviceRealTimeData / getPVInverterRealTimeData answer → points
    (`parse --endpoint realtime`). Devices come from the answer's ps_keys (type from the
    ps_key, tag device_sn else ps_key); with `request`, devices it did not name are refused."""
    stats = MappingStats() if stats is None else stats
    data = result_of(raw_text, endpoint="getDeviceRealTimeData")
    records = read_realtime(data, MappingStats()).records
    devices = _devices(((r.ps_key, r.device_sn) for r in records), tz, _requested(request))
    points, _ = map_realtime(data, devices, stats, source=source, memory=Memory())
    return points


def parse_minute(
    raw_text: str,
    *,
    tz: str | None = "UTC",
    request: str | None = None,
    source: str = "",
    stats: MappingStats | None = None,
) -> list[Point]:
    """A saved getDevicePointMinuteDataList answer → points (`parse --endpoint minute`)."""
    stats = MappingStats() if stats is None else stats
    data = result_of(raw_text, endpoint="getDevicePointMinuteDataList")
    keys = [s.ps_key for s in read_minute(data, MappingStats())]
    devices = _devices(((k, None) for k in keys), tz, _requested(request))
    return map_minute(data, devices, stats, source=source, memory=Memory())


def parse_day(
    raw_text: str,
    *,
    tz: str | None = "UTC",
    request: str | None = None,
    source: str = "",
    stats: MappingStats | None = None,
) -> list[Point]:
    """A saved getDevicePointsDayMonthYearDataList answer and its request body → `energy`
    points (`parse --endpoint day --request …`): the answer has no query_type."""
    if request is None:
        raise ValueError("a Sungrow day/month/year answer needs its request body (--request) for query_type")
    stats = MappingStats() if stats is None else stats
    data = result_of(raw_text, endpoint="getDevicePointsDayMonthYearDataList")
    keys = dict.fromkeys(s.ps_key for s in read_day(data, MappingStats()))
    wanted = set(read_day_request(request).ps_keys) or None
    devices = _devices(((k, None) for k in keys), tz, wanted)
    return map_day(data, request, devices, stats, source=source)


def parse_faults(
    raw_text: str,
    *,
    tz: str | None = "UTC",
    request: str | None = None,
    source: str = "",
    stats: MappingStats | None = None,
) -> list[Point]:
    """A saved getFaultAlarmInfo answer → `fault` points (`parse --endpoint faults`), read in `tz`."""
    stats = MappingStats() if stats is None else stats
    data = result_of(raw_text, endpoint="getFaultAlarmInfo")
    return map_faults(data, {}, tz or "UTC", stats, source=source)


PARSERS = {
    ("sungrow", "realtime"): parse_realtime,
    ("sungrow", "minute"): parse_minute,
    ("sungrow", "day"): parse_day,
    ("sungrow", "faults"): parse_faults,
}
"""`solar-collector parse --vendor sungrow --endpoint …` (for `collector.vendors.PARSERS`)."""
