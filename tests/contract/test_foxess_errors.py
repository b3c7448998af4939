"""Every FoxESS error class, injected by the simulator: what the collector does, what it writes.

The signature cases run the CLI as a user does; the errno classes run in-process (``App`` on a
clock shared with the simulator), because their consequence is about time: how long the source
pauses, that no call is made meanwhile, that the next poll recovers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from collector.app import App
from collector.config import load_config
from collector.simulators.base import Injection, SimThread
from collector.simulators.plant import local_time
from tests.contract.conftest import (
    KEY,
    REAL,
    ZONE,
    RecordingSim,
    SharedClock,
    check_inverter_rows,
    collector_cli,
    config_text,
    foxess_on,
    hybrid,
    log_events,
    one_site,
    rows,
    rows_by_device,
    write_config,
)
from tests.servers import InfluxServer

HYB = "60H3ER0000000001"
DAY = date(2026, 6, 17)
NOON = local_time(ZONE, DAY, 12, 0)
PLANT = one_site([hybrid(HYB)], DAY - timedelta(days=5))


# ------------------------------------------------------------------------------------------------
# Signature: a wrong key or a refused signature is an auth error, said clearly, without the key


@pytest.mark.parametrize(
    ("what", "key", "skew", "status", "errno"),
    [
        ("an unknown API key", "wrong-Key-93be1c0d55aa", 0.0, 401, 41809),
        ("a clock 5 minutes off (illegal timestamp)", KEY, 300.0, 200, 40256),
    ],
)
def test_a_refused_key_or_signature_is_an_auth_error_without_the_secret(
    tmp_path: Path,
    influxd: InfluxServer,
    influx_db: str,
    what: str,
    key: str,
    skew: float,
    status: int,
    errno: int,
) -> None:
    sim = RecordingSim(PLANT(), api_keys={KEY: None}, clock=lambda: time.time() + skew)
    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(tmp_path / "state", served.url, influx=(influxd.url, influx_db), key=key),
        )
        run = collector_cli(["run", "--once", "-c", str(cfg)])
        devices = collector_cli(["devices", "-c", str(cfg)])
    assert run.returncode == 1, what
    failed = [e for e in log_events(run.stderr) if e["event"] == "poll.auth_failed"]
    assert failed and failed[0]["code"] in (status, errno)
    assert "the API key" in failed[0]["error"]  # says what to check
    assert devices.returncode == 1
    assert "VendorAuthError" in devices.stdout and "API key" in devices.stdout
    output = run.stdout + run.stderr + devices.stdout + devices.stderr
    assert key not in output and KEY not in output
    refused = [c for c in sim.calls if c.outcome == "auth"]
    assert refused and all((c.status, c.code) == (status, errno) for c in refused)
    assert len(sim.calls) == len(refused) <= 4  # no retry storm: each command asks at most twice
    assert rows(influxd, influx_db, 'SELECT * FROM "inverter"') == []


# ------------------------------------------------------------------------------------------------
# errno classes


@dataclass(frozen=True)
class Case:
    injection: Injection
    count: int  # how many calls it answers (a transient error is retried once)
    event: str  # the log event of the failed poll
    error_class: str
    calls: int  # real-time calls the failed poll makes
    pause: float  # how long the source pauses (0: not at all)


CASES = {
    "auth errno 41809": Case(Injection.errno(41809), 1, "poll.auth_failed", "VendorAuthError", 1, 0),
    "auth HTTP 401": Case(Injection.http(401), 1, "poll.auth_failed", "VendorAuthError", 1, 0),
    "rate limit 40400": Case(Injection.errno(40400), 1, "poll.rate_limited", "VendorRateLimitError", 1, 60),
    "daily quota 40402": Case(Injection.errno(40402), 1, "poll.rate_limited", "VendorQuotaError", 1, 3600),
    "transient 41200": Case(Injection.errno(41200), 2, "poll.failed", "VendorTransientError", 2, 0),
    "HTTP 500": Case(Injection.http(500), 2, "poll.failed", "VendorTransientError", 2, 0),
    "HTML 502 page": Case(Injection.html(502), 2, "poll.failed", "VendorTransientError", 2, 0),
    "malformed JSON": Case(Injection.malformed(), 1, "poll.failed", "VendorDataQualityError", 1, 0),
    "timeout": Case(Injection.hang(3.0), 2, "poll.failed", "VendorTransientError", 2, 0),
}


async def _app(tmp_path: Path, sim: RecordingSim, clock: SharedClock, influx: tuple[str, str]) -> App:
    url = await sim.start()
    cfg = write_config(tmp_path / "cfg.yaml", config_text(tmp_path / "state", url, influx=influx))
    app = App(load_config(cfg), clock=clock, vendors=foxess_on(clock, timeout=0.5))
    await app.start()
    return app


async def _flush(app: App) -> None:
    assert app.forwarder is not None
    assert await app.forwarder.flush(10)


@pytest.mark.parametrize("name", list(CASES))
def test_each_errno_class_is_logged_counted_and_writes_nothing(
    tmp_path: Path, influxd: InfluxServer, influx_db: str, name: str
) -> None:
    case = CASES[name]
    clock = SharedClock(NOON)
    sim = RecordingSim(PLANT(), api_keys={KEY: None}, clock=clock)

    async def scenario() -> tuple[list[MutableMapping[str, Any]], float | None]:
        app = await _app(tmp_path, sim, clock, (influxd.url, influx_db))
        try:
            rt = app.sources[0]
            sim.inject(REAL, case.injection, case.count)
            with capture_logs() as logs:
                assert await app.poll(rt, "live") is False  # failed, did not raise
            paused = rt.budget.account.paused_until()
            await app.self_metrics()
            await _flush(app)
            assert not [e for e in logs if e["event"] == "poll.crashed"]
            assert len(sim.requests_to(REAL)) == case.calls  # transient: retried once, no more
            stored = rows(influxd, influx_db, 'SELECT * FROM "inverter"')
            assert stored == [], "a failed poll wrote data"
            if case.pause:
                # paused: a poll before the vendor's retry time makes no call at all
                clock.advance(case.pause / 2)
                with capture_logs() as waiting:
                    assert await app.poll(rt, "live") is False
                assert next(e["event"] for e in waiting if e["event"].startswith("poll.")) == "poll.no_budget"
                assert len(sim.requests_to(REAL)) == case.calls
            # the next poll after the pause (or the next interval) recovers
            clock.advance(max(case.pause, 300.0) + 1)
            assert await app.poll(rt, "live") is True
            await _flush(app)
            return logs, paused
        finally:
            await app.close()
            await sim.stop()

    logs, paused = asyncio.run(scenario())
    failed = [e for e in logs if e["event"] == case.event]
    assert failed, [e["event"] for e in logs]
    if case.event == "poll.failed":
        assert failed[0]["error_class"] == case.error_class
    if case.pause:
        assert paused is not None and paused == pytest.approx(NOON + case.pause, abs=10)
    else:
        assert paused is None
    # counted in the collector's own measurement
    metrics = rows(influxd, influx_db, 'SELECT * FROM "collector"')
    counter = "rate_limited" if case.pause else "errors"
    assert metrics[0][counter] == 1, metrics[0]
    # the recovered point is the truth
    stored = rows_by_device(influxd, influx_db, "inverter")[HYB]
    assert len(stored) == 1 and stored[0]["time"] > NOON
    check_inverter_rows(PLANT(), HYB, stored)
    assert sim.violations == 0


@pytest.mark.parametrize("mode", ["nulls", "empty", "strings"])
def test_nulls_and_empty_values_are_left_out_never_written_as_zero(
    tmp_path: Path, influxd: InfluxServer, influx_db: str, mode: str
) -> None:
    clock = SharedClock(NOON)
    sim = RecordingSim(PLANT(), api_keys={KEY: None}, clock=clock)
    injection = {"nulls": Injection.nulls(), "empty": Injection.empty(), "strings": Injection.strings()}[mode]

    async def scenario() -> int:
        app = await _app(tmp_path, sim, clock, (influxd.url, influx_db))
        try:
            sim.inject(REAL, injection)
            assert await app.poll(app.sources[0], "live") is True
            skipped = app.sources[0].stats.skipped_values
            await _flush(app)
            return skipped
        finally:
            await app.close()
            await sim.stop()

    skipped = asyncio.run(scenario())
    stored = rows_by_device(influxd, influx_db, "inverter")[HYB]
    assert len(stored) == 1
    if mode == "strings":  # numbers sent as strings are read as numbers
        check_inverter_rows(PLANT(), HYB, stored)
        assert skipped == 0
        return
    # every number was null / "": only the text-valued codes are left, no 0 anywhere
    fields = {k: v for k, v in stored[0].items() if k not in ("time", "vendor", "source", "site", "device")}
    assert set(fields) <= {"state", "status_code", "battery_status_code", "fault_count"}, fields
    assert skipped >= 30  # each null value counted as skipped
