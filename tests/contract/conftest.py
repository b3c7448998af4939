"""The FoxESS contract suite's harness: the real client against the simulator, into a real InfluxDB.

* The simulator (:class:`RecordingSim`, a ``FoxessSim`` that also keeps every request's body) runs
  either in the test's own event loop (in-process ``App`` tests, on a :class:`SharedClock`) or in a
  background thread (:class:`SimThread`) while the test runs ``python -m collector …`` as a
  subprocess — the real FoxESS client, not the pipeline test vendor ``tests/conftest.py`` installs.
* influxd 1.x (Debian's binary, started by the suite on a free loopback port; a missing binary
  FAILS, it never skips) receives the points through ``/write`` (``influxdb: {api: v1}``); the
  tests read them back with InfluxQL.
* Expected values come from the plant model's truth in SI units at the data time
  (``Plant.truth(sn, t)``), widened only by the cloud's rounding: kW with 3 decimals (±0.5 W),
  0.1 V / A / °C (±0.05), whole % (±0.5), 0.1-kWh registers that count up (truth − 100 Wh … truth).
  Truth is computed from a second, identical ``Plant`` (the model is deterministic), so the test
  never shares caches with the simulator's thread.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from collector.budget import SourceBudget
from collector.clock import Clock
from collector.config import SourceConfig
from collector.simulators.base import Call, ManualClock
from collector.simulators.foxess import FoxessQuirks, FoxessSim
from collector.simulators.plant import (
    Battery,
    GridCharge,
    Inverter,
    Plant,
    PvString,
    Site,
    local_midnight,
    local_time,
)
from collector.state import State
from collector.vendors.base import VendorClient
from collector.vendors.foxess import FoxessClient
from collector.vendors.foxess.transport import FoxessTransport
from tests.daemon import json_lines
from tests.servers import InfluxServer, ServerUnavailableError, VictoriaServer

ROOT = Path(__file__).resolve().parents[2]
KEY = "contract-Key-5e1f0c9a7b2d4e6f"
ZONE = "Europe/Berlin"
REAL = "/op/v1/device/real/query"
HISTORY = "/op/v0/device/history/query"
REPORT = "/op/v0/device/report/query"
GENERATION = "/op/v0/device/generation"
DEVICE_LIST = "/op/v0/device/list"

_names = itertools.count(1)


# ------------------------------------------------------------------------------------------------
# Plants


def hybrid(sn: str, *, packs: int = 2, model: str = "H3-8.0-E") -> Inverter:
    """A 3-phase hybrid (two strings, a battery that charges from the grid 02:00-05:00 local)."""
    return Inverter(
        sn,
        model,
        8000,
        (PvString(5.0, 0.3), PvString(3.0, -0.3)),
        battery=Battery(10360, packs=packs, max_power_w=5000, grid_charge=GridCharge(2, 5, 90, 2500)),
        phases=3,
        load_kwh_per_day=14.0,
        logger_sn=f"LOG{sn[-8:]}",
    )


def pv_only(sn: str, kwp: float = 3.3) -> Inverter:
    """A single-phase PV-only inverter (sends ``todayYield``, unlike H3 models)."""
    return Inverter(sn, "F3000", 3000, (PvString(kwp),), logger_sn=f"LOG{sn[-8:]}")


def one_site(
    inverters: Sequence[Inverter], commissioned: date, *, zone: str = ZONE, site_id: str = "site-berlin-1"
) -> Callable[[], Plant]:
    """A factory of identical plants (one for the simulator, one for the truth)."""

    def make() -> Plant:
        site = Site(site_id, "Contract Site", zone, 52.5, 13.4, tuple(inverters), commissioned)
        return Plant([site], cache_days=256)

    return make


def last_sunday(year: int, month: int) -> date:
    """The last Sunday of a month (EU DST changes: March and October)."""
    d = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - 6) % 7)


def recent_dst_days(today: date) -> tuple[date, date]:
    """The most recent EU spring-forward and fall-back Sundays at least 3 days before `today`."""

    def latest(month: int) -> date:
        for year in (today.year, today.year - 1):
            d = last_sunday(year, month)
            if d <= today - timedelta(days=3):
                return d
        raise AssertionError("unreachable")

    return latest(3), latest(10)


# ------------------------------------------------------------------------------------------------
# The simulator, recording request bodies


@dataclass(frozen=True)
class Recorded:
    """A request the simulator parsed (authenticated): its time, path, devices and body/query."""

    t: float
    path: str
    devices: tuple[str, ...]
    body: Mapping[str, Any]


class RecordingSim(FoxessSim):
    """``FoxessSim`` that also keeps each authenticated request's body (the call log has no body;
    the backfill test needs every history window's ``begin``/``end``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[Recorded] = []

    async def parse(self, call: Call) -> None:
        try:
            await super().parse(call)
        finally:
            body = call.body if isinstance(call.body, dict) else dict(call.query)
            self.requests.append(Recorded(call.t, call.path, call.devices, dict(body)))

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in list(self.requests) if r.path == path]


class SharedClock(ManualClock):
    """One virtual time for the app (``Clock``: ``time()``, ``sleep()``), the FoxESS client (its
    signature timestamps, report dates, retry pauses) and the simulator (called as ``clock()``).
    ``sleep`` advances the time at once, so budget spacing and retry pauses cost nothing. Drive
    one poll at a time: concurrent sleepers would each jump the clock."""

    def time(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


def foxess_on(clock: SharedClock, *, timeout: float | None = None) -> dict[str, type[VendorClient]]:
    """``App(vendors=…)``: the real FoxESS client on the shared clock, optionally with a shorter
    per-request timeout (the client has no timeout parameter)."""
    shared = clock

    class ClockedFoxessClient(FoxessClient):
        def __init__(
            self,
            source: SourceConfig,
            http: aiohttp.ClientSession,
            budget: SourceBudget,
            state: State,
            *,
            clock: Clock | None = None,
        ) -> None:
            super().__init__(source, http, budget, state, clock=shared)
            if timeout is not None:
                self._api = FoxessTransport(
                    http=http,
                    budget=budget,
                    base_url=source.base_url,
                    api_key=source.credentials.get("api_key", ""),
                    clock=shared,
                    timeout=timeout,
                )

    return {"foxess": ClockedFoxessClient}


# ------------------------------------------------------------------------------------------------
# Config and the CLI


def config_text(
    state_dir: Path,
    base_url: str,
    *,
    influx: tuple[str, str] | None,
    key: str = KEY,
    timezone: str = ZONE,
    extra: str = "",
) -> str:
    sink = f"influxdb: {{url: {influx[0]}, api: v1, database: {influx[1]}}}\n" if influx else ""
    return (
        f"state_dir: {state_dir}\n"
        f"log_format: json\n"
        f"{sink}"
        "sources:\n"
        "  - name: fox\n"
        "    vendor: foxess\n"
        f"    base_url: {base_url}\n"
        f"    timezone: {timezone}\n"
        f'    api_key: "{key}"\n'
        f"{textwrap.indent(textwrap.dedent(extra), '    ')}"
    )


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def cli_command(args: Sequence[str]) -> list[str]:
    """``solar-collector ARGS`` as a user runs it (``python -m collector``: the real vendors)."""
    return [sys.executable, "-m", "collector", *args]


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def collector_cli(args: Sequence[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(args), capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=timeout
    )


def spawn_collector(args: Sequence[str]) -> subprocess.Popen[str]:
    """``solar-collector ARGS`` in the background, its log (stderr) captured."""
    return subprocess.Popen(
        cli_command(args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=ROOT,
    )


def log_events(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines of a CLI run (``log_format: json``)."""
    return json_lines(stderr)


# ------------------------------------------------------------------------------------------------
# InfluxDB


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """influxd 1.x for the whole contract suite; a missing binary fails the test."""
    try:
        server = InfluxServer(tmp_path_factory.mktemp("contract-influxd"), database=None)
        server.start()
    except ServerUnavailableError as err:
        pytest.fail(str(err), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaServer]:
    """VictoriaMetrics (the v2 write API, no retention endpoint); a missing binary fails the test."""
    try:
        server = VictoriaServer(tmp_path_factory.mktemp("contract-victoria"))
        server.start()
    except ServerUnavailableError as err:
        pytest.fail(str(err), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxd: InfluxServer) -> str:
    """A fresh database on the suite's influxd."""
    name = f"contract{next(_names)}"
    influxd.create_database(name)
    return name


def rows(server: InfluxServer, db: str, query: str) -> list[dict[str, Any]]:
    """Rows of an InfluxQL SELECT, null columns dropped (absent fields)."""
    return [{k: v for k, v in r.items() if v is not None} for r in server.rows(query, db=db)]


def rows_by_device(server: InfluxServer, db: str, measurement: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows(server, db, f'SELECT * FROM "{measurement}"'):
        out.setdefault(str(row["device"]), []).append(row)
    return out


# ------------------------------------------------------------------------------------------------
# Truth


@dataclass(frozen=True)
class Within:
    """An expected number: any value in [lo, hi]."""

    lo: float
    hi: float

    def holds(self, value: object) -> bool:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and self.lo - 1e-6 <= value <= self.hi + 1e-6
        )

    def __str__(self) -> str:
        return f"[{self.lo:.4f}, {self.hi:.4f}]"


Expected = Within | str | int


def near(x: float, tol: float) -> Within:
    return Within(x - tol, x + tol)


def register(wh: float) -> Within:
    """A 0.1-kWh register that counts up: truth − 100 Wh < value ≤ truth."""
    return Within(wh - 100, wh)


W = 0.5  # kW with 3 decimals
DEC = 0.05  # one decimal (V, A, °C)
STATUS = {"normal": 163, "starting": 162, "fault": 165, "permanent_fault": 166}
RESIDUAL_STEP = {"0.01kWh": 5.0, "0.1kWh": 50.0, "kWh": 5.0}
#: Fields the plant has no truth for: vendor artefacts written as sent (EPS noise, boost
#: temperature, the constant battery status code).
NO_TRUTH = frozenset({"eps_power_w", "boost_temperature_c", "battery_status_code"})
TAG_COLUMNS = frozenset({"time", "vendor", "source", "site", "device", "period"})


def expected_inverter(
    plant: Plant, sn: str, t: int, *, quirks: FoxessQuirks | None = None, today: bool | None = None
) -> dict[str, Expected]:
    """The `inverter` fields the collector must write for data time `t`, from the truth.

    `today`: whether `yield_energy_today_wh` must be there (default: models other than H3 send
    `todayYield`; for H3 it comes from `/device/generation` and may be absent). When present it
    must be within ±100 Wh of the truth, whichever of the two sources wrote it.
    """
    tr = plant.truth(sn, t)
    inv = plant.inverter(sn)
    q = quirks or FoxessQuirks()
    e: dict[str, Expected] = {
        "pv_power_w": near(tr.pv_power_w, W),
        "ac_power_w": near(tr.ac_power_w, W),
        "load_power_w": near(tr.load_power_w, W),
        "grid_import_power_w": near(tr.grid_import_power_w, W),
        "grid_export_power_w": near(tr.grid_export_power_w, W),
        "reactive_power_var": near(tr.reactive_power_var, W),
        "power_factor": near(tr.power_factor, 0.0005),
        "grid_frequency_hz": near(tr.grid_frequency_hz, 0.005),
        "inverter_temperature_c": near(tr.inverter_temperature_c, DEC),
        "ambient_temperature_c": near(tr.ambient_temperature_c, DEC),
        "yield_energy_total_wh": register(tr.total.yield_wh),
        "pv_energy_total_wh": register(tr.total.pv_wh),
        "grid_import_energy_total_wh": register(tr.total.grid_import_wh),
        "grid_export_energy_total_wh": register(tr.total.grid_export_wh),
        "load_energy_total_wh": register(tr.total.load_wh),
        "state": tr.state,
        "status_code": STATUS.get(tr.state, 161 if inv.battery is None else 167),
        "fault_count": len(tr.fault_codes),
    }
    if tr.fault_codes:
        e["fault_code"] = tr.fault_codes[0]
    sends_today = q.sends_today_yield if q.sends_today_yield is not None else not inv.model.startswith("H3")
    e[OPTIONAL_TODAY if not (today if today is not None else sends_today) else TODAY] = near(
        tr.today.yield_wh, 100
    )
    for i, s in enumerate(tr.strings, start=1):
        e[f"pv{i}_voltage_v"] = near(s.voltage_v, DEC)
        e[f"pv{i}_current_a"] = near(s.current_a, DEC)
        e[f"pv{i}_power_w"] = near(s.power_w, W)
    for letter, p in zip("abc", tr.phases, strict=False):
        e[f"phase_{letter}_voltage_v"] = near(p.voltage_v, DEC)
        e[f"phase_{letter}_current_a"] = near(p.current_a, DEC)
        e[f"phase_{letter}_power_w"] = near(p.power_w, W)
    b = tr.battery
    if b is not None:
        hottest = max(p.temperature_c for p in b.packs) if len(b.packs) > 1 else b.temperature_c
        e |= {
            "battery_charge_power_w": near(b.charge_power_w, W),
            "battery_discharge_power_w": near(b.discharge_power_w, W),
            "battery_soc_pct": near(b.soc_pct, 0.5),
            "battery_soh_pct": near(b.soh_pct, 0.5),
            "battery_voltage_v": near(b.voltage_v, DEC),
            # FoxESS's sign is kept (docs/vendors/foxess.md): positive = discharge
            "battery_current_a": near(-b.current_a, DEC),
            "battery_temperature_c": near(hottest, DEC),
            "battery_residual_energy_wh": near(b.residual_energy_wh, RESIDUAL_STEP[q.residual_unit]),
            "battery_throughput_energy_total_wh": near(
                tr.total.battery_charge_wh + tr.total.battery_discharge_wh, 0.5
            ),
            "battery_charge_energy_total_wh": register(tr.total.battery_charge_wh),
            "battery_discharge_energy_total_wh": register(tr.total.battery_discharge_wh),
        }
    return e


TODAY = "yield_energy_today_wh"
OPTIONAL_TODAY = "?" + TODAY  # the key of an expectation that holds only when the field is there


def mismatches(
    row: Mapping[str, Any],
    expected: Mapping[str, Expected],
    *,
    no_truth: frozenset[str] = NO_TRUTH,
    tags: frozenset[str] = TAG_COLUMNS,
) -> list[str]:
    """What differs between a stored row and the expectation (missing, wrong, unexpected
    fields; keys starting with ``?``: optional). `no_truth`: fields allowed without one."""
    out = []
    for key, want in expected.items():
        name = key.lstrip("?")
        if key.startswith("?") and name not in row:
            continue
        got = row.get(name)
        ok = want.holds(got) if isinstance(want, Within) else got == want
        if not ok:
            out.append(f"{name}={got!r}, truth {want}")
    extra = set(row) - {k.lstrip("?") for k in expected} - no_truth - tags
    if extra:
        out.append(f"fields without a truth: {sorted(extra)}")
    return out


def check_inverter_rows(
    plant: Plant,
    sn: str,
    stored: Sequence[Mapping[str, Any]],
    *,
    quirks: FoxessQuirks | None = None,
    today: bool | None = None,
    limit: int = 5,
) -> None:
    """Every stored `inverter` row of `sn` equals the truth at its time (first `limit` misfits shown)."""
    bad = []
    for row in stored:
        diff = mismatches(row, expected_inverter(plant, sn, int(row["time"]), quirks=quirks, today=today))
        if diff:
            bad.append(f"{sn} @ {row['time']}: {'; '.join(diff)}")
    assert not bad, f"{len(bad)} of {len(stored)} rows differ from the truth:\n" + "\n".join(bad[:limit])


ENERGY_FIELDS = (
    "yield_wh",
    "pv_wh",
    "grid_import_wh",
    "grid_export_wh",
    "battery_charge_wh",
    "battery_discharge_wh",
    "load_wh",
)
PERIOD_OF = {"day": "hour", "month": "day", "year": "month"}


def _bucket_bounds(zone: str, dimension: str, year: int, month: int, day: int) -> list[tuple[int, int]]:
    """Each report slot's [start, end) in the site's zone (24 hours, 31 days, 12 months)."""
    if dimension == "day":
        d = date(year, month, day)
        starts = [local_time(zone, d, h) for h in range(24)] + [local_midnight(zone, d + timedelta(days=1))]
        return [(starts[i], max(starts[i], starts[i + 1])) for i in range(24)]
    if dimension == "month":
        out = []
        for i in range(31):
            d = date(year, month, 1) + timedelta(days=i)
            if d.month != month:
                out.append((0, 0))
            else:
                out.append((local_midnight(zone, d), local_midnight(zone, d + timedelta(days=1))))
        return out
    firsts = [date(year, m, 1) for m in range(1, 13)] + [date(year + 1, 1, 1)]
    return [(local_midnight(zone, firsts[i]), local_midnight(zone, firsts[i + 1])) for i in range(12)]


def slot_start(zone: str, dimension: str, year: int, month: int, day: int, index: int) -> int | None:
    """The UTC second a slot is stamped with (None: no such local time, e.g. the skipped hour)."""
    tz = ZoneInfo(zone)
    try:
        if dimension == "day":
            local = datetime(year, month, day, index, tzinfo=tz)
        elif dimension == "month":
            local = datetime(year, month, index + 1, tzinfo=tz)
        else:
            local = datetime(year, index + 1, 1, tzinfo=tz)
    except ValueError:
        return None
    back = datetime.fromtimestamp(local.timestamp(), tz)
    return int(local.timestamp()) if back.replace(tzinfo=None) == local.replace(tzinfo=None) else None


def expected_report(
    plant: Plant, sim: FoxessSim, sn: str, body: Mapping[str, Any], t_call: float
) -> dict[int, dict[str, Expected]]:
    """{slot time: fields} a report request must leave in InfluxDB (period tag by dimension).

    A slot's truth is the plant's energy between the uploads the cloud can see: for an hour, its
    first and last upload (the cloud's documented ~55-minute under-count, notes §4.3 (b)); for a
    day or month, the last upload before it and its last upload. ±100 Wh: two 0.1-kWh registers.
    Slots not expected: future ones, ones without an upload (null), a corrupted month/year slot
    (left out by the collector), and the hour the clocks skip.
    """
    zone = plant.site_of(sn).zone
    dim = str(body["dimension"])
    year, month, day = int(body["year"]), int(body.get("month") or 1), int(body.get("day") or 1)
    names = [REPORT_TO_FIELD[v] for v in body["variables"] if v in REPORT_TO_FIELD]
    commissioned = plant.commissioned_at(sn)
    out: dict[int, dict[str, Expected]] = {}
    for i, (a, b) in enumerate(_bucket_bounds(zone, dim, year, month, day)):
        ts = slot_start(zone, dim, year, month, day, i)
        if ts is None or a >= b or ts > t_call:
            continue
        if b <= commissioned:
            out[ts] = {n: near(0.0, 0.0) for n in names}
            continue
        uploads = plant.upload_times(sn, a, min(b - 1, t_call))
        if not uploads:
            continue
        start = uploads[0] if dim == "day" else plant.upload_time(sn, a)
        before = plant.counters(sn, start) if start is not None else plant.counters(sn, commissioned - 1)
        energy = plant.counters(sn, uploads[-1]) - before
        if dim != "day":
            corrupt = {
                sim.corrupted_slot(sn, v, dim, year, int(body.get("month") or 0), int(body.get("day") or 0))
                for v in body["variables"]
            }
            if i in corrupt:
                continue  # the collector leaves a corrupted month / year slot out (checked separately)
        out[ts] = {n: near(getattr(energy, n), 100) for n in names}
    return out


REPORT_TO_FIELD = {
    "generation": "yield_wh",
    "PVEnergyTotal": "pv_wh",
    "gridConsumption": "grid_import_wh",
    "feedin": "grid_export_wh",
    "chargeEnergyToTal": "battery_charge_wh",
    "dischargeEnergyToTal": "battery_discharge_wh",
    "loads": "load_wh",
}


def check_reports(plant: Plant, sim: RecordingSim, server: InfluxServer, db: str, sns: Sequence[str]) -> int:
    """Every report request's slots are in InfluxDB with the truth's energy; returns slots checked.

    When a slot was asked twice (two runs), the later answer is the one stored.
    """
    latest: dict[tuple[Any, ...], Recorded] = {}
    for r in sim.requests_to(REPORT):
        b = r.body
        latest[(b["sn"], b["dimension"], b["year"], b.get("month"), b.get("day"))] = r
    all_rows = rows(server, db, 'SELECT * FROM "energy"')
    corrupt = [r for r in all_rows if any(isinstance(r.get(f), float) and r[f] >= 1e8 for f in ENERGY_FIELDS)]
    assert not corrupt, f"a corrupted report value was written: {corrupt[:2]}"
    stored = {(str(r["device"]), str(r["period"]), int(r["time"])): r for r in all_rows}
    checked = 0
    bad: list[str] = []
    for (sn, dim, *_), req in sorted(latest.items(), key=lambda kv: kv[1].t):
        if sn not in sns:
            continue
        period = PERIOD_OF[dim]
        for ts, fields in expected_report(plant, sim, sn, req.body, req.t).items():
            row = stored.get((sn, period, ts))
            if row is None:
                bad.append(f"{sn} {period} @ {ts}: missing")
                continue
            diff = mismatches(row, fields)
            if diff:
                bad.append(f"{sn} {period} @ {ts}: {'; '.join(diff)}")
            checked += 1
    assert not bad, f"{len(bad)} energy slots differ from the truth:\n" + "\n".join(bad[:8])
    return checked


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `pred` until true, or fail after `timeout` seconds (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)  # polling interval
