"""Sungrow live, the way a user runs it: `solar-collector run` (the daemon, 5-second intervals)
against the Sungrow simulator, plain and encrypted, into a real InfluxDB 1.x, compared with the
plant's truth; the token expired mid-run; `solar-collector parse` on saved simulator replies.

The plant's loggers are chosen (by serial number: the upload phase is a hash of it) to upload
about 15 s after the daemon starts, so every device has two 5-minute buckets in one short run:
one written before the faults stream has run (no `fault_count`: unknown), one after it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collector.simulators.base import SimThread
from collector.simulators.plant import Fault, Plant, Site, local_midnight, stable_hash
from collector.simulators.sungrow import code_name
from tests.contract.conftest import (
    Expected,
    collector_cli,
    near,
    rows,
    rows_by_device,
    wait_for,
    write_config,
)
from tests.contract.sungrow import (
    ACCESS,
    APPKEY,
    DAY,
    FAULTS,
    LOGIN,
    MODES,
    PASSWORD,
    PLANTS,
    PS_HYB,
    PS_PV,
    PV_REALTIME,
    REALTIME,
    ZONE,
    RecordingSungrowSim,
    check_rows,
    config_text,
    events,
    hybrid_inverter,
    make_sim,
    mismatches,
    on_sim_loop,
    pv_inverter,
    scaled_tolerance,
    spawn,
    stop,
)
from tests.servers import InfluxServer

INTERVAL = "interval: 5s\n"
UPLOAD_AFTER = 10.0  # seconds after the start: the next bucket of every device


def sn_uploading_at(prefix: str, when: float, slack: float = 3.0) -> str:
    """A serial number whose logger (300 s interval) uploads within `slack` s after `when`."""
    target = int(when) % 300
    for i in range(100000):
        sn = f"{prefix}{i:06d}"
        if 0 <= (stable_hash("upload-phase", sn) % 300 - target) % 300 <= slack:
            return sn
    raise AssertionError("no serial number found")


def ceil60(t: float) -> int:
    return int(t) + (-int(t)) % 60


class Scenario:
    """The live plant for one test: a PV-only site and a hybrid ESS site, serial numbers chosen to
    upload `UPLOAD_AFTER` s from now; a closed fault three hours ago and an open one on the PV
    inverter."""

    def __init__(self, *, faults: bool = True) -> None:
        self.t0 = time.time()
        self.pv = sn_uploading_at("A26P", self.t0 + UPLOAD_AFTER)
        self.hyb = sn_uploading_at("A26H", self.t0 + UPLOAD_AFTER + 1)
        self.meter = self.hyb + "M"
        self.commissioned = datetime.now(ZoneInfo(ZONE)).date() - timedelta(days=40)
        month_start = local_midnight(ZONE, datetime.now(ZoneInfo(ZONE)).date().replace(day=1))
        closed_start = max(ceil60(self.t0 - 3 * 3600), month_start + 60)
        self.closed = Fault(self.pv, 5, closed_start, closed_start + 1200, "Grid Overvoltage")
        self.open = Fault(self.pv, 9, ceil60(self.t0 - 1800), ceil60(self.t0 + 3 * 3600), "Islanding")
        self.faults = (self.closed, self.open) if faults else ()

    def plant(self) -> Plant:
        sites = [
            Site("sg-pv-site", "Contract PV", ZONE, 52.5, 13.4, (pv_inverter(self.pv),), self.commissioned),
            Site(
                "sg-hybrid-site",
                "Contract ESS",
                ZONE,
                52.4,
                13.1,
                (hybrid_inverter(self.hyb),),
                self.commissioned,
            ),
        ]
        return Plant(sites, faults=self.faults)

    def fault_fields(self, row: Mapping[str, Any]) -> dict[str, Expected]:
        """`fault_count` / `fault_code` a live row may carry (only once the faults stream ran)."""
        if row["device"] == self.pv:
            return {"?fault_count": 1, "?fault_code": 60000 + self.open.code}
        if row["device"] == self.hyb:
            return {"?fault_count": 0}
        return {}

    def upload(self, sn: str) -> float:
        """The daemon-run upload (the second bucket) of `sn`."""
        u = self.plant().upload_times(sn, self.t0 + 1, self.t0 + 300)[0]
        return float(u)


def answered_after(sim: RecordingSungrowSim, path: str, t: float) -> bool:
    return any(c.path == path and c.t > t and c.outcome == "ok" for c in list(sim.calls))


def energy_truth(
    plant: Plant, sim: RecordingSungrowSim, sn: str, ps_key: str
) -> dict[tuple[str, int], dict[str, Expected]]:
    """(period, time) → fields of the `energy` points the last day/month/year answers make."""
    zone = plant.site_of(sn).zone
    tz = ZoneInfo(zone)
    latest: dict[str, float] = {}
    for r in sim.requests_to(DAY):
        if ps_key in r.body.get("ps_key_list", []):
            latest[str(r.body["query_type"])] = r.t
    kind = ps_key.split("_")[1]
    names = {
        "1": ("yield_wh",),
        "14": (
            "pv_wh",
            "grid_import_wh",
            "grid_export_wh",
            "battery_charge_wh",
            "battery_discharge_wh",
            "load_wh",
        ),
        "7": ("grid_import_wh", "grid_export_wh"),  # the meter's daily forward / reverse energy
    }[kind]
    out: dict[tuple[str, int], dict[str, Expected]] = {}
    for qt, t_call in latest.items():
        today = datetime.fromtimestamp(t_call, tz).date()
        periods: list[tuple[str, date, date]] = []
        if qt == "1":
            for d in (today - timedelta(days=1), today):
                periods.append(("day", d, d + timedelta(days=1)))
        elif qt == "2":
            first = today.replace(day=1)
            last = (first - timedelta(days=1)).replace(day=1)
            periods += [("month", last, first), ("month", first, (first + timedelta(days=32)).replace(day=1))]
        else:
            y = today.year
            periods.append(("year", date(y, 1, 1), date(y + 1, 1, 1)))
        for period, a_day, b_day in periods:
            start = local_midnight(zone, a_day)
            a = max(start, plant.commissioned_at(sn))
            b = min(local_midnight(zone, b_day) - 1, t_call)
            ub = plant.upload_time(sn, b)
            if ub is None or ub < a:
                continue
            energy = plant.counters(sn, ub) - plant.counters(sn, a)
            out[(period, start)] = {n: near(getattr(energy, n), 0.0002) for n in names}
    return out


def run_live(
    tmp_path: Path, influxd: InfluxServer, db: str, mode: str, *, expire_tokens: bool = False
) -> tuple[Scenario, RecordingSungrowSim, str, float]:
    sc = Scenario()
    sim = make_sim(sc.plant(), mode, ps_ids={"sg-pv-site": PS_PV, "sg-hybrid-site": PS_HYB})
    t_expired = 0.0
    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(tmp_path / "state", sim, served.url, influx=(influxd.url, db), extra=INTERVAL),
        )
        proc = spawn(["run", "-c", str(cfg)])
        try:
            if expire_tokens:
                wait_for(lambda: len(sim.requests_to(REALTIME)) >= 2, 30, "two realtime calls")
                t_expired = time.time()
                on_sim_loop(served, sim.sessions.clear)
            up_pv, up_hyb = sc.upload(sc.pv), sc.upload(sc.hyb)
            wait_for(
                lambda: (
                    answered_after(sim, PV_REALTIME, up_pv + 0.5)
                    and len([r for r in sim.requests_to(REALTIME) if r.t > up_hyb + 0.5]) >= 2
                    and answered_after(sim, FAULTS, 0)
                    and proc.poll() is None
                ),
                UPLOAD_AFTER + 30,
                "a live poll after the next upload of every device",
            )
        finally:
            err = stop(proc)
    assert proc.returncode == 0, err[-3000:]
    return sc, sim, err, t_expired


@pytest.mark.parametrize("mode", MODES)
def test_run_lands_live_site_energy_and_fault_points_equal_to_the_truth(
    tmp_path: Path, influxd: InfluxServer, influx_db: str, mode: str
) -> None:
    sc, sim, err, _ = run_live(tmp_path, influxd, influx_db, mode)
    truth = sc.plant()
    logged = events(err)
    assert not [e for e in logged if e.get("level") in ("error", "critical")], err[-3000:]
    assert sim.violations == 0
    assert sim.codes(LOGIN) == ["1"]
    assert all(c == "1" for c in sim.all_codes()), sim.all_codes()

    # no secret anywhere in the log: password, appkey, access key, tokens, AES keys
    assert sim.secrets_seen, "the simulator saw no token"
    for secret in (PASSWORD, APPKEY, ACCESS, *sim.secrets_seen):
        assert secret not in err, f"a secret ({secret[:4]}…) is in the log"

    # inverter: the PV inverter, the hybrid and its meter, two buckets each, equal to the truth
    stored = rows_by_device(influxd, influx_db, "inverter")
    assert set(stored) == {sc.pv, sc.hyb, sc.meter}, set(stored)
    for dev, dev_rows in stored.items():
        times = [int(r["time"]) for r in dev_rows]
        assert len(times) == 2 and times[1] - times[0] == 300, (dev, times)
    code = 60000 + sc.open.code
    check_rows(truth, [r for dev_rows in stored.values() for r in dev_rows], extra=sc.fault_fields)
    assert stored[sc.pv][-1]["state"] == "fault" and stored[sc.pv][-1]["status_code"] == 21760
    assert stored[sc.hyb][-1]["state"] == "normal" or stored[sc.hyb][-1]["status_code"] in (5120, 4608)
    # fault_count: unknown (left out) before the faults stream ran, there after it
    assert "fault_count" not in stored[sc.pv][0] and "fault_count" not in stored[sc.hyb][0]
    assert stored[sc.pv][1].get("fault_count") == 1 and stored[sc.pv][1].get("fault_code") == code
    assert stored[sc.hyb][1].get("fault_count") == 0 and "fault_code" not in stored[sc.hyb][1]
    assert all(r["site"] == str(PS_PV) for r in stored[sc.pv])
    assert all(r["site"] == str(PS_HYB) for r in stored[sc.hyb] + stored[sc.meter])
    assert all(r["source"] == "sg" and r["vendor"] == "sungrow" for r in stored[sc.pv])

    # site: the plant list's power and energy at each update time
    site_rows = rows(influxd, influx_db, 'SELECT * FROM "site"')
    assert {r["site"] for r in site_rows} == {str(PS_PV), str(PS_HYB)}
    inv_of = {str(PS_PV): sc.pv, str(PS_HYB): sc.hyb}
    bad = []
    for r in site_rows:
        sn = inv_of[str(r["site"])]
        tr = truth.truth(sn, int(r["time"]))
        want: dict[str, Expected] = {
            "power_w": near(tr.ac_power_w, scaled_tolerance(tr.ac_power_w)),
            "yield_energy_today_wh": near(tr.today.yield_wh, scaled_tolerance(tr.today.yield_wh)),
            "yield_energy_total_wh": near(tr.total.yield_wh, scaled_tolerance(tr.total.yield_wh)),
            "capacity_w": near(truth.inverter(sn).kwp * 1000, 0.5),
        }
        assert truth.upload_time(sn, int(r["time"])) == int(r["time"]), r  # stamped at an upload
        diff = mismatches(r, want)
        if diff:
            bad.append(f"site {r['site']} @ {r['time']}: {'; '.join(diff)}")
    assert not bad, "\n".join(bad)
    assert len({int(r["time"]) for r in site_rows if r["site"] == str(PS_PV)}) == 2  # both buckets

    # energy: day (yesterday, today), month (last, this) and year of the PV inverter, the hybrid
    # and its meter
    energy = rows(influxd, influx_db, 'SELECT * FROM "energy"')
    assert {r["device"] for r in energy} == {sc.pv, sc.hyb, sc.meter}, "energy of other devices"
    for dev, sn, key in (
        (sc.pv, sc.pv, f"{PS_PV}_1_1_1"),
        (sc.hyb, sc.hyb, f"{PS_HYB}_14_1_1"),
        (sc.meter, sc.hyb, f"{PS_HYB}_7_1_1"),
    ):
        want_e = energy_truth(truth, sim, sn, key)
        got = {(str(r["period"]), int(r["time"])): r for r in energy if r["device"] == dev}
        assert set(got) == set(want_e), (sn, sorted(got), sorted(want_e))
        bad = [f"{sn} {k}: {mismatches(got[k], v)}" for k, v in want_e.items() if mismatches(got[k], v)]
        assert not bad, "\n".join(bad)

    # faults: the closed one (start and end), the open one (start), codes and messages
    faults = rows(influxd, influx_db, 'SELECT * FROM "fault"')
    got_f = sorted((int(r["time"]), r["active"], r["code"], r.get("message"), r["device"]) for r in faults)
    assert got_f == sorted(
        [
            (sc.closed.start, 1, 60005, "Grid Overvoltage", sc.pv),
            (sc.closed.end, 0, 60005, "Grid Overvoltage", sc.pv),
            (sc.open.start, 1, code, "Islanding", sc.pv),
        ]
    ), got_f


@pytest.mark.parametrize("mode", ["encrypted"])
def test_a_token_expired_mid_run_costs_exactly_one_login_and_collecting_goes_on(
    tmp_path: Path, influxd: InfluxServer, influx_db: str, mode: str
) -> None:
    sc, sim, err, t_expired = run_live(tmp_path, influxd, influx_db, mode, expire_tokens=True)
    logins = [c for c in sim.calls if c.path == LOGIN]
    assert [code for code in sim.codes(LOGIN)] == ["1", "1"], sim.codes(LOGIN)
    assert logins[1].t > t_expired
    refused = [code_name(c.code) for c in sim.calls if c.t > t_expired and c.path != LOGIN]
    assert "E00003" in refused, refused  # the gateway refused the old token once
    after = [c for c in sim.calls if c.t > logins[1].t and c.path in (REALTIME, PV_REALTIME, PLANTS)]
    assert after and all(c.outcome == "ok" for c in after), [(c.path, c.outcome) for c in after]
    assert not [e for e in events(err) if e.get("level") in ("error", "critical")], err[-3000:]
    stored = rows_by_device(influxd, influx_db, "inverter")
    assert set(stored) == {sc.pv, sc.hyb, sc.meter}
    # the bucket after the expiry was collected too
    assert all(len(v) == 2 for v in stored.values()), {k: len(v) for k, v in stored.items()}
    check_rows(sc.plant(), [r for v in stored.values() for r in v], extra=sc.fault_fields)
    for secret in (PASSWORD, APPKEY, ACCESS, *sim.secrets_seen):
        assert secret not in err


# ------------------------------------------------------------------------------------------------
# parse


def test_parse_prints_line_protocol_for_saved_realtime_and_day_replies(tmp_path: Path) -> None:
    """`parse --endpoint realtime FILE` and `parse --endpoint day --request REQ FILE` on replies the
    simulator gives: the truth's values, as line protocol with second timestamps (a saved day
    answer has no device SN: the tag is the ps_key, as docs/vendors/sungrow.md says)."""
    import asyncio

    import aiohttp

    sc = Scenario(faults=False)
    truth = sc.plant()
    sim = make_sim(truth, "plain", ps_ids={"sg-pv-site": PS_PV, "sg-hybrid-site": PS_HYB})

    async def fetch(path: str, body: Mapping[str, Any]) -> str:
        headers = {"sys_code": "901", "x-access-key": ACCESS, "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as http:
            login = {"appkey": APPKEY, "user_account": "contract@example.com", "user_password": PASSWORD}
            async with http.post(served.url + LOGIN, json=login, headers=headers) as resp:
                token = json.loads(await resp.text())["result_data"]["token"]
            async with http.post(
                served.url + path, json={"appkey": APPKEY, "token": token, **body}, headers=headers
            ) as resp:
                return await resp.text()

    with SimThread(sim) as served:
        key = f"{PS_HYB}_14_1_1"
        from collector.vendors.sungrow.points import DAY_POINTS, LIVE_POINTS

        rt = asyncio.run(
            fetch(REALTIME, {"device_type": 14, "point_id_list": list(LIVE_POINTS[14]), "ps_key_list": [key]})
        )
        today = datetime.now(ZoneInfo(ZONE)).date()
        day_req = {
            "ps_key_list": [key],
            "data_point": ",".join(DAY_POINTS[14]),
            "start_time": f"{today - timedelta(days=1):%Y%m%d}",
            "end_time": f"{today:%Y%m%d}",
            "query_type": "1",
            "data_type": "2",
            "order": "0",
        }
        day = asyncio.run(fetch(DAY, day_req))
    (tmp_path / "rt.json").write_text(rt)
    (tmp_path / "day.json").write_text(day)
    (tmp_path / "req.json").write_text(json.dumps(day_req))

    res = collector_cli(
        ["parse", "--vendor", "sungrow", "--endpoint", "realtime", "--tz", ZONE, str(tmp_path / "rt.json")]
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"inverter,device={sc.hyb},site={PS_HYB},vendor=sungrow ")
    ts = int(lines[0].rsplit(" ", 1)[1])
    u = truth.upload_time(sc.hyb, time.time())
    assert u is not None and 0 <= u - ts < 300
    fields = dict(kv.split("=", 1) for kv in lines[0].split(" ")[1].split(","))
    tr = truth.truth(sc.hyb, truth.upload_times(sc.hyb, ts, ts + 299)[0])
    assert abs(float(fields["pv_power_w"]) - tr.pv_power_w) <= 0.051
    assert fields["state"] == f'"{tr.state}"'

    res = collector_cli(
        [
            "parse",
            "--vendor",
            "sungrow",
            "--endpoint",
            "day",
            "--tz",
            ZONE,
            "--request",
            str(tmp_path / "req.json"),
            str(tmp_path / "day.json"),
        ]
    )
    assert res.returncode == 0, res.stderr
    lines = sorted(res.stdout.splitlines())
    assert len(lines) == 2 and all(
        ln.startswith(f"energy,device={key},period=day,site={PS_HYB},vendor=sungrow ") for ln in lines
    ), lines
    times = sorted(int(ln.rsplit(" ", 1)[1]) for ln in lines)
    assert times == [local_midnight(ZONE, today - timedelta(days=1)), local_midnight(ZONE, today)]
    first = dict(
        kv.split("=", 1)
        for kv in min(lines, key=lambda ln: int(ln.rsplit(" ", 1)[1])).split(" ")[1].split(",")
    )
    a, b = times[0], times[1]
    energy = truth.counters(sc.hyb, truth.upload_time(sc.hyb, b - 1) or b) - truth.counters(sc.hyb, a)
    assert abs(float(first["pv_wh"]) - energy.pv_wh) <= 0.001
