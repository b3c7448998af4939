"""SIGKILL between buffering and delivery loses nothing.

A child process (this module run as a script) appends to the spool and reports
each append after it returned (durable); the test kills it with SIGKILL at a
random moment, then a new process opens the spool and forwards to a real
influxd. Every reported line must land, and what landed must be a gap-free
prefix of what was appended (order kept; lines appended but not yet reported
may or may not have made it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from collector.sinks.forwarder import Forwarder
from collector.sinks.influxdb import InfluxSink
from collector.sinks.spool import Spool
from tests.servers import InfluxServer
from tests.sinks.conftest import run

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_600_000_000
CHUNK = 40


def line(seq: int) -> str:
    return f"kill,device=d1,site=home pv_power_w={seq * 1.5},seq={seq}i {T0 + seq}"


def child(spool_dir: str, url: str | None) -> None:
    """Append CHUNK lines at a time forever; print the count after each durable append.
    With a url, also forward to it concurrently (kill lands mid-delivery)."""

    async def main() -> None:
        spool = Spool(Path(spool_dir), 200_000_000, segment_bytes=64 * 1024)
        fwd: Forwarder | None = None
        if url:
            sink = InfluxSink(url, "v1", database=os.environ["SPOOL_TEST_DB"])
            await sink.open(None)
            fwd = Forwarder(spool, sink, batch_lines=97)
            asyncio.get_running_loop().create_task(fwd.run())
        seq = 0
        while True:
            spool.append([line(i) for i in range(seq, seq + CHUNK)])
            seq += CHUNK
            written = fwd.written if fwd else 0
            sys.stdout.write(f"{seq} {written}\n")
            sys.stdout.flush()
            if fwd:
                fwd.wake()
            await asyncio.sleep(0)

    asyncio.run(main())


def spawn(spool_dir: Path, url: str | None, db: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sinks.test_durability", str(spool_dir), url or ""],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SPOOL_TEST_DB": db},
    )


def kill_after(proc: subprocess.Popen[str], appended: int, written: int = 0, timeout: float = 20) -> int:
    """Read the child's progress until thresholds are met, SIGKILL it; the last reported count."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    last = 0
    while time.monotonic() < deadline:
        text = proc.stdout.readline()
        if not text:
            break
        seq, done = (int(x) for x in text.split())
        last = seq
        if seq >= appended and done >= written:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert last >= appended, f"child reported only {last} lines"
    return last


def deliver_and_read(spool_dir: Path, influxd: InfluxServer, db: str) -> list[int]:
    async def main() -> None:
        spool = Spool(spool_dir, 200_000_000)
        sink = InfluxSink(influxd.url, "v1", database=db)
        await sink.open(None)
        fwd = Forwarder(spool, sink)
        assert await fwd.flush(30)
        await sink.close()
        spool.close()

    run(main())
    return [int(r["seq"]) for r in influxd.rows('SELECT "seq" FROM "kill"', db=db)]


def test_sigkill_while_buffering_with_the_sink_down_loses_nothing(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    proc = spawn(tmp_path / "spool", None, influx_db)
    reported = kill_after(proc, appended=4000)
    landed = deliver_and_read(tmp_path / "spool", influxd, influx_db)
    assert len(landed) >= reported
    assert landed == list(range(len(landed)))  # gap-free prefix, in time (= append) order


def test_sigkill_in_the_middle_of_delivery_loses_nothing(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    proc = spawn(tmp_path / "spool", influxd.url, influx_db)
    reported = kill_after(proc, appended=4000, written=1000)
    before = influxd.count("kill", "seq", db=influx_db)
    assert before > 0  # some were delivered before the kill, the rest were still buffered
    landed = deliver_and_read(tmp_path / "spool", influxd, influx_db)
    assert len(landed) >= reported
    assert landed == list(range(len(landed)))


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2] or None)
