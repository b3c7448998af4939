"""FoxESS → the common schema (layer 3): declarative tables and pure mappers.

Raw payload in, points out; no I/O, no clock. Unit conversion happens only in
`collector.schema.mapping.apply` (via `units.convert`): every row names the vendor's
unit, and a per-value `unit` the response carries overrides it — except where the
label is known to lie (`UNIT_OVERRIDES`).

Before a record reaches `apply` it is normalised (`normalise`), still in vendor
terms: variable names folded to the doc's spelling (`soc` → `SoC`), per-pack
battery variables (`SoC_1`, `Soc_2`, `batVolt_1` …) combined where the aggregate
is missing or 0. Where several variables can yield one field (`gridConsumptionPower`,
then the signed `meterPower`), the table lists them in order of preference and
`apply` takes the first that gives a value. Every rule names its source in the
field notes (research/foxess.md) or the doc (vendor-docs/foxess-open-api.txt).

`docs/vendors/foxess.md` lists every row of these tables; a test holds the two together.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

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
from collector.schema.plausible import CORRUPT_ABOVE, Memory, refuse_corrupt
from collector.schema.point import Point
from collector.vendors.base import request_object
from collector.vendors.foxess.codes import result_of
from collector.vendors.foxess.responses import (
    Generation,
    HistoryRecord,
    RealRecord,
    ReportRequest,
    ReportSeries,
    read_history,
    read_real,
    read_report,
    read_report_request,
)
from collector.vendors.foxess.variables import KNOWN_VARIABLES

VENDOR = "foxess"

# A value at or above CORRUPT_ABOVE (in the vendor's unit) is a corrupted register
# (research/foxess.md §4.3 (c) and §5): the shared check in collector/schema/plausible.py,
# used here as the row transform of every gauge and counter.
_ceiling = refuse_corrupt


def unmask_register(value: float) -> float:
    """TonyM / EnergyStats repair of a corrupt 0.1-kWh total: keep its low 16 bits.

    `(int(v × 10) & 0xFFFF) / 10` — right only while the true value is below 6553.6 kWh,
    which is why we apply it to hour and day report values only (`map_report`).
    """
    return (int(value * 10) & 0xFFFF) / 10


# -- runningState → state ---------------------------------------------------------------------

#: `runningState` (doc enum; research/foxess.md §4.1) → schema `state`.
STATE_OF: Mapping[int, str] = {
    160: "starting",  # self-test
    161: "standby",  # waiting (solar-only inverters go 163 → 161 at dusk: foxess-ha cd60b6e)
    162: "starting",  # checking
    163: "normal",  # on-grid
    164: "off_grid",  # off-grid (EPS)
    165: "fault",  # fault
    166: "permanent_fault",  # permanent-fault
    167: "standby",  # standby
    168: "updating",  # upgrading (firmware)
    169: "starting",  # fct: factory / function test mode — a test state like self-test
    170: "unknown",  # illegal: the inverter reports an invalid state
}


def _whole(value: Any) -> int:
    number = as_number(value)
    if number is None or not number.is_integer():
        raise ValueError(f"not a whole number: {value!r}")
    return int(number)


def state_word(value: Any) -> str:
    """`runningState` → the normalized state word; a code not in the table → `unknown`."""
    return STATE_OF.get(_whole(value), "unknown")


_FAULT_SPLIT = re.compile(r"[\s,;|]+")


def fault_codes(value: Any) -> tuple[int, ...]:
    """The active fault codes in a `currentFault` value, in order, without 0 or repeats.

    `""` means no fault (research/foxess.md §4.1). The format of an active fault was
    never captured; com.foxess accepts codes separated by `, ; |`, and so do we.
    Tokens that are not whole numbers are ignored.
    """
    if value is None or isinstance(value, bool):
        return ()
    if isinstance(value, (int, float)):
        tokens: list[str] = [str(int(value))] if float(value).is_integer() else []
    elif isinstance(value, str):
        tokens = [t for t in _FAULT_SPLIT.split(value.strip()) if t]
    else:
        return ()
    out: list[int] = []
    for token in tokens:
        number = as_number(token)
        if number is None or not number.is_integer() or number <= 0:
            continue
        if int(number) not in out:
            out.append(int(number))
    return tuple(out)


def _first_fault(value: Any) -> int | None:
    codes = fault_codes(value)
    return codes[0] if codes else None


# -- the inverter table -------------------------------------------------------------------------


#: The vendor's resolution (issue #7 §3), in the row's unit. Powers are kW with three
#: decimals (a 1-W register × 0.001: `1.8559999999999999`); counters, report and generation
#: values come from 0.1-kWh registers (research/foxess.md §5: "Report/generation/counters are
#: kWh with 0.1 kWh resolution"). Where a real answer shows a finer step, it wins:
#: `energyThroughput` 1381.765 (§5, foxessprom) → 0.001 kWh; `ResidualEnergy` is sent in
#: 0.01 kWh (§5: 236.0 "0.01kWh") → 0.01 kWh. Other rows: no step known, 12 digits.
KW_STEP = "0.001"
REGISTER_STEP = "0.1"


def _gauge(source: str, target: str, unit: str | None, quantum: str | None = None) -> FieldMap:
    if quantum is None and unit in ("kW", "kvar"):
        quantum = KW_STEP
    return FieldMap(source, target, unit, "gauge", _ceiling, quantum)


def _counter(source: str, target: str, unit: str, quantum: str = REGISTER_STEP) -> FieldMap:
    return FieldMap(source, target, unit, "counter", _ceiling, quantum)


def _split(source: str, positive: str, negative: str, *, alternative: bool = False) -> SplitMap:
    """A signed kW value split by its sign (kW with three decimals)."""
    return SplitMap(source, positive, negative, "kW", quantum=KW_STEP, alternative=alternative)


_PHASES = (("R", "a"), ("S", "b"), ("T", "c"))

INVERTER_ROWS: tuple[Row, ...] = (
    _gauge("pvPower", "pv_power_w", "kW"),
    *(
        row
        for n in range(1, 19)
        for row in (
            _gauge(f"pv{n}Volt", f"pv{n}_voltage_v", "V"),
            _gauge(f"pv{n}Current", f"pv{n}_current_a", "A"),
            _gauge(f"pv{n}Power", f"pv{n}_power_w", "kW"),
        )
    ),
    # AC output incl. battery; negative while the battery charges from the grid (§5).
    _gauge("generationPower", "ac_power_w", "kW"),
    _gauge("loadsPower", "load_power_w", "kW"),
    # Grid and battery flows, most preferred first (issue #7 §1): the direct, non-negative
    # variables, each on its own; the signed one only fills what they did not give.
    _gauge("gridConsumptionPower", "grid_import_power_w", "kW"),
    _gauge("feedinPower", "grid_export_power_w", "kW"),
    # meterPower: positive = import, negative = export (§5: equals gridConsumptionPower in
    # three fixtures, −0.588 while feedinPower 0.588 in com.foxess foxEssPointMap.js).
    _split("meterPower", "grid_import_power_w", "grid_export_power_w", alternative=True),
    # batDischargePower / batChargePower may be null while idle (§5, foxess-ha guards).
    _gauge("batDischargePower", "battery_discharge_power_w", "kW"),
    _gauge("batChargePower", "battery_charge_power_w", "kW"),
    # invBatPower: positive = discharge, negative = charge (§5: batpred, foxess-ha README,
    # foxessprom fixture invBatPower 0.473 with batDischargePower 0.473).
    _split("invBatPower", "battery_discharge_power_w", "battery_charge_power_w", alternative=True),
    _gauge("SoC", "battery_soc_pct", "%"),
    _gauge("SOH", "battery_soh_pct", "%"),
    # Inverter-side battery voltage/current: the BMS-side batCurrent is unreliable (§5).
    _gauge("invBatVolt", "battery_voltage_v", "V"),
    FieldMap("batVolt", "battery_voltage_v", "V", "gauge", _ceiling, alternative=True),  # BMS side
    # The vendor's sign is kept: positive = discharge (§5); see the docs page.
    _gauge("invBatCurrent", "battery_current_a", "A"),
    _gauge("batTemperature", "battery_temperature_c", "°C"),
    # Doc: kWh; real answers label it 0.01kWh / 0.1kWh / kWh — the per-value unit wins (§5).
    _gauge("ResidualEnergy", "battery_residual_energy_wh", "kWh", "0.01"),
    _gauge("epsPower", "eps_power_w", "kW"),
    _gauge("ReactivePower", "reactive_power_var", "kvar"),
    _gauge("PowerFactor", "power_factor", None),
    _gauge("RFreq", "grid_frequency_hz", "Hz"),
    *(_gauge(f"{p}Volt", f"phase_{x}_voltage_v", "V") for p, x in _PHASES),
    *(_gauge(f"{p}Current", f"phase_{x}_current_a", "A") for p, x in _PHASES),
    *(_gauge(f"{p}Power", f"phase_{x}_power_w", "kW") for p, x in _PHASES),
    _gauge("invTemperation", "inverter_temperature_c", "°C"),  # sic: the API's spelling
    _gauge("ambientTemperation", "ambient_temperature_c", "°C"),
    # Labelled kW in the doc; it is today's energy in kWh (§5). UNIT_OVERRIDES ignores the label.
    _counter("todayYield", "yield_energy_today_wh", "kWh"),
    # AC output energy incl. battery discharge, not PV yield on hybrids (§5 "Counters").
    _counter("generation", "yield_energy_total_wh", "kWh"),
    _counter("PVEnergyTotal", "pv_energy_total_wh", "kWh"),
    _counter("gridConsumption", "grid_import_energy_total_wh", "kWh"),
    _counter("feedin", "grid_export_energy_total_wh", "kWh"),
    _counter("chargeEnergyToTal", "battery_charge_energy_total_wh", "kWh"),
    _counter("dischargeEnergyToTal", "battery_discharge_energy_total_wh", "kWh"),
    _counter("loads", "load_energy_total_wh", "kWh"),
    # Labelled Wh (doc; foxessprom 1381.765 "Wh") or kWh (batpred 2025: 2255.872) — the
    # magnitude is kWh either way (§5; foxess-ha PR#257): UNIT_OVERRIDES ignores the label.
    _counter("energyThroughput", "battery_throughput_energy_total_wh", "kWh", "0.001"),
    *(_gauge(f"epsVolt{p}", f"eps_phase_{x}_voltage_v", "V") for p, x in _PHASES),
    *(_gauge(f"epsCurrent{p}", f"eps_phase_{x}_current_a", "A") for p, x in _PHASES),
    *(_gauge(f"epsPower{p}", f"eps_phase_{x}_power_w", "kW") for p, x in _PHASES),
    *(_gauge(f"loadsPower{p}", f"load_phase_{x}_power_w", "kW") for p, x in _PHASES),
    # Same convention as meterPower (assumed, §5: "meterPowerR/S/T follow the same convention").
    *(
        _split(f"meterPower{p}", f"grid_phase_{x}_import_power_w", f"grid_phase_{x}_export_power_w")
        for p, x in _PHASES
    ),
    # CT2 on an external generator: negative while it generates (§5: TonyM invert_ct2=1),
    # i.e. the meterPower convention — negative is energy flowing out past the meter.
    _split("meterPower2", "meter2_import_power_w", "meter2_export_power_w"),
    _gauge("boostTemperation", "boost_temperature_c", "°C"),
    _gauge("chargeTemperature", "charger_temperature_c", "°C"),
    _gauge("dspTemperature", "dsp_temperature_c", "°C"),
    FieldMap("batStatus", "battery_status_code", kind="code"),  # "1" (§4.1)
    FieldMap("runningState", "status_code", kind="code"),  # a string, "163" (§4.1)
    FieldMap("runningState", "state", kind="text", transform=state_word),
    FieldMap("currentFault", "fault_code", kind="code", transform=_first_fault),
    FieldMap("currentFaultCount", "fault_count", kind="code"),
)
INVERTER_TABLE = MappingTable("inverter", INVERTER_ROWS)

#: Doc variables deliberately not written, and why (the docs page lists them too).
NOT_WRITTEN: Mapping[str, str] = {
    "SFreq": "one grid frequency: RFreq is written as grid_frequency_hz",
    "TFreq": "one grid frequency: RFreq is written as grid_frequency_hz",
    "batCurrent": "BMS-side current, unreliable in sign and size (research §5): invBatCurrent is written",
    "batStatusV2": "free text ('Normal', 'Charge') restating batStatus and the battery power sign",
}

#: Variables whose per-value unit label is wrong: the row's unit is used regardless.
UNIT_OVERRIDES: frozenset[str] = frozenset(
    {
        "todayYield",  # "kW" in the doc; today's energy in kWh (§5)
        "energyThroughput",  # "Wh" or "kWh" labels; kWh magnitude (§5)
    }
)

# -- normalisation (still vendor terms) -------------------------------------------------------

_CANONICAL: Mapping[str, str] = {name.lower(): name for name in KNOWN_VARIABLES}
_PACK = re.compile(r"^(?P<base>[A-Za-z][A-Za-z0-9]*)_(?P<n>\d+)$")

#: How per-pack values `<var>_<n>` combine into `<var>` (multi-battery systems: §4.1 —
#: `SoC_1`, `Soc_2`, `batTemperature_1/_2`, `invBatPower_1`, `batVolt_1`, `batCurrent_1`;
#: batpred averages the `soc_*` keys). Only battery variables are combined.
PACK_COMBINE: Mapping[str, str] = {
    "SoC": "mean",
    "SOH": "mean",
    "batVolt": "mean",
    "invBatVolt": "mean",
    "batTemperature": "max",  # the hottest pack is the one that matters for alerts
    "invBatPower": "sum",
    "batChargePower": "sum",
    "batDischargePower": "sum",
    "invBatCurrent": "sum",
    "batCurrent": "sum",
    "ResidualEnergy": "sum",
}


def canonical(name: str) -> str:
    """The doc's spelling of a variable name (case-insensitive), else the name as given."""
    return _CANONICAL.get(name.lower(), name)


@dataclass(frozen=True)
class Snapshot:
    """One device's values at one data time, normalised but still in vendor names/units."""

    device_sn: str
    time: int
    values: Mapping[str, Any]
    units: Mapping[str, str | None]


def _numeric(value: Any) -> float | None:
    number = as_number(value)
    return number if number is not None and abs(number) < CORRUPT_ABOVE else None


def normalise(
    values: Mapping[str, Any], units: Mapping[str, str | None]
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """Fold names, combine battery packs. Pure; returns new dicts.

    Fallbacks between variables (`meterPower` for the grid flows, …) are no longer made
    here: they are alternative rows of the table, applied by `apply` (issue #7 §1).
    """
    vals: dict[str, Any] = {}
    unit: dict[str, str | None] = {}
    packs: dict[str, list[tuple[Any, str | None]]] = {}
    for raw_name, value in values.items():
        m = _PACK.match(raw_name)
        base = canonical(m["base"]) if m else ""
        if base in PACK_COMBINE:
            packs.setdefault(base, []).append((value, units.get(raw_name)))
            continue
        name = canonical(raw_name)
        if name in vals:  # two spellings of one variable: the first one wins
            continue
        vals[name] = value
        unit[name] = units.get(raw_name)
    for base, members in packs.items():
        nums = [(_numeric(v), u) for v, u in members]
        usable = [(n, u) for n, u in nums if n is not None]
        if not usable or len({u for _, u in usable}) != 1:
            continue  # nothing to combine, or packs in different units: leave the aggregate
        current = _numeric(vals.get(base))
        if current is not None and (current != 0 or all(n == 0 for n, _ in usable)):
            continue  # a real aggregate: keep it (H3-G2 sends batVolt 0 beside batVolt_1: §4.1)
        numbers = [n for n, _ in usable]
        how = PACK_COMBINE[base]
        combined = (
            sum(numbers) if how == "sum" else max(numbers) if how == "max" else sum(numbers) / len(numbers)
        )
        vals[base] = combined
        unit[base] = usable[0][1]
    # currentFault "" is the vendor's "no active fault" (§4.1), not an unknown value.
    if isinstance(vals.get("currentFault"), str) and not str(vals["currentFault"]).strip():
        del vals["currentFault"]
    return vals, unit


def _unit_of(units: Mapping[str, str | None]) -> Callable[[str], str | None]:
    def unit_of(source: str) -> str | None:
        if source in UNIT_OVERRIDES:
            return None  # the row's unit, whatever the label says
        return units.get(source)

    return unit_of


def _zone(tz: str | None) -> tzinfo | None:
    return parse_zone(tz) if tz else None


def _time(text: str | None, tz: str | None) -> int:
    if text is None:
        raise TimeParseError("no data time")
    # `2024-09-11 21:00:57 BST+0100`, `… +03+0300`: the trailing ±HHMM decides; the
    # abbreviation is ignored (§4.10). The doc's "utc time" is wrong (§4.10).
    return to_utc_seconds(text, _zone(tz))


def snapshots_from_real(
    records: Iterable[RealRecord],
    *,
    tz: str | None,
    stats: MappingStats,
    wanted: Collection[str] | None = None,
) -> list[Snapshot]:
    """One snapshot per device with a readable data time.

    A record without a data time, with an unreadable one, or (with `wanted`) of a device
    the request did not name is refused whole: `stats.drop_record` logs and counts it.
    """
    out: list[Snapshot] = []
    for rec in records:
        if wanted is not None and rec.device_sn not in wanted:
            stats.drop_record(rec.device_sn, "not_requested", "a device the request did not name")
            continue
        if rec.time is None:
            stats.drop_record(rec.device_sn, "no_time", "no data time in the record")
            continue
        try:
            ts = _time(rec.time, tz)
        except TimeParseError:
            stats.drop_record(rec.device_sn, "bad_time", f"unreadable data time {rec.time!r}")
            continue
        raw_values: dict[str, Any] = {}
        raw_units: dict[str, str | None] = {}
        for item in rec.values:
            if item.variable not in raw_values:
                raw_values[item.variable] = item.value
                raw_units[item.variable] = item.unit
        vals, units = normalise(raw_values, raw_units)
        out.append(Snapshot(rec.device_sn, ts, vals, units))
    return out


def snapshots_from_history(
    records: Iterable[HistoryRecord], *, tz: str | None, stats: MappingStats
) -> list[Snapshot]:
    """Samples regrouped into one snapshot per device and data time, oldest first.

    Samples are one per logger upload, not clock-aligned (§4.2); all variables of one
    upload share its time string, so grouping by the parsed second rebuilds the upload.
    """
    out: list[Snapshot] = []
    for rec in records:
        by_time: dict[int, tuple[dict[str, Any], dict[str, str | None]]] = {}
        parsed: dict[str, int | None] = {}
        for series in rec.series:
            for text, value in series.samples:
                if text not in parsed:
                    try:
                        parsed[text] = _time(text, tz)
                    except TimeParseError:
                        # Every variable of one upload shares its time string (§4.2): an
                        # unreadable one refuses the whole upload, said and counted once.
                        parsed[text] = None
                        stats.drop_record(rec.device_sn, "bad_time", f"unreadable data time {text!r}")
                ts = parsed[text]
                if ts is None:
                    continue
                vals, units = by_time.setdefault(ts, ({}, {}))
                vals.setdefault(series.variable, value)
                units.setdefault(series.variable, series.unit)
        for ts in sorted(by_time):
            vals, units = normalise(*by_time[ts])
            out.append(Snapshot(rec.device_sn, ts, vals, units))
    return out


def device_tags(source: str, site: str, device: str) -> dict[str, str]:
    return {"vendor": VENDOR, "source": source, "site": site, "device": device}


def inverter_point(
    snap: Snapshot, tags: Mapping[str, str], stats: MappingStats, memory: Memory | None = None
) -> Point | None:
    """The `inverter` point of one snapshot (None when no field survived).

    `memory`: what earlier snapshots said (counters, battery capacity), for the
    plausibility checks that need it (collector/schema/plausible.py).
    """
    return apply(
        INVERTER_TABLE,
        snap.values,
        tags=tags,
        time=snap.time,
        stats=stats,
        unit_of=_unit_of(snap.units),
        memory=memory,
    )


# -- /op/v0/device/generation → inverter yield fields --------------------------------------------

GENERATION_TABLE = MappingTable(
    "inverter",
    (
        _counter("today", "yield_energy_today_wh", "kWh"),
        _counter("cumulative", "yield_energy_total_wh", "kWh"),
        # `month` is not written: the year report's `generation` for this month is the
        # same quantity at the same timestamp (energy, period=month).
    ),
)


def generation_point(
    gen: Generation, *, tags: Mapping[str, str], time: int, stats: MappingStats
) -> Point | None:
    """today / cumulative (kWh) as inverter yield fields at the device's data time `time`."""
    raw = {"today": gen.today, "cumulative": gen.cumulative}
    return apply(GENERATION_TABLE, raw, tags=tags, time=time, stats=stats)


# -- /op/v0/device/report/query → energy --------------------------------------------------------

REPORT_ROWS: tuple[FieldMap, ...] = (
    # `generation` is AC output incl. battery discharge (§5 "Counters"): yield, not PV.
    _counter("generation", "yield_wh", "kWh"),
    _counter("PVEnergyTotal", "pv_wh", "kWh"),
    _counter("gridConsumption", "grid_import_wh", "kWh"),
    _counter("feedin", "grid_export_wh", "kWh"),
    _counter("chargeEnergyToTal", "battery_charge_wh", "kWh"),
    _counter("dischargeEnergyToTal", "battery_discharge_wh", "kWh"),
    _counter("loads", "load_wh", "kWh"),
)
REPORT_TABLE = MappingTable("energy", REPORT_ROWS)

#: Report dimension → (the `period` tag of its slots, number of slots).
REPORT_PERIODS: Mapping[str, tuple[str, int]] = {
    "day": ("hour", 24),
    "month": ("day", 31),
    "year": ("month", 12),
}


def period_start(req: ReportRequest, index: int, zone: tzinfo) -> int | None:
    """Start of slot `index` of a report in the site's zone, as UTC seconds.

    None for a slot that is not a real local time: day 30 of February, or the hour the
    clocks skip in spring (its slot would collide with the next hour's).
    """
    try:
        if req.dimension == "day":
            assert req.month is not None and req.day is not None
            local = datetime(req.year, req.month, req.day, index, tzinfo=zone)
        elif req.dimension == "month":
            assert req.month is not None
            local = datetime(req.year, req.month, index + 1, tzinfo=zone)
        else:
            local = datetime(req.year, index + 1, 1, tzinfo=zone)
    except ValueError:
        return None
    utc = local.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None  # a wall-clock time that does not exist (spring forward)
    return to_utc_seconds(local)


def map_report(
    series: Sequence[ReportSeries],
    req: ReportRequest,
    *,
    tz: str,
    tags: Mapping[str, str],
    stats: MappingStats,
    now: int | None = None,
) -> list[Point]:
    """`energy` points, one per slot, timestamped at the start of the period (site zone → UTC).

    * Year reports can carry wrong `variable` labels: relabelled by request order when
      the counts match (TonyM 2.8.8; EnergyStats `openapi_fetchReport`; §4.3 (a)).
    * Corrupt values (≥ 200,000,000, §4.3 (c)): repaired with TonyM's 16-bit mask in
      hour and day slots (a real value there is far below 6553.6 kWh); left out (and
      counted) in month and year slots, where the mask could give a wrong number.
    * Future slots come back as 0.0, not null (§4.3): with `now`, slots starting after
      it are not written at all. Slots that are no real date (31 Feb) are not written.
    * Day reports under-count (each hour bucket covers ~55 min, §4.3 (b)): written as
      the vendor gives them; day totals come from the month report.
    """
    period, slots = REPORT_PERIODS[req.dimension]
    names = [canonical(s.variable) for s in series]
    if req.dimension == "year" and req.variables and len(req.variables) == len(series):
        names = [canonical(v) for v in req.variables]
    zone = parse_zone(tz)
    unit_by_name = {n: s.unit for n, s in zip(names, series, strict=True)}
    unit_of = _unit_of(unit_by_name)
    ptags = {**tags, "period": period}
    points: list[Point] = []
    for i in range(slots):
        ts = period_start(req, i, zone)
        if ts is None or (now is not None and ts > now):
            continue
        raw: dict[str, Any] = {}
        for name, s in zip(names, series, strict=True):
            if i >= len(s.values):
                continue  # a short array: the row counts as missing
            value = s.values[i]
            number = as_number(value)
            if period in ("hour", "day") and number is not None and number >= CORRUPT_ABOVE:
                value = unmask_register(number)
            raw[name] = value
        point = apply(REPORT_TABLE, raw, tags=ptags, time=ts, stats=stats, unit_of=unit_of)
        if point is not None:
            points.append(point)
    return points


# -- faults ---------------------------------------------------------------------------------------

FAULT_TABLE = MappingTable(
    "fault",
    (
        FieldMap("code", "code", kind="code"),
        FieldMap("message", "message", kind="text"),
        FieldMap("active", "active", kind="code"),
    ),
)


def fault_point(
    *, code: int, message: str | None, active: bool, tags: Mapping[str, str], time: int, stats: MappingStats
) -> Point | None:
    """One `fault` point: a fault's start (active 1) or end (active 0). FoxESS gives no level."""
    raw = {"code": code, "message": message, "active": 1 if active else 0}
    return apply(FAULT_TABLE, raw, tags=tags, time=time, stats=stats)


def reportable_skips(stats: MappingStats) -> int:
    """Values left out that the vendor did send (null, empty, unusable): not `missing` ones.

    A single-string inverter simply has no pv2…pv18 variables; that is not a data problem.
    Whole records refused are not values: they are counted in `stats.records_dropped`.
    """
    return stats.total_skipped - stats.skipped.get("missing", 0) - stats.records_dropped


def next_upload(data_times: Iterable[int], now: float, *, period: float, lag: float) -> float | None:
    """When every fresh device should have uploaded once more (None: no fresh device).

    The cloud has one snapshot per `period` at a fixed phase per logger (§4.1,
    com.foxess foxEssTiming.js). For each device whose data is at most two periods old,
    its next upload is the first `time + k·period + lag` after `now`; one call covers
    the whole batch, so the latest of those is when all of them have something new.
    """
    best: float | None = None
    for t in data_times:
        if now - t > 2 * period:
            continue  # offline or stale: its phase says nothing about the next upload
        k = max(1, math.floor((now - t - lag) / period) + 1)
        due = t + k * period + lag
        best = due if best is None else max(best, due)
    return best


# -- saved-response parsers (`solar-collector parse`) ----------------------------------------------


def _requested_sns(request: str | None) -> set[str] | None:
    """The serials a saved real-time / history request body names (`sns`, `sn`); None: any."""
    if request is None:
        return None
    body = request_object(request)
    sns = body.get("sns")
    if isinstance(sns, list):
        return {str(sn) for sn in sns}
    if isinstance(body.get("sn"), str):
        return {body["sn"]}
    return None


def parse_real(
    raw_text: str,
    *,
    tz: str | None = "UTC",
    request: str | None = None,
    source: str = "",
    site: str = "",
    stats: MappingStats | None = None,
) -> list[Point]:
    """A saved v0/v1 real-time answer → `inverter` points (`parse --endpoint real`).

    With `request` (the body sent), devices it did not name are refused. Refused records
    are in `stats.drops` when `stats` is given (the CLI reports them and exits 1).
    """
    stats = MappingStats() if stats is None else stats
    records = read_real(result_of(raw_text, endpoint="real/query"))
    snaps = snapshots_from_real(records, tz=tz, stats=stats, wanted=_requested_sns(request))
    return _points(snaps, source, site, stats)


def parse_history(
    raw_text: str,
    *,
    tz: str | None = "UTC",
    request: str | None = None,
    source: str = "",
    site: str = "",
    stats: MappingStats | None = None,
) -> list[Point]:
    """A saved history answer → `inverter` points, oldest first (`parse --endpoint history`)."""
    stats = MappingStats() if stats is None else stats
    records = read_history(result_of(raw_text, endpoint="history/query"))
    wanted = _requested_sns(request)
    kept = []
    for rec in records:
        if wanted is not None and rec.device_sn not in wanted:
            stats.drop_record(rec.device_sn, "not_requested", "a device the request did not name")
        else:
            kept.append(rec)
    return _points(snapshots_from_history(kept, tz=tz, stats=stats), source, site, stats)


def parse_report(
    raw_text: str,
    *,
    tz: str | None = "UTC",
    request: str | None = None,
    source: str = "",
    site: str = "",
    now: int | None = None,
    stats: MappingStats | None = None,
) -> list[Point]:
    """A saved report answer and its request body → `energy` points (`parse --endpoint report`).

    The answer has no SN, date or dimension: they come from the request (`--request`).
    Without `now` every slot is written, future zeros included.
    """
    if request is None:
        raise ValueError("a FoxESS report needs its request body (--request) for the date and dimension")
    req = read_report_request(request)
    series = read_report(result_of(raw_text, endpoint="report/query"))
    return map_report(
        series,
        req,
        tz=tz or "UTC",
        tags=device_tags(source, site, req.sn),
        stats=MappingStats() if stats is None else stats,
        now=now,
    )


def _points(snaps: Iterable[Snapshot], source: str, site: str, stats: MappingStats) -> list[Point]:
    out: list[Point] = []
    memory = Memory()  # one saved answer: its records in data-time order judge each other
    for snap in snaps:
        point = inverter_point(snap, device_tags(source, site, snap.device_sn), stats, memory)
        if point is not None:
            out.append(point)
    return out
