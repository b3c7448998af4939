"""Backfill of 30 days for 3 inverters against the simulator's limits, killed halfway.

~90 history calls, all to one endpoint: at the cloud's real 1 call/s per endpoint (the budget
spaces them 1.05 s apart) that alone is ~100 s of waiting. So the cloud (the simulator) and the
config both allow ``PER_SECOND`` calls a second per endpoint: the simulator's sliding 1-s window
refuses a 5th call within a second with 40400, and the budget spaces calls 1.05 / 4 s apart (the
same 5 % margin). The spacing still binds: the collector would go faster (a config of 8 a second
trips 40400 here). Every other limit is the cloud's real one, and the real 1/s spacing is proven
against the simulator on the real clock by test_foxess_spacing.py (late sends included).
It proves, from the simulator's own records:

* no limit tripped: ``sim.violations == 0`` and no 40400 / 40402 answer;
* SIGKILL halfway, then a re-run: no finished (sn, begin, end) window is requested twice — at most
  the one in flight at the kill;
* windows are cut at the site's local midnights, at most 24 h each, and cover the range exactly;
* complete: every upload the plant made in the range, for each inverter, is a point in InfluxDB
  with the truth's values.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from collector.app import App
from collector.config import load_config
from collector.simulators.base import SimThread
from collector.simulators.foxess import FoxessLimits, FoxessQuirks
from collector.simulators.plant import Plant, local_midnight
from tests.contract.conftest import (
    HISTORY,
    KEY,
    ZONE,
    RecordingSim,
    SharedClock,
    check_inverter_rows,
    collector_cli,
    config_text,
    foxess_on,
    hybrid,
    one_site,
    pv_only,
    rows,
    rows_by_device,
    spawn_collector,
    wait_for,
    write_config,
)
from tests.servers import InfluxServer, VictoriaServer

SNS = ("60H3BF0000000001", "60H1BF0000000002", "60F3BF0000000003")
DAYS = 30
#: Calls a second per endpoint, the cloud's (simulator) and the config's (the module docstring).
PER_SECOND = 4


def local_windows(start: int, end: int, zone: str) -> list[tuple[int, int]]:
    """[start, end) cut at local midnights, then into pieces of at most 24 h (a 25-hour day)."""
    tz = ZoneInfo(zone)
    out, cursor = [], start
    while cursor < end:
        day = datetime.fromtimestamp(cursor, tz).date() + timedelta(days=1)
        stop = min(end, local_midnight(zone, day), cursor + 86400)
        out.append((cursor, stop))
        cursor = stop
    return out


def test_backfill_30_days_3_inverters_killed_halfway_is_complete_within_limits(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    today = datetime.now(ZoneInfo(ZONE)).date()
    since, until = today - timedelta(days=DAYS + 1), today - timedelta(days=1)  # every window settled
    make = one_site(
        [hybrid(SNS[0]), hybrid(SNS[1], packs=1, model="H1-5.0-E"), pv_only(SNS[2])],
        since - timedelta(days=5),
    )
    quirks = {SNS[0]: FoxessQuirks(history_string_every=37)}  # some history values are strings
    # the cloud's real limits, but PER_SECOND calls a second per endpoint
    limits = FoxessLimits(per_endpoint_per_s=PER_SECOND)
    sim = RecordingSim(make(), api_keys={KEY: None}, quirks=quirks, limits=limits)
    start, end = local_midnight(ZONE, since), local_midnight(ZONE, until)
    expected = {(sn, a, b) for sn in SNS for a, b in local_windows(start, end, ZONE)}
    assert len(expected) >= 3 * DAYS

    def windows() -> list[tuple[str, int, int]]:
        reqs = sim.requests_to(HISTORY)
        return [(r.body["sn"], r.body["begin"] // 1000, r.body["end"] // 1000) for r in reqs]

    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(
                tmp_path / "state",
                served.url,
                influx=(influxd.url, influx_db),
                extra=f"limits: {{per_second: {PER_SECOND}}}\n",
            ),
        )
        args = ["backfill", "--since", since.isoformat(), "--until", until.isoformat(), "-c", str(cfg)]
        first = spawn_collector(args)
        try:
            wait_for(lambda: len(windows()) >= len(expected) // 2, 120, "half of the history calls")
            os.kill(first.pid, signal.SIGKILL)
            _, first_err = first.communicate(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL, first_err
        before_kill = windows()
        second = collector_cli(args, timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]

    # no limit tripped, ever
    assert sim.violations == 0
    assert not [c for c in sim.calls if c.code in (40400, 40402)]
    assert all(c.outcome == "ok" for c in sim.calls)

    # no finished window twice: at most the one in flight at the kill
    requested = windows()
    twice = [w for w, n in Counter(requested).items() if n > 1]
    assert len(twice) <= 1 and set(twice) <= {before_kill[-1]}, twice
    assert len(before_kill) >= len(expected) // 2 and len(requested) - len(before_kill) < len(expected)

    # windows: local midnights, ≤ 24 h, exactly the range
    assert set(requested) == expected

    # complete: every upload of every inverter, with the truth's values
    truth = make()
    stored = rows_by_device(influxd, influx_db, "inverter")
    assert set(stored) == set(SNS)
    for sn in SNS:
        times = [int(r["time"]) for r in stored[sn]]
        assert times == [u for u in truth.upload_times(sn, start, end) if u < end], sn
        check_inverter_rows(truth, sn, stored[sn], quirks=quirks.get(sn))


SYDNEY = "Australia/Sydney"


def test_backfill_since_is_the_same_day_for_the_daemon_and_the_command(tmp_path: Path) -> None:
    """A source in Europe/Berlin whose plant is in Sydney: `backfill.since: DAY` (the daemon) and
    `backfill --since DAY` (the command) both start at Sydney's midnight of DAY — the site's zone,
    not the source's — and cut the same windows (the daemon stops at today's midnight, the command
    goes on to now)."""
    now = time.time()
    today = datetime.fromtimestamp(now, ZoneInfo(SYDNEY)).date()
    since = today - timedelta(days=3)
    make = one_site([pv_only(SNS[2])], since - timedelta(days=5), zone=SYDNEY, site_id="site-sydney-1")

    async def history_windows(daemon: bool) -> list[tuple[int, int]]:
        clock = SharedClock(now)
        sim = RecordingSim(make(), api_keys={KEY: None}, clock=clock)
        url = await sim.start()
        try:
            name = "daemon" if daemon else "command"
            extra = f"backfill: {{since: {since.isoformat()}}}\n" if daemon else ""
            cfg = write_config(
                tmp_path / f"{name}.yaml",
                config_text(tmp_path / name, url, influx=None, timezone=ZONE, extra=extra),
            )
            app = App(load_config(cfg), clock=clock, vendors=foxess_on(clock))
            if daemon:
                await app.start()
                try:
                    rt = app.sources[0]
                    assert await app._ensure_open(rt)
                    assert [d.timezone for d in rt.devices] == [SYDNEY]
                    assert await app._backfill_pass(rt) == ""
                finally:
                    await app.close()
            else:
                start = datetime.combine(since, datetime.min.time())
                assert await app.backfill(source=None, device=None, since=start, until=None) == 0
        finally:
            await sim.stop()
        return sorted((r.body["begin"] // 1000, r.body["end"] // 1000) for r in sim.requests_to(HISTORY))

    by_daemon = asyncio.run(history_windows(daemon=True))
    by_command = asyncio.run(history_windows(daemon=False))
    days = [since + timedelta(days=i) for i in range(4)]
    midnights = [local_midnight(SYDNEY, d) for d in days]
    assert by_daemon == list(pairwise(midnights))
    assert by_command[0][0] == by_daemon[0][0] == local_midnight(SYDNEY, since)
    assert by_command[: len(by_daemon)] == by_daemon
    assert len(by_command) == len(by_daemon) + 1 and by_command[-1][0] == midnights[-1]  # today, so far


def _backfill_in_process(
    tmp_path: Path, make: Callable[[], Plant], sink: str, since: date, *, daemon: bool = False
) -> tuple[RecordingSim, list[dict[str, Any]], float]:
    """`backfill --since SINCE` (or the daemon's pass with `backfill.since`) on a clock shared with
    the simulator, starting now; the sink section is `sink` (YAML). Returns the simulator, the log
    events and the start time."""
    now = time.time()
    clock = SharedClock(now)
    sim = RecordingSim(make(), api_keys={KEY: None}, clock=clock)

    async def scenario() -> list[dict[str, Any]]:
        url = await sim.start()
        try:
            extra = f"backfill: {{since: {since.isoformat()}}}\n" if daemon else ""
            text = sink + config_text(tmp_path / "state", url, influx=None, extra=extra)
            app = App(
                load_config(write_config(tmp_path / "cfg.yaml", text)), clock=clock, vendors=foxess_on(clock)
            )
            with capture_logs() as logs:
                if daemon:
                    await app.start()
                    try:
                        rt = app.sources[0]
                        assert await app._ensure_open(rt)
                        assert await app._backfill_pass(rt) == ""
                        assert await app._flush()
                    finally:
                        await app.close()
                else:
                    start = datetime.combine(since, datetime.min.time())
                    assert await app.backfill(source=None, device=None, since=start, until=None) == 0
            return [dict(e) for e in logs]
        finally:
            await sim.stop()

    return sim, asyncio.run(scenario()), now


def _begins(sim: RecordingSim) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in sim.requests_to(HISTORY):
        out.setdefault(r.body["sn"], []).append(r.body["begin"] // 1000)
    return {sn: sorted(b) for sn, b in out.items()}


@pytest.mark.parametrize("daemon", [False, True], ids=["command", "daemon"])
def test_a_backfill_older_than_the_retention_skips_the_days_influxdb_would_drop(
    tmp_path: Path, influxd: InfluxServer, influx_db: str, daemon: bool
) -> None:
    """A database whose default retention policy keeps 2 days: a 7-day backfill (the command, or
    the daemon's `backfill.since`) asks no history for the days wholly older than that, says so in
    one warning, and still fetches the day holding now − 2 d and the days after it."""
    influxd.influxql(f'CREATE RETENTION POLICY "short" ON "{influx_db}" DURATION 2d REPLICATION 1 DEFAULT')
    tz = ZoneInfo(ZONE)
    today = datetime.now(tz).date()
    since = today - timedelta(days=7)
    make = one_site([pv_only(SNS[2]), hybrid(SNS[0])], since - timedelta(days=3))
    sink = f"influxdb: {{url: {influxd.url}, api: v1, database: {influx_db}}}\n"
    sim, logs, now = _backfill_in_process(tmp_path, make, sink, since, daemon=daemon)

    first_kept = datetime.fromtimestamp(now - 2 * 86400, tz).date()
    last = today - timedelta(days=1) if daemon else today  # the daemon goes up to today's midnight
    kept = [local_midnight(ZONE, first_kept + timedelta(days=i)) for i in range((last - first_kept).days + 1)]
    assert _begins(sim) == {SNS[2]: kept, SNS[0]: kept}  # nothing asked before the retention's day
    warnings = [
        e for e in logs if e["event"] == "backfill.clamped_to_retention" and e["log_level"] == "warning"
    ]
    assert len(warnings) == 1, warnings
    assert (warnings[0]["source"], warnings[0]["requested"], warnings[0]["used"]) == (
        "fox",
        since.isoformat(),
        first_kept.isoformat(),
    )
    # the days inside the retention landed (the part of the first day older than 2 d is dropped)
    stored = {
        int(r["time"])
        for r in rows(influxd, influx_db, f'SELECT * FROM "inverter" WHERE "device" = \'{SNS[2]}\'')
    }
    truth = make()
    inside = truth.upload_times(SNS[2], int(now - 2 * 86400) + 60, local_midnight(ZONE, today))
    assert inside and set(inside) <= stored


def test_victoriametrics_cannot_say_its_retention_so_the_backfill_is_not_clamped(
    tmp_path: Path, victoria: VictoriaServer
) -> None:
    """VictoriaMetrics (api v2) has no /api/v2/buckets: the sink's retention is unknown, the
    backfill goes on over the whole range, with no warning."""
    tz = ZoneInfo(ZONE)
    today = datetime.now(tz).date()
    since = today - timedelta(days=4)
    make = one_site([pv_only(SNS[2])], since - timedelta(days=3))
    sink = f"influxdb: {{url: {victoria.url}, api: v2, org: home, bucket: solar, token: t0ken}}\n"
    sim, logs, _ = _backfill_in_process(tmp_path, make, sink, since)
    assert _begins(sim) == {SNS[2]: [local_midnight(ZONE, since + timedelta(days=i)) for i in range(5)]}
    assert not [e for e in logs if e["event"] == "backfill.clamped_to_retention"]
    assert [e["status"] for e in logs if e["event"] == "sink.retention_unknown"] == [400]
