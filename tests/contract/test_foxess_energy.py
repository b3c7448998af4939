"""The `energy` stream against the truth at the edges: a closed day / month / year asked once more
after midnight, and `/device/generation` (which has no time of its own) between two uploads."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from collector.app import App
from collector.config import load_config
from collector.simulators.plant import Plant, local_midnight, local_time
from tests.contract.conftest import (
    KEY,
    REPORT,
    ZONE,
    RecordingSim,
    SharedClock,
    check_inverter_rows,
    check_reports,
    config_text,
    foxess_on,
    hybrid,
    one_site,
    pv_only,
    rows_by_device,
    write_config,
)
from tests.servers import InfluxServer

HYB = "60H3EN0000000001"
PVO = "60F3EN0000000002"


async def drive(
    tmp_path: Path,
    sim: RecordingSim,
    clock: SharedClock,
    influx: tuple[str, str],
    schedule: Sequence[tuple[int, str]],
) -> None:
    """Run the app's jobs at the given (time, stream) pairs, one at a time, then flush."""
    url = await sim.start()
    cfg = write_config(tmp_path / "cfg.yaml", config_text(tmp_path / "state", url, influx=influx))
    app = App(load_config(cfg), clock=clock, vendors=foxess_on(clock))
    await app.start()
    try:
        for t, stream in schedule:
            clock.set(max(clock.t, t))
            assert await app.poll(app.sources[0], stream), (t, stream)
        assert app.forwarder is not None and await app.forwarder.flush(30)
    finally:
        await app.close()
        await sim.stop()


def test_after_new_year_the_closed_day_month_and_year_are_asked_once_more(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    new_year = local_midnight(ZONE, date(2027, 1, 1))
    make = one_site([hybrid(HYB), pv_only(PVO)], date(2026, 11, 20))
    clock = SharedClock(new_year - 1800)
    sim = RecordingSim(make(), api_keys={KEY: None}, clock=clock)
    schedule = [(new_year - 1800, "energy"), (new_year + 600, "energy")]
    asyncio.run(drive(tmp_path, sim, clock, (influxd.url, influx_db), schedule))

    after = [
        (r.body["sn"], r.body["dimension"], r.body["year"], r.body.get("month"), r.body.get("day"))
        for r in sim.requests_to(REPORT)
        if r.t >= new_year
    ]
    for sn in (HYB, PVO):
        # the closed periods once more (final), then the new ones
        assert [a for a in after if a[0] == sn] == [
            (sn, "day", 2026, 12, 31),
            (sn, "day", 2027, 1, 1),
            (sn, "month", 2026, 12, None),
            (sn, "month", 2027, 1, None),
            (sn, "year", 2026, None, None),
            (sn, "year", 2027, None, None),
        ]
    # every slot of the closed periods holds the final (whole-period) energy
    assert check_reports(make(), sim, influxd, influx_db, [HYB, PVO]) > 100
    assert sim.violations == 0


def test_generation_is_stamped_with_the_upload_it_reports(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    """Live polls 20 s after an upload (as the daemon does); the 30-minute energy job happens to
    run 10 s after the next upload, before the next live poll."""
    day = date(2026, 6, 17)
    make = one_site([hybrid(HYB)], day - timedelta(days=3))
    truth: Plant = make()
    u = truth.upload_time(HYB, local_time(ZONE, day, 12, 0))
    assert u is not None
    clock = SharedClock(u + 20)
    sim = RecordingSim(make(), api_keys={KEY: None}, clock=clock)
    schedule = [(u + 20, "live"), (u + 310, "energy"), (u + 320, "live")]
    asyncio.run(drive(tmp_path, sim, clock, (influxd.url, influx_db), schedule))

    stored = rows_by_device(influxd, influx_db, "inverter")[HYB]
    assert [r["time"] for r in stored] == [u, u + 300]
    check_inverter_rows(truth, HYB, stored)  # today's yield, if written, must be the truth's
