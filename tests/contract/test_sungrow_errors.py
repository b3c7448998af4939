"""Sungrow result-code classes and bad answers through the daemon (`solar-collector run`).

* E900 on getFaultAlarmInfo (not granted): one warning, the faults stream is not asked again, live
  data is collected, and live points carry no `fault_count` (unknown, not 0);
* E999 (hourly quota used up): the source pauses until the quota frees, nothing is refused twice;
* a small getOpenApiCallInfo grant: taken into the budget (`budget.granted`), the daemon stays
  within it — the gateway never refuses a call;
* `result_data: null`, every point `"--"`, an HTML proxy page: a log line, never a crash, never a
  0 for an unknown value.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from collector.simulators.base import Injection, SimThread
from tests.contract.conftest import rows_by_device, wait_for, write_config
from tests.contract.sungrow import (
    CALL_INFO,
    FAULTS,
    HYB_SN,
    METER_SN,
    PLANTS,
    PS_HYB,
    PS_PV,
    PV_REALTIME,
    PV_SN,
    REALTIME,
    ZONE,
    RecordingSungrowSim,
    check_rows,
    config_text,
    events,
    make_sim,
    spawn,
    stop,
    two_sites,
)
from tests.servers import InfluxServer

INTERVAL = "interval: 5s\n"
MAKE = two_sites(datetime.now(ZoneInfo(ZONE)).date() - timedelta(days=10))
IDS = {"sg-pv-site": PS_PV, "sg-hybrid-site": PS_HYB}


def run_daemon(
    tmp_path: Path,
    sim: RecordingSungrowSim,
    influx: tuple[str, str] | None,
    until: Callable[[RecordingSungrowSim], bool],
    *,
    timeout: float = 40,
    observe: float = 0.0,
    setup: Callable[[RecordingSungrowSim], None] | None = None,
) -> tuple[str, int]:
    """`solar-collector run` until `until(sim)` holds (polled, with a deadline), then — with
    `observe` — `observe` seconds more, in which the daemon must keep running; SIGTERM; its log
    and exit code."""
    with SimThread(sim) as served:
        if setup is not None:
            setup(sim)
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(tmp_path / "state", sim, served.url, influx=influx, extra=INTERVAL),
        )
        proc = spawn(["run", "-c", str(cfg)])
        try:
            wait_for(lambda: until(sim) or proc.poll() is not None, timeout, "the scenario")
            if observe:
                with contextlib.suppress(subprocess.TimeoutExpired):  # still running: as it should
                    proc.wait(timeout=observe)
        finally:
            err = stop(proc)
    return err, proc.returncode


def live_polls(sim: RecordingSungrowSim) -> list[float]:
    """The times of the answered plant-list calls that start each live poll (after discovery)."""
    return [r.t for r in sim.requests_to(PLANTS)][1:]


def by_event(logged: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logged if e.get("event") == name]


def test_e900_on_faults_is_one_warning_and_live_goes_on_without_fault_count(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    sim = make_sim(MAKE(), app={"denied": frozenset({FAULTS})}, ps_ids=IDS)

    def done(s: RecordingSungrowSim) -> bool:
        refused = [c.t for c in s.calls if c.path == FAULTS]
        return bool(refused) and len([t for t in live_polls(s) if t > refused[0]]) >= 2

    err, rc = run_daemon(tmp_path, sim, (influxd.url, influx_db), done)
    assert rc == 0, err[-3000:]
    logged = events(err)
    warned = by_event(logged, "sungrow.faults_not_granted")
    assert len(warned) == 1 and warned[0]["level"] == "warning", warned
    assert sim.codes(FAULTS) == ["E900"]  # not asked again
    assert not by_event(logged, "poll.crashed")
    stored = rows_by_device(influxd, influx_db, "inverter")
    assert set(stored) == {PV_SN, HYB_SN, METER_SN}
    check_rows(MAKE(), [r for v in stored.values() for r in v])  # no fault_count: unknown, not 0


def test_e999_pauses_the_source_and_nothing_is_refused_twice(tmp_path: Path) -> None:
    sim = make_sim(MAKE(), app={"per_hour": 8}, ps_ids=IDS)
    err, rc = run_daemon(
        tmp_path, sim, None, lambda s: any(c.outcome == "limited" for c in s.calls), observe=8.0
    )
    assert rc == 0, err[-3000:]
    limited = [c for c in sim.calls if c.outcome == "limited"]
    assert len(limited) == 1 and sim.codes(limited[0].path)[-1] == "E999", sim.all_codes()
    assert sim.calls[-1] == limited[0], "a call after the E999"  # paused: no call since
    logged = events(err)
    rate = by_event(logged, "poll.rate_limited")
    assert len(rate) == 1 and rate[0]["code"] == "E999" and rate[0]["paused_s"] > 60, rate
    assert by_event(logged, "poll.no_budget")  # the next polls waited
    assert not by_event(logged, "poll.crashed")


def test_a_small_call_info_grant_is_taken_into_the_budget_and_never_exceeded(tmp_path: Path) -> None:
    per_hour = 28
    sim = make_sim(MAKE(), app={"per_hour": per_hour}, ps_ids=IDS)
    err, rc = run_daemon(
        tmp_path,
        sim,
        None,
        lambda s: len(s.calls) >= per_hour or any(c.outcome != "ok" for c in s.calls),
        observe=8.0,
    )
    assert rc == 0, err[-3000:]
    assert sim.codes(CALL_INFO) == ["1"]
    assert sim.violations == 0 and set(sim.all_codes()) == {"1"}, sim.all_codes()
    assert len(sim.calls) <= per_hour
    logged = events(err)
    granted = by_event(logged, "budget.granted")
    assert len(granted) == 1 and granted[0]["per_hour"] == per_hour, granted
    assert by_event(logged, "poll.no_budget")  # the budget, not the gateway, said no


def test_null_results_placeholders_and_an_html_page_are_logged_never_a_crash_never_zero(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    sim = make_sim(MAKE(), ps_ids=IDS)

    def setup(s: RecordingSungrowSim) -> None:
        s.inject_null_result(PV_REALTIME)  # the first PV realtime answer: result_data null
        s.inject_values(REALTIME, "--")  # the first hybrid answer: every point "--"
        s.inject(PLANTS, Injection.html(502), 3)  # discovery's plant list and a retry: a proxy page

    err, rc = run_daemon(
        tmp_path, sim, (influxd.url, influx_db), lambda s: len(s.requests_to(PV_REALTIME)) >= 3, setup=setup
    )
    assert rc == 0, err[-3000:]
    logged = events(err)
    assert not by_event(logged, "poll.crashed")
    assert not [e for e in logged if e.get("level") in ("critical",)]
    warnings = [e for e in logged if e.get("level") in ("warning", "error")]
    texts = [str(e) for e in warnings]
    assert any("result_data" in t or "null" in t or "DataQuality" in t for t in texts), texts
    assert any("502" in t or "html" in t.lower() or "Transient" in t for t in texts), texts
    stored = rows_by_device(influxd, influx_db, "inverter")
    # the hybrid's bucket first answered all "--" is written from the next (real) answer
    assert set(stored) == {PV_SN, HYB_SN, METER_SN}, (
        f"devices without a point: {sorted({PV_SN, HYB_SN, METER_SN} - set(stored))}"
    )
    # nothing unknown written as 0: every value stored is the truth's (`fault_count` 0 once the
    # faults stream has run: this plant has no fault)
    rows_ = [r for v in stored.values() for r in v]
    check_rows(MAKE(), rows_, extra=lambda row: {} if row["device"] == METER_SN else {"?fault_count": 0})
