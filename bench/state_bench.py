"""The daemon's state writes: bytes and fsyncs per poll round, state.db after a day, start-up time.

    .venv/bin/python bench/state_bench.py [--inverters 1,100,1000] [--hours 24] [--day-max 1000]

A fleet of N FoxESS inverters as ⌈N/50⌉ sources of up to 50 (each its own API key, account and
site, as a 1000-inverter installer would configure them), one ``App`` with the embedded sink
(``LocalSink``, ``local.db`` in the state_dir) behind the real spool, against the FoxESS simulator
with the cloud's real limits, all on one virtual clock. Only App-level calls drive it
(``App.start``, ``App.poll(rt, "live" / "energy")``, ``App.close``), so the figures hold for
whatever the budget and the state do inside.

* A **round** is one live poll of every source, then the forwarder's flush (the spool's lines go
  into the sink), as the daemon does every 5 minutes. It is measured twice: the second round on a
  fresh state_dir (``empty``), and the round after a simulated day (``day``). For each:
  ``/proc/self/io`` before and after (``write_bytes``: bytes sent to storage, in pages;
  ``wchar`` / ``syscw``: bytes and calls of every write syscall, sockets included — the simulator
  runs in this process, so its HTTP answers count there too), and ``strace -ff -y`` attached to
  this process for the round only, which gives the write calls, bytes and ``fsync`` /
  ``fdatasync`` calls per file (state database, spool, sink), sockets excluded.
* The **day**: live rounds every 5 minutes and energy runs every 30 minutes (the defaults) over
  ``--hours`` from noon, as bench/foxess_calls.py. The sources poll one after the other, each from
  the round's start time (the clock is set back for each), so every account sees the spacing it
  would see with the sources running concurrently, as in the daemon.
* **state.db after the day**: the database and its ``-wal`` while the app runs, then the database
  after ``App.close`` (the last connection checkpoints and removes the WAL), with the share of each
  table and index (SQLite's ``dbstat``).
* **Start-up**: a new ``App`` on that state_dir (the clock 5 minutes on): ``start_s`` is
  ``App.start()``, ``first_round_s`` the first live round (log-in, discovery, budgets loaded from
  the state), ``until_polled_s`` their sum (from start until every source has polled once),
  ``steady_round_s`` the faster of the next two rounds; ``startup_s = until_polled_s −
  steady_round_s``, what starting costs beyond a normal round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.app import App  # noqa: E402
from collector.config import load_config  # noqa: E402
from collector.log import configure  # noqa: E402
from collector.simulators.foxess import FoxessSim  # noqa: E402
from collector.simulators.plant import Plant, Site, local_time  # noqa: E402
from tests.contract.conftest import (  # noqa: E402
    ZONE,
    SharedClock,
    foxess_on,
    hybrid,
    pv_only,
    write_config,
)

PER_SOURCE = 50  # FoxESS: at most 50 SNs per real-time call, a typical account size
LIVE, ENERGY = 300, 1800
DAY = date(2026, 6, 16)
RESULTS = ROOT / "bench" / "results"
TARGETS = {"round_mb": 1.0, "state_db_mb": 10.0, "startup_s": 2.0}  # at 1000 inverters (issue #6 §6)
MB = 1e6


# ------------------------------------------------------------------------------------------------
# The fleet


def fleet(n: int) -> tuple[Plant, dict[str, list[str]]]:
    """N inverters as ⌈N/50⌉ sites of up to 50, each site its own API key; (plant, key → SNs)."""
    sites, keys = [], {}
    for s in range(math.ceil(n / PER_SOURCE)):
        count = min(PER_SOURCE, n - s * PER_SOURCE)
        sns = [f"60{'H' if i % 2 else 'F'}3S{s:02d}{i:08d}" for i in range(count)]
        inverters = tuple(hybrid(sn) if i % 2 else pv_only(sn) for i, sn in enumerate(sns))
        sites.append(
            Site(f"site-{s:02d}", f"Bench Site {s}", ZONE, 52.5, 13.4, inverters, DAY - timedelta(days=3))
        )
        keys[f"bench-Key-{s:02d}-5e1f0c9a7b2d4e6f"] = sns
    return Plant(sites, cache_days=256), keys


def config_yaml(state_dir: Path, url: str, keys: list[str], influx: str | None) -> str:
    """One source per API key; the InfluxDB v1 sink at `influx`, or (None) the embedded sink."""
    out = [f"state_dir: {state_dir}", "log_format: json"]
    if influx is not None:
        out.append(f"influxdb: {{url: {influx}, api: v1, database: bench}}")
    out.append("sources:")
    for s, key in enumerate(keys):
        out += [
            f"  - name: fox{s:02d}",
            "    vendor: foxess",
            f"    base_url: {url}",
            f"    timezone: {ZONE}",
            f'    api_key: "{key}"',
        ]
    return "\n".join(out) + "\n"


async def one_round(app: App, clock: SharedClock, t: float, stream: str) -> int:
    """Every source polls `stream` from time `t` (as if concurrently); the clock ends at the
    latest source's end. Returns how many polls failed."""
    end, failed = t, 0
    for rt in app.sources:
        clock.set(t)
        failed += not await app.poll(rt, stream)
        end = max(end, clock.t)
    clock.set(end)
    return failed


async def live_round(app: App, clock: SharedClock, t: float) -> int:
    failed = await one_round(app, clock, t, "live")
    assert app.forwarder is not None
    if not await app.forwarder.flush(120):
        raise RuntimeError("the forwarder did not flush")
    return failed


class NullInflux:
    """An InfluxDB v1 ``/write`` endpoint in this process that stores nothing (HTTP 204): the
    daemon's real sink path runs, and the only files written are the daemon's own (state, spool).
    Socket sends are not in ``wchar`` / ``syscw``, so they stay out of the figures."""

    def __init__(self) -> None:
        self.lines = 0
        self._runner: web.AppRunner | None = None

    async def _write(self, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp has undone the gzip
        self.lines += body.count(b"\n")
        return web.Response(status=204)

    async def start(self) -> str:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/write", self._write)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# ------------------------------------------------------------------------------------------------
# Measuring a round: /proc/self/io and strace


def proc_io() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        k, v = line.split(":")
        out[k.strip()] = int(v)
    return out


_CALL = re.compile(r"^(\w+)\((\d+)<([^>]*)>.*\)\s+=\s+(-?\d+)")
WRITES = ("write", "pwrite64", "writev", "pwritev", "pwritev2")
SYNCS = ("fsync", "fdatasync")


class Tracer:
    """``strace -ff -y`` attached to this process (every thread) for one measured block."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Tracer:
        self.proc = subprocess.Popen(
            [
                "strace", "-ff", "-y", "-s", "0", "-o", str(self.out),
                "-e", f"trace={','.join(WRITES + SYNCS)}", "-p", str(os.getpid()),
            ],
            stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "strace: Process N attached"
        if b"attached" not in line:
            raise RuntimeError(f"strace did not attach: {line!r}")
        time.sleep(0.2)  # the other threads' attach lines follow at once
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)

    def per_file(self, state_dir: Path) -> dict[str, dict[str, int]]:
        """{category: {writes, bytes, syncs}} over every thread's trace file."""
        out: dict[str, dict[str, int]] = {}
        for path in self.out.parent.glob(self.out.name + ".*"):
            for line in path.read_text(errors="replace").splitlines():
                m = _CALL.match(line)
                if m is None:
                    continue
                call, target, ret = m.group(1), m.group(3), int(m.group(4))
                cat = _category(target, state_dir)
                row = out.setdefault(cat, {"writes": 0, "bytes": 0, "syncs": 0})
                if call in SYNCS:
                    row["syncs"] += 1
                else:
                    row["writes"] += 1
                    row["bytes"] += max(0, ret)
            path.unlink()
        return out


def _category(target: str, state_dir: Path) -> str:
    if not target.startswith("/"):
        return "socket/pipe"  # HTTP to the simulator (same process), the event loop's wake-ups
    p = Path(target)
    if p.name.startswith("state.db"):
        return "state"
    if p.name.startswith("local.db"):
        return "sink"
    if p.is_relative_to(state_dir) and p.relative_to(state_dir).parts[0].startswith("spool"):
        return "spool"
    return "other"


async def measured(block: Callable[[], Awaitable[int]], state_dir: Path, trace: bool) -> dict[str, Any]:
    """Run `block` (one round) with /proc/self/io before/after and, if `trace`, under strace."""
    tracer = Tracer(state_dir.parent / "strace") if trace else None
    with tracer or contextlib.nullcontext():
        # Read inside the traced block: starting and stopping strace writes a little too.
        before = proc_io()
        t0 = time.monotonic()
        failed = await block()
        wall = time.monotonic() - t0
        after = proc_io()
    files = tracer.per_file(state_dir) if tracer is not None else {}
    d = {k: after[k] - before[k] for k in ("write_bytes", "wchar", "syscw", "read_bytes", "rchar")}
    files_total = {
        k: sum(f[k] for c, f in files.items() if c in ("state", "spool", "sink"))
        for k in ("writes", "bytes", "syncs")
    }
    return {"io": d, "files": files, "files_total": files_total, "wall_s": wall, "failed": failed}


# ------------------------------------------------------------------------------------------------
# The state database's size


def db_sizes(state_dir: Path) -> dict[str, int]:
    return {
        name: (state_dir / name).stat().st_size if (state_dir / name).exists() else 0
        for name in ("state.db", "state.db-wal")
    }


def db_tables(path: Path) -> dict[str, int]:
    """Bytes per table / index (read-only, SQLite's dbstat: no knowledge of the schema)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    except sqlite3.Error:
        rows = []
    finally:
        db.close()
    return {str(n): int(s) for n, s in rows}


# ------------------------------------------------------------------------------------------------
# One fleet size


async def run_size(
    n: int, hours: float, workdir: Path, *, day: bool, trace: bool, sink: str
) -> dict[str, Any]:
    plant, keys = fleet(n)
    start = local_time(ZONE, DAY, 12, 0)
    clock = SharedClock(start)
    sim = FoxessSim(plant, api_keys=keys, clock=clock)
    url = await sim.start()
    null = NullInflux() if sink == "null" else None
    influx = await null.start() if null is not None else None
    state_dir = workdir / "state"
    cfg = load_config(write_config(workdir / "cfg.yaml", config_yaml(state_dir, url, list(keys), influx)))
    configure("warning", "json")
    res: dict[str, Any] = {
        "inverters": n,
        "sources": len(keys),
        "day_simulated": day,
        "hours": hours,
        "sink": sink,
    }
    t_size = time.monotonic()
    try:
        app = App(cfg, clock=clock, vendors=foxess_on(clock))
        failed = 0
        try:
            await app.start()
            failed += await live_round(app, clock, start)  # log-in, discovery, first data
            t = start + LIVE
            res["round_empty"] = await measured(
                lambda: live_round(app, clock, max(clock.t, t)), state_dir, trace
            )
            # The energy runs follow the measured round (every 30 min from 12:05), so the
            # empty-state round is the same whether or not the day is simulated.
            t_day = time.monotonic()
            end = start + int(hours * 3600) if day else t + LIVE
            if day:
                failed += await one_round(app, clock, clock.t, "energy")
            for t in range(start + 2 * LIVE, end, LIVE):
                failed += await live_round(app, clock, max(clock.t, t))
                if (t - start) % ENERGY == LIVE:
                    failed += await one_round(app, clock, clock.t, "energy")
            res["day_wall_s"] = time.monotonic() - t_day
            if day:
                res["round_day"] = await measured(
                    lambda: live_round(app, clock, max(clock.t, end)), state_dir, trace
                )
                res["db_running"] = db_sizes(state_dir)
        finally:
            await app.close()
        res["db_closed"] = db_sizes(state_dir)
        res["db_tables"] = db_tables(state_dir / "state.db")
        res["failed_polls"] = failed
        if day:
            # Start-up on a day of history: a new App on the same state_dir, 5 minutes on.
            t_re = max(clock.t, end) + LIVE
            clock.set(t_re)
            app = App(cfg, clock=clock, vendors=foxess_on(clock))
            try:
                t0 = time.monotonic()
                await app.start()
                t1 = time.monotonic()
                await live_round(app, clock, t_re)
                t2 = time.monotonic()
                steady = []
                for k in (1, 2):  # a normal round: the faster of the next two
                    t3 = time.monotonic()
                    await live_round(app, clock, max(clock.t, t_re + k * LIVE))
                    steady.append(time.monotonic() - t3)
            finally:
                await app.close()
            res["startup"] = {
                "start_s": t1 - t0,
                "first_round_s": t2 - t1,
                "steady_round_s": min(steady),
                "until_polled_s": t2 - t0,
                "startup_s": (t2 - t0) - min(steady),
            }
        res["violations"] = sim.violations
        res["not_ok"] = sum(c.outcome != "ok" for c in sim.calls)
        res["calls"] = len(sim.calls)
        res["lines_to_sink"] = null.lines if null is not None else None
    finally:
        await sim.stop()
        if null is not None:
            await null.stop()
    res["wall_s"] = time.monotonic() - t_size
    return res


# ------------------------------------------------------------------------------------------------
# Output


def _round_cells(r: dict[str, Any] | None) -> list[str]:
    if r is None:
        return ["–"] * 5
    f = r["files_total"]
    return [
        f"{r['io']['write_bytes'] / MB:.2f}",
        f"{f['bytes'] / MB:.2f}" if r["files"] else "–",
        f"{f['writes']:,}" if r["files"] else "–",
        f"{f['syncs']:,}" if r["files"] else "–",
        f"{r['io']['wchar'] / MB:.2f} / {r['io']['syscw']:,}",
    ]


def table(results: list[dict[str, Any]]) -> str:
    head = [
        "inverters (sources)",
        "round: write_bytes MB",
        "file bytes MB",
        "file write calls",
        "fsync+fdatasync",
        "wchar MB / syscw (all)",
    ]
    lines = []
    for label, key in (("empty state", "round_empty"), ("after a day", "round_day")):
        lines.append(f"\n**Per live round, {label}**\n")
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in results:
            cells = [f"{r['inverters']} ({r['sources']})", *_round_cells(r.get(key))]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("\n**State after the day, start-up**\n")
    head2 = [
        "inverters",
        "state.db + wal running MB",
        "state.db closed MB",
        "largest tables / indexes MB",
        "start() s",
        "first round s",
        "until polled s",
        "steady round s",
        "start-up s",
        "day wall s",
    ]
    lines.append("| " + " | ".join(head2) + " |")
    lines.append("|" + "---|" * len(head2))
    for r in results:
        if not r["day_simulated"]:
            lines.append(f"| {r['inverters']} | " + " | ".join(["not simulated"] + ["–"] * 8) + " |")
            continue
        run = r["db_running"]
        tops = ", ".join(f"{k} {v / MB:.1f}" for k, v in list(r["db_tables"].items())[:3])
        s = r["startup"]
        lines.append(
            f"| {r['inverters']} | {(run['state.db'] + run['state.db-wal']) / MB:.1f} "
            f"({run['state.db-wal'] / MB:.1f} wal) | {r['db_closed']['state.db'] / MB:.1f} | {tops} | "
            f"{s['start_s']:.2f} | {s['first_round_s']:.2f} | {s['until_polled_s']:.2f} | "
            f"{s['steady_round_s']:.2f} | "
            f"**{s['startup_s']:.2f}** | {r['day_wall_s']:.0f} |"
        )
    return "\n".join(lines)


def breakdown(results: list[dict[str, Any]]) -> str:
    out = ["\n**Per round, by file (strace): write calls / MB / fsyncs**\n"]
    out.append("| inverters | round | state.db | spool | sink (local.db) |")
    out.append("|---|---|---|---|---|")
    for r in results:
        for key in ("round_empty", "round_day"):
            m = r.get(key)
            if m is None or not m["files"]:
                continue
            cells = []
            for cat in ("state", "spool", "sink"):
                f = m["files"].get(cat, {"writes": 0, "bytes": 0, "syncs": 0})
                cells.append(f"{f['writes']:,} / {f['bytes'] / MB:.2f} / {f['syncs']:,}")
            out.append(f"| {r['inverters']} | {key.removeprefix('round_')} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--inverters", default="1,100,1000")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument(
        "--day-max", type=int, default=1000, help="simulate the day only up to this many inverters"
    )
    parser.add_argument("--no-strace", action="store_true", help="only /proc/self/io (no fsync counts)")
    parser.add_argument(
        "--sink",
        choices=("null", "local"),
        default="null",
        help="null: InfluxDB v1 endpoint that stores nothing (default); local: the embedded local.db",
    )
    parser.add_argument("--workdir", default="/var/tmp", help="where state_dirs go (a real disk)")
    args = parser.parse_args()
    trace = not args.no_strace
    if trace and subprocess.run(["strace", "-V"], capture_output=True).returncode != 0:
        raise SystemExit("strace not found: install it or pass --no-strace")
    results = []
    for n in (int(x) for x in args.inverters.split(",")):
        with tempfile.TemporaryDirectory(prefix="state-bench-", dir=args.workdir) as tmp:
            r = asyncio.run(
                run_size(n, args.hours, Path(tmp), day=n <= args.day_max, trace=trace, sink=args.sink)
            )
        results.append(r)
        print(f"{n} inverters: {r['wall_s']:.0f} s", file=sys.stderr, flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = (
        f"State writes: {args.hours:g} h simulated, live every 5 min, energy every 30 min; {machine}\n"
        + table(results)
        + (breakdown(results) if trace else "")
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"state_bench-{stamp}.json").write_text(
        json.dumps({"machine": machine, "args": vars(args), "results": results}, indent=1)
    )
    (RESULTS / f"state_bench-{stamp}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
