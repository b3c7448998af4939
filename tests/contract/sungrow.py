"""The Sungrow contract harness (not a conftest): plants, the recording simulator, config text,
truth expectations and run helpers.

The simulator (:class:`RecordingSungrowSim`, a ``SungrowSim`` that also keeps every authenticated
request's decrypted body, its token and its AES key) runs in a :class:`SimThread` while the test runs
``python -m collector …`` as a subprocess against it, into the suite's influxd (``conftest``).

Expected values come from a second, identical :class:`Plant` (deterministic) at the upload behind
each 5-minute ``device_time`` / ``time_stamp`` bucket, widened only by the simulator's rounding:
one decimal of the base unit (±0.05 W, V, A, °C, Wh, var), three decimals of a ratio (power factor
±0.0005; SOC / SOH fractions → ±0.05 %), frequencies to 0.01 Hz (±0.005), four decimals of
day / month / year energy, and the plant list's auto-scaled ``{value, unit}`` with three decimals.
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from collector.simulators.base import Call, SimThread
from collector.simulators.plant import (
    Battery,
    Fault,
    GridCharge,
    Inverter,
    Plant,
    PvString,
    Site,
    Truth,
    local_midnight,
)
from collector.simulators.sungrow import (
    AES_KEY,
    GatewayKeys,
    SungrowApp,
    SungrowLimits,
    SungrowSim,
    SungrowUser,
    code_name,
)
from tests.contract.conftest import Expected, near, spawn_collector
from tests.contract.conftest import mismatches as conftest_mismatches
from tests.daemon import json_lines

ZONE = "Europe/Berlin"
APPKEY = "APPKEY0000000000000000SGCONTRACT"
ACCESS = "accesskey000000000000sgcontract1"
USER = "contract@example.com"
PASSWORD = "Sg-contract-pw-7c41e9"
USER_ID = 606120

LOGIN = "/openapi/login"
PLANTS = "/openapi/getPowerStationList"
DEVICES = "/openapi/getDeviceList"
POINT_INFO = "/openapi/getOpenPointInfo"
REALTIME = "/openapi/getDeviceRealTimeData"
PV_REALTIME = "/openapi/getPVInverterRealTimeData"
MINUTE = "/openapi/getDevicePointMinuteDataList"
DAY = "/openapi/getDevicePointsDayMonthYearDataList"
FAULTS = "/openapi/getFaultAlarmInfo"
CALL_INFO = "/openapi/getOpenApiCallInfo"

MODES = ("plain", "encrypted")
PER_SECOND = 9

PV_SN = "A2612000001"
HYB_SN = "A2612000002"
METER_SN = HYB_SN + "M"  # the simulator's meter of a hybrid (device type 7)
SITE_PV, SITE_HYB = "sg-pv-site", "sg-hybrid-site"
PS_PV, PS_HYB = 7150001, 7150002


# ------------------------------------------------------------------------------------------------
# Plants


def pv_inverter(sn: str, kwp: float = 4.2) -> Inverter:
    """A single-phase PV-only string inverter (device type 1)."""
    return Inverter(sn, "SG4.0RS", 4000, (PvString(kwp),), logger_sn=f"B{sn[-9:]}P")


def hybrid_inverter(sn: str) -> Inverter:
    """A three-phase hybrid (device type 14, with its battery 43 and meter 7)."""
    return Inverter(
        sn,
        "SH8.0RT",
        8000,
        (PvString(5.0, 0.3, 380.0), PvString(3.0, -0.3, 320.0)),
        battery=Battery(9600, max_power_w=5000, model="SBR096", grid_charge=GridCharge(2, 5, 60, 2000)),
        phases=3,
        load_kwh_per_day=13.0,
        logger_sn=f"B{sn[-9:]}H",
    )


def two_sites(
    commissioned: date, *, faults: Sequence[Fault] = (), zone: str = ZONE, cache_days: int = 64
) -> Callable[[], Plant]:
    """A factory of identical plants: a PV-only site and a hybrid ESS site, both in `zone`."""

    def make() -> Plant:
        sites = [
            Site(SITE_PV, "Contract PV", zone, 52.5, 13.4, (pv_inverter(PV_SN),), commissioned),
            Site(SITE_HYB, "Contract ESS", zone, 52.4, 13.1, (hybrid_inverter(HYB_SN),), commissioned),
        ]
        return Plant(sites, faults=faults, cache_days=cache_days)

    return make


def many_pv(n: int, commissioned: date, *, zone: str = ZONE) -> Callable[[], Plant]:
    """One site with `n` PV-only inverters (one device type: batches of ≤ 50)."""

    def make() -> Plant:
        invs = tuple(pv_inverter(f"A26{i:08d}", 3.0 + (i % 5) * 0.4) for i in range(n))
        site = Site(SITE_PV, "Contract PV farm", zone, 52.5, 13.4, invs, commissioned)
        return Plant([site], cache_days=max(64, 2 * n * 10))

    return make


# ------------------------------------------------------------------------------------------------
# The simulator


@dataclass(frozen=True)
class Request:
    """An authenticated request as the simulator saw it: time, path, decrypted body."""

    t: float
    path: str
    body: Mapping[str, Any]


class RecordingSungrowSim(SungrowSim):
    """``SungrowSim`` that keeps each authenticated request's body, and the tokens and AES keys
    it saw (to prove none of them reaches the collector's log)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[Request] = []
        self.secrets_seen: set[str] = set()

    async def authenticate(self, call: Call) -> Any:
        refusal = await super().authenticate(call)
        key = call.request.get(AES_KEY)
        if isinstance(key, bytes):
            self.secrets_seen.add(key.decode(errors="replace"))
        return refusal

    async def parse(self, call: Call) -> None:
        await super().parse(call)
        body = dict(call.body) if isinstance(call.body, dict) else {}
        token = body.get("token")
        if isinstance(token, str) and token:
            self.secrets_seen.add(token)
        self.requests.append(Request(call.t, call.path, body))

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in list(self.requests) if r.path == path]

    def codes(self, path: str) -> list[str | None]:
        """The result codes answered on `path`, in order."""
        return [code_name(c.code) for c in list(self.calls) if c.path == path]

    def all_codes(self) -> list[str | None]:
        return [code_name(c.code) for c in list(self.calls)]


def make_sim(
    plant: Plant,
    mode: str = "plain",
    *,
    app: Mapping[str, Any] | None = None,
    limits: SungrowLimits | None = None,
    ps_ids: Mapping[str, int] | None = None,
    **kw: Any,
) -> RecordingSungrowSim:
    encrypted = mode == "encrypted"
    return RecordingSungrowSim(
        plant,
        apps=[SungrowApp(APPKEY, ACCESS, encrypted_only=encrypted, **dict(app or {}))],
        users=[SungrowUser(USER, PASSWORD, USER_ID)],
        keys=GatewayKeys() if encrypted else None,
        limits=limits,
        ps_ids=dict(ps_ids) if ps_ids is not None else {SITE_PV: PS_PV, SITE_HYB: PS_HYB},
        **kw,
    )


def on_sim_loop(served: SimThread, fn: Callable[[], object]) -> None:
    """Run `fn` in the simulator's thread (its state is the thread's)."""
    served.loop.call_soon_threadsafe(fn)


# ------------------------------------------------------------------------------------------------
# Config and the CLI


def config_text(
    state_dir: Path,
    sim: SungrowSim,
    base_url: str,
    *,
    influx: tuple[str, str] | None,
    timezone: str = ZONE,
    extra: str = "",
    password: str = PASSWORD,
    per_second: float | None = PER_SECOND,
) -> str:
    """`per_second`: the tests space calls 9 a second, nearer the gateway's own 10 than the
    default 5 (which leaves room for a busy real gateway): the simulator's bucket (15 per
    1.5 s) still refuses anything faster, and every test checks it refused nothing."""
    sink = f"influxdb: {{url: {influx[0]}, api: v1, database: {influx[1]}}}\n" if influx else ""
    limits = f"    limits: {{per_second: {per_second:g}}}\n" if per_second is not None else ""
    rsa = f'    rsa_public_key: "{sim.rsa_public_key}"\n' if sim.rsa_public_key else ""
    return (
        f"state_dir: {state_dir}\n"
        "log_format: json\n"
        f"{sink}"
        "sources:\n"
        "  - name: sg\n"
        "    vendor: sungrow\n"
        f"    base_url: {base_url}\n"
        f"    timezone: {timezone}\n"
        f'    appkey: "{APPKEY}"\n'
        f'    access_key: "{ACCESS}"\n'
        f'    username: "{USER}"\n'
        f'    password: "{password}"\n'
        f"{rsa}"
        f"{limits}"
        f"{textwrap.indent(textwrap.dedent(extra), '    ')}"
    )


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM a spawned daemon, wait for it; its log (stderr)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    return err


def spawn(args: Sequence[str]) -> subprocess.Popen[str]:
    return spawn_collector(args)


def events(stderr: str) -> list[dict[str, Any]]:
    return json_lines(stderr)


# ------------------------------------------------------------------------------------------------
# Truth

V = 0.05  # one decimal of the base unit
RATIO = 0.0005  # three decimals
PCT = 0.05  # a fraction with three decimals, as %
HZ = 0.005
RUNNING = {"normal": 0, "standby": 5120, "starting": 4608, "fault": 21760, "permanent_fault": 32768}


def upload_of(plant: Plant, sn: str, bucket_start: int) -> int:
    """The upload behind a 5-minute bucket (device_time / time_stamp) starting at `bucket_start`."""
    ups = plant.upload_times(sn, bucket_start, bucket_start + 299)
    assert len(ups) == 1, f"{sn}: {len(ups)} uploads in the bucket at {bucket_start}"
    return ups[0]


def expected_pv(tr: Truth) -> dict[str, Expected]:
    """Device type 1 (getPVInverterRealTimeData / minute rows) → `inverter` fields."""
    e: dict[str, Expected] = {
        "pv_power_w": near(tr.pv_power_w, V),
        "ac_power_w": near(tr.ac_power_w, V),
        "reactive_power_var": near(tr.reactive_power_var, V),
        "power_factor": near(tr.power_factor, RATIO),
        "grid_frequency_hz": near(tr.grid_frequency_hz, HZ),
        "inverter_temperature_c": near(tr.inverter_temperature_c, V),
        "yield_energy_today_wh": near(tr.today.yield_wh, V),
        "yield_energy_total_wh": near(tr.total.yield_wh, V),
        "state": tr.state,
        "status_code": RUNNING[tr.state],
    }
    for i, s in enumerate(tr.strings, start=1):
        e[f"pv{i}_power_w"] = near(s.power_w, V)
        if tr.state == "normal":  # "--" while not feeding in (the simulator's placeholders)
            e[f"pv{i}_voltage_v"] = near(s.voltage_v, V)
            e[f"pv{i}_current_a"] = near(s.current_a, V)
    for letter, p in zip("abc", tr.phases, strict=False):
        e[f"phase_{letter}_voltage_v"] = near(p.voltage_v, V)
        e[f"phase_{letter}_current_a"] = near(p.current_a, V)
    return e


def expected_ess(tr: Truth) -> dict[str, Expected]:
    """Device type 14 (hybrid) → `inverter` fields."""
    b = tr.battery
    assert b is not None
    e: dict[str, Expected] = {
        "pv_power_w": near(tr.pv_power_w, V),
        "ac_power_w": near(tr.ac_power_w, V),
        "load_power_w": near(tr.load_power_w, V),
        "grid_import_power_w": near(tr.grid_import_power_w, V),
        "grid_export_power_w": near(tr.grid_export_power_w, V),
        "battery_charge_power_w": near(b.charge_power_w, V),
        "battery_discharge_power_w": near(b.discharge_power_w, V),
        "battery_soc_pct": near(b.soc_pct, PCT),
        "battery_soh_pct": near(b.soh_pct, PCT),
        "battery_voltage_v": near(b.voltage_v, V),
        "battery_current_a": near(b.current_a, V),  # positive = charging
        "battery_temperature_c": near(b.temperature_c, V),
        "reactive_power_var": near(tr.reactive_power_var, V),
        "power_factor": near(tr.power_factor, RATIO),
        "grid_frequency_hz": near(tr.grid_frequency_hz, HZ),
        "inverter_temperature_c": near(tr.inverter_temperature_c, V),
        "pv_energy_today_wh": near(tr.today.pv_wh, V),
        "pv_energy_total_wh": near(tr.total.pv_wh, V),
        "grid_import_energy_total_wh": near(tr.total.grid_import_wh, V),
        "grid_export_energy_total_wh": near(tr.total.grid_export_wh, V),
        "battery_charge_energy_total_wh": near(tr.total.battery_charge_wh, V),
        "battery_discharge_energy_total_wh": near(tr.total.battery_discharge_wh, V),
        "load_energy_total_wh": near(tr.total.load_wh, V),
        "state": tr.state,
        "status_code": RUNNING[tr.state],
    }
    for i, s in enumerate(tr.strings, start=1):
        e[f"pv{i}_voltage_v"] = near(s.voltage_v, V)
        e[f"pv{i}_current_a"] = near(s.current_a, V)
    for letter, p in zip("abc", tr.phases, strict=False):
        e[f"phase_{letter}_voltage_v"] = near(p.voltage_v, V)
        e[f"phase_{letter}_current_a"] = near(p.current_a, V)
    return e


def expected_meter(tr: Truth) -> dict[str, Expected]:
    """Device type 7 (the hybrid's grid meter) → `inverter` fields under the meter's SN."""
    e: dict[str, Expected] = {
        "grid_import_power_w": near(tr.grid_import_power_w, V),
        "grid_export_power_w": near(tr.grid_export_power_w, V),
        "grid_frequency_hz": near(tr.grid_frequency_hz, HZ),
        "grid_import_energy_total_wh": near(tr.total.grid_import_wh, V),
        "grid_export_energy_total_wh": near(tr.total.grid_export_wh, V),
    }
    for letter, p in zip("abc", tr.phases, strict=False):
        e[f"phase_{letter}_voltage_v"] = near(p.voltage_v, V)
    return e


TAGS = frozenset({"time", "vendor", "source", "site", "device", "period"})


def mismatches(row: Mapping[str, Any], expected: Mapping[str, Expected]) -> list[str]:
    """Missing, wrong and unexpected fields of a stored row (keys starting with ``?``: optional)."""
    return conftest_mismatches(row, expected, no_truth=frozenset(), tags=frozenset(TAGS))


def expected_row(plant: Plant, device: str, t: int) -> dict[str, Expected]:
    """The `inverter` fields of the device tagged `device` for the bucket starting at `t`."""
    if device.endswith("M"):
        sn = device[:-1]
        return expected_meter(plant.truth(sn, upload_of(plant, sn, t)))
    tr = plant.truth(device, upload_of(plant, device, t))
    return expected_ess(tr) if plant.inverter(device).battery is not None else expected_pv(tr)


def check_rows(
    plant: Plant,
    stored: Sequence[Mapping[str, Any]],
    *,
    extra: Callable[[Mapping[str, Any]], Mapping[str, Expected]] | None = None,
    limit: int = 6,
) -> None:
    """Every stored `inverter` row equals the truth of its device at its bucket."""
    bad = []
    for row in stored:
        want = expected_row(plant, str(row["device"]), int(row["time"]))
        if extra is not None:
            want = {**want, **extra(row)}
        diff = mismatches(row, want)
        if diff:
            bad.append(f"{row['device']} @ {row['time']}: {'; '.join(diff)}")
    assert not bad, f"{len(bad)} of {len(stored)} rows differ from the truth:\n" + "\n".join(bad[:limit])


def bucket_utc(t: int, zone: str = ZONE) -> int:
    """The UTC second of the plant-local 5-minute bucket holding `t` (its first reading)."""
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(t, tz)
    return t - (local.minute % 5) * 60 - local.second


def scaled_tolerance(value: float) -> float:
    """Half the last digit of the plant list's auto-scaled value (≤ 3 decimals of W/kW/MW)."""
    scale = 1.0
    v = abs(value)
    while v >= 1000 and scale < 1e6:
        v /= 1000
        scale *= 1000
    return 0.0005 * scale + 1e-6


def day_window(zone: str, day: date) -> tuple[int, int]:
    return local_midnight(zone, day), local_midnight(zone, day + timedelta(days=1))


def ceil_minute(t: float) -> int:
    return int(t) + (-int(t)) % 60
