"""The budget plan behind `check` and `run`: what fits, and the shortest interval that does."""

from __future__ import annotations

import datetime as dt
from typing import Any

from collector.config import config_from_dict
from collector.plan import format_duration, plan, runs_in
from collector.scheduler import aligned_start, jitter_for


def cfg(*sources: dict[str, Any]) -> Any:
    return config_from_dict({"state_dir": "/tmp/x", "sources": list(sources)})


def fox(name: str = "roof", key: str = "k", **kw: Any) -> dict[str, Any]:
    return {"name": name, "vendor": "foxess", "api_key": key, **kw}


def test_five_minute_foxess_fits_and_counts_per_inverter() -> None:
    (p,) = plan(cfg(fox(devices=["A", "B", "C"])))
    (day,) = p.windows
    assert p.fits and p.counted_per == "inverter"
    # live: 288 runs a day, plus one for jitter at the window edge; energy: 49 runs × 4 calls
    assert day.planned == 289 + 196
    assert day.limit == 1440
    assert day.planned <= 0.6 * day.limit  # leaves backfill 40 % of the quota


def test_the_minimum_interval_is_the_shortest_that_fits() -> None:
    (p,) = plan(cfg(fox(interval="30s")))
    assert not p.fits
    assert p.min_interval is not None
    # at the minimum it fits, one second less it does not
    (ok,) = plan(cfg(fox(interval=f"{p.min_interval:.0f}s")))
    (over,) = plan(cfg(fox(interval=f"{p.min_interval - 1:.0f}s")))
    assert ok.fits and not over.fits


def test_sources_on_one_account_share_the_plan() -> None:
    a, b = plan(cfg(fox("a", interval="2m"), fox("b", interval="2m")))
    assert a.windows[0].account_planned == a.windows[0].planned + b.windows[0].planned
    assert not a.fits  # 2 × 721 > 90 % of 1440
    separate = plan(cfg(fox("a", key="k1", interval="2m"), fox("b", key="k2", interval="2m")))
    assert all(p.fits for p in separate)


def test_account_scoped_vendor_pays_per_device_call() -> None:
    solax = {"name": "s", "vendor": "solax", "token_id": "t", "devices": ["D1", "D2", "D3"], "interval": "1m"}
    (p,) = plan(cfg(solax))
    minute = next(w for w in p.windows if w.window == "per_minute")
    assert minute.planned == 2 * 3  # up to two runs in a minute, three single-device calls each
    assert p.fits


def test_runs_in_and_durations() -> None:
    assert runs_in(86400, 300) == 289
    assert runs_in(60, 61) == 1
    assert format_duration(300) == "5m" and format_duration(67) == "1m7s" and format_duration(3600) == "1h"


def test_jobs_are_aligned_to_the_clock_with_bounded_jitter() -> None:
    now = dt.datetime(2026, 3, 29, 0, 57, 13, tzinfo=dt.UTC).timestamp()
    start = aligned_start(300, 20, now)
    assert start == dt.datetime(2026, 3, 29, 1, 0, 20, tzinfo=dt.UTC)
    assert jitter_for(300) == 30 and jitter_for(60) == 6


def test_streams_that_cannot_fit_at_any_interval_are_left_out() -> None:
    """10 calls a day: energy (4 calls a run) cannot fit beside live at any interval; live
    alone fits 9 runs a day (90 % of 10)."""
    (p,) = plan(cfg(fox(interval="5s", limits={"per_day": 10})))
    assert p.disabled == ("energy",)
    assert not p.fits
    assert p.min_interval == 86400 // 9 + 1
    assert p.windows[0].planned == runs_in(86400, 5)  # what `run` would do unraised: live only
    (roomy,) = plan(cfg(fox(limits={"per_day": 1440})))
    assert roomy.disabled == () and roomy.fits


def test_nothing_runs_when_even_live_alone_cannot_fit() -> None:
    (p,) = plan(cfg(fox(limits={"per_day": 1})))
    assert p.disabled == ("live", "energy") and p.min_interval is None and not p.fits
