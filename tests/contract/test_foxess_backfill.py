"""Backfill of 30 days for 3 inverters against the simulator's real limits, killed halfway.

One test, ~100 s by nature: ~90 history calls at the cloud's 1 call/s per endpoint (the budget
spaces them 1.05 s apart). It proves, from the simulator's own records:

* no limit tripped: ``sim.violations == 0`` and no 40400 / 40402 answer;
* SIGKILL halfway, then a re-run: no finished (sn, begin, end) window is requested twice — at most
  the one in flight at the kill;
* windows are cut at the site's local midnights, at most 24 h each, and cover the range exactly;
* complete: every upload the plant made in the range, for each inverter, is a point in InfluxDB
  with the truth's values.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from collector.simulators.foxess import FoxessQuirks
from collector.simulators.plant import local_midnight
from tests.contract.conftest import (
    HISTORY,
    KEY,
    ROOT,
    ZONE,
    RecordingSim,
    SimThread,
    check_inverter_rows,
    cli_command,
    cli_env,
    collector_cli,
    config_text,
    hybrid,
    one_site,
    pv_only,
    rows_by_device,
    wait_for,
    write_config,
)
from tests.servers import InfluxServer

SNS = ("60H3BF0000000001", "60H1BF0000000002", "60F3BF0000000003")
DAYS = 30


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
    sim = RecordingSim(make(), api_keys={KEY: None}, quirks=quirks)  # the cloud's real limits
    start, end = local_midnight(ZONE, since), local_midnight(ZONE, until)
    expected = {(sn, a, b) for sn in SNS for a, b in local_windows(start, end, ZONE)}
    assert len(expected) >= 3 * DAYS

    def windows() -> list[tuple[str, int, int]]:
        reqs = sim.requests_to(HISTORY)
        return [(r.body["sn"], r.body["begin"] // 1000, r.body["end"] // 1000) for r in reqs]

    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(tmp_path / "state", served.url, influx=(influxd.url, influx_db)),
        )
        args = ["backfill", "--since", since.isoformat(), "--until", until.isoformat(), "-c", str(cfg)]
        first = subprocess.Popen(
            cli_command(args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            cwd=ROOT,
        )
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
