"""Issue #6 §1 from the command line: a tight quota is never tripped, across restarts.

One inverter whose cloud allows 10 calls a day, a config that says so and asks for 5-second
polls. Two 30-second runs of the daemon: the discovery calls made before the inverter is known
count against it, the energy stream (which cannot fit in 10 calls a day at any interval) is left
out with one warning, live data is fetched, and the cloud refuses nothing.
"""

from __future__ import annotations

import signal
import subprocess
from datetime import date, timedelta
from pathlib import Path

from collector.simulators.base import SimThread
from collector.simulators.foxess import FoxessLimits
from tests.contract.conftest import (
    KEY,
    RecordingSim,
    collector_cli,
    config_text,
    hybrid,
    log_events,
    one_site,
    rows,
    spawn_collector,
    write_config,
)
from tests.servers import InfluxServer

SN = "60H3BF0000000061"
RUN_SECONDS = 30


def run_for(cfg: Path, seconds: float) -> str:
    """`solar-collector run` for `seconds` (it must stay up that long), then SIGTERM; its log."""
    proc = spawn_collector(["run", "-c", str(cfg)])
    try:
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    return err


def test_ten_calls_a_day_over_two_runs_are_never_exceeded(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    sim = RecordingSim(
        one_site([hybrid(SN)], date.today() - timedelta(days=3))(),
        api_keys={KEY: None},
        limits=FoxessLimits(per_inverter_per_day=10),
    )
    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(
                tmp_path / "state",
                served.url,
                influx=(influxd.url, influx_db),
                extra="interval: 5s\nlimits: {per_day: 10}\n",
            ),
        )
        check = collector_cli(["check", "-c", str(cfg)])
        assert check.returncode == 2
        assert "sources[0].interval: no interval fits" in check.stderr
        assert "energy cannot run" in check.stderr

        logs = [run_for(cfg, RUN_SECONDS) for _ in range(2)]

    # at most 10 calls over both runs, none refused
    assert 0 < len(sim.calls) <= 10, [c.path for c in sim.calls]
    assert sim.violations == 0
    assert all(c.outcome == "ok" for c in sim.calls), [(c.path, c.code) for c in sim.calls]
    # live data fetched
    assert rows(influxd, influx_db, 'SELECT * FROM "inverter"')
    for err in logs:
        events = log_events(err)
        disabled = [e for e in events if e.get("event") == "streams.disabled"]
        assert len(disabled) == 1 and disabled[0]["source"] == "fox" and disabled[0]["streams"] == ["energy"]
        assert not [e for e in events if e.get("event") == "poll.rate_limited"]
