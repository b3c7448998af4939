"""The FoxESS mapping, rule by rule: units, quirky labels, signs, packs, fallbacks, times, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.schema.fields import INVERTER_STATES
from collector.schema.mapping import FieldMap, MappingStats, Row, SplitMap
from collector.schema.point import FieldValue
from collector.vendors.foxess.mapping import (
    INVERTER_ROWS,
    NOT_WRITTEN,
    STATE_OF,
    UNIT_OVERRIDES,
    device_tags,
    fault_codes,
    inverter_point,
    next_upload,
    normalise,
    parse_history,
    parse_real,
    reportable_skips,
    snapshots_from_real,
    unmask_register,
)
from collector.vendors.foxess.responses import RealRecord, RealValue
from collector.vendors.foxess.variables import DOC_VARIABLES, RUNNING_STATES

CASES = Path(__file__).parent / "cases"
TIME = "2024-09-11 21:00:57 BST+0100"
T0 = 1726084857


def fields(*items: tuple[str, str | None, Any], time: str = TIME) -> dict[str, FieldValue]:
    """Map one device's (variable, unit, value) items; the point's fields ({} for none)."""
    stats = MappingStats()
    rec = RealRecord("SN1", time, tuple(RealValue(v, u, x) for v, u, x in items))
    snaps = snapshots_from_real([rec], tz="Europe/London", stats=stats)
    point = inverter_point(snaps[0], device_tags("s", "site", "SN1"), stats)
    return dict(point.fields) if point else {}


def test_kw_to_w_and_kwh_to_wh() -> None:
    f = fields(("pvPower", "kW", 1.234), ("generation", "kWh", 5765.7), ("pv1Volt", "V", 350.2))
    assert f == {"pv_power_w": 1234.0, "yield_energy_total_wh": 5765700.0, "pv1_voltage_v": 350.2}


def test_the_per_value_unit_wins_over_the_doc() -> None:
    assert fields(("pvPower", "W", 1234))["pv_power_w"] == 1234.0
    assert fields(("pvPower", None, 1.5))["pv_power_w"] == 1500.0  # no unit: the doc's kW


def test_today_yield_is_kwh_whatever_its_label() -> None:
    # Doc unit "kW", but it is today's energy in kWh (research/foxess.md §5).
    for unit in ("kW", "kWh", None):
        assert fields(("todayYield", unit, 17.7))["yield_energy_today_wh"] == 17700.0


def test_energy_throughput_is_kwh_whatever_its_label() -> None:
    # Labelled Wh (doc, foxessprom 1381.765) or kWh (batpred 2025): the number is kWh (§5).
    assert "energyThroughput" in UNIT_OVERRIDES
    for unit in ("Wh", "kWh", None):
        f = fields(("energyThroughput", unit, 1381.765))
        assert f == {"battery_throughput_energy_total_wh": 1381765.0}


@pytest.mark.parametrize(
    ("unit", "value"),
    [("0.01kWh", 236.0), ("0.1kWh", 23.6), ("kWh", 2.36), ("1.0kWh", 2.36), (None, 2.36)],
)
def test_residual_energy_unit_variants(unit: str | None, value: float) -> None:
    assert fields(("ResidualEnergy", unit, value))["battery_residual_energy_wh"] == 2360.0


@pytest.mark.parametrize(
    ("meter", "imp", "exp"), [(0.5, 500.0, 0.0), (-0.588, 0.0, 588.0), (0, 0.0, 0.0), ("-0.0", 0.0, 0.0)]
)
def test_meter_power_positive_is_import(meter: object, imp: float, exp: float) -> None:
    f = fields(("meterPower", "kW", meter))
    assert (f["grid_import_power_w"], f["grid_export_power_w"]) == (imp, exp)


def test_phase_meters_and_meter2_follow_the_meter_power_sign() -> None:
    # meterPowerR/S/T and meterPower2: positive = import (in past the meter), as meterPower (§5).
    f = fields(("meterPowerR", "kW", 0.2), ("meterPowerS", "kW", -0.35), ("meterPowerT", "kW", 0))
    assert f == {
        "grid_phase_a_import_power_w": 200.0,
        "grid_phase_a_export_power_w": 0.0,
        "grid_phase_b_import_power_w": 0.0,
        "grid_phase_b_export_power_w": 350.0,
        "grid_phase_c_import_power_w": 0.0,
        "grid_phase_c_export_power_w": 0.0,
    }
    f = fields(("meterPower2", "kW", -1.5))
    assert f == {"meter2_import_power_w": 0.0, "meter2_export_power_w": 1500.0}


@pytest.mark.parametrize(("bat", "dis", "chg"), [(0.473, 473.0, 0.0), (-1.2, 0.0, 1200.0), (0.0, 0.0, 0.0)])
def test_inv_bat_power_positive_is_discharge(bat: float, dis: float, chg: float) -> None:
    f = fields(("invBatPower", "kW", bat))
    assert (f["battery_discharge_power_w"], f["battery_charge_power_w"]) == (dis, chg)


def test_direct_flows_win_and_the_signed_value_fills_only_the_rest() -> None:
    # Issue #7 §1 (this test said the opposite before: meterPower won, and a lone
    # gridConsumptionPower was lost for want of feedinPower).
    f = fields(("gridConsumptionPower", "kW", 0.2), ("feedinPower", "kW", 0.0))
    assert (f["grid_import_power_w"], f["grid_export_power_w"]) == (200.0, 0.0)
    f = fields(("batChargePower", "kW", 0.7), ("batDischargePower", "kW", 0.0))
    assert (f["battery_discharge_power_w"], f["battery_charge_power_w"]) == (0.0, 700.0)
    # Both present and disagreeing: the direct variable wins.
    f = fields(("meterPower", "kW", 0.3), ("gridConsumptionPower", "kW", 0.9), ("feedinPower", "kW", 0.0))
    assert (f["grid_import_power_w"], f["grid_export_power_w"]) == (900.0, 0.0)
    # Each direct variable on its own, in its own unit.
    f = fields(("gridConsumptionPower", "kW", 0.2), ("feedinPower", "W", 100))
    assert (f["grid_import_power_w"], f["grid_export_power_w"]) == (200.0, 100.0)
    f = fields(("gridConsumptionPower", "kW", 2.426))
    assert f == {"grid_import_power_w": 2426.0}
    # One direct part, the other from the signed value.
    f = fields(("feedinPower", "kW", 0.588), ("meterPower", "kW", -0.588))
    assert (f["grid_import_power_w"], f["grid_export_power_w"]) == (0.0, 588.0)
    f = fields(("batChargePower", "kW", None), ("batDischargePower", "kW", None), ("invBatPower", "kW", 0))
    assert (f["battery_discharge_power_w"], f["battery_charge_power_w"]) == (0.0, 0.0)
    f = fields(("batVolt", "V", 52.1))
    assert f["battery_voltage_v"] == 52.1
    assert fields(("batVolt", "V", 52.1), ("invBatVolt", "V", 52.4))["battery_voltage_v"] == 52.4


def test_a_value_left_out_is_not_counted_when_another_variable_gives_its_field() -> None:
    stats = MappingStats()
    items = (RealValue("batChargePower", "kW", None), RealValue("invBatPower", "kW", 0.5))
    [snap] = snapshots_from_real([RealRecord("SN1", TIME, items)], tz="UTC", stats=stats)
    point = inverter_point(snap, device_tags("s", "site", "SN1"), stats)
    assert point is not None and point.fields["battery_charge_power_w"] == 0.0
    assert reportable_skips(stats) == 0
    stats = MappingStats()
    [snap] = snapshots_from_real(
        [RealRecord("SN1", TIME, (RealValue("feedinPower", "kW", "--"),))], tz="UTC", stats=stats
    )
    assert inverter_point(snap, device_tags("s", "site", "SN1"), stats) is None
    assert stats.skipped["non_numeric"] == 1  # nothing else gave grid_export_power_w


SAMPLE = {"_hz": 50.0, "_pct": 50.0, "_v": 230.0, "_c": 25.0}


@pytest.mark.parametrize("row", INVERTER_ROWS, ids=lambda r: f"{r.source}")
def test_each_variable_alone_yields_its_fields(row: Row) -> None:
    """Issue #7 §1: every variable of the table, fed alone, writes what it can."""
    targets = (row.positive, row.negative) if isinstance(row, SplitMap) else (row.target,)
    if isinstance(row, FieldMap) and row.kind in ("code", "text"):
        value: Any = "4113" if row.source == "currentFault" else "163"
    else:
        value = next((v for suffix, v in SAMPLE.items() if targets[0].endswith(suffix)), 1.5)
    f = fields((row.source, row.unit, value))
    assert set(targets) <= set(f), (row.source, f)


def test_multi_battery_packs() -> None:
    vals, units = normalise(
        {"SoC_1": 40, "Soc_2": 60, "batTemperature_1": 20, "batTemperature_2": 25, "invBatPower_1": 0.5},
        {"SoC_1": "%", "Soc_2": "%", "batTemperature_1": "℃", "batTemperature_2": "℃", "invBatPower_1": "kW"},
    )
    assert vals == {"SoC": 50.0, "batTemperature": 25, "invBatPower": 0.5}
    assert units == {"SoC": "%", "batTemperature": "℃", "invBatPower": "kW"}
    # A real aggregate is kept; an aggregate of 0 beside live packs is not (H3-G2 batVolt 0).
    assert normalise({"SoC": 55, "SoC_1": 40}, {})[0]["SoC"] == 55
    assert normalise({"batVolt": 0, "batVolt_1": 402.9}, {})[0]["batVolt"] == 402.9
    assert normalise({"batVolt": 0, "batVolt_1": 0}, {})[0]["batVolt"] == 0
    # Packs in different units are not combined.
    assert "SoC" not in normalise({"SoC_1": 40, "SoC_2": 0.6}, {"SoC_1": "%", "SoC_2": "fraction"})[0]
    # Per-pack keys of other variables are left alone (and not written).
    assert normalise({"feedin_2": 3.0}, {})[0] == {"feedin_2": 3.0}


def test_names_are_folded_to_the_doc_spelling() -> None:
    assert fields(("soc", "%", 46), ("SOH", "%", 99), ("PVPOWER", "kW", 1)) == {
        "pv_power_w": 1000.0,
        "battery_soc_pct": 46.0,
        "battery_soh_pct": 99.0,
    }


def test_unknown_variables_are_ignored() -> None:
    assert fields(("maxChargeCurrent", "A", 50), ("pvPower", "kW", 1)) == {"pv_power_w": 1000.0}


def test_skipped_values_are_counted_never_zero() -> None:
    raw = (CASES / "real_v0_nulls_and_strings" / "response.json").read_text()
    from collector.vendors.foxess.codes import result_of
    from collector.vendors.foxess.responses import read_real

    stats = MappingStats()
    snaps = snapshots_from_real(read_real(result_of(raw)), tz="UTC", stats=stats)
    point = inverter_point(snaps[0], device_tags("s", "x", "SN"), stats)
    assert point is not None
    assert 0.0 not in [point.fields.get(k) for k in ("pv1_current_a", "pv1_power_w", "battery_soc_pct")]
    skipped = dict(stats.skipped)
    skipped.pop("missing")
    assert skipped == {"null": 3, "empty": 1, "non_numeric": 3, "not_finite": 1, "unit": 1, "transform": 1}
    assert reportable_skips(stats) == 10
    assert stats.detail[("transform", "generation")] == 1  # the corrupt counter


def one_time(time: str | None, tz: str, item_time: str | None = None) -> int:
    item: dict[str, Any] = {"variable": "pvPower", "unit": "kW", "value": 1}
    if item_time:
        item["time"] = item_time
    device: dict[str, Any] = {"deviceSN": "A", "datas": [item]}
    if time:
        device["time"] = time
    [point] = parse_real(json.dumps([device]), tz=tz)
    return point.time


def test_time_from_the_trailing_offset_dst_pair() -> None:
    assert one_time("2026-01-22 12:00:00 CET+0100", "Europe/Berlin") == 1769079600  # 11:00:00Z
    assert one_time("2026-07-22 12:00:00 CEST+0200", "Europe/Berlin") == 1784714400  # 10:00:00Z
    # The offset in the string wins over the zone we are told.
    assert one_time("2026-07-22 12:00:00 CEST+0200", "America/New_York") == 1784714400


def test_time_falls_back_to_the_per_item_time_of_the_doc() -> None:
    # The doc's v1 table nests `time` in each datas item (research/foxess.md §4.1).
    assert one_time(None, "UTC", item_time="2024-09-11 21:00:57 BST+0100") == T0


def test_a_device_without_a_readable_time_is_skipped_and_counted() -> None:
    stats = MappingStats()
    rec = RealRecord("SN1", "yesterday", (RealValue("pvPower", "kW", 1),))
    assert snapshots_from_real([rec], tz="UTC", stats=stats) == []
    assert stats.skipped["bad_time"] == 1


def test_running_state_table_covers_the_doc_enum() -> None:
    assert set(STATE_OF) == set(RUNNING_STATES)
    assert set(STATE_OF.values()) <= set(INVERTER_STATES)
    f = fields(("runningState", None, "163"))
    assert f == {"status_code": 163, "state": "normal"}
    assert fields(("runningState", None, 999)) == {"status_code": 999, "state": "unknown"}
    assert fields(("runningState", None, "on")) == {}  # not a code: both left out


def test_fault_codes() -> None:
    assert fault_codes("") == ()
    assert fault_codes(None) == ()
    assert fault_codes("0") == ()
    assert fault_codes("4113") == (4113,)
    assert fault_codes(4113) == (4113,)
    assert fault_codes("4113, 4116;4113|x 12") == (4113, 4116, 12)
    assert fields(("currentFault", None, "4116,4113"))["fault_code"] == 4116
    assert "fault_code" not in fields(("currentFault", None, ""))


def test_corrupt_registers() -> None:
    assert unmask_register(204800001.2) == 1.2
    assert unmask_register(201539769) == 3461.8  # the EnergyStats example (research/foxess.md §5)
    assert fields(("generation", "kWh", 250_000_000.0)) == {}
    assert fields(("generation", "kWh", 199_999_999.0)) == {"yield_energy_total_wh": 199999999000.0}


def test_every_doc_variable_is_mapped_or_explained() -> None:
    mapped = {r.source for r in INVERTER_ROWS}
    for var in DOC_VARIABLES:
        assert (var in mapped) + (var in NOT_WRITTEN) == 1, var
    assert set(NOT_WRITTEN) <= set(DOC_VARIABLES)


def test_next_upload() -> None:
    # One device uploaded at t; now t+100: next upload t+300, poll 20 s later.
    assert next_upload([1000], 1100, period=300, lag=20) == 1320
    # Just after that: the one after.
    assert next_upload([1000], 1330, period=300, lag=20) == 1620
    # Two phases: wait for the later one so one call sees both new.
    assert next_upload([1000, 1200], 1250, period=300, lag=20) == 1520
    # A device offline for an hour tells nothing.
    assert next_upload([1000], 1000 + 3600, period=300, lag=20) is None
    assert next_upload([], 1000, period=300, lag=20) is None


def test_a_device_the_request_did_not_name_is_dropped_and_said() -> None:
    stats = MappingStats()
    raw = (CASES / "real_v1_fault" / "response.json").read_text()
    points = parse_real(raw, tz="UTC", request='{"sns": ["TESTSN0000A0001"]}', stats=stats)
    assert [p.tags["device"] for p in points] == ["TESTSN0000A0001"]
    assert [(d, r) for d, r, _ in stats.drops] == [("TESTSN0000B0002", "not_requested")]
    assert stats.records_dropped == 1 and reportable_skips(stats) == 0


def test_a_history_upload_with_an_unreadable_time_is_dropped_once() -> None:
    raw = json.dumps(
        [
            {
                "deviceSN": "SN1",
                "datas": [
                    {
                        "variable": "pvPower",
                        "unit": "kW",
                        "data": [{"time": "soon", "value": 1.0}, {"time": TIME, "value": 2.0}],
                    },
                    {"variable": "loadsPower", "unit": "kW", "data": [{"time": "soon", "value": 0.5}]},
                ],
            }
        ]
    )
    stats = MappingStats()
    points = parse_history(raw, tz="UTC", stats=stats)
    assert [p.fields for p in points] == [{"pv_power_w": 2000.0}]
    assert [(d, r) for d, r, _ in stats.drops] == [("SN1", "bad_time")]
    assert reportable_skips(stats) == 0
