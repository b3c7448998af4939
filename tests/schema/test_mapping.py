"""The one mapping function: skips counted never zeroed, coercion, units, sign split, validation."""

from __future__ import annotations

import math
from typing import Any

import pytest

from collector.schema.fields import SchemaError, point_problems
from collector.schema.mapping import (
    FieldMap,
    MappingStats,
    MappingTable,
    SplitMap,
    apply,
    as_number,
    to_utc_seconds,
)
from collector.schema.point import Point
from collector.schema.units import convert

TAGS = {"vendor": "foxess", "source": "roof", "site": "4410332", "device": "SN1"}
T = 1_726_084_857

TABLE = MappingTable(
    "inverter",
    [
        FieldMap("pvPower", "pv_power_w", "kW"),
        FieldMap("pv1Volt", "pv1_voltage_v"),
        FieldMap("loadsPower", "load_power_w", "kW"),
        FieldMap("SoC", "battery_soc_pct"),
        FieldMap("PVEnergyTotal", "pv_energy_total_wh", "kWh", "counter"),
        FieldMap("runningState", "status_code", kind="code"),
        FieldMap("currentFaultCount", "fault_count", kind="code"),
        SplitMap("meterPower", "grid_import_power_w", "grid_export_power_w", "kW"),
    ],
)


def run(raw: dict[str, Any], table: MappingTable = TABLE, **kw: Any) -> tuple[Point | None, MappingStats]:
    stats = MappingStats()
    point = apply(table, raw, tags=TAGS, time=T, stats=stats, **kw)
    return point, stats


def one(row: FieldMap | SplitMap, value: Any, **kw: Any) -> tuple[Point | None, MappingStats]:
    return run({row.source: value}, MappingTable("inverter", [row]), **kw)


def test_full_record() -> None:
    point, stats = run(
        {
            "pvPower": 1.234,
            "pv1Volt": "402.9",
            "loadsPower": 0.473,
            "SoC": 85,
            "PVEnergyTotal": 7.199999999999818,
            "runningState": "163",
            "currentFaultCount": "0",
            "meterPower": -0.8,
        }
    )
    assert point is not None
    assert point.fields == {
        "pv_power_w": 1234.0,
        "pv1_voltage_v": 402.9,
        "load_power_w": 473.0,
        "battery_soc_pct": 85.0,
        "pv_energy_total_wh": 7200.0,
        "status_code": 163,
        "fault_count": 0,
        "grid_import_power_w": 0.0,
        "grid_export_power_w": 800.0,
    }
    assert point.measurement == "inverter" and point.time == T and dict(point.tags) == TAGS
    assert isinstance(point.fields["battery_soc_pct"], float)
    assert isinstance(point.fields["status_code"], int)
    assert point_problems(point) == []
    assert stats.mapped == 9 and stats.points == 1 and stats.total_skipped == 0
    head = "inverter,device=SN1,site=4410332,source=roof,vendor=foxess pv_power_w=1234.0,"
    assert point.to_line().startswith(head)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "null"),
        ("", "empty"),
        ("   ", "empty"),
        ("--", "non_numeric"),
        ("N/A", "non_numeric"),
        ("1,5", "non_numeric"),
        ("1_000", "non_numeric"),
        ("12 kW", "non_numeric"),
        (True, "non_numeric"),
        ([1.0], "non_numeric"),
        ({"value": 1}, "non_numeric"),
        (math.nan, "not_finite"),
        (math.inf, "not_finite"),
        (-math.inf, "not_finite"),
        ("NaN", "not_finite"),
        ("-Infinity", "not_finite"),
        ("1e400", "not_finite"),
        (1e308, "not_finite"),  # finite in kW, overflows in W
    ],
)
def test_gauge_skips_are_counted_never_zero(value: Any, reason: str) -> None:
    point, stats = one(FieldMap("pvPower", "pv_power_w", "kW"), value)
    assert point is None  # nothing survived: no empty point, and no 0 written
    assert stats.skipped == {reason: 1}
    assert stats.detail == {(reason, "pvPower"): 1}
    assert stats.empty_points == 1 and stats.points == 0 and stats.mapped == 0


def test_missing_key_is_counted() -> None:
    point, stats = run({"pvPower": 1.0})
    assert point is not None and point.fields == {"pv_power_w": 1000.0}
    assert stats.skipped["missing"] == 7
    assert ("missing", "meterPower") in stats.detail


def test_skipped_field_is_left_out_others_kept() -> None:
    point, stats = run({"pvPower": "--", "loadsPower": 0.5, "SoC": None})
    assert point is not None
    assert point.fields == {"load_power_w": 500.0}
    assert "pv_power_w" not in point.fields and "battery_soc_pct" not in point.fields
    assert stats.skipped["non_numeric"] == 1 and stats.skipped["null"] == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12.0),
        ("12.5", 12.5),
        (" 3 ", 3.0),
        ("+4", 4.0),
        ("-0.002", -0.002),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("108500.0", 108500.0),
        ("371600.0000", 371600.0),
        (10**20, 1e20),
    ],
)
def test_gauges_become_floats(value: Any, expected: float) -> None:
    point, _ = one(FieldMap("p1", "ac_power_w"), value)
    assert point is not None
    out = point.fields["ac_power_w"]
    assert isinstance(out, float) and out == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        ("3", 3),
        (3.0, 3),
        ("3.0", 3),
        (" 163 ", 163),
        (True, 1),
        (False, 0),
        ("1234567890123456789", 1234567890123456789),  # exact beyond float precision, within int64
    ],
)
def test_codes_become_ints(value: Any, expected: int) -> None:
    point, _ = one(FieldMap("runningState", "status_code", kind="code"), value)
    assert point is not None
    out = point.fields["status_code"]
    assert type(out) is int and out == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (3.5, "bad_code"),
        ("3.5", "bad_code"),
        ("Normal", "non_numeric"),
        ("", "empty"),
        (None, "null"),
        (math.nan, "not_finite"),
    ],
)
def test_bad_codes_skipped(value: Any, reason: str) -> None:
    point, stats = one(FieldMap("runningState", "status_code", kind="code"), value)
    assert point is None and stats.skipped == {reason: 1}


def test_text_and_state_choices() -> None:
    def to_state(v: Any) -> str:
        return {163: "normal"}.get(int(v), "unknown")

    state = FieldMap("runningState", "state", kind="text", transform=to_state)
    point, _ = one(state, "163")
    assert point is not None and point.fields == {"state": "normal"}
    point, _ = one(state, 170)
    assert point is not None and point.fields == {"state": "unknown"}
    # A word outside the catalogue's choices is never written.
    point, stats = one(FieldMap("s", "state", kind="text"), "Running")
    assert point is None and stats.skipped == {"bad_value": 1}
    # A transform that fails on the data is counted, not raised.
    point, stats = one(state, "abc")
    assert point is None and stats.skipped == {"transform": 1}
    # A transform returning None leaves the field out.
    point, stats = one(FieldMap("s", "state", kind="text", transform=lambda v: None), "x")
    assert point is None and stats.skipped == {"null": 1}


def test_text_fields_on_fault() -> None:
    table = MappingTable(
        "fault",
        [
            FieldMap("msg", "message", kind="text"),
            FieldMap("code", "code", kind="code"),
            FieldMap("level", "level", kind="code"),
        ],
    )
    stats = MappingStats()
    point = apply(
        table, {"msg": "  Grid lost ", "code": "41203", "level": "2"}, tags=TAGS, time=T, stats=stats
    )
    assert point is not None and point.fields == {"message": "Grid lost", "code": 41203, "level": 2}
    point = apply(table, {"msg": 12, "code": 3.5, "level": None}, tags=TAGS, time=T, stats=stats)
    assert point is not None and point.fields == {"message": "12"}
    # fault.code is an integer for every vendor (InfluxDB refuses mixed field types):
    # a vendor's text code goes into `message`, and a table that writes text to `code` is refused.
    with pytest.raises(SchemaError, match="code"):
        MappingTable("fault", [FieldMap("code", "code", kind="text")])
    text_code = MappingTable("fault", [FieldMap("code", "message", kind="text")])
    point = apply(text_code, {"code": "E032"}, tags=TAGS, time=T, stats=stats)
    assert point is not None and point.fields == {"message": "E032"}


def test_transform_feeds_normal_coercion() -> None:
    # Sungrow p27 "499.9" arrives in 0.1 Hz on some firmware (research/sungrow.md §5.7).
    # The rescale goes through units.convert, the one place that converts.
    def rescale(v: Any) -> Any:
        return convert(float(v), "0.1Hz", "Hz") if float(v) > 100 else v

    row = FieldMap("p27", "grid_frequency_hz", transform=rescale)
    assert one(row, "499.9")[0].fields == {"grid_frequency_hz": 49.99}  # type: ignore[union-attr]
    assert one(row, "50.01")[0].fields == {"grid_frequency_hz": 50.01}  # type: ignore[union-attr]
    point, stats = one(row, "--")
    assert point is None and stats.skipped == {"transform": 1}


@pytest.mark.parametrize(
    ("value", "invert", "pos", "neg"),
    [
        (1.5, False, 1500.0, 0.0),
        (-0.8, False, 0.0, 800.0),
        (0, False, 0.0, 0.0),
        (-0.0, False, 0.0, 0.0),
        ("0", False, 0.0, 0.0),
        (1.5, True, 0.0, 1500.0),
        (-0.8, True, 800.0, 0.0),
        (0.0, True, 0.0, 0.0),
    ],
)
def test_sign_split(value: Any, invert: bool, pos: float, neg: float) -> None:
    row = SplitMap("meterPower", "grid_import_power_w", "grid_export_power_w", "kW", invert=invert)
    point, stats = one(row, value)
    assert point is not None
    assert point.fields == {"grid_import_power_w": pos, "grid_export_power_w": neg}
    for v in point.fields.values():
        assert isinstance(v, float) and math.copysign(1.0, v) == 1.0  # never -0.0
    assert stats.mapped == 2


def test_sign_split_skips_like_any_value() -> None:
    row = SplitMap("batPower", "battery_charge_power_w", "battery_discharge_power_w")
    for value, reason in ((None, "null"), ("--", "non_numeric"), (math.nan, "not_finite")):
        point, stats = one(row, value)
        assert point is None and stats.skipped == {reason: 1}


def test_per_value_unit_override() -> None:
    units = {"ResidualEnergy": "0.01kWh", "pvPower": "W", "loadsPower": "", "SoC": None}
    table = MappingTable(
        "inverter",
        [
            FieldMap("ResidualEnergy", "battery_residual_energy_wh", "kWh"),
            FieldMap("pvPower", "pv_power_w", "kW"),
            FieldMap("loadsPower", "load_power_w", "kW"),
            FieldMap("SoC", "battery_soc_pct"),
            SplitMap("meterPower", "grid_import_power_w", "grid_export_power_w", "kW"),
        ],
    )
    raw = {"ResidualEnergy": 236.0, "pvPower": 1200, "loadsPower": 0.5, "SoC": 50, "meterPower": 2}
    units["meterPower"] = "MW"
    point, stats = run(raw, table, unit_of=units.get)
    assert point is not None
    assert point.fields == {
        "battery_residual_energy_wh": 2360.0,  # the value's own unit wins over the table's kWh
        "pv_power_w": 1200.0,
        "load_power_w": 500.0,  # empty unit: the table's kW
        "battery_soc_pct": 50.0,  # no unit: the table's (none)
        "grid_import_power_w": 2_000_000.0,
        "grid_export_power_w": 0.0,
    }
    assert stats.total_skipped == 0


@pytest.mark.parametrize("unit", ["kWh", "furlong", "%"])
def test_bad_per_value_unit_is_skipped(unit: str) -> None:
    point, stats = one(FieldMap("pvPower", "pv_power_w", "kW"), 1.0, unit_of=lambda _: unit)
    assert point is None and stats.skipped == {"unit": 1}


def test_unit_given_for_unitless_field_is_skipped() -> None:
    point, stats = one(FieldMap("PowerFactor", "power_factor"), 0.99, unit_of=lambda _: "%")
    assert point is None and stats.skipped == {"unit": 1}
    point, stats = one(FieldMap("PowerFactor", "power_factor"), 0.99, unit_of=lambda _: None)
    assert point is not None and point.fields == {"power_factor": 0.99}


def test_unit_of_ignored_for_codes() -> None:
    point, _ = one(FieldMap("runningState", "status_code", kind="code"), "163", unit_of=lambda _: "kW")
    assert point is not None and point.fields == {"status_code": 163}


def test_fraction_to_percent() -> None:
    point, _ = one(FieldMap("p13141", "battery_soc_pct", "fraction"), "0.791")
    assert point is not None and point.fields == {"battery_soc_pct": 79.1}


@pytest.mark.parametrize(
    ("measurement", "rows", "match"),
    [
        ("inverter", [FieldMap("x", "pv_power_kw")], "no field"),
        ("inverter", [FieldMap("x", "pv0_power_w")], "no field"),
        ("inverter", [FieldMap("x", "pv{N}_power_w")], "no field"),
        ("inverter", [FieldMap("x", "charge_power_w")], "no field"),  # an ev_charger field
        ("energy", [FieldMap("x", "yield_energy_today_wh")], "no field"),
        ("inverter", [FieldMap("x", "pv_power_w", "kWh")], "cannot become"),
        ("inverter", [FieldMap("x", "pv_power_w", "parsec")], "unknown unit"),
        ("inverter", [FieldMap("x", "power_factor", "%")], "has no unit"),
        ("inverter", [FieldMap("x", "status_code", "kW", "code")], "has no unit"),
        ("inverter", [FieldMap("x", "status_code")], "does not fit"),
        ("inverter", [FieldMap("x", "pv_power_w", kind="code")], "does not fit"),
        ("inverter", [FieldMap("x", "state", kind="code")], "does not fit"),
        ("inverter", [SplitMap("x", "status_code", "fault_code")], "does not fit"),
        ("inverter", [SplitMap("x", "grid_import_power_w", "grid_import_energy_total_wh")], "share a unit"),
        ("inverter", [FieldMap("a", "pv_power_w"), FieldMap("b", "pv_power_w")], "two rows"),
        (
            "inverter",
            [
                FieldMap("a", "grid_import_power_w"),
                SplitMap("b", "grid_import_power_w", "grid_export_power_w"),
            ],
            "two rows",
        ),
        ("inverter", ["pvPower"], "FieldMap or SplitMap"),
        ("weather", [FieldMap("x", "pv_power_w")], "unknown measurement"),
    ],
)
def test_table_validated_at_build_time(measurement: str, rows: list[Any], match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        MappingTable(measurement, rows)


def test_row_validation() -> None:
    with pytest.raises(SchemaError):
        FieldMap("x", "pv_power_w", kind="number")  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        FieldMap("", "pv_power_w")
    with pytest.raises(SchemaError):
        SplitMap("x", "grid_import_power_w", "grid_import_power_w")


def test_table_properties() -> None:
    table = MappingTable(
        "inverter",
        (
            FieldMap("runningState", "status_code", kind="code"),
            FieldMap("runningState", "state", kind="text"),
            SplitMap("meterPower", "grid_import_power_w", "grid_export_power_w", "kW"),
        ),
    )
    assert table.targets == ("status_code", "state", "grid_import_power_w", "grid_export_power_w")
    assert table.sources == ("runningState", "meterPower")
    assert isinstance(table.rows, tuple)
    assert table.spec("grid_export_power_w").unit == "W"
    assert table.unit("grid_export_power_w") is not None and table.unit("state") is None


def test_tags_must_match_the_measurement() -> None:
    stats = MappingStats()
    with pytest.raises(SchemaError, match="tags"):
        apply(TABLE, {"pvPower": 1}, tags={"vendor": "foxess", "source": "roof"}, time=T, stats=stats)
    with pytest.raises(SchemaError, match="tags"):
        apply(TABLE, {"pvPower": 1}, tags={**TAGS, "model": "H1"}, time=T, stats=stats)
    energy = MappingTable("energy", [FieldMap("generation", "yield_wh", "kWh", "counter")])
    with pytest.raises(SchemaError, match="period"):
        apply(energy, {"generation": 1}, tags={**TAGS, "period": "week"}, time=T, stats=stats)
    point = apply(energy, {"generation": 7.2}, tags={**TAGS, "period": "day"}, time=T, stats=stats)
    assert point is not None and point.fields == {"yield_wh": 7200.0}
    site = MappingTable("site", [FieldMap("curr_power", "power_w", "kW")])
    site_tags = {"vendor": "sungrow", "source": "s", "site": "1129147"}
    point = apply(site, {"curr_power": "2.868"}, tags=site_tags, time=T, stats=stats)
    assert point is not None and point.fields == {"power_w": 2868.0}


def test_stats_merge_and_summary() -> None:
    _, a = run({"pvPower": "--", "loadsPower": None, "SoC": 50})
    _, b = run({"pvPower": "--", "loadsPower": 1, "runningState": 3.5})
    total = MappingStats()
    total += a
    total += b
    assert total.skipped["non_numeric"] == 2
    assert total.detail[("non_numeric", "pvPower")] == 2
    assert total.skipped["null"] == 1 and total.skipped["bad_code"] == 1
    assert total.mapped == 2 and total.points == 2
    assert total.rejected == 3  # non_numeric ×2, bad_code; missing/null are absence
    assert total.total_skipped == a.total_skipped + b.total_skipped
    assert (a + b) == total
    line = total.summary()
    assert "\n" not in line
    assert line.startswith("mapped 2 fields in 2 points; skipped ")
    assert "non_numeric 2 (pvPower×2)" in line and "bad_code 1 (runningState)" in line
    assert line.index("null") < line.index("non_numeric") < line.index("bad_code")
    assert MappingStats().summary() == "mapped 0 fields in 0 points; skipped 0"
    many = MappingStats()
    for i in range(8):
        many.skip("null", f"k{i}")
    assert "+3 more" in many.summary()


def test_empty_record_gives_no_point() -> None:
    point, stats = run({})
    assert point is None and stats.empty_points == 1 and stats.skipped["missing"] == len(TABLE.rows)


def test_as_number() -> None:
    assert as_number("12.5") == 12.5
    assert as_number(3) == 3.0
    for bad in (None, "", "--", math.nan, "inf", True, [1]):
        assert as_number(bad) is None


def test_time_helper_reexported() -> None:
    assert to_utc_seconds("2024-09-11 21:00:57 BST+0100") == T


def test_a_value_in_the_schema_unit_loses_its_float_noise() -> None:
    from collector.schema.mapping import FieldMap, MappingStats, MappingTable, apply

    table = MappingTable(
        "inverter", (FieldMap("t", "inverter_temperature_c", "°C"), FieldMap("pf", "power_factor"))
    )
    tags = {"vendor": "foxess", "source": "s", "site": "x", "device": "d"}
    point = apply(
        table, {"t": 28.700000000000003, "pf": 0.9990000000000001}, tags=tags, time=1, stats=MappingStats()
    )
    assert point is not None
    assert point.fields == {"inverter_temperature_c": 28.7, "power_factor": 0.999}


def test_a_code_beyond_int64_is_skipped_not_written() -> None:
    from collector.schema.mapping import FieldMap, MappingStats, MappingTable, apply

    table = MappingTable("inverter", (FieldMap("n", "fault_count", kind="code"), FieldMap("p", "pv_power_w")))
    tags = {"vendor": "foxess", "source": "s", "site": "x", "device": "d"}
    stats = MappingStats()
    point = apply(table, {"n": "99999999999999999999", "p": 1.0}, tags=tags, time=1, stats=stats)
    assert point is not None and point.fields == {"pv_power_w": 1.0}
    assert stats.skipped["bad_code"] == 1


def test_a_row_quantum_rounds_the_converted_value_to_the_vendors_resolution() -> None:
    table = MappingTable(
        "energy",
        (
            FieldMap("load", "load_wh", "kWh", "counter", quantum="0.1"),
            FieldMap("yield", "yield_wh", "kWh", "counter"),  # no quantum: 12 digits
        ),
    )
    raw = {"load": 0.09999999999990905, "yield": 0.09999999999990905}
    point = apply(table, raw, tags={**TAGS, "period": "hour"}, time=0, stats=MappingStats())
    assert point is not None and point.fields == {"load_wh": 100.0, "yield_wh": 99.9999999999}
    assert table.quantum("load_wh") == 100 and table.quantum("yield_wh") is None


def test_a_quantum_applies_to_both_parts_of_a_split_and_to_a_per_value_unit() -> None:
    table = MappingTable(
        "inverter",
        (
            SplitMap("meterPower", "grid_import_power_w", "grid_export_power_w", "kW", quantum="0.001"),
            FieldMap("res", "battery_residual_energy_wh", "kWh", quantum="0.01"),
        ),
    )
    units = {"res": "0.01kWh"}
    raw = {"meterPower": -2.4259999999999997, "res": 236.0000001}
    point = apply(table, raw, tags=TAGS, time=0, stats=MappingStats(), unit_of=units.get)
    assert point is not None
    assert point.fields == {
        "grid_import_power_w": 0.0,
        "grid_export_power_w": 2426.0,
        "battery_residual_energy_wh": 2360.0,
    }


def test_a_quantum_is_checked_when_the_table_is_built() -> None:
    with pytest.raises(SchemaError, match="quantum"):
        MappingTable("inverter", (FieldMap("x", "pv_power_w", "kW", quantum="0"),))
    with pytest.raises(SchemaError, match="quantum"):
        MappingTable("inverter", (FieldMap("x", "status_code", kind="code", quantum="1"),))
