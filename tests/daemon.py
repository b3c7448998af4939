"""The daemon on the real clock: ``python -m collector run`` against a FoxESS simulator.

Used by tests/test_daemon.py through the session fixture ``real_daemon`` (tests/conftest.py),
which starts it when the first test of the session starts, so its ~2 minutes of wall time pass
while the rest of the suite runs; the test itself is moved to the end of the run.

Both processes run as subprocesses (the simulator: ``python -m tests.daemon SN``), with their
output in files, and die with the test process. The sink is the embedded local store.

The inverter's serial number is chosen when the fixture starts so that its logger's next upload
comes 40-100 s later: the daemon's first live poll then shifts the live job to just after the
uploads (``App._follow_uploads``), and the shifted job is due well inside the test's time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from collector.simulators.plant import Inverter, Plant, PvString, Site
from collector.sinks.spool import Spool
from tests.servers import _die_with_parent

ROOT = Path(__file__).resolve().parent.parent
KEY = "daemon-test-Key-3c9e1f27a4b8"
ZONE = "Europe/Berlin"
SOURCE = "fox"
UPLOAD_LAG = 20  # the FoxESS client polls this long after an expected upload
#: Where the first live poll should find the next upload (+ lag): seconds after the fixture starts.
#: 60 s wide, so that whatever `now` is, some of it lands 20 s or more off the 300-s grid
#: (a 30-s window failed for every serial ~10 s in every 300).
NEXT_UPLOAD_WINDOW = (40, 100)
START_TIMEOUT = 60.0
#: The line a "killed backfill" left in its spool; the daemon must deliver it.
ORPHAN_DEVICE = "ORPHAN0001"


def plant_for(sn: str) -> Plant:
    """A one-inverter site (PV only), commissioned 30 days ago; identical in both processes."""
    inv = Inverter(sn, "F3000", 3000, (PvString(3.3),), logger_sn=f"LOG{sn[-8:]}")
    commissioned = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=30)
    site = Site("site-daemon-1", "Daemon Site", ZONE, 52.5, 13.4, (inv,), commissioned)
    return Plant([site])


def pick_serial(now: float) -> str:
    """A serial number whose next upload + lag falls inside NEXT_UPLOAD_WINDOW after `now`.

    Its phase also sits at least 20 s off the minute grid of the 300-s live interval, so the
    first poll's `next_data_at` really moves the job (`_follow_uploads` ignores < 20 s)."""
    for i in range(1, 10000):
        sn = f"60F3000D{i:07d}"
        last = plant_for(sn).upload_time(sn, now)
        assert last is not None
        due = last + 300 + UPLOAD_LAG
        while due - 300 > now:
            due -= 300
        offset = due % 300
        if NEXT_UPLOAD_WINDOW[0] <= due - now <= NEXT_UPLOAD_WINDOW[1] and 20 <= offset <= 280:
            return sn
    raise AssertionError("no serial number fits")  # pragma: no cover - 10000 hashes


def log_events(path: Path) -> list[dict[str, Any]]:
    """The daemon's JSON log lines so far (a half-written last line is skipped)."""
    return json_lines(path.read_text(errors="replace"))


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines of a log (`log_format: json`); others are skipped."""
    out = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


def event_time(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(str(event["timestamp"])).timestamp()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): a killed `backfill`'s."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@dataclass
class RealDaemon:
    """The simulator and the daemon, started at once; the test reads their traces."""

    workdir: Path
    sn: str = ""
    started_at: float = 0.0  # wall clock, when the daemon was started
    orphan_at: float = 0.0  # wall clock, when the orphan spool was complete
    orphan_line: str = ""
    sim: subprocess.Popen[str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    returncode: int | None = None
    _files: list[TextIO] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    def events(self) -> list[dict[str, Any]]:
        return log_events(self.log_path)

    def start(self) -> None:
        self.sn = pick_serial(time.time())
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        sim_err = open(self.workdir / "sim.log", "w")  # noqa: SIM115 (handed to the child)
        self._files.append(sim_err)
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "tests.daemon", self.sn, KEY],
            stdout=subprocess.PIPE,
            stderr=sim_err,
            text=True,
            cwd=ROOT,
            env=env,
            preexec_fn=_die_with_parent,
        )
        assert self.sim.stdout is not None
        url = self.sim.stdout.readline().strip()  # the simulator prints its URL once it listens
        sim_log = (self.workdir / "sim.log").read_text
        assert url.startswith("http://"), f"the simulator did not start: {sim_log()}"
        config = self.workdir / "config.yaml"
        config.write_text(
            f"state_dir: {self.state_dir}\n"
            "log_format: json\n"
            "sources:\n"
            f"  - name: {SOURCE}\n"
            "    vendor: foxess\n"
            f"    base_url: {url}\n"
            f"    timezone: {ZONE}\n"
            f'    api_key: "{KEY}"\n'
        )
        config.chmod(0o600)
        err = open(self.log_path, "wb")  # noqa: SIM115 (handed to the child)
        try:
            self.started_at = time.time()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "collector", "run", "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=ROOT,
                env=env,
                preexec_fn=_die_with_parent,
            )
        finally:
            err.close()
        wait_until(lambda: self._has("collector.started"), START_TIMEOUT, "the daemon to start", self)
        self.leave_orphan()

    def _has(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())

    def leave_orphan(self) -> None:
        """What a `backfill` killed with lines undelivered leaves: `spool-<pid>` of a dead pid."""
        pid = dead_pid()
        stamp = int(time.time()) // 60 * 60 - 3600
        self.orphan_line = (
            f"inverter,device={ORPHAN_DEVICE},site=orphan,source=orphan,vendor=foxess "
            f"pv_power_w=1234.5 {stamp}"
        )
        with Spool(self.state_dir / f"spool-{pid}", 1 << 20) as spool:
            spool.append([self.orphan_line])
        self.orphan_at = time.time()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, then wait (graceful stop: flush, exit 0); the simulator after it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.returncode = self.proc.returncode
        if self.sim is not None and self.sim.poll() is None:
            self.sim.send_signal(signal.SIGTERM)
            try:
                self.sim.wait(30)
            except subprocess.TimeoutExpired:
                self.sim.kill()
                self.sim.wait()
        if self.sim is not None and self.sim.stdout is not None:
            self.sim.stdout.close()
        for f in self._files:
            f.close()
        self._files.clear()
        return self.returncode


def wait_until(pred: Callable[[], bool], timeout: float, what: str, daemon: RealDaemon | None = None) -> None:
    """Poll `pred` until true, or fail after `timeout` s (a dead daemon fails at once)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if daemon is not None and daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({daemon.proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)  # polling interval


def started(workdir: Path) -> Iterator[RealDaemon]:
    """The fixture's body: start, hand over, stop."""
    daemon = RealDaemon(workdir)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


async def _serve(sn: str, key: str) -> None:
    from collector.simulators.base import serve_forever
    from collector.simulators.foxess import FoxessSim

    sim = FoxessSim(plant_for(sn), api_keys={key: None})
    await serve_forever(sim, 0, announce=lambda url: print(url, flush=True))


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2]))
