"""The schema catalogue: lookups, patterns, the suffix → unit rule, tags, the README table."""

from __future__ import annotations

import pytest

from collector.schema.fields import (
    EV_CHARGER_STATES,
    INVERTER_STATES,
    MEASUREMENTS,
    PERIODS,
    TAGS,
    UNIT_SUFFIXES,
    FieldType,
    SchemaError,
    catalogue_problems,
    check_tags,
    field_spec,
    is_known,
    lookup,
    markdown_table,
    markdown_tag_meanings_table,
    markdown_tags_table,
    measurement_spec,
    point_problems,
    suffix_unit,
)
from collector.schema.point import Point
from collector.schema.units import parse_unit

ALL_FIELDS = [(m.name, f) for m in MEASUREMENTS.values() for f in m.fields]


def test_measurements_and_tags() -> None:
    assert list(MEASUREMENTS) == ["inverter", "ev_charger", "energy", "site", "fault", "collector"]
    four = ("vendor", "source", "site", "device")
    assert measurement_spec("inverter").tags == four
    assert measurement_spec("ev_charger").tags == four
    assert measurement_spec("fault").tags == four
    assert measurement_spec("energy").tags == (*four, "period")
    assert measurement_spec("site").tags == ("vendor", "source", "site")
    assert set(measurement_spec("collector").tags) == {"source", "vendor"}
    assert measurement_spec("energy").choices_for_tag("period") == PERIODS == ("hour", "day", "month", "year")
    with pytest.raises(SchemaError):
        measurement_spec("weather")


@pytest.mark.parametrize(
    ("measurement", "name", "unit", "type_"),
    [
        ("inverter", "pv_power_w", "W", FieldType.FLOAT),
        ("inverter", "grid_import_energy_total_wh", "Wh", FieldType.FLOAT),
        ("inverter", "battery_soc_pct", "%", FieldType.FLOAT),
        ("inverter", "battery_temperature_c", "°C", FieldType.FLOAT),
        ("inverter", "reactive_power_var", "var", FieldType.FLOAT),
        ("inverter", "grid_frequency_hz", "Hz", FieldType.FLOAT),
        ("inverter", "power_factor", None, FieldType.FLOAT),
        ("inverter", "status_code", None, FieldType.INT),
        ("inverter", "state", None, FieldType.STR),
        ("inverter", "fault_count", None, FieldType.INT),
        ("ev_charger", "charge_energy_wh", "Wh", FieldType.FLOAT),
        ("ev_charger", "charging_mode", None, FieldType.INT),
        ("energy", "battery_discharge_wh", "Wh", FieldType.FLOAT),
        ("site", "capacity_w", "W", FieldType.FLOAT),
        ("fault", "code", None, FieldType.INT),
        ("fault", "message", None, FieldType.STR),
        ("fault", "active", None, FieldType.INT),
        ("collector", "points_written", None, FieldType.INT),
        ("collector", "last_success_age_s", "s", FieldType.FLOAT),
    ],
)
def test_representative_fields(measurement: str, name: str, unit: str | None, type_: FieldType) -> None:
    spec = field_spec(measurement, name)
    assert spec is not None
    assert spec.name == name and spec.unit == unit and spec.type is type_
    assert not spec.is_pattern
    assert is_known(measurement, name)


@pytest.mark.parametrize(
    ("name", "pattern", "unit"),
    [
        ("pv1_power_w", "pv{N}_power_w", "W"),
        ("pv18_voltage_v", "pv{N}_voltage_v", "V"),
        ("pv2_current_a", "pv{N}_current_a", "A"),
        ("phase_a_voltage_v", "phase_{a,b,c}_voltage_v", "V"),
        ("phase_b_current_a", "phase_{a,b,c}_current_a", "A"),
        ("phase_c_power_w", "phase_{a,b,c}_power_w", "W"),
    ],
)
def test_patterns_resolve(name: str, pattern: str, unit: str) -> None:
    spec = lookup("inverter", name)
    assert spec is not None and spec.name == pattern and spec.is_pattern and spec.unit == unit


@pytest.mark.parametrize(
    ("measurement", "name"),
    [
        ("inverter", "pv0_power_w"),
        ("inverter", "pv01_power_w"),
        ("inverter", "pvx_power_w"),
        ("inverter", "pv{N}_power_w"),
        ("inverter", "phase_d_voltage_v"),
        ("inverter", "phase_r_voltage_v"),
        ("inverter", "pv_power_kw"),
        ("inverter", "grid_power_w"),  # no signed flows
        ("inverter", "charge_power_w"),  # ev_charger's
        ("energy", "pv_energy_today_wh"),  # inverter's
        ("site", "model"),
    ],
)
def test_unknown_fields(measurement: str, name: str) -> None:
    assert field_spec(measurement, name) is None
    assert not is_known(measurement, name)


def test_unknown_measurement() -> None:
    assert not is_known("weather", "pv_power_w")
    with pytest.raises(SchemaError):
        field_spec("weather", "pv_power_w")


@pytest.mark.parametrize(("measurement", "spec"), ALL_FIELDS, ids=[f"{m}.{f.name}" for m, f in ALL_FIELDS])
def test_suffix_rule_for_every_field(measurement: str, spec: object) -> None:
    from collector.schema.fields import FieldSpec

    assert isinstance(spec, FieldSpec)
    assert suffix_unit(spec.name) == spec.unit, f"{measurement}.{spec.name}"
    if spec.unit is not None:
        assert spec.type is FieldType.FLOAT
        unit = parse_unit(spec.unit)
        assert unit.symbol == unit.base == spec.unit  # schema units are base units
    assert field_spec(measurement, spec.example()) is spec


def test_suffix_table() -> None:
    assert suffix_unit("grid_export_power_w") == "W"
    assert suffix_unit("load_energy_total_wh") == "Wh"
    assert suffix_unit("reactive_power_var") == "var"
    assert suffix_unit("power_factor") is None
    assert set(UNIT_SUFFIXES.values()) == {"W", "Wh", "var", "V", "A", "Hz", "°C", "%", "s"}


def test_catalogue_self_check() -> None:
    assert catalogue_problems() == []


def test_states() -> None:
    assert field_spec("inverter", "state").choices == INVERTER_STATES  # type: ignore[union-attr]
    assert field_spec("ev_charger", "state").choices == EV_CHARGER_STATES  # type: ignore[union-attr]
    assert set(INVERTER_STATES) == {
        "normal",
        "standby",
        "starting",
        "fault",
        "permanent_fault",
        "off_grid",
        "updating",
        "offline",
        "unknown",
    }
    assert set(EV_CHARGER_STATES) == {
        "idle",
        "connected",
        "charging",
        "finished",
        "fault",
        "offline",
        "unknown",
    }


def test_markdown_table_lists_every_field() -> None:
    table = markdown_table()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(ALL_FIELDS)
    for (measurement, spec), row in zip(ALL_FIELDS, rows, strict=True):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[0] == f"`{measurement}`"
        assert cells[1] == f"`{spec.name}`"
        assert cells[2] == (spec.unit or "—")
        assert cells[3] == spec.type.label
        assert cells[4] == "—"  # no vendor's quanta given
        assert cells[5]
    assert table.splitlines()[0] == "| measurement | field | unit | type | quantum | meaning |"
    assert "| `inverter` | `pv{N}_power_w` | W | float |" in table


def test_the_readme_table_gives_each_vendors_quantum() -> None:
    """Issue #7 §3: the schema table says each field's unit and the step it is rounded to."""
    from collector.vendors import quanta

    table = markdown_table(quanta())
    assert "| `inverter` | `pv{N}_power_w` | W | float | foxess 1 W; sungrow 0.1 W |" in table
    assert "| `energy` | `yield_wh` | Wh | float | foxess 100 Wh; sungrow 0.0001 Wh |" in table
    assert "| `inverter` | `ambient_temperature_c` | °C | float | — |" in table  # no step known


def test_markdown_tags_table() -> None:
    table = markdown_tags_table()
    for name in MEASUREMENTS:
        assert f"| `{name}` |" in table
    assert "`period` (hour, day, month, year)" in table


def test_every_tag_has_a_meaning() -> None:
    used = {t for m in MEASUREMENTS.values() for t in m.tags}
    assert used == set(TAGS)
    table = markdown_tag_meanings_table()
    assert table.splitlines()[0] == "| tag | meaning | example |"
    for name in ("vendor", "source", "site", "device", "period"):
        assert f"| `{name}` |" in table
    assert "`solax_ev`" in table and "ps_key" in table


def test_check_tags() -> None:
    check_tags("inverter", {"vendor": "foxess", "source": "s", "site": "1", "device": "SN"})
    check_tags("collector", {"vendor": "foxess", "source": "s"})
    check_tags("energy", {"vendor": "foxess", "source": "s", "site": "1", "device": "SN", "period": "month"})
    for measurement, tags in [
        ("inverter", {"vendor": "foxess", "source": "s", "site": "1"}),
        ("site", {"vendor": "foxess", "source": "s", "site": "1", "device": "SN"}),
        ("energy", {"vendor": "foxess", "source": "s", "site": "1", "device": "SN", "period": "week"}),
        ("collector", {"vendor": "foxess", "source": 1}),
    ]:
        with pytest.raises(SchemaError):
            check_tags(measurement, tags)  # type: ignore[arg-type]


def test_point_problems() -> None:
    tags = {"vendor": "sungrow", "source": "s", "site": "1", "device": "SN"}
    good = Point("inverter", tags, {"pv3_power_w": 10.0, "status_code": 1, "state": "normal"}, 1_700_000_000)
    assert point_problems(good) == []
    bad = Point(
        "inverter",
        {"vendor": "sungrow"},
        {"pv_power_kw": 1.0, "status_code": 1.0, "state": "running", "ac_power_w": 5, "fault_count": True},
        1_700_000_000,
    )
    problems = point_problems(bad)
    assert len(problems) == 6, problems
    assert point_problems(Point("weather", {}, {"x": 1.0}, 0)) == ["unknown measurement 'weather'"]
    assert point_problems(Point("fault", tags, {}, 0)) == ["fault point has no fields"]
    assert point_problems(Point("fault", tags, {"code": 12, "message": "E1", "active": 1}, 0)) == []
    # an integer for every vendor: a text code is a problem (it goes into `message`)
    assert point_problems(Point("fault", tags, {"code": "E1", "active": 1}, 0)) == [
        "fault.code must be integer, got 'E1'"
    ]
