"""Sungrow minute backfill across both 2026 DST changes of a Europe/Berlin plant.

`solar-collector backfill --since DAY --until DAY+1` for 2026-03-29 (23 hours: 02:00-02:59 does not
exist) and 2026-10-25 (25 hours: 02:00-02:59 twice). The vendor's minute `time_stamp`s are plant-local
wall-clock text; the mapper documents (docs/vendors/sungrow.md, Time) that the gateway lists both
passes of the repeated hour oldest first and that a stamp is read as its first occurrence until the
series has passed it, then as its second — so every upload lands at its own UTC instant, the
repeated hour's 24 rows included. The simulator refuses (010) a window longer than 3 h on the wall
clock or in real time (an ambiguous stamp counted both ways): the client must split such windows.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from collector.simulators.base import SimThread
from collector.simulators.plant import local_midnight
from collector.simulators.sungrow import code_name
from tests.contract.conftest import collector_cli, rows, write_config
from tests.contract.sungrow import (
    HYB_SN,
    METER_SN,
    MINUTE,
    PS_HYB,
    PS_PV,
    PV_SN,
    ZONE,
    check_rows,
    config_text,
    make_sim,
    two_sites,
)
from tests.servers import InfluxServer

SPRING, AUTUMN = date(2026, 3, 29), date(2026, 10, 25)


@pytest.mark.parametrize("day", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_backfill_of_a_dst_day_lands_every_row_at_its_utc_instant_without_a_refusal(
    tmp_path: Path, influxd: InfluxServer, influx_db: str, day: date
) -> None:
    make = two_sites(day - timedelta(days=5))
    sim = make_sim(make(), "plain", ps_ids={"sg-pv-site": PS_PV, "sg-hybrid-site": PS_HYB})
    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(tmp_path / "state", sim, served.url, influx=(influxd.url, influx_db)),
        )
        since, until = day.isoformat(), (day + timedelta(days=1)).isoformat()
        res = collector_cli(["backfill", "--since", since, "--until", until, "-c", str(cfg)], timeout=120)
    refused = [
        (str(r.body["start_time_stamp"]), str(r.body["end_time_stamp"]), code)
        for r, c in zip(sim.requests_to(MINUTE), [c for c in sim.calls if c.path == MINUTE], strict=True)
        if (code := code_name(c.code)) != "1"
    ]
    assert not refused, f"{len(refused)} minute windows refused: {sorted(set(refused))}"
    assert sim.violations == 0 and all(c.outcome == "ok" for c in sim.calls)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = local_midnight(ZONE, day), local_midnight(ZONE, day + timedelta(days=1))
    assert b - a == (23 if day == SPRING else 25) * 3600

    # every window ≤ 3 h on the wall clock (stamps are local text)
    for r in sim.requests_to(MINUTE):
        s, e = str(r.body["start_time_stamp"]), str(r.body["end_time_stamp"])
        assert (
            s[:8] == e[:8] == f"{day:%Y%m%d}"
            and int(e[8:10]) * 60 + int(e[10:12]) - (int(s[8:10]) * 60 + int(s[10:12])) < 180
        ), (s, e)

    truth = make()
    for device, sn in ((PV_SN, PV_SN), (HYB_SN, HYB_SN), (METER_SN, HYB_SN)):
        stored = rows(influxd, influx_db, f'SELECT * FROM "inverter" WHERE "device" = \'{device}\'')
        times = [int(r["time"]) for r in stored]
        want = [u - u % 300 for u in truth.upload_times(sn, a, b - 1)]
        assert len(want) == (276 if day == SPRING else 300)
        missing, extra = sorted(set(want) - set(times)), sorted(set(times) - set(want))
        assert times == want, f"{device}: missing {missing[:6]}, unexpected {extra[:6]}"
        check_rows(truth, stored)
