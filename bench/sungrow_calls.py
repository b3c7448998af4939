"""Sungrow iSolarCloud: calls per device-day at 5-minute live data, and backfill time against the limit.

    .venv/bin/python bench/sungrow_calls.py [--devices 1,10,100] [--hours 24]
    .venv/bin/python bench/sungrow_calls.py --backfill 60 --days 7

**Calls** (first form): drives the app's real jobs — `live` every 5 minutes, `energy` every hour,
`faults` every 15 minutes, the streams' default intervals — over a simulated day against the
iSolarCloud simulator with the gateway's real limits; app, client and simulator share one virtual
clock, so the day runs in seconds. The plant: half hybrids (an ESS, type 14, with its meter, type 7)
and half PV inverters (type 1); "devices" counts what is polled (inverters and meters). Calls are
counted in the simulator's log:

* `calls/dev-day`: requests per polled device and day (the appkey's quota is per appkey: this is
  what one device costs of it);
* `min/dev-day`: the batched minimum: per `live` run the plant list + ⌈n/50⌉ realtime calls per
  device type; per `energy` run 3 per type group of 50; one `faults` call per run; the hourly
  `getOpenApiCallInfo`; discovery once (plant list, device list), the point catalogue once a week
  (2 calls per device type read with `getDeviceRealTimeData`) and the login;
* `% of 2000/h`: the busiest hour against the Basic package's hourly quota.

**Backfill** (second form): `solar-collector backfill --since <days ago>` for N PV inverters of
one plant (⌈N/50⌉ calls per 3-hour window) against the simulator in its own thread on the real
clock, timed from the command's start to its exit. The bound: the calls the backfill made, spaced
as the limits allow (5 a second → 1.05/5 s apart; the 2000/hour quota binds only past 2000 calls),
plus the first login. Target: wall time ≤ 1.1 × the bound. The simulator computes each answer
from the plant model (0.25 s for a 3-hour window of 50 inverters, one request at a time), which
on a 2-core machine is a floor of its own; it is printed, and the ratio against it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.app import App  # noqa: E402
from collector.config import load_config  # noqa: E402
from collector.log import configure  # noqa: E402
from collector.simulators.base import SimThread  # noqa: E402
from collector.simulators.plant import Plant, Site, local_time  # noqa: E402
from collector.simulators.sungrow import (  # noqa: E402
    DEMO_ACCESS_KEY,
    DEMO_APPKEY,
    DEMO_PASSWORD,
    DEMO_USER,
    SungrowSim,
)
from tests.contract.conftest import SharedClock, cli_command, cli_env, hybrid, pv_only, write_config  # noqa: E402

ZONE = "Europe/Berlin"
LIVE, ENERGY, FAULTS = 300, 3600, 900
HOURLY_QUOTA = 2000
DAY = date(2026, 6, 16)
SPACING = 1.05 / 5


def config_text(state_dir: Path, url: str) -> str:
    return (
        f"state_dir: {state_dir}\nlog_format: json\nlog_level: warning\nsources:\n"
        f"  - name: sg\n    vendor: sungrow\n    base_url: {url}\n    timezone: {ZONE}\n"
        f"    appkey: {DEMO_APPKEY}\n    access_key: {DEMO_ACCESS_KEY}\n"
        f"    username: {DEMO_USER}\n    password: \"{DEMO_PASSWORD}\"\n"
    )


def plant(inverters: list[Any], commissioned: date, cache_days: int = 16) -> Plant:
    return Plant(
        [Site("bench", "Bench Site", ZONE, 52.5, 13.4, tuple(inverters), commissioned)], cache_days=cache_days
    )


async def one_day(n_inverters: int, hours: float, workdir: Path) -> dict[str, Any]:
    inverters = [
        hybrid(f"A23H{i:08d}") if i % 2 else pv_only(f"A23P{i:08d}") for i in range(n_inverters)
    ]
    hybrids = sum(1 for i in range(n_inverters) if i % 2)
    pvs = n_inverters - hybrids
    devices = pvs + 2 * hybrids  # each hybrid: its ESS and its meter
    start = local_time(ZONE, DAY, 12, 0)
    end = start + int(hours * 3600)
    clock = SharedClock(start)
    sim = SungrowSim(plant(inverters, DAY - timedelta(days=3)), clock=clock)
    url = await sim.start()
    cfg = write_config(workdir / "cfg.yaml", config_text(workdir / "state", url))
    configure("warning", "json")
    app = App(load_config(cfg), clock=clock)
    t0 = time.monotonic()
    try:
        await app.start()
        rt = app.sources[0]
        for t in range(start, end, LIVE):
            clock.set(max(clock.t, t))
            await app.poll(rt, "live")
            if (t - start) % FAULTS == 0:
                await app.poll(rt, "faults")
            if (t - start) % ENERGY == 0:
                await app.poll(rt, "energy")
        assert app.forwarder is not None
        await app.forwarder.flush(60)
    finally:
        await app.close()
        await sim.stop()
    wall = time.monotonic() - t0
    calls = list(sim.calls)
    days = hours / 24
    groups = {1: pvs, 14: hybrids, 7: hybrids}
    batches = sum(math.ceil(k / 50) for k in groups.values() if k)
    types = sum(1 for k in groups.values() if k)
    live_runs, energy_runs, fault_runs = (
        len(range(start, end, LIVE)),
        len(range(start, end, ENERGY)),
        len(range(start, end, FAULTS)),
    )
    minimum = (
        live_runs * (1 + batches)
        + energy_runs * 3 * batches
        + fault_runs
        + math.ceil(hours)  # getOpenApiCallInfo hourly
        + 2  # discovery: the plant list and one plant's device list (once per process)
        + 2 * (types - (pvs > 0))  # the point catalogue (signals, telemetry) of types 14 and 7, weekly
        + 1  # the login
    )
    per_hour = Counter(int((c.t - start) // 3600) for c in calls)
    return {
        "devices": devices,
        "calls": len(calls),
        "calls_per_device_day": len(calls) / devices / days,
        "min_per_device_day": minimum / devices / days,
        "busiest_hour": max(per_hour.values()),
        "quota_pct": 100 * max(per_hour.values()) / HOURLY_QUOTA,
        "refused": sum(c.outcome != "ok" for c in calls),
        "paths": Counter(c.path.rsplit("/", 1)[-1] for c in calls),
        "wall_s": wall,
    }


class TimedSim(SungrowSim):
    """The simulator, timing its own history handlers (computing the plant's past is its cost,
    not the collector's: a floor for the wall time on this machine, as a cloud's response
    time would be). With ``memo`` on it keeps each history answer by request body, so a second
    backfill of the same range is answered at once: the wall time is then the collector's."""

    served_s = 0.0
    memo_on = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memo: dict[tuple[str, str], Any] = {}

    async def _timed(self, name: str, call: Any, compute: Any) -> Any:
        # The request without what changes per login and per call (token, nonce, timestamp).
        body = {k: v for k, v in call.body.items() if k not in ("token", "api_key_param")}
        key = (name, json.dumps(body, sort_keys=True))
        t0 = time.perf_counter()
        try:
            if self.memo_on and key in self.memo:
                return self.memo[key]
            answer = await compute(call)
            if self.memo_on:
                self.memo[key] = answer
            return answer
        finally:
            self.served_s += time.perf_counter() - t0

    async def _minute(self, call: Any) -> Any:
        return await self._timed("minute", call, super()._minute)

    async def _day_month_year(self, call: Any) -> Any:
        return await self._timed("dmy", call, super()._day_month_year)


def _run_backfill(
    sim: TimedSim, url: str, workdir: Path, since: date, until: date
) -> tuple[float, list[Any]]:
    cfg = write_config(workdir / "cfg.yaml", config_text(workdir / "state", url))
    args = ["backfill", "-c", str(cfg), "--since", since.isoformat(), "--until", until.isoformat()]
    t0 = time.monotonic()
    res = subprocess.run(cli_command(args), capture_output=True, text=True, env=cli_env(), cwd=ROOT)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    return wall, [c for c in sim.calls if c.t >= 0]


def backfill(n: int, days: int, workdir: Path, *, warm: bool = False) -> dict[str, Any]:
    today = datetime.now(ZoneInfo(ZONE)).date()
    since = today - timedelta(days=days)
    sim = TimedSim(plant([pv_only(f"A23B{i:08d}") for i in range(n)], since - timedelta(days=3), days + 8))
    with SimThread(sim) as served:
        if warm:
            # A first backfill (its own state) fills the simulator's memo; the timed one is
            # answered from it. The gateway's limits and call log start again between them.
            sim.memo_on = True
            (workdir / "warm").mkdir()
            _run_backfill(sim, served.url, workdir / "warm", since, today)
            sim.calls.clear()
            sim.limits.reset()
            sim.served_s = 0.0
        (workdir / "timed").mkdir()
        wall, calls = _run_backfill(sim, served.url, workdir / "timed", since, today)
    ts = sorted(c.t for c in calls)
    history = [c for c in calls if c.path.endswith(("MinuteDataList", "DayMonthYearDataList"))]
    bound = (len(calls) - 1) * SPACING + max(0, len(calls) - HOURLY_QUOTA) / HOURLY_QUOTA * 3600
    return {
        "devices": n,
        "days": days,
        "warm": warm,
        "calls": len(calls),
        "history_calls": len(history),
        "expected_minute_calls": math.ceil(n / 50) * 8 * days,
        "refused": sum(c.outcome != "ok" for c in calls),
        "span_s": ts[-1] - ts[0] if ts else 0.0,
        "wall_s": wall,
        "bound_s": bound,
        "ratio": wall / bound if bound else float("nan"),
        "served_s": sim.served_s,
        "ratio_floor": wall / max(bound, sim.served_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--devices", default="1,10,100", help="inverters per run (meters come on top)")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--backfill", type=int, default=0, help="PV inverters to backfill (0: calls)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument(
        "--warm", action="store_true", help="backfill: time a second run, answered from the simulator's memo"
    )
    args = parser.parse_args()
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    if args.backfill:
        with tempfile.TemporaryDirectory(prefix="sungrow-backfill-", dir=shm) as tmp:
            r = backfill(args.backfill, args.days, Path(tmp), warm=args.warm)
        print(
            f"\nbackfill of {r['days']} days for {r['devices']} PV inverters: {r['calls']} calls "
            f"({r['history_calls']} history; {r['expected_minute_calls']} minute windows × batches), "
            f"{r['refused']} refused; simulator {'answering from its memo' if r['warm'] else 'computing'}\n"
            f"wall {r['wall_s']:.1f} s, first to last call {r['span_s']:.1f} s, "
            f"bound {r['bound_s']:.1f} s → {r['ratio']:.2f} × (target ≤ 1.1 ×)\n"
            f"the simulator spent {r['served_s']:.1f} s on the answers (one at a time): "
            f"against max(bound, that) {r['ratio_floor']:.2f} ×"
        )
        return
    results = []
    for n in (int(x) for x in args.devices.split(",")):
        with tempfile.TemporaryDirectory(prefix="sungrow-calls-", dir=shm) as tmp:
            results.append(asyncio.run(one_day(n, args.hours, Path(tmp))))
    print(f"\nSungrow calls per device-day: live 5 min, energy 1 h, faults 15 min, {args.hours:g} h")
    head = (
        f"{'inverters→devices':>17} {'calls':>6} {'calls/dev-day':>13} {'min/dev-day':>11} "
        f"{'busiest hour':>12} {'% of 2000/h':>11} {'refused':>7} {'wall s':>7}"
    )
    print(head)
    print("-" * len(head))
    for n, r in zip(args.devices.split(","), results, strict=True):
        print(
            f"{n + '→' + str(r['devices']):>17} {r['calls']:>6} {r['calls_per_device_day']:>13.1f} "
            f"{r['min_per_device_day']:>11.1f} {r['busiest_hour']:>12} {r['quota_pct']:>10.1f}% "
            f"{r['refused']:>7} {r['wall_s']:>7.1f}"
        )
    for n, r in zip(args.devices.split(","), results, strict=True):
        print(f"  {n}: " + ", ".join(f"{k} {v}" for k, v in sorted(r["paths"].items())))


if __name__ == "__main__":
    main()
