"""The shared plausibility rules (collector/schema/plausible.py), through `apply` and alone."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from collector.schema.mapping import FieldMap, MappingStats, MappingTable, apply
from collector.schema.plausible import Memory, counter, in_range, refuse_corrupt, residual

TAGS = {"vendor": "foxess", "source": "s", "site": "x", "device": "SN1"}
TABLE = MappingTable(
    "inverter",
    (
        FieldMap("soc", "battery_soc_pct", "%"),
        FieldMap("res", "battery_residual_energy_wh", "kWh", quantum="0.01"),
        FieldMap("v", "pv1_voltage_v", "V"),
        FieldMap("hz", "grid_frequency_hz", "Hz"),
        FieldMap("total", "load_energy_total_wh", "kWh", "counter", quantum="0.1"),
        FieldMap("today", "yield_energy_today_wh", "kWh", "counter", quantum="0.1"),
    ),
)


def run(
    raw: dict[str, Any], *, time: int = 0, memory: Memory | None = None, units: dict[str, str] | None = None
) -> tuple[dict[str, Any], MappingStats]:
    stats = MappingStats()
    point = apply(TABLE, raw, tags=TAGS, time=time, stats=stats, unit_of=(units or {}).get, memory=memory)
    return (dict(point.fields) if point else {}), stats


@pytest.mark.parametrize(
    ("key", "value", "kept"),
    [
        ("soc", 0, True),
        ("soc", 100, True),
        ("soc", 100.5, False),
        ("soc", -1, False),
        ("v", 0, True),
        ("v", 1500, True),
        ("v", 6553.5, False),
        ("v", -3, False),
        ("hz", 49.98, True),
        ("hz", 0, False),
        ("hz", 500.1, False),
    ],
)
def test_ranges(key: str, value: float, kept: bool) -> None:
    with capture_logs() as logs:
        fields, stats = run({key: value})
    assert bool(fields) is kept
    assert stats.skipped.get("implausible", 0) == (0 if kept else 1)
    if not kept:
        [event] = [e for e in logs if e["event"] == "mapping.implausible"]
        assert event["device"] == "SN1" and event["variable"] == key and event["rule"]


def test_in_range_knows_every_voltage_field() -> None:
    assert in_range("eps_phase_b_voltage_v", 2000.0) is not None
    assert in_range("battery_voltage_v", 400.0) is None
    assert in_range("pv_power_w", -1e9) is None  # no rule: not judged


def test_a_lifetime_counter_never_goes_backwards_where_the_previous_value_is_known() -> None:
    memory = Memory()
    assert run({"total": 1000.0}, time=100, memory=memory)[0] == {"load_energy_total_wh": 1000000.0}
    fields, stats = run({"total": 999.0, "today": 1.0}, time=400, memory=memory)
    assert fields == {"yield_energy_today_wh": 1000.0} and stats.skipped["implausible"] == 1
    assert run({"total": 1000.2}, time=700, memory=memory)[0] == {"load_energy_total_wh": 1000200.0}
    # An older record (a backfill) must not be above the newer one; below is fine.
    assert run({"total": 999.5}, time=50, memory=memory)[0] == {"load_energy_total_wh": 999500.0}
    assert run({"total": 1000.9}, time=60, memory=memory)[0] == {}
    # The `today` counter resets at midnight: not judged.
    assert run({"today": 0.0}, time=800, memory=memory)[0] == {"yield_energy_today_wh": 0.0}
    # Without memory nothing is known: written.
    assert run({"total": 1.0}, time=900)[0] == {"load_energy_total_wh": 1000.0}


def test_a_counter_at_a_new_level_is_accepted_after_repeated_refusals() -> None:
    memory = Memory()
    assert counter(memory, "SN", "load_energy_total_wh", 0, 5000.0) is None
    assert counter(memory, "SN", "load_energy_total_wh", 1, 10.0) is not None
    assert counter(memory, "SN", "load_energy_total_wh", 2, 10.1) is not None
    assert counter(memory, "SN", "load_energy_total_wh", 3, 10.2) is None  # a replaced meter
    assert counter(memory, "SN", "load_energy_total_wh", 4, 10.3) is None


def test_residual_as_labelled_when_it_implies_a_home_battery() -> None:
    # 236.0 "0.01kWh" at 46 % = 2.36 kWh of a 5.1 kWh pack (research/foxess.md §5, foxessprom).
    fields, stats = run({"soc": 46, "res": 236.0}, units={"res": "0.01kWh"})
    assert fields["battery_residual_energy_wh"] == 2360.0 and not stats.skipped.get("implausible")


def test_residual_that_is_the_capacity_is_written_as_capacity_times_soc() -> None:
    # 10.34 "0.01kWh" at 26 % on a 10.36 kWh pack (research/foxess.md §5, batpred 2025-09).
    with capture_logs() as logs:
        fields, stats = run({"soc": 26, "res": 10.34}, units={"res": "0.01kWh"})
    assert fields["battery_residual_energy_wh"] == 2690.0  # 10340 × 0.26 = 2688.4, to 10 Wh
    assert not stats.skipped.get("implausible")
    assert [e["reading"] for e in logs if e["event"] == "mapping.reinterpreted"] == ["capacity_kwh"]


def test_residual_that_fits_no_reading_is_left_out_and_counted() -> None:
    fields, stats = run({"soc": 80, "res": 0.5}, units={"res": "0.01kWh"})
    assert "battery_residual_energy_wh" not in fields and stats.skipped["implausible"] == 1
    # No SoC (or SoC 0): nothing to judge by, written as labelled.
    assert run({"res": 0.5})[0] == {"battery_residual_energy_wh": 500.0}
    assert run({"soc": 0, "res": 0.0})[0]["battery_residual_energy_wh"] == 0.0


def test_a_known_capacity_decides_between_readings() -> None:
    memory = Memory()
    # Learned from a record that fits as labelled: 5.13 kWh.
    assert run({"soc": 46, "res": 236.0}, memory=memory, units={"res": "0.01kWh"})[0]
    assert memory.capacity_wh["SN1"] == pytest.approx(5130, abs=1)
    # 5.2 "kWh" at 40 %: as labelled a 13 kWh pack (no); as the capacity 5.2 kWh (yes).
    assert run({"soc": 40, "res": 5.2}, memory=memory)[0]["battery_residual_energy_wh"] == 2080.0
    # 10.34 "0.01kWh" at 26 %: neither a 0.4 kWh nor a 10.34 kWh pack is 5.13 kWh.
    fields, stats = run({"soc": 26, "res": 10.34}, memory=memory, units={"res": "0.01kWh"})
    assert "battery_residual_energy_wh" not in fields and stats.skipped["implausible"] == 1


def test_residual_alone() -> None:
    value, reading, verdict = residual(None, "SN", 103.4, 10.34, 26.0)
    assert value == pytest.approx(2688.4) and reading == "capacity_kwh" and verdict is None
    value, _, verdict = residual(None, "SN", 5.0, 0.5, 80.0)
    assert value is None and verdict is not None and verdict.rule == "residual_vs_soc"


def test_refuse_corrupt() -> None:
    assert refuse_corrupt("3461.8") == "3461.8"
    with pytest.raises(ValueError, match="corrupt"):
        refuse_corrupt(201_539_769)
