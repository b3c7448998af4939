"""The backfill engine: day windows, checkpoints after durability, no call twice, gap refill."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from collector.backfill import day_windows
from collector.sinks.local import LocalStore
from collector.state import State
from tests.conftest import run_cli, spawn_cli

BERLIN = ZoneInfo("Europe/Berlin")


def test_windows_follow_local_midnights_and_split_a_25_hour_day() -> None:
    start = int(dt.datetime(2026, 10, 24, tzinfo=BERLIN).timestamp())
    end = int(dt.datetime(2026, 10, 27, tzinfo=BERLIN).timestamp())
    wins = day_windows(start, end, BERLIN, 86400)
    lengths = [e - s for s, e in wins]
    # 24 Oct (24 h), 25 Oct (25 h: DST ends) cut into 24 h + 1 h, 26 Oct (24 h)
    assert lengths == [86400, 86400, 3600, 86400]
    assert all(dt.datetime.fromtimestamp(s, BERLIN).hour == 0 for s, _ in (wins[0], wins[1], wins[3]))


def inverter_times(state_dir: Path, device: str) -> list[int]:
    store = LocalStore(state_dir / "local.db")
    try:
        return [
            int(line.rsplit(" ", 1)[1])
            for line in store.export(since=None, until=None, measurement="inverter")
            if f"device={device}" in line
        ]
    finally:
        store.close()


def config_text(extra: str = "") -> str:
    return f"""
timezone: Europe/Berlin
sources:
  - name: roof
    vendor: foxess
    api_key: ok-1
    devices: [A1, A2]
{extra}"""


def test_backfill_fetches_each_window_once(write_config: Callable[[str], Path], tmp_path: Path) -> None:
    cfg = write_config(config_text())
    today = dt.datetime.now(BERLIN).date()
    since = (today - dt.timedelta(days=3)).isoformat()
    res = run_cli(["backfill", "--since", since, "--until", today.isoformat(), "--config", str(cfg)])
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("pipeline-test: history") == 6  # 3 days × 2 inverters
    times = inverter_times(tmp_path / "state", "A1")
    start = int(dt.datetime.combine(today - dt.timedelta(days=3), dt.time(), BERLIN).timestamp())
    end = int(dt.datetime.combine(today, dt.time(), BERLIN).timestamp())
    assert times == list(range(start, end, 300))  # complete, in order, nothing twice

    again = run_cli(["backfill", "--since", since, "--until", today.isoformat(), "--config", str(cfg)])
    assert again.returncode == 0, again.stderr
    assert "pipeline-test: history" not in again.stdout  # no vendor call for a finished range

    one = run_cli(
        [
            "backfill",
            "--device",
            "A2",
            "--since",
            (today - dt.timedelta(days=4)).isoformat(),
            "--config",
            str(cfg),
        ]
    )
    # only the new day before the done range, and today's partial window, for A2
    assert one.stdout.count("pipeline-test: history") == 2


def test_backfill_rejects_an_unknown_source(write_config: Callable[[str], Path]) -> None:
    cfg = write_config(config_text())
    res = run_cli(["backfill", "--source", "nope", "--since", "2026-01-01", "--config", str(cfg)])
    assert res.returncode == 2
    assert "--source" in res.stderr


def test_the_daemon_refills_the_gap_after_it_was_down(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    cfg = write_config(config_text())
    state_dir = tmp_path / "state"
    down_since = int(time.time()) // 300 * 300 - 6 * 3600
    state = State(state_dir)
    state.set_last_seen("roof", "live", {"A1": down_since, "A2": down_since})
    state.close()
    proc = spawn_cli(["run", "--config", str(cfg)])
    try:
        deadline = time.monotonic() + 60
        wanted = set(range(down_since, down_since + 5 * 3600, 300))
        while time.monotonic() < deadline:
            if (state_dir / "local.db").exists() and wanted <= set(inverter_times(state_dir, "A2")):
                break
            time.sleep(0.2)  # polling the store with a deadline
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert wanted <= set(inverter_times(state_dir, "A2")), "the 6-hour gap was not refilled"


def test_a_backfill_beside_the_running_daemon_uses_its_own_spool(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    cfg = write_config(config_text())
    state_dir = tmp_path / "state"
    daemon = spawn_cli(["run", "--config", str(cfg)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (state_dir / "spool" / "lock").exists():
            time.sleep(0.1)  # polling for the daemon's spool, with a deadline
        second = run_cli(["run", "--config", str(cfg)])
        assert second.returncode == 1
        assert "another solar-collector daemon is running" in second.stderr
        today = dt.datetime.now(BERLIN).date()
        since = (today - dt.timedelta(days=1)).isoformat()
        res = run_cli(["backfill", "--since", since, "--until", today.isoformat(), "--config", str(cfg)])
        assert res.returncode == 0, res.stderr
        assert not list(state_dir.glob("spool-*")), "the private spool was delivered and removed"
        start = int(dt.datetime.combine(today - dt.timedelta(days=1), dt.time(), BERLIN).timestamp())
        assert set(range(start, start + 86400 - 3600, 300)) <= set(inverter_times(state_dir, "A1"))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)


def test_the_daemon_adopts_a_killed_commands_spool(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    from collector.sinks.spool import Spool

    cfg = write_config(config_text())
    state_dir = tmp_path / "state"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a command that has exited: its pid names the orphan spool
    orphan_dir = state_dir / f"spool-{gone.pid}"
    orphan = Spool(orphan_dir, 10**8)
    orphan.append(
        [
            f"inverter,device=OLD,site=s,source=roof,vendor=foxess pv_power_w=1.0 {1700000000 + i}"
            for i in range(3)
        ]
    )
    orphan.close()
    res = run_cli(["run", "--once", "--config", str(cfg)])
    assert res.returncode == 0, res.stderr
    assert inverter_times(state_dir, "OLD") == [1700000000, 1700000001, 1700000002]
    assert not orphan_dir.exists()


def test_windows_lie_on_a_grid_from_the_sites_midnight() -> None:
    """A 3-hour history window: any range is cut at midnight + k × 3 h, so devices with
    different ranges share windows (a batched call), also across a 23-hour day."""
    day = int(dt.datetime(2026, 3, 29, tzinfo=BERLIN).timestamp())  # 23 h: DST begins
    wins = day_windows(day + 4000, day + 4 * 3600 + 100, BERLIN, 3 * 3600)
    assert wins == [(day + 4000, day + 3 * 3600), (day + 3 * 3600, day + 4 * 3600 + 100)]
    whole = day_windows(day, day + 23 * 3600, BERLIN, 3 * 3600)
    assert [e - s for s, e in whole] == [3 * 3600] * 7 + [2 * 3600]
    assert whole[-1][1] == int(dt.datetime(2026, 3, 30, tzinfo=BERLIN).timestamp())
