"""FoxESS Cloud Open API simulator, over the plant model.

Built from ``shared/vendor-docs/foxess-open-api.txt`` ("doc", section named per rule) and
``shared/research/foxess.md`` ("notes §n"); where the two disagree the notes (real behaviour) win.
Where neither decides, the choice is marked **Decision** and kept strict, so a collector that passes
here is safe on the real cloud.

Protocol rules
--------------
* **Auth** (doc "Request header requirements"; notes §2): headers ``token``, ``timestamp`` (ms),
  ``signature``, ``lang``; ``signature = md5(path + "\\r\\n" + token + "\\r\\n" + timestamp)`` in
  lowercase hex, where ``\\r\\n`` is the literal 4-character text (backslash r backslash n, the doc's
  raw f-string), ``path`` is the URL path only (no host, no query string) and ``timestamp`` the header's
  string. Real CR LF is refused (notes §2.1, foxess-ha#170). Header names are case-insensitive.
  Refusals are HTTP 200 + ``errno 40256`` ("no signature", missing headers, "illegal timestamp" when
  the timestamp is more than 60 s away from the server clock, "illegal signature"); an unknown key is
  **HTTP 401** (notes §2.2) with body ``errno 41809 "invalid token"`` (notes §3.2).
* **Envelope** (notes §4): ``{"errno", "msg", "result"}``; success ``errno 0`` with
  ``msg "Operation successful"`` (wording since ~Aug 2025, notes §3.2); errors carry ``result: null``.
* **Limits** (doc "Access frequency limit"; notes §3.1), see :class:`FoxessLimits` and
  :meth:`FoxessSim.charges`: 1440 calls per inverter per day (an account's quota is 1440 × its
  inverters) → ``40402``; one call per second per query endpoint per account → ``40400``.
* **Bad bodies / parameters** → ``40257`` (doc "Common error solutions"); an SN that is not in the
  account → ``41930 "incorrect inverter id"`` (notes §3.2, foxess-ha README) on single-SN endpoints;
  the v1 real-time query silently drops foreign SNs (doc: "returns only the result set belonging to
  the current user").

Data rules (quirks reproduced; see :class:`FoxessQuirks` for the per-device switches)
-------------------------------------------------------------------------------------
* ``time`` strings ``yyyy-MM-dd HH:mm:ss`` + zone abbreviation + ``±HHMM`` in the plant's zone, e.g.
  ``2024-01-02 10:05:00 CET+0100``, ``+03+0300`` for zones without abbreviation (notes §4.10); one
  ``time`` per device, not per variable (notes §4.1, against the doc's v1 table).
* Real-time values come from the newest 300-s upload (notes §4.1 "Snapshot cadence"); powers in kW
  with float noise (``reg * 0.001``), counters in kWh with 0.1-kWh resolution (notes §5).
* Units: ``todayYield`` labelled ``kW`` but kWh (doc variable table; notes §5) and **not sent by H3
  models** (notes §4.1, com.foxess); ``energyThroughput`` labelled ``Wh`` (or ``kWh``) but kWh;
  ``ResidualEnergy`` in ``0.01kWh`` / ``0.1kWh`` / ``kWh`` per device; temperatures in ``℃``;
  ``ReactivePower`` kVar; no ``unit`` key for ``runningState``, ``batStatus``, ``batStatusV2``,
  ``currentFault``, ``currentFaultCount``, ``PowerFactor`` (notes §4.1).
* Signs (notes §5): ``invBatPower`` / ``invBatCurrent`` positive = discharge; ``batCurrent`` (BMS)
  positive = charge and 3 % off; ``meterPower`` = import − export; ``generationPower`` is AC output
  including the battery, negative while charging from the grid; ``batChargePower`` /
  ``batDischargePower``, ``feedinPower`` / ``gridConsumptionPower`` non-negative splits;
  ``epsPower`` shows ``-0.001`` noise on an unused EPS port.
* Strings: ``runningState "163"``, ``batStatus "1"``, ``batStatusV2``, ``currentFault ""`` or
  comma-separated codes, ``currentFaultCount "0"`` (notes §4.1).
* Two battery packs: ``SoC`` missing, ``SoC_1`` and ``Soc_2`` (case differs), ``batVolt`` 0 with
  ``batVolt_1/_2``, ``batCurrent`` 0 with ``batCurrent_1/_2``, ``batTemperature_1/_2``,
  ``invBatPower_1/_2`` (notes §4.1).
* ``batChargePower`` / ``batDischargePower`` have ``value: null`` while the battery is idle (notes §5
  "may be null"; the trigger is a **Decision**).
* History: one point per upload (not clock-aligned), values sometimes numeric strings (notes §4.2).
* Reports (notes §4.3): kWh deltas of 0.1-kWh counters with float noise; ``day`` = 24 local-hour
  slots, each from the first to the last upload inside the hour (≈55 min: the under-count); ``month``
  = 31 slots always (**Decision**: shorter months get trailing zeros); ``year`` = 12 slots whose
  ``variable`` labels are rotated by one (values are in request order: relabel by request order);
  future slots ``0.0``, past slots without any upload ``null``; one slot may be **corrupted** with the
  high 16 bits of the 0.1-kWh register set (> 200,000,000; ``(int(v*10) & 0xFFFF) / 10`` recovers it),
  chosen by :meth:`FoxessSim.corrupted_slot`.
* ``device/generation``: today/month/cumulative kWh from the upload registers; ``today`` is ``null``
  until the first upload after local midnight (notes §4.6).
* ``device/detail``: battery ``capacity`` (Wh) on ``bmu`` rows, which may repeat (notes §4.5).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from collector.simulators.base import (
    Call,
    Charge,
    Clock,
    Endpoint,
    Limit,
    ProtocolError,
    Reply,
    Simulator,
)
from collector.simulators.plant import (
    Battery,
    BatteryTruth,
    Fault,
    GridCharge,
    Inverter,
    Outage,
    Plant,
    PvString,
    Site,
    Truth,
    local_date,
    local_midnight,
    local_time,
    stable_hash,
    zone_info,
)

# ------------------------------------------------------------------------------------------------
# Constants

DEMO_API_KEY = "demo-foxess-key"
"""The demo account's API key (not a secret: it only opens the local simulator)."""

ERRNO_OK = 0
ERRNO_HEADER = 40256
ERRNO_BODY = 40257
ERRNO_TOO_FREQUENT = 40400
ERRNO_QUOTA = 40402
ERRNO_QUERY_FAILED = 41200
ERRNO_INVALID_TOKEN = 41809
ERRNO_BAD_SN = 41930

MSG_OK = "Operation successful"
MSG_SIGNATURE = "Parameter could not be parsed correctly illegal signature"
MSG_TIMESTAMP = "Parameter could not be parsed correctly illegal timestamp"
MSG_NO_SIGNATURE = "no signature"
MSG_MISSING = "The request header parameters are missing"
MSG_BODY = "Parameter verification failed"
MSG_TOO_FREQUENT = "The number of requests is too frequent. Please reduce the frequency of access."
MSG_QUOTA = "Your request exceeds the limit. Please try again later"
MSG_QUERY_FAILED = "Query data failed"

V1_MAX_SNS = 50
HISTORY_MAX_MS = 24 * 3600 * 1000
HISTORY_DEFAULT_S = 3 * 86400
CORRUPT_HIGH_WORD = 0x7820
"""High 16 bits set in a corrupted report value: 0x7820 << 16 = 2,015,363,072 tenths of a kWh, as in
the EnergyStats example 201,539,769 → 3461.8 (notes §5)."""

REPORT_VARIABLES = {
    "generation": "yield_wh",
    "feedin": "grid_export_wh",
    "gridConsumption": "grid_import_wh",
    "chargeEnergyToTal": "battery_charge_wh",
    "dischargeEnergyToTal": "battery_discharge_wh",
    "loads": "load_wh",
    "PVEnergyTotal": "pv_wh",
}
"""Report variable → plant counter (notes §4.3; the ``ToTal`` spelling is the API's)."""

RUNNING_STATES = {
    160: "self-test",
    161: "waiting",
    162: "checking",
    163: "on-grid",
    164: "off-grid",
    165: "fault",
    166: "permanent-fault",
    167: "standby",
    168: "upgrading",
    169: "fct",
    170: "illegal",
}
"""``runningState`` enum (doc variable table)."""

FAULT_TEXTS: dict[int, str] = {
    1: "Grid Lost Fault",
    2: "Grid Voltage Fault",
    3: "Grid Frequency Fault",
    4: "10min Voltage Fault",
    5: "Environment Temp Fault",
    6: "Isolation Fault",
    7: "Residual Current Fault",
    8: "PV Voltage Fault",
    9: "Bus Voltage Fault",
    10: "Inverter Temp Fault",
    11: "Battery Voltage Fault",
    12: "BMS Lost",
}
"""The simulator's fault-code table (placeholder texts; the real table has ~2759 codes, notes §4.7).
Codes of the plant's fault schedule that are missing here are served as ``"Fault <code>"``."""


def foxess_time(t: float, zone: str) -> str:
    """``2024-01-02 10:05:00 CET+0100``: local wall clock, abbreviation, numeric offset (notes §4.10)."""
    dt = datetime.fromtimestamp(int(t), zone_info(zone))
    offset = dt.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    return f"{dt:%Y-%m-%d %H:%M:%S} {dt.tzname()}{sign}{hh:02d}{mm:02d}"


def expected_signature(path: str, token: str, timestamp: str) -> str:
    """The signature the simulator requires (notes §2.1: literal backslash-r-backslash-n)."""
    return hashlib.md5(f"{path}\\r\\n{token}\\r\\n{timestamp}".encode()).hexdigest()


# ------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class FoxessLimits:
    """The cloud's limits (doc "Access frequency limit"; notes §3.1).

    ``per_inverter_per_day`` — each call that names inverters costs 1 against each named inverter's
    own daily count (a v1 batch of N SNs costs 1 for each of them — **Decision**: undetermined in
    the notes, the strict reading) and N against the account's pool of ``per_inverter_per_day ×
    inverters``; calls naming no inverter (lists, ``getAccessCount``, catalogues) cost 1 of the pool.
    Windows are sliding ``day_s`` seconds (**Decision**: the reset time is unknown, notes §3.1; a
    sliding window is the strictest reading). Exceeded → ``40402``.

    ``per_endpoint_per_s`` — query endpoints, per account and path, sliding 1 s → ``40400``.

    ``refused_cost_quota`` — a call refused with ``40400`` still costs daily quota (notes §3.3:
    com.foxess "an immediate retry … spends more of the daily quota"); a call refused with ``40402``
    costs nothing more.

    ``timestamp_tolerance_s`` — maximum |timestamp − server time| (notes §2.1: ~60 s).
    """

    per_inverter_per_day: int = 1440
    per_endpoint_per_s: int = 1
    day_s: float = 86400.0
    refused_cost_quota: bool = True
    timestamp_tolerance_s: float = 60.0


@dataclass(frozen=True)
class FoxessQuirks:
    """Per-device shape quirks (all deterministic; notes section per field).

    ``residual_unit`` — unit of ``ResidualEnergy`` (notes §5): ``0.01kWh``, ``0.1kWh`` or ``kWh``.
    ``throughput_unit`` — label of ``energyThroughput`` (value always kWh; notes §5).
    ``sends_today_yield`` — whether ``todayYield`` is sent; None: all models except H3 (notes §4.1).
    ``bmu_repeat`` — how often each pack's ``bmu`` row repeats in ``batteryList`` (notes §4.5).
    ``history_string_every`` — every N-th upload slot's history values are numeric strings (0 = never;
    notes §4.2).
    ``null_idle_battery_split`` — ``batChargePower`` / ``batDischargePower`` are ``null`` while the
    battery is idle (notes §5).
    ``all_variables_fails`` — a real-time query without ``variables`` naming this device fails with
    ``41200`` (notes §3.2: "some systems' all-variables real query").
    ``report_corruption`` / ``year_report_mislabel`` — the report bugs (notes §4.3 (c), (a)).
    ``product_type`` — ``productType``; None: from the model (``H3-10.0-E`` → ``H3``, ``F3600`` → ``F``).
    """

    residual_unit: Literal["0.01kWh", "0.1kWh", "kWh"] = "0.01kWh"
    throughput_unit: Literal["Wh", "kWh"] = "Wh"
    sends_today_yield: bool | None = None
    bmu_repeat: int = 1
    history_string_every: int = 0
    null_idle_battery_split: bool = True
    all_variables_fails: bool = False
    report_corruption: bool = True
    year_report_mislabel: bool = True
    product_type: str | None = None


# ------------------------------------------------------------------------------------------------
# Variables


@dataclass(frozen=True)
class _Ctx:
    truth: Truth
    inverter: Inverter
    quirks: FoxessQuirks


Value = float | int | str | None


@dataclass(frozen=True)
class _Var:
    """A real-time / history variable: key, unit (None: no ``unit`` key), English name, extractor."""

    key: str
    unit: str | None
    label: str
    get: Callable[[_Ctx], Value]
    grid_tied: bool = True
    storage: bool = True


def _kw(w: float) -> float:
    """W → kW as the cloud shows it: a 1-W register times 0.001 (float noise included)."""
    return round(w) * 0.001


def _dec(x: float) -> float:
    """One decimal, as a 0.1 register (float noise included)."""
    return round(x * 10) * 0.1


def _kwh(wh: float) -> float:
    """A 0.1-kWh counter register in kWh (floored: registers count up)."""
    return math.floor(wh / 100 + 1e-9) * 0.1


def _running_state(ctx: _Ctx) -> str:
    state = ctx.truth.state
    code = {
        "normal": 163,
        "starting": 162,
        "fault": 165,
        "permanent_fault": 166,
        # notes §4.1: solar-only inverters go 163 → 161 (waiting) at dusk; hybrids go to standby
        "standby": 161 if ctx.inverter.battery is None else 167,
    }[state]
    return str(code)


def _battery(ctx: _Ctx) -> BatteryTruth:
    bat = ctx.truth.battery
    assert bat is not None
    return bat


def _string(i: int, attr: str, conv: Callable[[float], float]) -> Callable[[_Ctx], Value]:
    return lambda c: conv(getattr(c.truth.strings[i], attr))


def _phase(i: int, attr: str, conv: Callable[[float], float]) -> Callable[[_Ctx], Value]:
    return lambda c: conv(getattr(c.truth.phases[i], attr))


def _pack(i: int, attr: str, conv: Callable[[float], float]) -> Callable[[_Ctx], Value]:
    return lambda c: conv(getattr(_battery(c).packs[i], attr))


def _residual(ctx: _Ctx) -> float:
    wh = _battery(ctx).residual_energy_wh
    unit = ctx.quirks.residual_unit
    if unit == "0.01kWh":
        return float(round(wh / 10))
    if unit == "0.1kWh":
        return float(round(wh / 100))
    return round(wh / 10) * 0.01


def _split(ctx: _Ctx, charge: bool) -> Value:
    bat = _battery(ctx)
    if ctx.quirks.null_idle_battery_split and bat.charge_power_w == 0 and bat.discharge_power_w == 0:
        return None  # notes §5: batChargePower / batDischargePower "may be null"
    return _kw(bat.charge_power_w if charge else bat.discharge_power_w)


def _inv_vars(inv: Inverter, quirks: FoxessQuirks) -> list[_Var]:
    """The variables a device reports, in the order the cloud lists them."""
    v: list[_Var] = [_Var("pvPower", "kW", "PVPower", lambda c: _kw(c.truth.pv_power_w))]
    for i in range(len(inv.strings)):
        n = i + 1
        v += [
            _Var(f"pv{n}Volt", "V", f"PV{n}Volt", _string(i, "voltage_v", _dec)),
            _Var(f"pv{n}Current", "A", f"PV{n}Current", _string(i, "current_a", _dec)),
            _Var(f"pv{n}Power", "kW", f"PV{n}Power", _string(i, "power_w", _kw)),
        ]
    for p, letter in enumerate("RST"[: inv.phases]):
        v += [
            _Var(f"{letter}Current", "A", f"{letter}Current", _phase(p, "current_a", _dec)),
            _Var(f"{letter}Volt", "V", f"{letter}Volt", _phase(p, "voltage_v", _dec)),
            _Var(f"{letter}Freq", "Hz", f"{letter}Freq", lambda c: round(c.truth.grid_frequency_hz, 2)),
            _Var(f"{letter}Power", "kW", f"{letter}Power", _phase(p, "power_w", _kw)),
        ]
    v += [
        _Var("ambientTemperation", "℃", "AmbientTemperature", lambda c: _dec(c.truth.ambient_temperature_c)),
        _Var("invTemperation", "℃", "InvTemperation", lambda c: _dec(c.truth.inverter_temperature_c)),
        _Var(
            "boostTemperation",
            "℃",
            "BoostTemperature",
            lambda c: _dec(c.truth.inverter_temperature_c + (4 if c.truth.pv_power_w > 0 else 0)),
        ),
        _Var("loadsPower", "kW", "Load Power", lambda c: _kw(c.truth.load_power_w)),
        _Var("generationPower", "kW", "Output Power", lambda c: _kw(c.truth.ac_power_w)),
        _Var("feedinPower", "kW", "Feed-in Power", lambda c: _kw(c.truth.grid_export_power_w)),
        _Var(
            "gridConsumptionPower", "kW", "GridConsumption Power", lambda c: _kw(c.truth.grid_import_power_w)
        ),
        # notes §5: meterPower positive = import
        _Var(
            "meterPower",
            "kW",
            "MeterPower",
            lambda c: _kw(c.truth.grid_import_power_w - c.truth.grid_export_power_w),
        ),
        _Var("ReactivePower", "kVar", "ReactivePower", lambda c: _kw(c.truth.reactive_power_var)),
        _Var("PowerFactor", None, "PowerFactor", lambda c: round(c.truth.power_factor, 3)),
    ]
    if quirks.sends_today_yield if quirks.sends_today_yield is not None else not inv.model.startswith("H3"):
        # doc variable table: unit "kW" although the value is today's energy in kWh (notes §5)
        v.append(_Var("todayYield", "kW", "Today’s power generation", lambda c: _kwh(c.truth.today.yield_wh)))
    v += [
        _Var("generation", "kWh", "Cumulative power generation", lambda c: _kwh(c.truth.total.yield_wh)),
        _Var("PVEnergyTotal", "kWh", "Photovoltaic power generation", lambda c: _kwh(c.truth.total.pv_wh)),
        _Var("feedin", "kWh", "The total energy of the feeder", lambda c: _kwh(c.truth.total.grid_export_wh)),
        _Var(
            "gridConsumption",
            "kWh",
            "Total grid electricity consumption",
            lambda c: _kwh(c.truth.total.grid_import_wh),
        ),
        _Var("loads", "kWh", "Load power consumption", lambda c: _kwh(c.truth.total.load_wh)),
        _Var("runningState", None, "Running State", _running_state),
        _Var(
            "currentFault",
            None,
            "The current error code is reported",
            lambda c: ",".join(str(code) for code in c.truth.fault_codes),
        ),
        _Var("currentFaultCount", None, "The number of errors", lambda c: str(len(c.truth.fault_codes))),
    ]
    bat = inv.battery
    if bat is None:
        return v
    v += [
        _Var("invBatVolt", "V", "InvBatVolt", lambda c: _dec(_battery(c).voltage_v)),
        # notes §5: invBatCurrent / invBatPower positive = discharge
        _Var("invBatCurrent", "A", "InvBatCurrent", lambda c: _dec(-_battery(c).current_a), grid_tied=False),
        _Var(
            "invBatPower",
            "kW",
            "invBatPower",
            lambda c: _kw(_battery(c).discharge_power_w - _battery(c).charge_power_w),
            grid_tied=False,
        ),
        _Var("batChargePower", "kW", "Charge Power", lambda c: _split(c, True), grid_tied=False),
        _Var("batDischargePower", "kW", "Discharge Power", lambda c: _split(c, False), grid_tied=False),
        _Var("ResidualEnergy", quirks.residual_unit, "Battery Residual Energy", _residual, grid_tied=False),
        _Var("SOH", "%", "SOH", lambda c: round(_battery(c).soh_pct), grid_tied=False),
        # notes §5: labelled Wh (or kWh) but the number is kWh
        _Var(
            "energyThroughput",
            quirks.throughput_unit,
            "Battery throughput",
            lambda c: round((c.truth.total.battery_charge_wh + c.truth.total.battery_discharge_wh) / 1000, 3),
            grid_tied=False,
        ),
        _Var(
            "chargeEnergyToTal",
            "kWh",
            "Total charge energy",
            lambda c: _kwh(c.truth.total.battery_charge_wh),
            grid_tied=False,
        ),
        _Var(
            "dischargeEnergyToTal",
            "kWh",
            "Total discharge energy",
            lambda c: _kwh(c.truth.total.battery_discharge_wh),
            grid_tied=False,
        ),
        _Var("batStatus", None, "Battery Status", lambda c: "1", grid_tied=False),
        _Var(
            "batStatusV2",
            None,
            "Battery Status Name",
            lambda c: (
                "Charge"
                if _battery(c).charge_power_w > 0
                else "Discharge"
                if _battery(c).discharge_power_w > 0
                else "Normal"
            ),
            grid_tied=False,
        ),
        # notes §4.1: small negative noise on nominally non-negative channels (unused EPS port)
        _Var(
            "epsPower",
            "kW",
            "EPSPower",
            lambda c: -0.001 if (c.truth.t // 300) % 3 == 0 else 0.0,
            grid_tied=False,
        ),
    ]
    if bat.packs == 1:
        v += [
            _Var("SoC", "%", "SoC", lambda c: round(_battery(c).soc_pct), grid_tied=False),
            _Var("batVolt", "V", "BatVolt", lambda c: _dec(_battery(c).packs[0].voltage_v), grid_tied=False),
            # notes §5: the BMS current is charge-positive and does not match the inverter side
            _Var(
                "batCurrent", "A", "BatCurrent", lambda c: _dec(_battery(c).current_a * 0.97), grid_tied=False
            ),
            _Var(
                "batTemperature",
                "℃",
                "batTemperature",
                lambda c: _dec(_battery(c).temperature_c),
                grid_tied=False,
            ),
        ]
    else:
        # notes §4.1: per-pack suffixes, "SoC_1" / "Soc_2" (case differs), aggregates 0 or missing
        v += [
            _Var("SoC_1", "%", "SoC_1", lambda c: round(_battery(c).packs[0].soc_pct), grid_tied=False),
            _Var("Soc_2", "%", "Soc_2", lambda c: round(_battery(c).packs[1].soc_pct), grid_tied=False),
            _Var("batVolt", "V", "BatVolt", lambda c: 0.0, grid_tied=False),
            _Var("batCurrent", "A", "BatCurrent", lambda c: 0.0, grid_tied=False),
        ]
        for i in range(2):
            n = i + 1
            v += [
                _Var(f"batVolt_{n}", "V", f"BatVolt_{n}", _pack(i, "voltage_v", _dec), grid_tied=False),
                _Var(
                    f"batCurrent_{n}",
                    "A",
                    f"BatCurrent_{n}",
                    _pack(i, "current_a", lambda a: _dec(a * 0.97)),
                    grid_tied=False,
                ),
                _Var(
                    f"batTemperature_{n}",
                    "℃",
                    f"batTemperature_{n}",
                    _pack(i, "temperature_c", _dec),
                    grid_tied=False,
                ),
                # per-pack power, discharge positive like invBatPower
                _Var(
                    f"invBatPower_{n}",
                    "kW",
                    f"invBatPower_{n}",
                    _pack(i, "power_w", lambda w: _kw(-w)),
                    grid_tied=False,
                ),
            ]
    return v


def _catalogue() -> list[dict[str, Any]]:
    """``device/variable/get``: the global catalogue (doc "Get available variables"; notes §4.9)."""
    hybrid = Inverter(
        "CATALOGUE", "H1-5.0-E", 5000, tuple(PvString(1.0) for _ in range(4)), battery=Battery(5000)
    )
    dual = Inverter(
        "CATALOGUE", "H3-10.0-E", 10000, (PvString(1.0),), battery=Battery(10000, packs=2), phases=3
    )
    quirks = FoxessQuirks(residual_unit="kWh", throughput_unit="Wh", sends_today_yield=True)
    seen: dict[str, _Var] = {}
    for var in (*_inv_vars(hybrid, quirks), *_inv_vars(dual, quirks)):
        if "_" not in var.key:
            seen.setdefault(var.key, var)
    out: list[dict[str, Any]] = []
    for var in seen.values():
        entry: dict[str, Any] = {}
        if var.unit is not None:
            entry["unit"] = var.unit
        entry["name"] = {"en": var.label}
        entry["Grid-tied inverter"] = var.grid_tied
        entry["Energy-storage inverter"] = var.storage
        if var.key == "runningState":
            entry["enum"] = {str(k): v for k, v in RUNNING_STATES.items()}
        out.append({var.key: entry})
    return out


# ------------------------------------------------------------------------------------------------
# The simulator


class FoxessSim(Simulator):
    """The FoxESS Cloud Open API over a :class:`Plant`.

    ``api_keys`` maps each API key (one account each) to the SNs it owns (None = every inverter of
    the plant). ``quirks`` per SN (default :class:`FoxessQuirks`). ``access_count_strings``: whether
    ``getAccessCount`` answers with strings (doc) rather than ints (seen since 2025-12, notes §3.1).
    """

    vendor = "foxess"
    value_keys = frozenset({"value", "values", "today", "month", "cumulative"})

    def __init__(
        self,
        plant: Plant,
        *,
        api_keys: Mapping[str, Collection[str] | None] | None = None,
        limits: FoxessLimits | None = None,
        clock: Clock | None = None,
        quirks: Mapping[str, FoxessQuirks] | None = None,
        access_count_strings: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(clock=clock, host=host)
        self.plant = plant
        self.settings = limits if limits is not None else FoxessLimits()
        self.quirks: dict[str, FoxessQuirks] = dict(quirks or {})
        self.access_count_strings = access_count_strings
        keys = api_keys if api_keys is not None else {DEMO_API_KEY: None}
        all_sns = [inv.sn for inv in plant.inverters]
        self.accounts: dict[str, tuple[str, ...]] = {}
        for key, sns in keys.items():
            owned = tuple(all_sns) if sns is None else tuple(sns)
            unknown = set(owned) - set(all_sns)
            if unknown:
                raise ValueError(f"unknown SNs for key: {sorted(unknown)}")
            self.accounts[key] = owned
        self._pools = {
            key: Limit(
                "daily_quota", self.settings.per_inverter_per_day * max(1, len(sns)), self.settings.day_s
            )
            for key, sns in self.accounts.items()
        }
        self._per_inverter = Limit(
            "daily_per_inverter", self.settings.per_inverter_per_day, self.settings.day_s
        )
        self._per_second = Limit("per_endpoint_second", self.settings.per_endpoint_per_s, 1.0)
        self._vars: dict[str, list[_Var]] = {
            inv.sn: _inv_vars(inv, self.quirks_for(inv.sn)) for inv in plant.inverters
        }

    @classmethod
    def demo(cls, *, clock: Clock | None = None, api_key: str = DEMO_API_KEY) -> FoxessSim:
        """The demo cloud: :func:`demo_plant`, key ``demo-foxess-key``, :func:`demo_quirks`."""
        return cls(demo_plant(), api_keys={api_key: None}, clock=clock, quirks=demo_quirks())

    def quirks_for(self, sn: str) -> FoxessQuirks:
        """The quirks of device ``sn``."""
        return self.quirks.get(sn, FoxessQuirks())

    # ---------------------------------------------------------------- routes

    def endpoints(self) -> Sequence[Endpoint]:
        return [
            Endpoint("POST", "/op/v0/plant/list", self._plant_list),
            Endpoint("GET", "/op/v0/plant/detail", self._plant_detail),
            Endpoint("POST", "/op/v0/device/list", self._device_list),
            Endpoint("GET", "/op/v0/device/detail", self._device_detail),
            Endpoint("GET", "/op/v1/device/detail", self._device_detail),
            Endpoint("GET", "/op/v0/device/variable/get", self._variables),
            Endpoint("GET", "/op/v0/device/fault/get", self._fault_table),
            Endpoint("POST", "/op/v0/device/real/query", self._real_v0),
            Endpoint("POST", "/op/v1/device/real/query", self._real_v1),
            Endpoint("POST", "/op/v0/device/history/query", self._history),
            Endpoint("POST", "/op/v0/device/report/query", self._report),
            Endpoint("GET", "/op/v0/device/generation", self._generation),
            Endpoint("GET", "/op/v0/device/battery/soc/get", self._soc_settings),
            Endpoint("POST", "/op/v0/module/list", self._module_list),
            Endpoint("GET", "/op/v0/user/getAccessCount", self._access_count),
        ]

    # ---------------------------------------------------------------- envelopes

    def ok_reply(self, result: Any) -> Reply:
        return Reply(200, {"errno": ERRNO_OK, "msg": MSG_OK, "result": result})

    def error_reply(self, code: int, message: str, http_status: int = 200) -> Reply:
        # notes §3.1/§4: errors are HTTP 200 with a non-zero errno and result null
        return Reply(http_status, {"errno": code, "msg": message, "result": None})

    def reply_code(self, reply: Reply) -> int | None:
        if isinstance(reply.body, dict) and isinstance(reply.body.get("errno"), int):
            return int(reply.body["errno"])
        return None

    def bad_body_error(self) -> tuple[int, str]:
        return (ERRNO_BODY, MSG_BODY)

    # ---------------------------------------------------------------- auth

    async def authenticate(self, call: Call) -> Reply | None:
        """Doc "Request header requirements"; notes §2.1-§2.2 (order: headers, timestamp, signature, key)."""
        headers = call.request.headers
        token = headers.get("token")
        timestamp = headers.get("timestamp")
        signature = headers.get("signature")
        if not signature:
            return self.error_reply(ERRNO_HEADER, MSG_NO_SIGNATURE)
        if not token or not timestamp or not headers.get("lang"):
            return self.error_reply(ERRNO_HEADER, MSG_MISSING)
        try:
            ts_ms = int(timestamp)
        except ValueError:
            return self.error_reply(ERRNO_HEADER, MSG_TIMESTAMP)
        if abs(ts_ms / 1000 - call.t) > self.settings.timestamp_tolerance_s:
            return self.error_reply(ERRNO_HEADER, MSG_TIMESTAMP)
        # path only: aiohttp's request.path excludes the query string (notes §2.1)
        if signature.lower() != expected_signature(call.path, token, timestamp):
            return self.error_reply(ERRNO_HEADER, MSG_SIGNATURE)
        if token not in self.accounts:
            # notes §2.2: unknown key → HTTP 401 (com.foxess "verified live"); errno per notes §3.2
            return self.error_reply(ERRNO_INVALID_TOKEN, "invalid token", http_status=401)
        call.account = token
        return None

    # ---------------------------------------------------------------- parsing and limits

    async def parse(self, call: Call) -> None:
        await super().parse(call)
        if call.method == "POST" and not isinstance(call.body, dict):
            raise ProtocolError(ERRNO_BODY, MSG_BODY)
        owned = self.accounts.get(call.account or "", ())
        named: list[str] = []
        if call.method == "GET":
            if "sn" in call.query:
                named = [call.query["sn"]]
        elif isinstance(call.body, dict):
            if isinstance(call.body.get("sn"), str):
                named = [call.body["sn"]]
            elif isinstance(call.body.get("sns"), list):
                named = [s for s in call.body["sns"] if isinstance(s, str)]
        call.devices = tuple(dict.fromkeys(s for s in named if s in owned))

    def charges(self, call: Call, endpoint: Endpoint) -> Sequence[Charge]:
        """Daily pool, daily per named inverter (both 40402), then 1/s per endpoint (40400).

        See :class:`FoxessLimits` for how a call is counted.
        """
        account = call.account or ""
        counted = self.settings.refused_cost_quota
        out = [Charge(self._pools[account], account, max(1, len(call.devices)), when_refused=counted)]
        out += [Charge(self._per_inverter, (account, sn), 1, when_refused=counted) for sn in call.devices]
        if endpoint.kind == "query":
            out.append(Charge(self._per_second, (account, call.path)))
        return out

    def limit_refusal(self, call: Call, charge: Charge) -> Reply:
        if charge.limit is self._per_second:
            return self.error_reply(ERRNO_TOO_FREQUENT, MSG_TOO_FREQUENT)
        return self.error_reply(ERRNO_QUOTA, MSG_QUOTA)

    # ---------------------------------------------------------------- accounting

    def quota(self, api_key: str) -> tuple[int, int]:
        """(total, remaining) of the account's daily pool right now (what getAccessCount reports)."""
        pool = self._pools[api_key]
        return pool.max_calls, self.limits.remaining(pool, api_key)

    # ---------------------------------------------------------------- helpers

    def _owned(self, call: Call) -> tuple[str, ...]:
        return self.accounts[call.account or ""]

    def _sn_param(self, call: Call, sn: Any) -> str:
        if not isinstance(sn, str) or not sn:
            raise ProtocolError(ERRNO_BODY, MSG_BODY)
        if sn not in self._owned(call):
            raise ProtocolError(ERRNO_BAD_SN, "incorrect inverter id")
        return sn

    @staticmethod
    def _page(body: Any) -> tuple[int, int]:
        """Paging (doc "Get device list": currentPage ≥ 1, pageSize ≥ 10; max 1000 per module list)."""
        page, size = body.get("currentPage"), body.get("pageSize")
        if (
            not isinstance(page, int)
            or isinstance(page, bool)
            or page < 1
            or not isinstance(size, int)
            or isinstance(size, bool)
            or not 10 <= size <= 1000
        ):
            raise ProtocolError(ERRNO_BODY, MSG_BODY)
        return page, size

    @staticmethod
    def _variables_param(body: Any) -> list[str] | None:
        variables = body.get("variables")
        if variables is None or variables == []:
            return None  # doc: not passed → all variables (the doc's sample passes [])
        if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
            raise ProtocolError(ERRNO_BODY, MSG_BODY)
        return variables

    def _status(self, sn: str, now: float) -> int:
        """1 online, 2 fault, 3 offline (doc "Get device list"): offline after 3 missed uploads."""
        u = self.plant.upload_time(sn, now)
        if u is None or now - u > 3 * self.plant.inverter(sn).upload_interval_s:
            return 3
        return 2 if self.plant.truth(sn, u).state in ("fault", "permanent_fault") else 1

    def _product_type(self, inv: Inverter) -> str:
        configured = self.quirks_for(inv.sn).product_type
        if configured is not None:
            return configured
        if "-" in inv.model:
            return inv.model.split("-")[0]
        return "".join(ch for ch in inv.model if ch.isalpha()) or inv.model

    def _datas(self, sn: str, truth: Truth, wanted: list[str] | None) -> list[dict[str, Any]]:
        ctx = _Ctx(truth, self.plant.inverter(sn), self.quirks_for(sn))
        variables = self._vars[sn]
        if wanted is not None:
            by_key = {v.key: v for v in variables}
            # doc: "If the data is not found, it will not be returned"
            variables = [by_key[k] for k in dict.fromkeys(wanted) if k in by_key]
        out = []
        for var in variables:
            item: dict[str, Any] = {}
            if var.unit is not None:
                item["unit"] = var.unit
            item["name"] = var.label
            item["variable"] = var.key
            item["value"] = var.get(ctx)
            out.append(item)
        return out

    def _device_real(self, sn: str, now: float, wanted: list[str] | None) -> dict[str, Any]:
        u = self.plant.upload_time(sn, now)
        if u is None:
            return {"datas": [], "deviceSN": sn}
        zone = self.plant.site_of(sn).zone
        return {
            "datas": self._datas(sn, self.plant.truth(sn, u), wanted),
            "time": foxess_time(u, zone),
            "deviceSN": sn,
        }

    def _register(self, sn: str, u: int | None, counter: str) -> int:
        """The cloud's 0.1-kWh register of ``counter`` at upload ``u`` (0 before the first upload)."""
        if u is None:
            return 0
        wh: float = getattr(self.plant.counters(sn, u), counter)
        return math.floor(wh / 100 + 1e-9)

    # ---------------------------------------------------------------- handlers: discovery

    async def _plant_list(self, call: Call) -> Any:
        page, size = self._page(call.body)
        owned = set(self._owned(call))
        sites = [s for s in self.plant.sites if any(inv.sn in owned for inv in s.inverters)]
        data = [{"stationID": s.site_id, "name": s.name, "ianaTimezone": s.zone} for s in sites]
        return {
            "data": data[(page - 1) * size : page * size],
            "currentPage": page,
            "pageSize": size,
            "total": len(data),
        }

    async def _plant_detail(self, call: Call) -> Any:
        site_id = call.query.get("id")
        if not site_id:
            raise ProtocolError(ERRNO_BODY, MSG_BODY)
        owned = set(self._owned(call))
        site = next(
            (
                s
                for s in self.plant.sites
                if s.site_id == site_id and any(inv.sn in owned for inv in s.inverters)
            ),
            None,
        )
        if site is None:
            raise ProtocolError(ERRNO_BODY, "power station does not exist")
        created = local_time(site.zone, site.commissioned, 9, 30)
        return {
            "stationName": site.name,
            "country": site.country,
            "city": site.city,
            "address": site.address,
            # notes §4.9: a time string, not the doc's millisecond timestamp
            "createDate": foxess_time(created, site.zone),
            "postcode": site.postcode,
            "capacity": round(sum(inv.kwp for inv in site.inverters), 2),
            "timezone": site.zone,
            "user": {"name": "Demo User", "email": "demo@example.invalid", "phone": ""},
            "installer": {"name": "Demo Installer", "email": "installer@example.invalid", "phone": ""},
            "modules": [
                {"moduleSN": inv.logger_sn, "deviceSN": inv.sn} for inv in site.inverters if inv.sn in owned
            ],
        }

    async def _device_list(self, call: Call) -> Any:
        page, size = self._page(call.body)
        rows = []
        for sn in self._owned(call):
            inv, site = self.plant.inverter(sn), self.plant.site_of(sn)
            rows.append(
                {
                    "deviceType": inv.model,
                    "hasBattery": inv.battery is not None,
                    "hasPV": True,
                    "stationName": site.name,
                    "moduleSN": inv.logger_sn,
                    "deviceSN": sn,
                    "productType": self._product_type(inv),
                    "stationID": site.site_id,
                    "status": self._status(sn, call.t),
                }
            )
        return {
            "total": len(rows),
            "data": rows[(page - 1) * size : page * size],
            "pageSize": size,
            "currentPage": page,
        }

    async def _device_detail(self, call: Call) -> Any:
        sn = self._sn_param(call, call.query.get("sn"))
        inv, site = self.plant.inverter(sn), self.plant.site_of(sn)
        batteries: list[dict[str, Any]] = []
        if inv.battery is not None:
            bat = inv.battery
            for i in range(bat.packs):
                pack_sn = f"{sn[:4]}BAT{stable_hash('pack', sn, i) % 10**8:08d}"
                batteries.append({"batterySN": pack_sn, "model": bat.model, "type": "bcu", "version": "1.09"})
                # notes §4.5: capacity (Wh) on bmu rows, which can repeat
                bmu = {
                    "batterySN": pack_sn,
                    "model": bat.model,
                    "type": "bmu",
                    "version": "1.02",
                    "capacity": round(bat.capacity_wh / bat.packs),
                }
                batteries += [dict(bmu) for _ in range(self.quirks_for(sn).bmu_repeat)]
        result: dict[str, Any] = {
            "deviceType": inv.model,
            "masterVersion": "1.57",
            "afciVersion": "",
            "hasPV": True,
            "deviceSN": sn,
            "slaveVersion": "1.02",
            "capacity": int(inv.rated_power_w // 1000),  # notes §4.5: inverter kW, int
            "hasBattery": inv.battery is not None,
            "function": {"scheduler": inv.battery is not None},
            "hardwareVersion": "--",
            "managerVersion": "1.44",
            "stationName": site.name,
            "moduleSN": inv.logger_sn,
            "productType": self._product_type(inv),
            "stationID": site.site_id,
            "status": self._status(sn, call.t),
            "batteryList": batteries,
        }
        if call.path.startswith("/op/v1/") and inv.battery is not None:
            # notes §4.5: newer responses add batteryDesignCapacity in kWh (Decision: v1 only)
            result["batteryDesignCapacity"] = round(inv.battery.capacity_wh / 1000, 2)
        return result

    async def _variables(self, call: Call) -> Any:
        return _catalogue()

    async def _fault_table(self, call: Call) -> Any:
        codes = dict(FAULT_TEXTS)
        for fault in self.plant.faults:
            codes.setdefault(fault.code, fault.message or f"Fault {fault.code}")
        return [{str(code): {"en": text, "zh_CN": text, "pl": text}} for code, text in sorted(codes.items())]

    async def _module_list(self, call: Call) -> Any:
        page, size = self._page(call.body)
        rows = []
        for sn in self._owned(call):
            inv = self.plant.inverter(sn)
            rows.append(
                {
                    "moduleSN": inv.logger_sn,
                    "stationID": self.plant.site_of(sn).site_id,
                    "status": 2 if self._status(sn, call.t) == 3 else 1,
                    "signal": 40 + stable_hash("signal", sn) % 50,
                }
            )
        return {
            "currentPage": page,
            "pageSize": size,
            "total": len(rows),
            "data": rows[(page - 1) * size : page * size],
        }

    async def _soc_settings(self, call: Call) -> Any:
        sn = self._sn_param(call, call.query.get("sn"))
        bat = self.plant.inverter(sn).battery
        if bat is None:
            raise ProtocolError(ERRNO_QUERY_FAILED, MSG_QUERY_FAILED)
        return {"minSocOnGrid": round(bat.min_soc_pct), "minSoc": round(bat.min_soc_pct)}

    async def _access_count(self, call: Call) -> Any:
        total, remaining = self.quota(call.account or "")
        if self.access_count_strings:
            return {"total": str(total), "remaining": str(remaining)}
        return {"total": total, "remaining": remaining}

    # ---------------------------------------------------------------- handlers: data

    def _check_all_variables(self, sns: Sequence[str], wanted: list[str] | None) -> None:
        if wanted is None and any(self.quirks_for(sn).all_variables_fails for sn in sns):
            raise ProtocolError(ERRNO_QUERY_FAILED, MSG_QUERY_FAILED)

    async def _real_v0(self, call: Call) -> Any:
        body = call.body
        wanted = self._variables_param(body)
        if body.get("sn") in (None, ""):
            return None  # notes §4.1: v0 without sn answers errno 0 with result null
        sn = self._sn_param(call, body.get("sn"))
        self._check_all_variables([sn], wanted)
        return [self._device_real(sn, call.t, wanted)]

    async def _real_v1(self, call: Call) -> Any:
        body = call.body
        sns = body.get("sns")
        if not isinstance(sns, list) or not sns or not all(isinstance(s, str) for s in sns):
            raise ProtocolError(ERRNO_BODY, MSG_BODY)
        if len(sns) > V1_MAX_SNS:  # doc: "Can transmit up to 50 Serial Number"
            raise ProtocolError(ERRNO_BODY, MSG_BODY)
        wanted = self._variables_param(body)
        owned = set(self._owned(call))
        mine = [sn for sn in dict.fromkeys(sns) if sn in owned]
        self._check_all_variables(mine, wanted)
        return [self._device_real(sn, call.t, wanted) for sn in mine]

    async def _history(self, call: Call) -> Any:
        """Doc "Get device history data": ≤ 24 h per call, none given → the last 3 days.

        **Decision**: a longer window (also a 25-h local day) → 40257; only one bound → 40257.
        """
        body = call.body
        sn = self._sn_param(call, body.get("sn"))
        wanted = self._variables_param(body)
        begin, end = body.get("begin"), body.get("end")
        now = call.t
        if begin is None and end is None:
            begin_s, end_s = now - HISTORY_DEFAULT_S, now
        else:
            if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (begin, end)):
                raise ProtocolError(ERRNO_BODY, MSG_BODY)
            assert isinstance(begin, int | float) and isinstance(end, int | float)
            if end < begin or end - begin > HISTORY_MAX_MS:
                raise ProtocolError(ERRNO_BODY, MSG_BODY)
            begin_s, end_s = begin / 1000, min(end / 1000, now)
        uploads = self.plant.upload_times(sn, begin_s, end_s) if begin_s <= end_s else []
        zone = self.plant.site_of(sn).zone
        inv, quirks = self.plant.inverter(sn), self.quirks_for(sn)
        variables = self._vars[sn]
        if wanted is not None:
            by_key = {v.key: v for v in variables}
            variables = [by_key[k] for k in dict.fromkeys(wanted) if k in by_key]
        series: dict[str, list[dict[str, Any]]] = {v.key: [] for v in variables}
        numeric: dict[str, bool] = {v.key: True for v in variables}
        every = quirks.history_string_every
        for u in uploads:
            ctx = _Ctx(self.plant.truth(sn, u), inv, quirks)
            as_string = every > 0 and (u // inv.upload_interval_s) % every == 0
            stamp = foxess_time(u, zone)
            for var in variables:
                value = var.get(ctx)
                if isinstance(value, str):
                    try:
                        value = float(value)
                    except ValueError:
                        numeric[var.key] = False  # text variables have no history
                        continue
                if as_string and value is not None:
                    value = str(value)  # notes §4.2: history values can be strings
                series[var.key].append({"time": stamp, "value": value})
        datas = []
        for var in variables:
            if not numeric[var.key]:
                continue
            item: dict[str, Any] = {}
            if var.unit is not None:
                item["unit"] = var.unit
            item.update({"name": var.label, "variable": var.key, "data": series[var.key]})
            datas.append(item)
        return [{"datas": datas, "deviceSN": sn}]

    async def _generation(self, call: Call) -> Any:
        """Doc "Get device power generation" in the plant's zone; ``today`` null before today's first
        upload (notes §4.6)."""
        sn = self._sn_param(call, call.query.get("sn"))
        zone = self.plant.site_of(sn).zone
        now = call.t
        latest = self.plant.upload_time(sn, now)
        today = local_date(zone, now)
        midnight = local_midnight(zone, today)
        month_start = local_midnight(zone, today.replace(day=1))
        reg = self._register(sn, latest, "yield_wh")
        at_midnight = self._register(sn, self.plant.upload_time(sn, midnight), "yield_wh")
        at_month = self._register(sn, self.plant.upload_time(sn, month_start), "yield_wh")
        return {
            "today": None if latest is None or latest < midnight else reg * 0.1 - at_midnight * 0.1,
            "month": reg * 0.1 - at_month * 0.1,
            "cumulative": reg * 0.1,
        }

    # ---------------------------------------------------------------- reports

    def corrupted_slot(
        self, sn: str, variable: str, dimension: str, year: int, month: int = 0, day: int = 0
    ) -> int | None:
        """The slot index a report corrupts, before masking to elapsed slots (None = none).

        Rule: ``stable_hash`` of the request picks one report in three; its slot is the hash modulo the
        slot count. Only an elapsed slot after commissioning that has a value (not null) is corrupted.
        """
        if not self.quirks_for(sn).report_corruption:
            return None
        h = stable_hash("foxess-report-corruption", sn, variable, dimension, year, month, day)
        if h % 3:
            return None
        return (h // 3) % {"day": 24, "month": 31, "year": 12}[dimension]

    def _bucket_bounds(self, zone: str, dimension: str, y: int, m: int, d: int) -> list[tuple[int, int]]:
        if dimension == "day":
            day = date(y, m, d)
            bounds = [local_time(zone, day, h) for h in range(24)] + [
                local_midnight(zone, day + timedelta(days=1))
            ]
            # a skipped hour (spring forward) maps to an empty bucket
            return [(bounds[i], max(bounds[i], bounds[i + 1])) for i in range(24)]
        if dimension == "month":
            first = date(y, m, 1)
            out = []
            for i in range(31):
                day = first + timedelta(days=i)
                if day.month != m:
                    out.append((0, 0))  # Decision: 31 slots always, trailing zeros
                else:
                    out.append((local_midnight(zone, day), local_midnight(zone, day + timedelta(days=1))))
            return out
        months = [date(y, mm, 1) for mm in range(1, 13)] + [date(y + 1, 1, 1)]
        return [(local_midnight(zone, months[i]), local_midnight(zone, months[i + 1])) for i in range(12)]

    def _bucket_value(self, sn: str, counter: str, a: int, b: int, now: float, hourly: bool) -> float | None:
        if a >= b or a >= now or b <= self.plant.commissioned_at(sn):
            return 0.0
        uploads = self.plant.upload_times(sn, a, min(b - 1, now))
        if not uploads:
            return None  # notes §4.3: null entries occur (here: no upload in the slot)
        # notes §4.3 (b): an hour bucket runs from its first to its last upload (~55 min); day and month
        # buckets run from the last upload before them to their last upload, so they reconcile
        start = uploads[0] if hourly else self.plant.upload_time(sn, a)
        return self._register(sn, uploads[-1], counter) * 0.1 - self._register(sn, start, counter) * 0.1

    async def _report(self, call: Call) -> Any:
        """Doc "Get device production report"; notes §4.3 (see the module docstring)."""
        body = call.body
        sn = self._sn_param(call, body.get("sn"))
        dimension, year, month, day = (
            body.get("dimension"),
            body.get("year"),
            body.get("month"),
            body.get("day"),
        )
        variables = body.get("variables")

        def is_int(x: Any) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        if (
            dimension not in ("day", "month", "year")
            or not is_int(year)
            or year < 2020
            or (dimension in ("day", "month") and (not is_int(month) or not 1 <= month <= 12))
            or (dimension == "day" and (not is_int(day) or not 1 <= day <= 31))
            or not isinstance(variables, list)
            or not variables
            or not all(isinstance(v, str) for v in variables)
        ):
            raise ProtocolError(ERRNO_BODY, MSG_BODY)
        m = month if dimension != "year" else 1
        d = day if dimension == "day" else 1
        try:
            date(year, m, d)
        except ValueError as err:
            raise ProtocolError(ERRNO_BODY, MSG_BODY) from err

        inv, quirks = self.plant.inverter(sn), self.quirks_for(sn)
        zone = self.plant.site_of(sn).zone
        buckets = self._bucket_bounds(zone, dimension, year, m, d)
        names = [v for v in dict.fromkeys(variables) if v in REPORT_VARIABLES]  # unknown: omitted
        result = []
        for name in names:
            counter = REPORT_VARIABLES[name]
            values: list[float | None]
            if inv.battery is None and counter.startswith("battery_"):
                values = [0.0] * len(buckets)
            else:
                values = [
                    self._bucket_value(sn, counter, a, b, call.t, dimension == "day") for a, b in buckets
                ]
            slot = self.corrupted_slot(sn, name, dimension, year, month or 0, day or 0)
            if slot is not None and slot < len(values):
                a, b = buckets[slot]
                value = values[slot]
                if value is not None and a < b and self.plant.commissioned_at(sn) < b <= call.t:
                    # notes §4.3 (c) / §5: the high word of the 32-bit 0.1-kWh register is garbage
                    values[slot] = ((CORRUPT_HIGH_WORD << 16) | (round(value * 10) & 0xFFFF)) / 10
            result.append({"variable": name, "unit": "kWh", "values": values})
        if dimension == "year" and quirks.year_report_mislabel and len(result) > 1:
            # notes §4.3 (a): wrong labels on the year dimension; values stay in request order
            labels = [r["variable"] for r in result]
            for i, r in enumerate(result):
                r["variable"] = labels[(i + 1) % len(labels)]
        return result


# ------------------------------------------------------------------------------------------------
# Demo


DEMO_SITE_ID = "5f3c0b8e-2a41-4d6b-9e7a-1c2d3e4f5a6b"
DEMO_HYBRID_SN = "60H3102E2400001"
DEMO_PV_SN = "60F3602G2400002"


def demo_plant(commissioned: date | None = None, *, seed: int = 1) -> Plant:
    """The demo site in Europe/Berlin: a 3-phase hybrid (H3-10.0-E, two strings, 2 battery packs of
    5.18 kWh, night grid charge) and a PV-only inverter (F3600, one string).

    ``commissioned`` defaults to 60 days before today (UTC), so lifetime counters cover 60 days.
    Schedule: the PV-only inverter has an isolation fault (code 6) on day 10 from 11:00 to 12:30 local
    and on the day before yesterday from 13:00 to 13:45; the hybrid's logger is offline on day 20 from
    09:00 to 10:30 local.
    """
    if commissioned is None:
        commissioned = datetime.now(UTC).date() - timedelta(days=60)
    zone = "Europe/Berlin"
    hybrid = Inverter(
        DEMO_HYBRID_SN,
        "H3-10.0-E",
        10000,
        (PvString(6.4, 0.35, 380.0), PvString(4.8, -0.35, 300.0)),
        battery=Battery(
            10360,
            packs=2,
            max_power_w=6000,
            min_soc_pct=10,
            soh_pct=97,
            pack_voltage_v=400,
            model="HV2600",
            grid_charge=GridCharge(2, 5, 35, 2500),
        ),
        phases=3,
        load_kwh_per_day=11.0,
        logger_sn="609W3EUF24A0001",
    )
    pv_only = Inverter(
        DEMO_PV_SN,
        "F3600",
        3600,
        (PvString(4.2, 0.0, 340.0),),
        phases=1,
        load_kwh_per_day=3.0,
        logger_sn="609W1EUF24A0002",
    )
    site = Site(
        DEMO_SITE_ID,
        "Demo Home",
        zone,
        52.52,
        13.405,
        (hybrid, pv_only),
        commissioned,
        country="Germany",
        city="Berlin",
        address="Musterstraße 1",
        postcode="10115",
    )
    day10 = commissioned + timedelta(days=10)
    recent = max(commissioned + timedelta(days=1), datetime.now(UTC).date() - timedelta(days=2))
    faults = [
        Fault(DEMO_PV_SN, 6, local_time(zone, day10, 11), local_time(zone, day10, 12, 30), "Isolation Fault"),
        Fault(
            DEMO_PV_SN, 6, local_time(zone, recent, 13), local_time(zone, recent, 13, 45), "Isolation Fault"
        ),
    ]
    day20 = commissioned + timedelta(days=20)
    outages = [Outage(DEMO_HYBRID_SN, local_time(zone, day20, 9), local_time(zone, day20, 10, 30))]
    return Plant([site], seed=seed, faults=faults, outages=outages)


def demo_quirks() -> dict[str, FoxessQuirks]:
    """The demo devices' quirks: the hybrid with ``0.01kWh`` residual energy, 4× repeated ``bmu``
    rows and string history values every 37th slot; the PV-only inverter with defaults."""
    return {
        DEMO_HYBRID_SN: FoxessQuirks(residual_unit="0.01kWh", bmu_repeat=4, history_string_every=37),
        DEMO_PV_SN: FoxessQuirks(),
    }


__all__ = [
    "DEMO_API_KEY",
    "DEMO_HYBRID_SN",
    "DEMO_PV_SN",
    "DEMO_SITE_ID",
    "FoxessLimits",
    "FoxessQuirks",
    "FoxessSim",
    "demo_plant",
    "demo_quirks",
    "expected_signature",
    "foxess_time",
]
