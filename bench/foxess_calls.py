"""FoxESS API calls per inverter-day with 5-minute live data: 1, 10 and 50 inverters.

    .venv/bin/python bench/foxess_calls.py [--inverters 1,10,50] [--hours 24]

Drives the app's real jobs — ``App.poll(rt, "live")`` every 5 minutes and ``App.poll(rt,
"energy")`` every 30 minutes, the streams' default intervals — over a simulated day (noon to noon,
so one local midnight and its report rollover are inside), against the FoxESS simulator with the
cloud's real limits. App, client and simulator share one virtual clock, so the day runs in seconds
(the state database's cache timers follow it too). Calls are counted in the simulator's log:

* ``HTTP/inv-day``: requests the app made, per inverter;
* ``counted/inv-day``: calls the cloud counts against each inverter (a 50-SN real-time call counts
  once against each of its 50 — the strict reading the budget uses); max over the inverters;
* ``min``: the batched minimum: live ⌈n/50⌉ calls per poll (each inverter named once per poll),
  energy 3 reports + 1 generation per inverter per run, + 1 report after the day rollover.

Target: counted = min, and ≤ 60 % of the 1440/day quota so backfill keeps room.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.app import App  # noqa: E402
from collector.config import load_config  # noqa: E402
from collector.log import configure  # noqa: E402
from collector.simulators.plant import local_time  # noqa: E402
from tests.contract.conftest import (  # noqa: E402
    KEY,
    REAL,
    ZONE,
    RecordingSim,
    SharedClock,
    config_text,
    foxess_on,
    hybrid,
    one_site,
    pv_only,
    write_config,
)

QUOTA = 1440
LIVE, ENERGY = 300, 1800
DAY = date(2026, 6, 16)  # mid-month: only the day rolls over inside the simulated day


async def one_day(n: int, hours: float, workdir: Path) -> dict[str, Any]:
    sns = [f"60H3CA{i:010d}" if i % 2 else f"60F3CA{i:010d}" for i in range(n)]
    inverters = [hybrid(sn) if i % 2 else pv_only(sn) for i, sn in enumerate(sns)]
    make = one_site(inverters, DAY - timedelta(days=3))
    start = local_time(ZONE, DAY, 12, 0)
    end = start + int(hours * 3600)
    clock = SharedClock(start)
    sim = RecordingSim(make(), api_keys={KEY: None}, clock=clock)
    url = await sim.start()
    cfg = write_config(workdir / "cfg.yaml", config_text(workdir / "state", url, influx=None))
    config = load_config(cfg)
    configure("warning", "json")
    # The state database's TTLs (device cache 6 h, access-count check hourly) follow the
    # app's clock, so they run on the virtual day.
    app = App(config, clock=clock, vendors=foxess_on(clock))
    t0 = time.monotonic()
    live_runs = energy_runs = 0
    try:
        await app.start()
        rt = app.sources[0]
        for t in range(start, end, LIVE):
            clock.set(max(clock.t, t))
            live_runs += await app.poll(rt, "live")
            if (t - start) % ENERGY == 0:
                energy_runs += await app.poll(rt, "energy")
        assert app.forwarder is not None
        await app.forwarder.flush(60)
    finally:
        await app.close()
        await sim.stop()
    wall = time.monotonic() - t0
    calls = list(sim.calls)
    per_inverter = {sn: sum(sn in c.devices for c in calls) for sn in sns}
    days = hours / 24
    live_calls = sum(c.path == REAL for c in calls)
    rollovers = 1 if hours >= 12 else 0  # noon + 12 h crosses local midnight: the day report once more
    minimum = (len(range(start, end, LIVE)) + 4 * len(range(start, end, ENERGY)) + rollovers) / days
    return {
        "inverters": n,
        "live_runs": live_runs,
        "energy_runs": energy_runs,
        "live_calls_per_poll": live_calls / max(1, live_runs),
        "batched_live_per_poll": math.ceil(n / 50),
        "http_per_inverter_day": len(calls) / n / days,
        "counted_per_inverter_day": max(per_inverter.values()) / days,
        "minimum_per_inverter_day": minimum,
        "account_calls_day": sum(not c.devices for c in calls) / days,
        "quota_pct": 100 * max(per_inverter.values()) / days / QUOTA,
        "violations": sim.violations,
        "not_ok": sum(c.outcome != "ok" for c in calls),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--inverters", default="1,10,50")
    parser.add_argument("--hours", type=float, default=24.0)
    args = parser.parse_args()
    results = []
    for n in (int(x) for x in args.inverters.split(",")):
        with tempfile.TemporaryDirectory(
            prefix="foxess-calls-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
        ) as tmp:
            results.append(asyncio.run(one_day(n, args.hours, Path(tmp))))
    print(
        f"\nFoxESS calls per inverter-day: live every 5 min, energy every 30 min, {args.hours:g} h simulated"
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    head = (
        f"{'inverters':>9} {'live/poll':>9} {'(⌈n/50⌉)':>9} {'HTTP/inv-day':>12} "
        f"{'counted/inv-day':>15} {'min':>6} {'% of 1440':>9} {'account/day':>11} "
        f"{'refused':>7} {'wall s':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r['inverters']:>9} {r['live_calls_per_poll']:>9.2f} {r['batched_live_per_poll']:>9} "
            f"{r['http_per_inverter_day']:>12.1f} {r['counted_per_inverter_day']:>15.1f} "
            f"{r['minimum_per_inverter_day']:>6.0f} {r['quota_pct']:>8.1f}% {r['account_calls_day']:>11.0f} "
            f"{r['violations'] + r['not_ok']:>7} {r['wall_s']:>7.1f}"
        )
    worst = max(r["quota_pct"] for r in results)
    print(f"\nworst inverter: {worst:.1f} % of the daily quota (target ≤ 60 %)")


if __name__ == "__main__":
    main()
