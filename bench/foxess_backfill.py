"""FoxESS backfill wall time against the rate-limit bound.

    .venv/bin/python bench/foxess_backfill.py [--days 30] [--inverters 3] [--sink influxd|embedded]

Runs ``solar-collector backfill --since … --until …`` (a subprocess, as a user would) against the
FoxESS simulator on the real clock with the cloud's real limits (1 query/s per endpoint, 1440 calls
per inverter and day), writing to influxd 1.x (or the embedded store). The history endpoint takes
one call per inverter-day, so the bound is ``history calls × 1 s``; the budget spaces calls to one
endpoint 1.05 s apart, so the target is ≤ 1.1× the bound for the whole command (start-up, discovery
and the final flush included). Also reported: the spacing between history calls the simulator saw,
limit violations (must be 0) and points stored against the uploads the plant made (must be equal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.simulators.base import SimThread  # noqa: E402
from collector.simulators.plant import local_midnight  # noqa: E402
from tests.contract.conftest import (  # noqa: E402
    HISTORY,
    KEY,
    ZONE,
    RecordingSim,
    cli_command,
    cli_env,
    config_text,
    hybrid,
    one_site,
    pv_only,
    write_config,
)
from tests.servers import INFLUXD, InfluxServer  # noqa: E402


def count_points(server: InfluxServer, db: str) -> int:
    query = urllib.parse.urlencode({"q": 'SELECT COUNT("pv_power_w") FROM "inverter"', "db": db})
    with urllib.request.urlopen(f"{server.url}/query?{query}", timeout=30) as resp:
        data = json.loads(resp.read())
    series = data["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


def run(days: int, inverters: int, sink: str, workdir: Path) -> dict[str, float | int | str]:
    today = datetime.now(ZoneInfo(ZONE)).date()
    since, until = today - timedelta(days=days + 1), today - timedelta(days=1)
    sns = [f"60H3BB{i:010d}" if i % 2 else f"60F3BB{i:010d}" for i in range(inverters)]
    make = one_site(
        [hybrid(sn) if i % 2 else pv_only(sn) for i, sn in enumerate(sns)], since - timedelta(days=2)
    )
    plant = make()
    start, end = local_midnight(ZONE, since), local_midnight(ZONE, until)
    uploads = sum(len([u for u in plant.upload_times(sn, start, end) if u < end]) for sn in sns)
    sim = RecordingSim(make(), api_keys={KEY: None})
    server = InfluxServer(workdir / "influxd", database="bench") if sink == "influxd" else None
    if server is not None:
        server.start()
    try:
        with SimThread(sim) as served:
            influx = (server.url, "bench") if server is not None else None
            cfg = write_config(
                workdir / "cfg.yaml", config_text(workdir / "state", served.url, influx=influx)
            )
            args = ["backfill", "--since", since.isoformat(), "--until", until.isoformat(), "-c", str(cfg)]
            t0 = time.monotonic()
            res = subprocess.run(cli_command(args), capture_output=True, text=True, env=cli_env(), cwd=ROOT)
            wall = time.monotonic() - t0
        if res.returncode != 0:
            raise SystemExit(f"backfill failed ({res.returncode}):\n{res.stderr[-3000:]}")
        history = sim.calls_to(HISTORY)
        stored = count_points(server, "bench") if server is not None else -1
    finally:
        if server is not None:
            server.stop()
    span = history[-1].t - history[0].t if len(history) > 1 else 0.0
    bound = len(history) * 1.0
    return {
        "days": days,
        "inverters": inverters,
        "sink": sink,
        "history_calls": len(history),
        "all_calls": len(sim.calls),
        "bound_s": bound,
        "wall_s": wall,
        "ratio": wall / bound,
        "spacing_s": span / max(1, len(history) - 1),
        "violations": sim.violations,
        "uploads": uploads,
        "stored": stored,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--inverters", type=int, default=3)
    parser.add_argument("--sink", choices=["influxd", "embedded"], default=None)
    args = parser.parse_args()
    sink = args.sink or ("influxd" if os.access(INFLUXD, os.X_OK) else "embedded")
    with tempfile.TemporaryDirectory(prefix="foxess-backfill-") as tmp:
        r = run(args.days, args.inverters, sink, Path(tmp))
    print(f"\nFoxESS backfill: {r['days']} days × {r['inverters']} inverters into {r['sink']}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    head = (
        f"{'history calls':>13} {'all calls':>9} {'bound s':>8} {'wall s':>7} {'× bound':>7} "
        f"{'spacing s':>9} {'violations':>10} {'points':>8} {'uploads':>8}"
    )
    print(head)
    print("-" * len(head))
    print(
        f"{r['history_calls']:>13} {r['all_calls']:>9} {r['bound_s']:>8.0f} {r['wall_s']:>7.1f} "
        f"{r['ratio']:>7.3f} {r['spacing_s']:>9.3f} {r['violations']:>10} "
        f"{r['stored'] if sink == 'influxd' else '-':>8} {r['uploads']:>8}"
    )
    print("\ntarget: ≤ 1.1 × bound, 0 violations, points = uploads")


if __name__ == "__main__":
    main()
