"""Many inverters: discovery pages through the device list, real-time data goes 50 SNs per call."""

from __future__ import annotations

import asyncio
import itertools
import math
from datetime import date, timedelta
from pathlib import Path

from collector.app import App
from collector.config import load_config
from collector.simulators.plant import local_time
from tests.contract.conftest import (
    DEVICE_LIST,
    KEY,
    REAL,
    ZONE,
    RecordingSim,
    SharedClock,
    check_inverter_rows,
    config_text,
    foxess_on,
    hybrid,
    one_site,
    pv_only,
    rows_by_device,
    write_config,
)
from tests.servers import InfluxServer

N = 123  # three batches: 50 + 50 + 23; two device-list pages: 100 + 23
DAY = date(2026, 5, 12)
SNS = [f"60F3BT{i:010d}" for i in range(N - 1)] + ["60H3BT9999999999"]
PLANT = one_site([*(pv_only(sn) for sn in SNS[:-1]), hybrid(SNS[-1])], DAY - timedelta(days=1))


def test_123_inverters_take_three_real_time_calls_per_poll(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    start = local_time(ZONE, DAY, 11, 0)
    clock = SharedClock(start)
    sim = RecordingSim(PLANT(), api_keys={KEY: None}, clock=clock)
    polls = 2

    async def scenario() -> None:
        url = await sim.start()
        cfg = write_config(
            tmp_path / "cfg.yaml", config_text(tmp_path / "state", url, influx=(influxd.url, influx_db))
        )
        app = App(load_config(cfg), clock=clock, vendors=foxess_on(clock))
        await app.start()
        try:
            for k in range(polls):
                clock.set(start + 300 * k)
                assert await app.poll(app.sources[0], "live")
            assert app.forwarder is not None and await app.forwarder.flush(30)
        finally:
            await app.close()
            await sim.stop()

    asyncio.run(scenario())

    assert [r.body["currentPage"] for r in sim.requests_to(DEVICE_LIST)] == [1, 2]
    calls = sim.calls_to(REAL)
    assert len(calls) == polls * math.ceil(N / 50)
    assert [len(c.devices) for c in calls] == [50, 50, 23] * polls
    for k in range(polls):
        batch = calls[3 * k : 3 * k + 3]
        assert sorted(sn for c in batch for sn in c.devices) == sorted(SNS)  # each SN once per poll
        gaps = [b.t - a.t for a, b in itertools.pairwise(batch)]
        assert min(gaps) >= 1.0  # 1 call per second per endpoint
    assert sim.violations == 0 and all(c.outcome == "ok" for c in sim.calls)

    stored = rows_by_device(influxd, influx_db, "inverter")
    assert set(stored) == set(SNS)
    truth = PLANT()
    for sn in SNS:
        assert len(stored[sn]) == polls  # one new upload per 5 minutes
        check_inverter_rows(truth, sn, stored[sn])
