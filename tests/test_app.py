"""The pipeline end to end: sources → budget → spool → sink, and the CLI around it."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from collector.sinks.local import LocalStore
from tests.conftest import run_cli, spawn_cli

SECRET = "S3cr3t-Key-0042-do-not-log"


def source(name: str, key: str, devices: str = "[INV1, INV2]", extra: str = "") -> str:
    return f"""
  - name: {name}
    vendor: foxess
    api_key: {key}
    devices: {devices}
{extra}"""


def local_series(state_dir: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, object]]:
    store = LocalStore(state_dir / "local.db")
    try:
        return {(s.measurement, tuple(sorted(s.tags.items()))): dict(s.fields) for s in store.series()}
    finally:
        store.close()


def test_run_once_lands_points_in_the_embedded_store(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    cfg = write_config("sources:" + source("roof", "ok-1"))
    res = run_cli(["run", "--once", "--config", str(cfg)])
    assert res.returncode == 0, res.stderr
    series = local_series(tmp_path / "state")
    inverters = {dict(tags)["device"]: f for (m, tags), f in series.items() if m == "inverter"}
    assert set(inverters) == {"INV1", "INV2"}
    assert inverters["INV1"]["pv_power_w"] == 1000.0
    assert inverters["INV1"]["state"] == "normal"
    collector = [f for (m, _), f in series.items() if m == "collector"]
    assert collector and collector[0]["points_written"] == 2


def test_dry_run_prints_line_protocol_and_writes_nothing(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    cfg = write_config("sources:" + source("roof", "ok-1"))
    res = run_cli(["--config", str(cfg), "run", "--once", "--dry-run"])
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("inverter,")]
    assert len(lines) == 2
    assert "device=INV1" in lines[0] and "pv_power_w=1000.0" in lines[0]
    assert not (tmp_path / "state" / "local.db").exists()


def test_a_crashing_source_does_not_stop_the_others(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    cfg = write_config("sources:" + source("bad", "crash-1", "[X1]") + source("good", "ok-2", "[G1]"))
    res = run_cli(["run", "--once", "--config", str(cfg)])
    assert res.returncode == 1  # a source failed
    devices = {dict(tags).get("device") for (m, tags) in local_series(tmp_path / "state") if m == "inverter"}
    assert devices == {"G1"}
    assert "poll.crashed" in res.stderr


def test_no_secret_in_any_output(write_config: Callable[[str], Path]) -> None:
    """Forced errors with a known secret: crash, auth failure, check, config error."""
    outputs = []
    for prefix in ("crash", "auth", "limit"):
        cfg = write_config("sources:" + source("roof", f"{prefix}-{SECRET}"))
        for args in (["run", "--once"], ["check"], ["quota"], ["run", "--once", "--dry-run"]):
            res = run_cli([*args, "--config", str(cfg)])
            outputs.append(res.stdout + res.stderr)
    # an invalid value next to a secret, and a secret in the environment
    cfg = write_config("sources:" + source("roof", "${API_KEY}", extra="    interval: nonsense\n"))
    res = run_cli(["check", "--config", str(cfg)], env={"API_KEY": SECRET})
    assert res.returncode == 2
    outputs.append(res.stdout + res.stderr)
    joined = "\n".join(outputs)
    assert "unexpected answer while using" in joined  # the errors really happened
    assert "login refused" in joined
    assert SECRET not in joined


def test_sigterm_mid_poll_finishes_flushes_and_exits_0(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    cfg = write_config("sources:" + source("roof", "slow-1", "[S1]"))
    proc = spawn_cli(["run", "--config", str(cfg)])
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "poll started" not in line:
            line = proc.stdout.readline()
        assert "poll started" in line
        proc.send_signal(signal.SIGTERM)  # while the poll is in flight
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "collector.stopped" in err
    devices = {dict(tags).get("device") for (m, tags) in local_series(tmp_path / "state") if m == "inverter"}
    assert devices == {"S1"}  # the in-flight poll finished and was flushed


def test_check_refuses_an_interval_over_the_limit_and_names_the_fit(
    write_config: Callable[[str], Path],
) -> None:
    cfg = write_config("sources:" + source("roof", "ok-1", extra="    interval: 30s\n"))
    res = run_cli(["check", "--config", str(cfg)])
    assert res.returncode == 2
    assert "sources[0].interval" in res.stderr
    # 1440/day per inverter, 90 % for scheduled streams: 1296, less 196 energy calls,
    # leaves 1100 live runs a day → every 79 s
    assert "1m19s" in res.stderr

    cfg = write_config("sources:" + source("roof", "ok-1", extra="    interval: 5m\n"))
    res = run_cli(["check", "--config", str(cfg)])
    assert res.returncode == 0, res.stderr
    assert "per_day" in res.stdout and "485 calls planned" in res.stdout


def test_run_raises_a_too_short_interval_with_one_warning(write_config: Callable[[str], Path]) -> None:
    cfg = write_config("sources:" + source("roof", "ok-1", extra="    interval: 10s\n"))
    res = run_cli(["run", "--once", "--dry-run", "--config", str(cfg)])
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("interval.raised") == 1


def test_bad_config_exits_2_naming_the_key(write_config: Callable[[str], Path]) -> None:
    cfg = write_config("sources:" + source("roof", "ok-1", extra="    limits: {per_day: -5}\n"))
    res = run_cli(["check", "--config", str(cfg)])
    assert res.returncode == 2
    assert "sources[0].limits.per_day" in res.stderr


def test_a_vendor_rate_limit_answer_pauses_the_source_across_runs(
    write_config: Callable[[str], Path],
) -> None:
    cfg = write_config("sources:" + source("roof", "limit-1", "[L1]"))
    first = run_cli(["run", "--once", "--config", str(cfg)])
    assert first.returncode == 1
    assert "poll.rate_limited" in first.stderr
    quota = run_cli(["quota", "--config", str(cfg)])
    assert "paused by the vendor until" in quota.stdout
    # the next round makes no call at all: the account is paused
    second = run_cli(["run", "--once", "--config", str(cfg)])
    assert "poll.no_budget" in second.stderr
    after = run_cli(["quota", "--config", str(cfg)])
    calls = [ln for ln in after.stdout.splitlines() if "L1:" in ln]
    # the first round's login and its one poll (an account-level call counts against
    # every inverter, issue #6 §1); none from the second round
    assert calls and "last day: 2/1440" in calls[0]


def test_a_second_collector_point_in_one_minute_carries_both_counts(tmp_path: Path) -> None:
    """The point written at shutdown falls in the minute of the last scheduled one and
    overwrites it in InfluxDB: it must hold that minute's counts as well as its own."""
    import asyncio

    from collector.app import App
    from collector.clock import FakeClock
    from collector.config import config_from_dict
    from tests import pipeline_vendor

    cfg = config_from_dict(
        {
            "state_dir": str(tmp_path / "state"),
            "sources": [{"name": "roof", "vendor": "foxess", "api_key": "ok-1", "devices": ["INV1"]}],
        }
    )
    clock = FakeClock(start=1_800_000_000.0)  # a whole minute

    async def go() -> None:
        app = App(cfg, clock=clock, vendors={"foxess": pipeline_vendor.PipelineTestClient})
        await app.start()
        try:
            (rt,) = app.sources
            rt.stats.requests = 3
            await app.self_metrics()  # the scheduled point of the minute
            clock.advance(20)
            rt.stats.requests = 2
            await app.self_metrics()  # the shutdown point, same minute
            await app._flush()
        finally:
            await app.close()

    asyncio.run(go())
    (collector,) = [f for (m, _), f in local_series(tmp_path / "state").items() if m == "collector"]
    assert collector["requests"] == 5
