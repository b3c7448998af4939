"""Sink benchmark: lines/s and peak RSS through Spool → Forwarder → InfluxSink → server.

    .venv/bin/python bench/sink_bench.py [--lines N] [--servers influxd,vm] [--gzip 1,6,9]

Measured beside two references on the same, freshly started server:

* ``ceiling``: the server's own limit: a loop posting pre-built gzip (level 1)
  batches of 5000 lines, one request at a time (as we do);
* ``writeapi``: influxdb-client's batching ``WriteApi`` (v2 API, so only
  against VictoriaMetrics; Debian's influxd 1.6 has no /api/v2/write).

``--replay`` adds our path draining a spool that already holds the whole input
(the backlog after an outage; filling it is not timed).

Every scenario runs in its own child process on a fresh server data directory,
so the peak RSS reported (``ru_maxrss``) is that path's alone. The input is a
file of realistic ``inverter`` lines generated once (21 fields, 4 tags,
50 devices, 5-minute steps, about 540 bytes a line); the producer appends it
to the spool in chunks of ``--chunk`` lines (one fsync each), as polls would.
After each run the server is asked how many points it holds (nothing lost).
Results go to stdout and ``bench/results/`` (git-ignored); figures in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.schema.point import Point  # noqa: E402
from tests.servers import InfluxServer, VictoriaServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEVICES = 50
STEP = 300
FIELDS = (
    ["pv_power_w"]
    + [f"pv{i}_{q}" for i in range(1, 5) for q in ("voltage_v", "current_a", "power_w")]
    + [
        "battery_soc_pct",
        "battery_power_w",
        "battery_temperature_c",
        "grid_import_power_w",
        "grid_export_power_w",
        "load_power_w",
        "inverter_temperature_c",
        "grid_frequency_hz",
    ]
)


# ----------------------------------------------------------------------- input


def t_end() -> int:
    """The newest timestamp: yesterday, aligned to 5 minutes (inside VM's retention)."""
    return (int(time.time()) - 86400) // STEP * STEP


def generate(path: Path, n: int) -> None:
    """Write n realistic inverter lines, oldest first, to path (once)."""
    rnd = random.Random(42)
    steps = (n + DEVICES - 1) // DEVICES
    start = t_end() - (steps - 1) * STEP
    vendors = ["foxess", "sungrow", "solax"]
    with open(path, "w") as f:
        for i in range(n):
            dev = i % DEVICES
            ts = start + (i // DEVICES) * STEP
            pv = round(rnd.uniform(0, 9000), 1)
            fields: dict[str, float] = {"pv_power_w": pv}
            for s in range(1, 5):
                v = round(rnd.uniform(180, 520), 1)
                a = round(rnd.uniform(0, 12), 2)
                fields[f"pv{s}_voltage_v"] = v
                fields[f"pv{s}_current_a"] = a
                fields[f"pv{s}_power_w"] = round(v * a, 1)
            fields.update(
                battery_soc_pct=round(rnd.uniform(5, 100), 1),
                battery_power_w=round(rnd.uniform(-5000, 5000), 1),
                battery_temperature_c=round(rnd.uniform(10, 40), 1),
                grid_import_power_w=round(rnd.uniform(0, 4000), 1),
                grid_export_power_w=round(rnd.uniform(0, 4000), 1),
                load_power_w=round(rnd.uniform(100, 6000), 1),
                inverter_temperature_c=round(rnd.uniform(20, 70), 1),
                grid_frequency_hz=round(rnd.uniform(49.9, 50.1), 2),
            )
            tags = {
                "vendor": vendors[dev % 3],
                "source": f"source-{dev % 5}",
                "site": f"site-{dev % 10}",
                "device": f"SN{dev:08d}",
            }
            f.write(Point("inverter", tags, fields, ts).to_line() + "\n")


def read_chunks(path: Path, size: int) -> Iterator[list[str]]:
    with open(path) as f:
        while chunk := [ln.rstrip("\n") for ln in itertools.islice(f, size)]:
            yield chunk


def read_batches(path: Path, size: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := list(itertools.islice(f, size)):
            yield b"".join(chunk)


# ---------------------------------------------------------------- child roles


def write_url(url: str, api: str) -> str:
    if api == "v2":
        return f"{url}/api/v2/write?org=home&bucket=solar&precision=s"
    return f"{url}/write?db=solar&precision=s"


async def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    import structlog

    from collector.sinks.forwarder import Forwarder
    from collector.sinks.influxdb import InfluxSink
    from collector.sinks.spool import Spool

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    spool_dir = Path(tempfile.mkdtemp(prefix="bench-spool-"))
    spool = Spool(spool_dir, max_bytes=4 * 1024**3)
    if args.api == "v2":
        sink = InfluxSink(args.url, "v2", org="home", bucket="solar", token="bench", gzip_level=args.gzip)
    else:
        sink = InfluxSink(args.url, "v1", database="solar", gzip_level=args.gzip)
    await sink.open(None)
    fwd = Forwarder(spool, sink, batch_lines=args.batch)
    appended = 0
    replay = args.role == "replay"
    if replay:  # an outage's backlog: all of it spooled before the forwarder starts (not timed)
        for chunk in read_chunks(Path(args.data), args.chunk):
            spool.append(chunk)
            appended += len(chunk)
    t0 = time.perf_counter()
    task = asyncio.create_task(fwd.run())
    for chunk in [] if replay else read_chunks(Path(args.data), args.chunk):
        await spool.append_async(chunk)  # as App.deliver does
        appended += len(chunk)
        fwd.wake()
        await asyncio.sleep(0)
    t_appended = time.perf_counter() - t0
    ok = await fwd.flush(3600)
    elapsed = time.perf_counter() - t0
    fwd.stop()
    await task
    await sink.close()
    spool.close()
    return {
        "elapsed_s": elapsed,
        "append_s": t_appended,
        "lines": appended,
        "written": fwd.written,
        "rejected": fwd.rejected,
        "dropped": fwd.dropped,
        "write_errors": fwd.write_errors,
        "flushed": ok,
    }


async def run_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    import zlib

    import aiohttp

    bodies = []
    lines = 0
    for raw in read_batches(Path(args.data), args.batch):
        comp = zlib.compressobj(args.gzip, zlib.DEFLATED, 31)
        bodies.append(comp.compress(raw) + comp.flush())
        lines += raw.count(b"\n")
    url = write_url(args.url, args.api)
    headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
    if args.api == "v2":
        headers["Authorization"] = "Token bench"
    retries = 0
    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        for body in bodies:
            while True:
                async with session.post(url, data=body, headers=headers) as resp:
                    if resp.status < 300:
                        break
                    retries += 1
                    await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - t0
    return {"elapsed_s": elapsed, "lines": lines, "written": lines, "retries": retries}


def run_writeapi(args: argparse.Namespace) -> dict[str, Any]:
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import WriteOptions
    from influxdb_client.domain.write_precision import WritePrecision

    errors: list[str] = []
    client = InfluxDBClient(
        url=args.url, token="bench", org="home", enable_gzip=args.gzip > 0, timeout=30_000
    )
    api = client.write_api(
        write_options=WriteOptions(batch_size=args.batch, flush_interval=1_000),
        error_callback=lambda conf, data, err: errors.append(str(err)),
    )
    t0 = time.perf_counter()
    lines = 0
    for chunk in read_chunks(Path(args.data), args.chunk):
        api.write(bucket="solar", record=chunk, write_precision=WritePrecision.S)  # type: ignore[arg-type]
        lines += len(chunk)
    api.close()  # type: ignore[no-untyped-call]  # waits for the batches to be written (flush() is a no-op in 1.50)
    elapsed = time.perf_counter() - t0
    client.close()  # type: ignore[no-untyped-call]
    return {"elapsed_s": elapsed, "lines": lines, "errors": errors[:3]}


def child_main(args: argparse.Namespace) -> None:
    if args.role in ("ours", "replay"):
        result = asyncio.run(run_ours(args))
    elif args.role == "ceiling":
        result = asyncio.run(run_ceiling(args))
    else:
        result = run_writeapi(args)
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------- parent


def time_range(data: Path) -> tuple[int, int]:
    """First and last timestamp in the input file."""
    with open(data, "rb") as f:
        first = int(f.readline().rsplit(b" ", 1)[1])
        f.seek(max(0, data.stat().st_size - 4096))
        last = int(f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].rsplit(b" ", 1)[1])
    return first, last


def server_count(server: InfluxServer | VictoriaServer, data: Path) -> int:
    """Points of the field pv_power_w the server holds (each line carries it once)."""
    if isinstance(server, InfluxServer):
        return server.count("inverter", "pv_power_w", db="solar")
    server.flush()
    first, last = time_range(data)
    span = last - first + STEP
    query = urllib.parse.urlencode(
        {"query": f"sum(count_over_time(inverter_pv_power_w[{span}s]))", "time": str(last)}
    )
    with urllib.request.urlopen(f"{server.url}/api/v1/query?{query}", timeout=120) as resp:
        body = json.load(resp)
    result = body["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scenario(kind: str, role: str, gzip: int, args: argparse.Namespace, data: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    server: InfluxServer | VictoriaServer
    server = InfluxServer(workdir, database="solar") if kind == "influxd" else VictoriaServer(workdir)
    api = "v1" if kind == "influxd" else "v2"
    server.start()
    assert server.proc is not None
    load_before = os.getloadavg()[0]
    cpu_before = proc_cpu(server.proc.pid)
    try:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            role,
            "--url",
            server.url,
            "--api",
            api,
            "--data",
            str(data),
            "--gzip",
            str(gzip),
            "--batch",
            str(args.batch),
            "--chunk",
            str(args.chunk),
        ]
        usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=ROOT)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu = proc_cpu(server.proc.pid) - cpu_before
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{role} on {kind} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
        result["on_server"] = server_count(server, data)
        result["server_cpu_s"] = server_cpu
        result["client_cpu_s"] = (usage.ru_utime + usage.ru_stime) - (
            usage_before.ru_utime + usage_before.ru_stime
        )
        result["load_before"] = load_before
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
    result.update(server=kind, role=role, gzip=gzip, api=api)
    result["lines_per_s"] = result["lines"] / result["elapsed_s"]
    return result


def report(results: list[dict[str, Any]]) -> str:
    out = [
        "| server | path | gzip | lines | seconds | lines/s | vs ceiling | peak RSS MB "
        "| client CPU s | server CPU s | on server |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ceilings = {r["server"]: r["lines_per_s"] for r in results if r["role"] == "ceiling"}
    for r in results:
        ratio = r["lines_per_s"] / ceilings[r["server"]] if r["server"] in ceilings else float("nan")
        out.append(
            f"| {r['server']} ({r['api']}) | {r['role']} | {r['gzip']} | {r['lines']:,} "
            f"| {r['elapsed_s']:.1f} | {r['lines_per_s']:,.0f} | {ratio:.0%} | {r['rss_mb']:.0f} "
            f"| {r['client_cpu_s']:.1f} | {r['server_cpu_s']:.1f} | {r['on_server']:,} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--servers", default="influxd,vm")
    parser.add_argument("--gzip", default="1,6,9", help="levels for our path (parent); one level (child)")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=1000, help="lines per Spool.append (one fsync each)")
    parser.add_argument("--no-writeapi", action="store_true")
    parser.add_argument("--replay", action="store_true", help="also time our path draining a full spool")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario; the fastest is reported")
    parser.add_argument("--child", dest="role", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--api", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        args.gzip = int(args.gzip)
        child_main(args)
        return

    RESULTS.mkdir(parents=True, exist_ok=True)
    data = RESULTS / f"inverter-{args.lines}.lp"
    if not data.exists():
        print(f"generating {args.lines:,} lines into {data} ...", file=sys.stderr)
        generate(data, args.lines)
    size = data.stat().st_size
    per_line = size / args.lines
    print(f"input: {args.lines:,} lines, {size / 1e6:.0f} MB ({per_line:.0f} B/line)", file=sys.stderr)
    levels = [int(x) for x in args.gzip.split(",")]
    results: list[dict[str, Any]] = []
    every: list[dict[str, Any]] = []
    for kind in args.servers.split(","):
        plan: list[tuple[str, int]] = [("ceiling", 1)] + [("ours", lvl) for lvl in levels]
        if args.replay:
            plan += [("replay", lvl) for lvl in levels]
        if kind == "vm" and not args.no_writeapi:
            plan.append(("writeapi", 1))
        for role, lvl in plan:
            runs = []
            for _ in range(args.repeat):
                print(f"{kind}: {role} gzip={lvl} ...", file=sys.stderr, flush=True)
                r = scenario(kind, role, lvl, args, data)
                print(
                    f"  {r['lines_per_s']:,.0f} lines/s, {r['elapsed_s']:.1f} s, RSS {r['rss_mb']:.0f} MB, "
                    f"CPU {r['client_cpu_s']:.1f}+{r['server_cpu_s']:.1f} s, on server {r['on_server']:,}, "
                    f"load {r['load_before']:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
                runs.append(r)
            every.extend(runs)
            results.append(min(runs, key=lambda x: x["elapsed_s"]))
    table = report(results)
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, best of {args.repeat}"
    print(f"\n{machine}\n\n{table}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dump = json.dumps({"machine": machine, "results": results, "all_runs": every}, indent=1)
    (RESULTS / f"sink-bench-{stamp}.json").write_text(dump)


if __name__ == "__main__":
    main()
