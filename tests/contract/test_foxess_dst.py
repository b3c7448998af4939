"""A site in Europe/Berlin across the last Sundays of March and October: every timestamp in
InfluxDB is the right UTC instant — live data, reports and history alike.

The cloud writes local wall-clock times with the offset (``2026-10-25 02:45:00 CEST+0200`` and,
an hour later, ``02:45:00 CET+0100``); reports have 24 hour slots for a 23- or 25-hour day; the
backfill cuts its windows at local midnights, at most 24 h each.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collector.app import App
from collector.config import load_config
from collector.simulators.base import SimThread
from collector.simulators.foxess import FoxessQuirks
from collector.simulators.plant import local_midnight, local_time
from tests.contract.conftest import (
    HISTORY,
    KEY,
    ZONE,
    RecordingSim,
    SharedClock,
    check_inverter_rows,
    check_reports,
    collector_cli,
    config_text,
    foxess_on,
    hybrid,
    one_site,
    pv_only,
    recent_dst_days,
    rows,
    rows_by_device,
    slot_start,
    write_config,
)
from tests.servers import InfluxServer

HYB = "60H3DS0000000001"
PVO = "60F3DS0000000002"
BERLIN = ZoneInfo(ZONE)
DST_DAYS = {"spring": date(2026, 3, 29), "autumn": date(2026, 10, 25)}
LIVE, ENERGY = 300, 1800


def local_hour(t: int) -> int:
    return datetime.fromtimestamp(t, BERLIN).hour


@pytest.mark.parametrize("season", ["spring", "autumn"])
def test_live_and_reports_across_a_dst_change(
    tmp_path: Path, influxd: InfluxServer, influx_db: str, season: str
) -> None:
    """The daemon's schedule (live every 5 min, energy every 30 min) from 23:30 on Saturday to
    06:00 on the DST Sunday, on a clock shared with the simulator. The config says UTC: the
    plant's zone must come from the plant list."""
    day = DST_DAYS[season]
    make = one_site([hybrid(HYB), pv_only(PVO)], day - timedelta(days=3))
    start, end = local_midnight(ZONE, day) - 1800, local_time(ZONE, day, 6, 0)
    clock = SharedClock(start)
    sim = RecordingSim(make(), api_keys={KEY: None}, clock=clock)
    polls = list(range(start, end + 1, LIVE))

    async def scenario() -> None:
        url = await sim.start()
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(tmp_path / "state", url, influx=(influxd.url, influx_db), timezone="UTC"),
        )
        app = App(load_config(cfg), clock=clock, vendors=foxess_on(clock))
        await app.start()
        try:
            rt = app.sources[0]
            for t in polls:
                clock.set(max(clock.t, t))
                assert await app.poll(rt, "live")
                if (t - start) % ENERGY == 0:
                    assert await app.poll(rt, "energy")
            assert app.forwarder is not None and await app.forwarder.flush(30)
        finally:
            await app.close()
            await sim.stop()

    asyncio.run(scenario())
    assert sim.violations == 0
    truth = make()
    stored = rows_by_device(influxd, influx_db, "inverter")
    for sn in (HYB, PVO):
        times = [int(r["time"]) for r in stored[sn]]
        # every upload between the first and the last poll, once, at its UTC instant
        assert times == truth.upload_times(sn, times[0], polls[-1]), sn
        assert times[0] == truth.upload_time(sn, start)
        check_inverter_rows(truth, sn, stored[sn])
        in_hour_2 = [t for t in times if local_hour(t) == 2]
        # 02:xx happens twice in October (CEST, then CET) and not at all in March
        assert len(in_hour_2) == (24 if season == "autumn" else 0)
    # /device/generation filled today's yield of the H3 (no todayYield) at its live data times
    assert sum("yield_energy_today_wh" in r for r in stored[HYB]) >= 6

    assert check_reports(truth, sim, influxd, influx_db, [HYB, PVO]) > 50
    hours = {
        int(r["time"])
        for r in rows(influxd, influx_db, 'SELECT * FROM "energy" WHERE "period" = \'hour\'')
        if r["device"] == PVO and local_midnight(ZONE, day) <= int(r["time"]) < end
    }
    slots = [slot_start(ZONE, "day", day.year, day.month, day.day, h) for h in range(6)]
    assert hours == {s for s in slots if s is not None}
    assert (slots[2] is None) == (season == "spring")  # the skipped hour is not written


@pytest.mark.parametrize(
    ("season", "config_zone"),
    [
        ("spring", ZONE),
        ("autumn", ZONE),
        ("autumn", "UTC"),  # the dates are the site's (the plant list's zone), not the config's
    ],
)
def test_backfill_of_a_dst_day_lands_every_upload_at_its_utc_instant(
    tmp_path: Path, influxd: InfluxServer, influx_db: str, season: str, config_zone: str
) -> None:
    """`solar-collector backfill --since DAY --until DAY+1` for the most recent DST Sunday: the
    23-hour day is one window, the 25-hour day a 24-hour and a 1-hour window. DAY is a date in
    the site's zone (the plant list's), also when the config's `timezone` is another."""
    day = recent_dst_days(datetime.now(UTC).date())[season == "autumn"]
    make = one_site([hybrid(HYB)], day - timedelta(days=3))
    quirks = {HYB: FoxessQuirks(history_string_every=7)}  # some history values come as strings
    sim = RecordingSim(make(), api_keys={KEY: None}, quirks=quirks)
    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(
                tmp_path / "state", served.url, influx=(influxd.url, influx_db), timezone=config_zone
            ),
        )
        since, until = day.isoformat(), (day + timedelta(days=1)).isoformat()
        res = collector_cli(["backfill", "--since", since, "--until", until, "-c", str(cfg)])
    assert res.returncode == 0, res.stderr
    a, b = local_midnight(ZONE, day), local_midnight(ZONE, day + timedelta(days=1))
    windows = [(r.body["begin"] // 1000, r.body["end"] // 1000) for r in sim.requests_to(HISTORY)]
    assert windows == ([(a, b)] if season == "spring" else [(a, a + 86400), (a + 86400, b)])
    assert b - a == (23 if season == "spring" else 25) * 3600
    truth = make()
    stored = rows_by_device(influxd, influx_db, "inverter")[HYB]
    assert [int(r["time"]) for r in stored] == [u for u in truth.upload_times(HYB, a, b) if u < b]
    check_inverter_rows(truth, HYB, stored, quirks=quirks[HYB])
    assert sim.violations == 0
