"""Sungrow day / month / year totals backfilled through the engine (`PeriodHistoryCapable`):
`backfill --since` into influxd gives an `energy` point per device and day equal to the plant's
truth, whole periods are checkpointed, and a second run asks only for the periods still open."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from collector.simulators.base import SimThread
from collector.simulators.plant import Plant, Site, local_midnight
from collector.simulators.sungrow import (
    DEMO_ACCESS_KEY,
    DEMO_APPKEY,
    DEMO_PASSWORD,
    DEMO_USER,
    SungrowSim,
)
from tests.contract.conftest import collector_cli, hybrid, pv_only, rows, write_config
from tests.servers import InfluxServer

ZONE = "Europe/Berlin"
DAY_PATH = "/openapi/getDevicePointsDayMonthYearDataList"
HYB, PVO = "A23EN0000001", "A23EN0000002"


def plant(commissioned: date) -> Plant:
    site = Site("sg-energy", "Energy Site", ZONE, 52.5, 13.4, (hybrid(HYB), pv_only(PVO)), commissioned)
    return Plant([site], cache_days=128)


def config(tmp_path: Path, url: str, influx: InfluxServer, db: str) -> Path:
    return write_config(
        tmp_path / "cfg.yaml",
        f"state_dir: {tmp_path / 'state'}\n"
        "log_format: json\n"
        f"influxdb: {{url: {influx.url}, api: v1, database: {db}}}\n"
        "sources:\n"
        "  - name: sg\n"
        "    vendor: sungrow\n"
        f"    base_url: {url}\n"
        f"    timezone: {ZONE}\n"
        f"    appkey: {DEMO_APPKEY}\n"
        f"    access_key: {DEMO_ACCESS_KEY}\n"
        f"    username: {DEMO_USER}\n"
        f'    password: "{DEMO_PASSWORD}"\n'
        "    limits: {per_second: 9}\n",  # the gateway's bucket refills 10 a second
    )


def test_day_totals_are_backfilled_and_finished_periods_never_asked_again(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    now = datetime.now(ZoneInfo(ZONE))
    today = now.date()
    # Three days that always hold the end of last month (a finished month to backfill),
    # ending no later than today.
    until = min(today, today.replace(day=1) + timedelta(days=1))
    since = until - timedelta(days=3)
    truth = plant(today - timedelta(days=40))
    sim = SungrowSim(plant(today - timedelta(days=40)))
    args = ["--since", since.isoformat(), "--until", until.isoformat()]
    with SimThread(sim) as served:
        cfg = config(tmp_path, served.url, influxd, influx_db)
        first = collector_cli(["backfill", "-c", str(cfg), *args], timeout=300)
        assert first.returncode == 0, first.stderr[-3000:]
        calls_first = [c for c in sim.calls if c.path == DAY_PATH]
        again = collector_cli(["backfill", "-c", str(cfg), *args], timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        calls_again = [c for c in sim.calls if c.path == DAY_PATH][len(calls_first) :]

    # One call per device type (1, 14 and the meter 7) and cell (100 days, 24 months, 5 years)
    # of the periods that are over; today, this month and this year are the energy stream's.
    span = [
        since + timedelta(days=n) for n in range((until - since).days) if since + timedelta(days=n) < today
    ]
    months = {(d.year, d.month) for d in span if (d.year, d.month) < (today.year, today.month)}
    cells = (
        len({d.toordinal() // 100 for d in span})
        + len({(y * 12 + m - 1) // 24 for y, m in months})
        + len({d.year // 5 for d in span if d.year < today.year})
    )
    assert len(calls_first) == 3 * cells, [c.path for c in calls_first]
    # The second run asks for nothing: every period asked for is over and checkpointed
    # (a day ended less than an hour ago is not final yet: asked once more).
    settled = (now - datetime.combine(until, datetime.min.time(), ZoneInfo(ZONE))).total_seconds() >= 3600
    assert len(calls_again) == (0 if settled else 3), [c.path for c in calls_again]

    got = rows(influxd, influx_db, "SELECT * FROM energy WHERE period = 'day'")
    by_device: dict[str, dict[int, dict[str, Any]]] = {}
    for r in got:
        by_device.setdefault(str(r["device"]), {})[int(r["time"])] = r
    for sn, field in ((HYB, "pv_wh"), (PVO, "yield_wh")):
        days = by_device[sn]
        for d in span:
            start = local_midnight(ZONE, d)
            assert start in days, (sn, d)
            energy = truth.energy(sn, start, local_midnight(ZONE, d + timedelta(days=1)))
            want = energy.pv_wh if field == "pv_wh" else energy.yield_wh
            # The day's counter at its last 5-minute upload: within one upload's energy.
            assert abs(float(days[start][field]) - want) <= max(60.0, 0.02 * want), (sn, d, field)
    month_rows = rows(influxd, influx_db, "SELECT * FROM energy WHERE period = 'month'")
    assert {str(r["device"]) for r in month_rows} >= {HYB, PVO}
