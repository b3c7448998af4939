"""Issue #7 ("mapping truth") through the daemon: the real FoxESS client against the simulator,
its answers reshaped like the captured responses, into a real InfluxDB 1.x.

Each test reshapes the simulator's real-time answer for one device (`ShapedSim.shape`), runs one
`live` poll of the in-process `App` on a clock shared with the simulator, writes the `collector`
self-metrics, flushes, and reads back what InfluxDB holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from collector.app import App
from collector.config import load_config
from collector.simulators.plant import local_time
from tests.contract.conftest import (
    KEY,
    ZONE,
    RecordingSim,
    SharedClock,
    config_text,
    foxess_on,
    hybrid,
    one_site,
    pv_only,
    rows,
    rows_by_device,
    write_config,
)
from tests.servers import InfluxServer

HYB = "60H3MT0000000001"
PVO = "60F3MT0000000002"
DAY = date(2026, 6, 17)
NOON = local_time(ZONE, DAY, 12, 0)
PLANT = one_site([hybrid(HYB), pv_only(PVO)], DAY - timedelta(days=5))

Shape = Callable[[str, dict[str, Any]], dict[str, Any]]


class ShapedSim(RecordingSim):
    """The simulator, with each device's real-time record passed through `shape` (sn, record)."""

    shape: Shape | None = None

    def _device_real(self, sn: str, now: float, wanted: list[str] | None) -> dict[str, Any]:
        record = super()._device_real(sn, now, wanted)
        return self.shape(sn, record) if self.shape is not None else record


def live_poll(
    tmp_path: Path, influxd: InfluxServer, db: str, shape: Shape
) -> tuple[list[MutableMapping[str, Any]], ShapedSim]:
    """One `live` poll with `shape` applied, the self-metrics point, a flush; the captured logs."""
    clock = SharedClock(NOON)
    sim = ShapedSim(PLANT(), api_keys={KEY: None}, clock=clock)
    sim.shape = shape

    async def scenario() -> list[MutableMapping[str, Any]]:
        url = await sim.start()
        cfg = write_config(
            tmp_path / "cfg.yaml", config_text(tmp_path / "state", url, influx=(influxd.url, db))
        )
        app = App(load_config(cfg), clock=clock, vendors=foxess_on(clock))
        await app.start()
        try:
            with capture_logs() as logs:
                assert await app.poll(app.sources[0], "live") is True
            await app.self_metrics()
            assert app.forwarder is not None and await app.forwarder.flush(10)
            return logs
        finally:
            await app.close()
            await sim.stop()

    return asyncio.run(scenario()), sim


def field_values(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("time", "vendor", "source", "site", "device")}


# ------------------------------------------------------------------------------------------------
# §4: a record refused for a missing time says so


def test_a_record_without_time_is_logged_counted_and_not_written(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    def no_time(sn: str, record: dict[str, Any]) -> dict[str, Any]:
        if sn == PVO:
            record.pop("time", None)
            for item in record["datas"]:
                item.pop("time", None)
        return record

    logs, _ = live_poll(tmp_path, influxd, influx_db, no_time)
    stored = rows_by_device(influxd, influx_db, "inverter")
    assert set(stored) == {HYB}  # the other device of the batch is written
    dropped = [e for e in logs if e["event"] == "mapping.record_dropped"]
    assert [(e["device"], e["reason"]) for e in dropped] == [(PVO, "no_time")]
    [metrics] = rows(influxd, influx_db, 'SELECT * FROM "collector"')
    assert metrics["records_dropped"] == 1
    assert metrics["skipped_values"] == 0  # counted once, as a record
