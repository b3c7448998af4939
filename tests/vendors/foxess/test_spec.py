"""FOXESS_SPEC: the limits of the doc, and a schedule that leaves 40 % of the quota free."""

from __future__ import annotations

from collector.plan import runs_in
from collector.vendors import VENDOR_SPECS
from collector.vendors.foxess import (
    FOXESS_SPEC,
    PARSERS,
    FoxessClient,
    parse_history,
    parse_real,
    parse_report,
)

DAY = 86400.0


def scheduled_calls_per_inverter_day() -> int:
    # budget_scope="device": a batched call counts once per inverter, so per-inverter cost
    # is calls_per_run whatever the batch size (collector/plan.py `_calls_per_run`).
    return sum(runs_in(DAY, s.default_interval) * s.calls_per_run for s in FOXESS_SPEC.streams)


def test_the_schedule_uses_at_most_60_percent_of_the_daily_quota() -> None:
    assert FOXESS_SPEC.default_limits.per_day == 1440
    assert scheduled_calls_per_inverter_day() == 289 + 196
    assert scheduled_calls_per_inverter_day() <= 0.6 * 1440


def test_live_runs_at_the_clouds_resolution_and_batches_50() -> None:
    live = next(s for s in FOXESS_SPEC.streams if s.name == "live")
    assert live.default_interval == FOXESS_SPEC.data_resolution == 300
    assert (live.calls_per_run, live.batch) == (1, 50)
    energy = next(s for s in FOXESS_SPEC.streams if s.name == "energy")
    assert 900 <= energy.default_interval <= 3600 and energy.calls_per_run == 4


def test_spec_agrees_with_the_registry_placeholder() -> None:
    old = VENDOR_SPECS["foxess"]
    for attr in (
        "slug",
        "title",
        "default_base_url",
        "credentials",
        "default_limits",
        "budget_scope",
        "per_second_scope",
        "device_hint",
    ):
        assert getattr(FOXESS_SPEC, attr) == getattr(old, attr), attr


def test_exports() -> None:
    assert {
        ("foxess", "real"): parse_real,
        ("foxess", "history"): parse_history,
        ("foxess", "report"): parse_report,
    } == PARSERS
    assert FoxessClient.history_window == DAY
