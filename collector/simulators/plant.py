"""A deterministic plant model: the true values behind every vendor simulator.

A :class:`Plant` holds sites with inverters (PV strings, optional battery, a grid meter and a house
load) and answers :meth:`Plant.truth` for any Unix second: powers, voltages, currents, temperatures,
state of charge, running state and energy counters, all in **base SI units** (W, Wh, V, A, °C, %, Hz,
var). A vendor simulator converts the truth into the vendor's units and shapes; the collector converts
back; the tests compare what the collector stored with the truth.

How the model works (everything is deterministic for a given configuration and ``seed``):

* Time is simulated per **local day** of the site (local midnight to local midnight, so 23/24/25 hours)
  in steps of :data:`STEP_S` seconds. Within a step every power is constant, so the energy counters are
  the exact integral of the power curves: a counter at ``t`` is the cumulative sum up to the step plus
  the partial step, and ``counter(t2) - counter(t1)`` equals the integral of the power between them.
* PV power per string is a clear-sky bell from local sunrise to sunset (solar geometry from latitude,
  longitude and day of year), scaled by the season, with deterministic cloud wiggles per site and day.
  After sunrise an inverter spends :data:`STARTUP_CHECK_S` seconds checking before it feeds in.
* House load is a morning and an evening peak over a base load, plus a few short appliance spikes.
* The battery (self-use): PV surplus charges it, a deficit discharges it, within its power limit and
  its SoC window; an optional grid-charge window charges it from the grid (AC output goes negative).
* ``ac = (pv - charge + discharge) * η`` (or ``/ η`` when negative); ``grid = load - ac`` split into
  import and export, each ≥ 0 — the grid meter and the load belong to the inverter.
* Days are chained from the site's commissioning date (the battery's energy and the lifetime counters
  carry over), so lifetime counters start at 0 on the commissioning day. Only per-day summaries are
  kept for all days; full step arrays live in a small LRU cache and are recomputed on demand
  (recomputation is exact, since a day depends only on its start state).
* A fault schedule (:class:`Fault`) stops an inverter (no PV, battery idle) and sets its state; an
  outage schedule (:class:`Outage`) stops its logger uploading while the plant keeps running.
* Loggers upload every ``upload_interval_s`` (300 s) at a device-specific phase (derived from a hash
  of the SN); :meth:`Plant.upload_time` is the newest upload at or before ``t``, and a cloud serves
  :meth:`Plant.snapshot` — the truth at that instant.

Sign conventions of the truth: every flow is split into non-negative parts (``grid_import_power_w`` /
``grid_export_power_w``, ``charge_power_w`` / ``discharge_power_w``); ``ac_power_w`` is the inverter's
AC output and may be negative while the battery charges from the grid; ``BatteryTruth.current_a`` and
``PackTruth.current_a`` are positive while charging.
"""

from __future__ import annotations

import hashlib
import math
import random
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

STEP_S = 60
"""Simulation step in seconds; powers are constant within a step."""

STARTUP_CHECK_S = 300
"""After sunrise an inverter checks the grid for this long before it feeds in (state ``starting``)."""

INVERTER_EFFICIENCY = 0.97
BATTERY_EFFICIENCY = 0.96
"""One-way efficiency of the battery: stored energy grows by ``charge * η`` and falls by ``discharge / η``."""

State = Literal["normal", "standby", "starting", "fault", "permanent_fault"]
"""Vendor-neutral running states (a subset of the schema's ``state`` words)."""

COUNTER_NAMES = (
    "yield_wh",
    "pv_wh",
    "grid_import_wh",
    "grid_export_wh",
    "battery_charge_wh",
    "battery_discharge_wh",
    "load_wh",
)


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of ``parts`` that is the same in every process (unlike ``hash()``)."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@lru_cache(maxsize=64)
def zone_info(name: str) -> ZoneInfo:
    """The (cached) :class:`ZoneInfo` for an IANA zone name."""
    return ZoneInfo(name)


def local_midnight(zone: str, day: date) -> int:
    """Unix second of local midnight starting ``day`` in ``zone``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone_info(zone)).timestamp())


def local_time(zone: str, day: date, hour: int, minute: int = 0) -> int:
    """Unix second of a local wall-clock time (first occurrence on a fall-back day)."""
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone_info(zone)).timestamp())


def local_date(zone: str, t: float) -> date:
    """The local calendar date of Unix time ``t`` in ``zone``."""
    return datetime.fromtimestamp(t, zone_info(zone)).date()


# --------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class PvString:
    """One PV string / MPPT input.

    ``orientation`` shifts energy to the morning (> 0, east) or the afternoon (< 0, west); range ±0.5.
    """

    kwp: float
    orientation: float = 0.0
    vmp_v: float = 360.0

    def __post_init__(self) -> None:
        if not 0 < self.kwp <= 50 or not -0.5 <= self.orientation <= 0.5 or self.vmp_v <= 0:
            raise ValueError(f"implausible PV string {self!r}")


@dataclass(frozen=True)
class GridCharge:
    """Charge the battery from the grid between two local hours until ``target_soc_pct``."""

    start_hour: int
    end_hour: int
    target_soc_pct: float
    power_w: float


@dataclass(frozen=True)
class Battery:
    """A battery of 1 or 2 packs (each pack has its own BMS); ``capacity_wh`` is the total."""

    capacity_wh: float
    packs: int = 1
    max_power_w: float = 5000.0
    min_soc_pct: float = 10.0
    soh_pct: float = 98.0
    pack_voltage_v: float = 400.0
    model: str = "HV2600"
    grid_charge: GridCharge | None = None

    def __post_init__(self) -> None:
        if self.packs not in (1, 2) or self.capacity_wh <= 0 or not 0 <= self.min_soc_pct < 100:
            raise ValueError(f"implausible battery {self!r}")


@dataclass(frozen=True)
class Inverter:
    """An inverter with its strings, optional battery, grid meter and house load."""

    sn: str
    model: str
    rated_power_w: float
    strings: tuple[PvString, ...]
    battery: Battery | None = None
    phases: int = 1
    load_kwh_per_day: float = 9.0
    logger_sn: str = ""
    upload_interval_s: int = 300

    def __post_init__(self) -> None:
        if not 1 <= len(self.strings) <= 4:
            raise ValueError("an inverter has 1 to 4 PV strings")
        if self.phases not in (1, 3) or not 60 <= self.upload_interval_s <= 3600:
            raise ValueError(f"implausible inverter {self.sn}")

    @property
    def kwp(self) -> float:
        """Installed PV peak power of all strings, kW."""
        return sum(s.kwp for s in self.strings)


@dataclass(frozen=True)
class Site:
    """A site (plant / station) in one IANA time zone."""

    site_id: str
    name: str
    zone: str
    latitude: float
    longitude: float
    inverters: tuple[Inverter, ...]
    commissioned: date
    country: str = ""
    city: str = ""
    address: str = ""
    postcode: str = ""

    def __post_init__(self) -> None:
        zone_info(self.zone)  # raises for an unknown zone
        if not -66 < self.latitude < 66:
            raise ValueError("latitude outside the modelled range (polar day/night not modelled)")


@dataclass(frozen=True)
class Fault:
    """Inverter ``sn`` has fault ``code`` from ``start`` (inclusive) to ``end`` (exclusive), Unix s."""

    sn: str
    code: int
    start: int
    end: int
    message: str = ""
    permanent: bool = False


@dataclass(frozen=True)
class Outage:
    """The logger of ``sn`` uploads nothing in ``[start, end)`` (the plant keeps running)."""

    sn: str
    start: int
    end: int


# --------------------------------------------------------------------------------------------------
# Truth


@dataclass(frozen=True, slots=True)
class Counters:
    """Energy counters in Wh (lifetime since commissioning, or a difference of two)."""

    yield_wh: float
    pv_wh: float
    grid_import_wh: float
    grid_export_wh: float
    battery_charge_wh: float
    battery_discharge_wh: float
    load_wh: float

    def __sub__(self, other: Counters) -> Counters:
        return Counters(*(a - b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[float, ...]:
        return (
            self.yield_wh,
            self.pv_wh,
            self.grid_import_wh,
            self.grid_export_wh,
            self.battery_charge_wh,
            self.battery_discharge_wh,
            self.load_wh,
        )


ZERO_COUNTERS = Counters(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class StringTruth:
    """One PV string: DC power, voltage and current."""

    power_w: float
    voltage_v: float
    current_a: float


@dataclass(frozen=True, slots=True)
class PhaseTruth:
    """One AC phase: voltage, current (≥ 0) and active power (signed like ``ac_power_w``)."""

    voltage_v: float
    current_a: float
    power_w: float


@dataclass(frozen=True, slots=True)
class PackTruth:
    """One battery pack (BMS); ``current_a`` is positive while charging, ``power_w`` likewise."""

    soc_pct: float
    voltage_v: float
    current_a: float
    temperature_c: float
    power_w: float


@dataclass(frozen=True, slots=True)
class BatteryTruth:
    """The battery as a whole; ``current_a`` is positive while charging."""

    charge_power_w: float
    discharge_power_w: float
    soc_pct: float
    soh_pct: float
    voltage_v: float
    current_a: float
    temperature_c: float
    residual_energy_wh: float
    capacity_wh: float
    packs: tuple[PackTruth, ...]


@dataclass(frozen=True, slots=True)
class Truth:
    """What an inverter really does at Unix second ``t`` (base SI units)."""

    sn: str
    t: int
    state: State
    fault_codes: tuple[int, ...]
    pv_power_w: float
    strings: tuple[StringTruth, ...]
    ac_power_w: float
    phases: tuple[PhaseTruth, ...]
    grid_frequency_hz: float
    reactive_power_var: float
    power_factor: float
    load_power_w: float
    grid_import_power_w: float
    grid_export_power_w: float
    battery: BatteryTruth | None
    inverter_temperature_c: float
    ambient_temperature_c: float
    total: Counters
    """Lifetime counters at ``t``."""
    today: Counters
    """Counters since local midnight of ``t``'s local day."""


# --------------------------------------------------------------------------------------------------
# Internals


@dataclass(frozen=True, slots=True)
class _DayState:
    """The state at the start of a local day: battery energy (Wh) and lifetime counters."""

    energy_wh: float
    counters: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class _Day:
    day: date
    start: int
    n: int
    sunrise: int
    sunset: int
    strings: tuple[array[float], ...]
    charge: array[float]
    discharge: array[float]
    load: array[float]
    energy: array[float]
    """Battery energy at step boundaries, n + 1 values."""
    cum: tuple[array[float], ...]
    """Lifetime counters at step boundaries (order of :data:`COUNTER_NAMES`), n + 1 values each."""
    fault: bytes
    """Per step: 0 no fault, else 1 + index into the day's fault list."""
    faults: tuple[Fault, ...]


def ac_power(pv: float, charge: float, discharge: float) -> float:
    """Inverter AC output from DC flows (negative when the battery charges from the grid)."""
    dc = pv - charge + discharge
    return dc * INVERTER_EFFICIENCY if dc >= 0 else dc / INVERTER_EFFICIENCY


def _solar_window(latitude: float, longitude: float, day: date) -> tuple[int, int, float]:
    """(sunrise, sunset) as Unix seconds and a 0..1 seasonal peak factor for ``day``."""
    n = day.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + n) / 365)
    b = 2 * math.pi * (n - 81) / 364
    eot_min = 9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)
    lat = math.radians(latitude)
    cos_w0 = max(-1.0, min(1.0, -math.tan(lat) * math.tan(decl)))
    half_day_s = math.degrees(math.acos(cos_w0)) / 15 * 3600
    utc_midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    noon = utc_midnight + 43200 - longitude * 240 - eot_min * 60
    elevation = math.pi / 2 - abs(lat - decl)
    peak = 0.05 + 0.85 * max(0.0, math.sin(elevation))
    return int(noon - half_day_s), int(noon + half_day_s), peak


def _offset_change(zone: str, start: int, n: int) -> tuple[int, int]:
    """(step index from which the UTC offset changed, change in seconds) within a day, or (n, 0)."""
    tz = zone_info(zone)

    def offset(t: int) -> int:
        off = datetime.fromtimestamp(t, tz).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    first, last = offset(start), offset(start + n * STEP_S - 1)
    if first == last:
        return n, 0
    lo, hi = 0, n - 1  # offset(step lo) == first, offset(step hi) == last
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offset(start + mid * STEP_S) == first:
            lo = mid
        else:
            hi = mid
    return hi, last - first


def _load_shape(hour: float) -> float:
    """Relative house load by local hour: base, morning peak, daytime plateau, evening peak."""
    morning = math.exp(-0.5 * ((hour - 7.5) / 0.75) ** 2)
    evening = math.exp(-0.5 * ((hour - 19.0) / 1.5) ** 2)
    daytime = 0.5 * (math.tanh(hour - 9) - math.tanh(hour - 17))
    return 0.35 + 0.9 * morning + 1.6 * evening + 0.3 * daytime


@lru_cache(maxsize=1)
def _load_table() -> tuple[float, ...]:
    """The load shape per local minute of day (25 h long, for fall-back days)."""
    return tuple(_load_shape((i + 0.5) / 60) for i in range(1500))


@lru_cache(maxsize=1)
def _load_shape_mean() -> float:
    return sum(_load_table()[:1440]) / 1440


class Plant:
    """The deterministic plant: sites, inverters, faults, outages and their truth at any second.

    ``truth(sn, t)`` for ``t`` before the site's commissioning day raises ``ValueError``.
    """

    def __init__(
        self,
        sites: Sequence[Site],
        *,
        seed: int = 0,
        faults: Iterable[Fault] = (),
        outages: Iterable[Outage] = (),
        cache_days: int = 64,
    ) -> None:
        self.sites: tuple[Site, ...] = tuple(sites)
        self.seed = seed
        self.faults: tuple[Fault, ...] = tuple(sorted(faults, key=lambda f: (f.sn, f.start)))
        self.outages: tuple[Outage, ...] = tuple(sorted(outages, key=lambda o: (o.sn, o.start)))
        self._inverters: dict[str, tuple[Inverter, Site]] = {}
        for site in self.sites:
            for inv in site.inverters:
                if inv.sn in self._inverters:
                    raise ValueError(f"duplicate SN {inv.sn}")
                self._inverters[inv.sn] = (inv, site)
        items: list[Fault | Outage] = [*self.faults, *self.outages]
        for item in items:
            if item.sn not in self._inverters or item.end <= item.start:
                raise ValueError(f"bad schedule entry {item!r}")
        for fault in self.faults:
            if fault.start % STEP_S or fault.end % STEP_S:
                raise ValueError(f"fault times must be multiples of {STEP_S} s: {fault!r}")
        self._states: dict[str, list[_DayState]] = {}
        self._days: OrderedDict[tuple[str, int], _Day] = OrderedDict()
        self._cache_days = cache_days
        self._truths: OrderedDict[tuple[str, int], Truth] = OrderedDict()

    # ---------------------------------------------------------------- lookup

    @property
    def inverters(self) -> tuple[Inverter, ...]:
        """All inverters of all sites."""
        return tuple(inv for inv, _ in self._inverters.values())

    def inverter(self, sn: str) -> Inverter:
        """The inverter with serial number ``sn`` (``KeyError`` if unknown)."""
        return self._inverters[sn][0]

    def site_of(self, sn: str) -> Site:
        """The site of inverter ``sn``."""
        return self._inverters[sn][1]

    def commissioned_at(self, sn: str) -> int:
        """Unix second from which inverter ``sn`` exists (local midnight of the commissioning day)."""
        site = self.site_of(sn)
        return local_midnight(site.zone, site.commissioned)

    def day_start(self, sn: str, t: float) -> int:
        """Unix second of local midnight of ``t``'s local day at ``sn``'s site."""
        zone = self.site_of(sn).zone
        return local_midnight(zone, local_date(zone, t))

    # ---------------------------------------------------------------- uploads

    def _upload_phase(self, sn: str) -> int:
        return stable_hash("upload-phase", sn) % self.inverter(sn).upload_interval_s

    def upload_time(self, sn: str, t: float) -> int | None:
        """The newest upload of ``sn``'s logger at or before ``t`` (None if there is none yet).

        Uploads happen every ``upload_interval_s`` at a per-SN phase; none during an :class:`Outage`.
        """
        interval = self.inverter(sn).upload_interval_s
        phase = self._upload_phase(sn)
        u = int(t) - ((int(t) - phase) % interval)
        for outage in reversed(self.outages):
            if outage.sn == sn and outage.start <= u < outage.end:
                u = outage.start - 1
                u -= (u - phase) % interval
        return u if u >= self.commissioned_at(sn) else None

    def upload_times(self, sn: str, begin: float, end: float) -> list[int]:
        """All uploads of ``sn`` with ``begin <= u <= end``, oldest first."""
        interval = self.inverter(sn).upload_interval_s
        phase = self._upload_phase(sn)
        first = max(math.ceil(begin), self.commissioned_at(sn))
        u = first + ((phase - first) % interval)
        out: list[int] = []
        outages = [o for o in self.outages if o.sn == sn and o.end > first and o.start <= end]
        while u <= end:
            if not any(o.start <= u < o.end for o in outages):
                out.append(u)
            u += interval
        return out

    def snapshot(self, sn: str, t: float) -> Truth | None:
        """What a cloud shows at ``t``: the truth at the newest upload (None before the first)."""
        u = self.upload_time(sn, t)
        return None if u is None else self.truth(sn, u)

    # ---------------------------------------------------------------- faults and states

    def active_faults(self, sn: str, t: float) -> tuple[Fault, ...]:
        """Faults of ``sn`` active at ``t``."""
        return tuple(f for f in self.faults if f.sn == sn and f.start <= t < f.end)

    # ---------------------------------------------------------------- days

    def _day_index(self, sn: str, t: float) -> int:
        site = self.site_of(sn)
        index = (local_date(site.zone, t) - site.commissioned).days
        if index < 0:
            raise ValueError(f"{sn} was not commissioned yet at {t}")
        return index

    def _start_state(self, sn: str, index: int) -> _DayState:
        states = self._states.setdefault(sn, [])
        if not states:
            inv = self.inverter(sn)
            energy = 0.0
            if inv.battery is not None:
                energy = _usable_capacity(inv.battery) * 0.5
            states.append(_DayState(energy, (0.0,) * len(COUNTER_NAMES)))
        while len(states) <= index:
            day = self._day(sn, len(states) - 1)
            states.append(_DayState(day.energy[-1], tuple(c[-1] for c in day.cum)))
        return states[index]

    def _day(self, sn: str, index: int) -> _Day:
        key = (sn, index)
        cached = self._days.get(key)
        if cached is not None:
            self._days.move_to_end(key)
            return cached
        state = self._start_state(sn, index)
        day = self._simulate(sn, self.site_of(sn).commissioned + timedelta(days=index), state)
        self._days[key] = day
        if len(self._days) > self._cache_days:
            self._days.popitem(last=False)
        return day

    def _simulate(self, sn: str, d: date, state: _DayState) -> _Day:
        inv, site = self._inverters[sn]
        start = local_midnight(site.zone, d)
        n = (local_midnight(site.zone, d + timedelta(days=1)) - start) // STEP_S
        change_at, change_s = _offset_change(site.zone, start, n)
        sunrise, sunset, peak = _solar_window(site.latitude, site.longitude, d)
        feed_from = sunrise + STARTUP_CHECK_S

        # clouds: per site and day, shared by the site's inverters
        rng = random.Random(stable_hash(self.seed, "clouds", site.site_id, d.isoformat()))
        kind = rng.random()
        cloudiness = rng.uniform(0, 0.1) if kind < 0.35 else rng.uniform(0.2, 0.55) if kind < 0.75 else 0.85
        # three sines with periods of 7-15, 17-40 and 45-120 minutes (p = period / 2π, in minutes)
        (p1, ph1, w1), (p2, ph2, w2), (p3, ph3, w3) = (
            (rng.uniform(lo, hi) / (2 * math.pi), rng.uniform(0, 2 * math.pi), w)
            for lo, hi, w in ((7, 15, 0.2), (17, 40, 0.5), (45, 120, 0.3))
        )

        # load: per inverter and day
        rng = random.Random(stable_hash(self.seed, "load", sn, d.isoformat()))
        load_scale = inv.load_kwh_per_day * 1000 / 24 / _load_shape_mean() * rng.uniform(0.85, 1.15)
        spikes = [
            (rng.uniform(6, 22) * 3600, rng.randint(2, 8) * 60, rng.uniform(1200, 2400))
            for _ in range(rng.randint(2, 6))
        ]

        faults = tuple(
            f for f in self.faults if f.sn == sn and f.start < start + n * STEP_S and f.end > start
        )
        fault_steps = bytearray(n)
        for i, f in enumerate(faults):
            a = max(0, (f.start - start) // STEP_S)
            b = min(n, -((start - f.end) // STEP_S))
            fault_steps[a:b] = bytes([i + 1]) * (b - a)

        bat = inv.battery
        usable = _usable_capacity(bat) if bat is not None else 0.0
        e_min = usable * bat.min_soc_pct / 100 if bat is not None else 0.0
        max_p = bat.max_power_w if bat is not None else 0.0
        gc = bat.grid_charge if bat is not None else None
        step_h = STEP_S / 3600
        eta, eta_b = INVERTER_EFFICIENCY, BATTERY_EFFICIENCY
        strings = [(s.kwp * 1000 * peak, s.orientation) for s in inv.strings]
        day_len = max(1, sunset - sunrise)

        string_arrays = tuple(array("d") for _ in strings)
        charge_a, discharge_a, load_a = array("d"), array("d"), array("d")
        energy_a = array("d", [state.energy_wh])
        cum = tuple(array("d", [c]) for c in state.counters)
        c_yield, c_pv, c_imp, c_exp, c_chg, c_dis, c_load = state.counters
        cum_yield, cum_pv, cum_imp, cum_exp, cum_chg, cum_dis, cum_load = cum
        e = state.energy_wh

        # local time of day (s) at each step's midpoint, corrected after a DST change
        tods = [k * STEP_S + STEP_S // 2 + (change_s if k >= change_at else 0) for k in range(n)]
        table = _load_table()
        loads = [load_scale * table[int(tod) // 60] for tod in tods]
        for at, dur, watts in spikes:
            for k, tod in enumerate(tods):
                if at <= tod < at + dur:
                    loads[k] += watts

        for k in range(n):
            t_mid = start + k * STEP_S + STEP_S // 2
            tod_h = tods[k] / 3600
            load = loads[k]
            faulted = fault_steps[k] != 0
            pv = 0.0
            if feed_from <= t_mid < sunset and not faulted:
                x = (t_mid - sunrise) / day_len
                bell = math.sin(math.pi * x) ** 1.25
                tm = t_mid / 60
                wiggle = 0.5 + 0.5 * (
                    w1 * math.sin(tm / p1 + ph1) + w2 * math.sin(tm / p2 + ph2) + w3 * math.sin(tm / p3 + ph3)
                )
                cloud = 1 - cloudiness * wiggle
                cos_x = math.cos(math.pi * x)
                for arr, (scale, orient) in zip(string_arrays, strings, strict=True):
                    p = scale * bell * (1 + orient * cos_x) * cloud
                    arr.append(p)
                    pv += p
            else:
                for arr in string_arrays:
                    arr.append(0.0)
            charge = discharge = 0.0
            if bat is not None and not faulted:
                room = (usable - e) / eta_b / step_h
                avail = (e - e_min) * eta_b / step_h
                if (
                    gc is not None
                    and gc.start_hour <= tod_h < gc.end_hour
                    and e < usable * gc.target_soc_pct / 100
                ):
                    charge = max(0.0, min(gc.power_w, max_p, room))
                else:
                    surplus = pv * eta - load
                    if surplus > 0:
                        charge = max(0.0, min(surplus / eta, max_p, room))
                    else:
                        discharge = max(0.0, min(-surplus / eta, max_p, avail))
                e += charge * eta_b * step_h - discharge / eta_b * step_h
            ac = ac_power(pv, charge, discharge)
            net = _clean(load - ac)
            charge_a.append(charge)
            discharge_a.append(discharge)
            load_a.append(load)
            energy_a.append(e)
            c_yield += max(ac, 0.0) * step_h
            c_pv += pv * step_h
            c_imp += max(net, 0.0) * step_h
            c_exp += max(-net, 0.0) * step_h
            c_chg += charge * step_h
            c_dis += discharge * step_h
            c_load += load * step_h
            cum_yield.append(c_yield)
            cum_pv.append(c_pv)
            cum_imp.append(c_imp)
            cum_exp.append(c_exp)
            cum_chg.append(c_chg)
            cum_dis.append(c_dis)
            cum_load.append(c_load)
        return _Day(
            d,
            start,
            n,
            sunrise,
            sunset,
            string_arrays,
            charge_a,
            discharge_a,
            load_a,
            energy_a,
            cum,
            bytes(fault_steps),
            faults,
        )

    # ---------------------------------------------------------------- truth

    def counters(self, sn: str, t: float) -> Counters:
        """Lifetime energy counters of ``sn`` at ``t`` (0 before commissioning)."""
        if t < self.commissioned_at(sn):
            return ZERO_COUNTERS
        day = self._day(sn, self._day_index(sn, t))
        k, frac = _step(day, t)
        return Counters(*(c[k] + (c[k + 1] - c[k]) * frac for c in day.cum))

    def energy(self, sn: str, begin: float, end: float) -> Counters:
        """Energy of ``sn`` in ``[begin, end]`` (exactly the integral of the power curves)."""
        return self.counters(sn, end) - self.counters(sn, begin)

    def truth(self, sn: str, t: int) -> Truth:
        """The true values of inverter ``sn`` at Unix second ``t``."""
        key = (sn, int(t))
        cached = self._truths.get(key)
        if cached is not None:
            return cached
        truth = self._truth(sn, int(t))
        self._truths[key] = truth
        if len(self._truths) > 4096:
            self._truths.popitem(last=False)
        return truth

    def _truth(self, sn: str, t: int) -> Truth:
        inv = self.inverter(sn)
        day = self._day(sn, self._day_index(sn, t))
        k, frac = _step(day, t)
        total = Counters(*(c[k] + (c[k + 1] - c[k]) * frac for c in day.cum))
        today = total - Counters(*(c[0] for c in day.cum))
        fault_index = day.fault[k]
        fault = day.faults[fault_index - 1] if fault_index else None

        string_powers = [a[k] for a in day.strings]
        pv = sum(string_powers)
        charge, discharge, load = day.charge[k], day.discharge[k], day.load[k]
        ac = ac_power(pv, charge, discharge)
        net = _clean(load - ac)

        if fault is not None:
            state: State = "permanent_fault" if fault.permanent else "fault"
        elif pv > 0 or charge > 0 or discharge > 0:
            state = "normal"
        elif day.sunrise <= t < day.sunrise + STARTUP_CHECK_S:
            state = "starting"
        else:
            state = "standby"
        daylight = day.sunrise <= t < day.sunset

        strings = []
        for s, p in zip(inv.strings, string_powers, strict=True):
            if p > 0:
                v = s.vmp_v * (0.9 + 0.1 * min(1.0, p / (s.kwp * 800)))
                strings.append(StringTruth(p, v, p / v))
            elif daylight:  # open circuit: checking, faulted or shaded to nothing
                strings.append(StringTruth(0.0, s.vmp_v * 1.18, 0.0))
            else:
                strings.append(StringTruth(0.0, 0.0, 0.0))

        doy = day.day.timetuple().tm_yday
        tod_h = (t - day.start) / 3600
        ambient = (
            10 - 10 * math.cos(2 * math.pi * (doy - 20) / 365) + 5 * math.sin(2 * math.pi * (tod_h - 9) / 24)
        )
        inverter_temp = 20 + 0.25 * ambient + 25 * abs(ac) / inv.rated_power_w
        freq = 50 + 0.03 * math.sin(t / 97) * math.cos(t / 13)
        reactive = 0.05 * abs(ac)
        pf = ac / math.hypot(ac, reactive) if ac != 0 else 0.0
        shares = (1.0,) if inv.phases == 1 else (0.34, 0.33, 0.33)
        phases = []
        for i, share in enumerate(shares):
            v = 230 + 4 * math.sin(t / 611 + i)
            p = ac * share
            phases.append(PhaseTruth(v, abs(p) / v, p))

        battery = None
        if inv.battery is not None:
            bat = inv.battery
            usable = _usable_capacity(bat)
            e = day.energy[k] + (day.energy[k + 1] - day.energy[k]) * frac
            soc = 100 * e / usable
            flow = charge - discharge
            bat_temp = 18 + 0.2 * ambient + 3 * abs(flow) / bat.max_power_w
            packs = []
            for i in range(bat.packs):
                # two packs drift apart by up to ±0.8 % around the mean (which stays the SoC)
                spread = 0.0 if bat.packs == 1 else max(0.0, min(0.8, 100.0 - soc, soc))
                p_soc = soc + (spread if i == 0 else -spread)
                sag = 0.005 if flow > 0 else -0.005 if flow < 0 else 0.0  # internal resistance
                p_v = bat.pack_voltage_v * (0.94 + 0.1 * p_soc / 100 + sag)
                p_w = flow / bat.packs
                packs.append(PackTruth(p_soc, p_v, p_w / p_v, bat_temp + 0.6 * i, p_w))
            voltage = sum(p.voltage_v for p in packs) / len(packs)
            battery = BatteryTruth(
                charge_power_w=charge,
                discharge_power_w=discharge,
                soc_pct=soc,
                soh_pct=bat.soh_pct,
                voltage_v=voltage,
                current_a=flow / voltage,
                temperature_c=sum(p.temperature_c for p in packs) / len(packs),
                residual_energy_wh=e,
                capacity_wh=bat.capacity_wh,
                packs=tuple(packs),
            )

        return Truth(
            sn=sn,
            t=t,
            state=state,
            fault_codes=(fault.code,) if fault is not None else (),
            pv_power_w=pv,
            strings=tuple(strings),
            ac_power_w=ac,
            phases=tuple(phases),
            grid_frequency_hz=freq,
            reactive_power_var=reactive,
            power_factor=pf,
            load_power_w=load,
            grid_import_power_w=max(net, 0.0),
            grid_export_power_w=max(-net, 0.0),
            battery=battery,
            inverter_temperature_c=inverter_temp,
            ambient_temperature_c=ambient,
            total=total,
            today=today,
        )


def _clean(x: float) -> float:
    """Drop float noise around zero (``load - ac`` of equal flows)."""
    return 0.0 if -1e-6 < x < 1e-6 else x


def _usable_capacity(bat: Battery) -> float:
    """Energy the battery holds at 100 % SoC: rated capacity × state of health."""
    return bat.capacity_wh * bat.soh_pct / 100


def _step(day: _Day, t: float) -> tuple[int, float]:
    offset = t - day.start
    k = min(day.n - 1, max(0, int(offset // STEP_S)))
    frac = min(1.0, max(0.0, (offset - k * STEP_S) / STEP_S))
    return k, frac
