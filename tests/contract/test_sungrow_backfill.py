"""Sungrow minute backfill from the command line: `solar-collector backfill --since …` against the
simulator's real limits, into influxd, compared with the plant's truth.

* the PV + hybrid plant, plain and encrypted: every 5-minute row the simulator has becomes an
  `inverter` point equal to the truth; a second run asks the vendor for nothing finished;
* 60 PV inverters over 7 days: batches of ≤ 50 devices of one type (2 calls per 3-hour window), no
  limit tripped; SIGKILL halfway and a re-run: no finished window asked for again, complete.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collector.simulators.base import SimThread
from collector.simulators.plant import Plant, local_midnight
from collector.vendors.sungrow import SungrowClient
from tests.contract.conftest import collector_cli, rows, wait_for, write_config
from tests.contract.sungrow import (
    DAY,
    HYB_SN,
    LOGIN,
    METER_SN,
    MINUTE,
    MODES,
    PS_HYB,
    PS_PV,
    PV_SN,
    ZONE,
    RecordingSungrowSim,
    check_rows,
    config_text,
    make_sim,
    many_pv,
    spawn,
    two_sites,
)
from tests.servers import InfluxServer

WINDOW = 3 * 3600


def buckets(plant: Plant, sn: str, start: int, end: int) -> list[int]:
    """The 5-minute buckets (UTC seconds) of `sn`'s uploads in [start, end): the rows the cloud has."""
    return [u - u % 300 for u in plant.upload_times(sn, start, end - 1)]


def windows(start: int, end: int) -> list[tuple[int, int]]:
    """3-hour windows on a grid from local midnight (no DST change in these ranges)."""
    out = []
    t = start
    while t < end:
        out.append((t, min(end, t + WINDOW)))
        t += WINDOW
    return out


def minute_keys(sim: RecordingSungrowSim) -> list[tuple[str, tuple[str, ...]]]:
    """(start_time_stamp, ps_keys) of every minute request, in order."""
    return [
        (str(r.body["start_time_stamp"]), tuple(sorted(r.body["ps_key_list"])))
        for r in sim.requests_to(MINUTE)
    ]


def stored_times(influxd: InfluxServer, db: str, device: str) -> list[int]:
    q = f'SELECT "state", "pv_power_w", "grid_import_power_w" FROM "inverter" WHERE "device" = \'{device}\''
    return [int(r["time"]) for r in rows(influxd, db, q)]


def stored_rows(influxd: InfluxServer, db: str, device: str) -> list[dict[str, Any]]:
    return rows(influxd, db, f'SELECT * FROM "inverter" WHERE "device" = \'{device}\'')


def assert_no_limit_tripped(sim: RecordingSungrowSim) -> None:
    assert sim.violations == 0
    codes = Counter(sim.all_codes())
    assert set(codes) == {"1"}, codes


@pytest.mark.parametrize("mode", MODES)
def test_backfill_2_days_lands_every_minute_row_and_a_rerun_asks_nothing(
    tmp_path: Path, influxd: InfluxServer, influx_db: str, mode: str
) -> None:
    today = datetime.now(ZoneInfo(ZONE)).date()
    since = today - timedelta(days=2)
    make = two_sites(since - timedelta(days=5))
    sim = make_sim(make(), mode, ps_ids={"sg-pv-site": PS_PV, "sg-hybrid-site": PS_HYB})
    start, end = local_midnight(ZONE, since), local_midnight(ZONE, today)
    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(tmp_path / "state", sim, served.url, influx=(influxd.url, influx_db)),
        )
        args = ["backfill", "--since", since.isoformat(), "--until", today.isoformat(), "-c", str(cfg)]
        first = collector_cli(args, timeout=180)
        assert first.returncode == 0, first.stderr[-3000:]
        calls_before = len(sim.calls)
        asked = minute_keys(sim)
        second = collector_cli(args, timeout=60)
        assert second.returncode == 0, second.stderr[-3000:]
    assert_no_limit_tripped(sim)
    # one call per 3-hour window and device type (PV 1, hybrid 14, meter 7), none twice
    want = {
        (datetime.fromtimestamp(a, ZoneInfo(ZONE)).strftime("%Y%m%d%H%M%S"), key)
        for a, _ in windows(start, end)
        for key in ((f"{PS_PV}_1_1_1",), (f"{PS_HYB}_14_1_1",), (f"{PS_HYB}_7_1_1",))
    }
    assert sorted(asked) == sorted(want)
    # the second run: no vendor call for a finished window or period (only the month and the
    # year that hold today are asked again: they are not over)
    assert minute_keys(sim) == asked
    again = [
        (c.path, r.body.get("query_type"), r.body.get("end_time"))
        for c, r in zip(sim.calls[calls_before:], sim.requests[calls_before:], strict=True)
    ]
    unfinished = {(DAY, "2", f"{today:%Y%m}"), (DAY, "3", f"{today:%Y}")}
    assert set(again) <= unfinished, again
    assert sim.codes(LOGIN) == ["1"]

    truth = make()
    for device, sn in ((PV_SN, PV_SN), (HYB_SN, HYB_SN), (METER_SN, HYB_SN)):
        assert stored_times(influxd, influx_db, device) == buckets(truth, sn, start, end), device
    check_rows(truth, [r for d in (PV_SN, HYB_SN, METER_SN) for r in stored_rows(influxd, influx_db, d)])


N_PV = 60
DAYS = 7


def test_backfill_60_inverters_7_days_in_batches_killed_halfway_is_complete_within_limits(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    today = datetime.now(ZoneInfo(ZONE)).date()
    since = today - timedelta(days=DAYS)
    make = many_pv(N_PV, since - timedelta(days=3))
    plant = make()
    sim = make_sim(plant, "plain", ps_ids={"sg-pv-site": PS_PV})
    start, end = local_midnight(ZONE, since), local_midnight(ZONE, today)
    grid = windows(start, end)
    n_calls = len(grid) * 2  # ⌈60 / 50⌉ per window
    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(tmp_path / "state", sim, served.url, influx=(influxd.url, influx_db)),
        )
        args = ["backfill", "--since", since.isoformat(), "--until", today.isoformat(), "-c", str(cfg)]
        proc = spawn(args)
        try:
            wait_for(lambda: len(sim.requests_to(MINUTE)) >= n_calls // 2, 120, "half of the minute calls")
            os.kill(proc.pid, signal.SIGKILL)
            _, first_err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, first_err[-2000:]
        before_kill = minute_keys(sim)
        second = collector_cli(args, timeout=180)
    assert second.returncode == 0, second.stderr[-3000:]
    assert_no_limit_tripped(sim)

    requested = minute_keys(sim)
    after_kill = requested[len(before_kill) :]
    # batches: ≤ 50 devices of one type per call, at most 2 calls per 3-hour window, every device
    assert all(len(keys) <= 50 for _, keys in requested)
    per_window: dict[str, set[str]] = {}
    calls_per_window = Counter(stamp for stamp, _ in set(requested))
    for stamp, keys in requested:
        per_window.setdefault(stamp, set()).update(keys)
    assert len(per_window) == len(grid)
    assert max(calls_per_window.values()) <= 2, calls_per_window
    all_keys = {f"{PS_PV}_1_{i + 1}_1" for i in range(N_PV)}
    assert all(keys == all_keys for keys in per_window.values())
    # no finished window asked again after the kill: at most the calls in flight at the kill
    # (the client keeps `history_parallel` of them out at once: the last ones asked)
    in_flight = SungrowClient.history_parallel
    again = set(before_kill) & set(after_kill)
    assert len(again) <= in_flight and again <= set(before_kill[-in_flight:]), sorted(again)
    assert len(before_kill) >= n_calls // 2 and len(set(requested)) == n_calls

    # complete: every upload of every inverter is a point (values: a sample of inverters)
    truth = make()
    for inv in truth.inverters:
        assert stored_times(influxd, influx_db, inv.sn) == buckets(truth, inv.sn, start, end), inv.sn
    for inv in (truth.inverters[0], truth.inverters[49], truth.inverters[50], truth.inverters[-1]):
        check_rows(truth, stored_rows(influxd, influx_db, inv.sn))
