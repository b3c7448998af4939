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

import pytest
from structlog.testing import capture_logs

from collector.app import App
from collector.config import load_config
from collector.schema.units import convert
from collector.simulators.base import Call
from collector.simulators.plant import local_time
from tests.contract.conftest import (
    KEY,
    ZONE,
    RecordingSim,
    SharedClock,
    W,
    config_text,
    foxess_on,
    hybrid,
    near,
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

REGISTER = 12345.6  # kWh: a lifetime total of a few years

Shape = Callable[[str, dict[str, Any]], dict[str, Any]]


class ShapedSim(RecordingSim):
    """The simulator, with each device's real-time record passed through `shape` (sn, record)."""

    shape: Shape | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report_values: list[float] = []  # every number the report endpoint answered

    def _device_real(self, sn: str, now: float, wanted: list[str] | None) -> dict[str, Any]:
        record = super()._device_real(sn, now, wanted)
        return self.shape(sn, record) if self.shape is not None else record

    async def _report(self, call: Call) -> Any:
        result = await super()._report(call)
        for series in result:
            # The cloud's bucket is a difference of two lifetime 0.1-kWh totals in float
            # arithmetic; on a plant with years of counts that leaves the captured noise
            # (12345.6 + 0.7 - 12345.6 = 0.7000000000007276). The simulator's plant is days old.
            series["values"] = [
                (REGISTER + v) - REGISTER if isinstance(v, float) and 0 < v < 1e6 else v
                for v in series["values"]
            ]
            self.report_values += [v for v in series["values"] if isinstance(v, float)]
        return result


def live_poll(
    tmp_path: Path,
    influxd: InfluxServer,
    db: str,
    shape: Shape | None,
    streams: tuple[str, ...] = ("live",),
    at: float = NOON,
) -> tuple[list[MutableMapping[str, Any]], ShapedSim]:
    """One poll of each stream at `at` with `shape` applied, the self-metrics point, a flush."""
    clock = SharedClock(at)
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
                for stream in streams:
                    assert await app.poll(app.sources[0], stream) is True, stream
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


# ------------------------------------------------------------------------------------------------
# §3: round to what the vendor measures


def test_report_and_live_values_land_rounded_to_the_vendors_resolution(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    _, sim = live_poll(tmp_path, influxd, influx_db, None, streams=("live", "energy"))
    # The simulator's report values are 0.1-kWh register deltas with float noise, like the cloud's.
    noisy = [v for v in sim.report_values if convert(v, "kWh", "Wh") % 100]  # noise 12 digits keep
    assert noisy, "the simulator sent no float noise: the test would prove nothing"
    energy = rows(influxd, influx_db, 'SELECT * FROM "energy"')
    values = [v for row in energy for k, v in field_values(row).items() if k.endswith("_wh")]
    assert len(values) > 24
    assert all(float(v) % 100 == 0 for v in values), [v for v in values if float(v) % 100]
    inverter = rows(influxd, influx_db, 'SELECT * FROM "inverter"')
    assert inverter
    for row in inverter:
        for name, value in field_values(row).items():
            if name.endswith("_power_w"):  # kW with 3 decimals → whole W
                assert float(value).is_integer(), (name, value)
            if name.endswith("_energy_total_wh") and name != "battery_throughput_energy_total_wh":
                assert float(value) % 100 == 0, (name, value)  # 0.1-kWh registers


# ------------------------------------------------------------------------------------------------
# §1: a quantity the response carries is not lost for want of another


def test_grid_import_from_grid_consumption_power_alone(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    """A subset answer: `gridConsumptionPower` but neither `meterPower` nor `feedinPower`."""
    dropped = {"meterPower", "feedinPower", "meterPowerR", "meterPowerS", "meterPowerT"}

    def subset(sn: str, record: dict[str, Any]) -> dict[str, Any]:
        if sn == HYB:
            record["datas"] = [d for d in record["datas"] if d.get("variable") not in dropped]
            assert any(d.get("variable") == "gridConsumptionPower" for d in record["datas"])
        return record

    # 03:00 local: the hybrid charges its battery from the grid (a real import).
    live_poll(tmp_path, influxd, influx_db, subset, at=local_time(ZONE, DAY, 3, 0))
    [row] = rows_by_device(influxd, influx_db, "inverter")[HYB]
    t = int(row["time"])  # epoch seconds
    truth = PLANT().truth(HYB, t)
    assert truth.grid_import_power_w > 100
    assert near(truth.grid_import_power_w, W).holds(row["grid_import_power_w"]), row
    assert "grid_export_power_w" not in row  # nothing gave it: left out, never 0
    [metrics] = rows(influxd, influx_db, 'SELECT * FROM "collector"')
    assert metrics["records_dropped"] == 0


# ------------------------------------------------------------------------------------------------
# §2: a value the physics rules out is dropped and counted, not written


def _set(record: dict[str, Any], variable: str, unit: str, value: Any) -> None:
    for item in record["datas"]:
        if item.get("variable") == variable:
            item["unit"], item["value"] = unit, value
            return
    record["datas"].append({"variable": variable, "unit": unit, "value": value})


def _soc(record: dict[str, Any]) -> float:
    """The record's SoC: the aggregate, else the packs' mean (`SoC_1`, `Soc_2`: notes §4.1)."""
    packs = [
        float(d["value"]) for d in record["datas"] if str(d.get("variable", "")).lower().startswith("soc")
    ]
    return sum(packs) / len(packs)


def test_a_residual_that_is_the_capacity_is_written_as_capacity_times_soc(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    """The KH hybrid of the field notes: its BMS sends the pack's 10.36 kWh as `ResidualEnergy`."""
    socs: list[float] = []

    def capacity_as_residual(sn: str, record: dict[str, Any]) -> dict[str, Any]:
        if sn == HYB:
            socs.append(_soc(record))
            _set(record, "ResidualEnergy", "0.01kWh", 10.36)
        return record

    # 21:00 local: the battery is part-discharged (a SoC below 100 % makes the test sharper).
    logs, _ = live_poll(tmp_path, influxd, influx_db, capacity_as_residual, at=local_time(ZONE, DAY, 21, 0))
    [row] = rows_by_device(influxd, influx_db, "inverter")[HYB]
    soc = socs[-1]
    assert 1 <= soc < 100, soc
    assert row["battery_soc_pct"] == soc
    assert row["battery_residual_energy_wh"] == pytest.approx(10360 * soc / 100, abs=5)
    assert [e["device"] for e in logs if e["event"] == "mapping.reinterpreted"] == [HYB]
    [metrics] = rows(influxd, influx_db, 'SELECT * FROM "collector"')
    assert metrics["skipped_values"] == 0


def test_values_that_fit_no_reading_are_left_out_counted_and_logged(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    def implausible(sn: str, record: dict[str, Any]) -> dict[str, Any]:
        if sn == HYB:
            _set(record, "ResidualEnergy", "0.01kWh", 0.5)  # 5 Wh, or a 0.5 kWh pack: neither
            _set(record, "SoC", "%", 104)
            _set(record, "RFreq", "Hz", 0)
            _set(record, "pv1Volt", "V", 6553.5)
        return record

    logs, _ = live_poll(tmp_path, influxd, influx_db, implausible)
    [row] = rows_by_device(influxd, influx_db, "inverter")[HYB]
    for name in ("battery_soc_pct", "grid_frequency_hz", "pv1_voltage_v"):
        assert name not in row, name
    # SoC is out, so the residual cannot be judged: written as labelled (0.005 kWh → 10 Wh steps)
    assert row["battery_residual_energy_wh"] == 0.0
    events = {(e["device"], e["rule"]) for e in logs if e["event"] == "mapping.implausible"}
    assert events == {
        (HYB, "soc_0_100_pct"),
        (HYB, "grid_frequency_40_70_hz"),
        (HYB, "voltage_0_1500_v"),
    }
    [metrics] = rows(influxd, influx_db, 'SELECT * FROM "collector"')
    assert metrics["skipped_values"] == 3
