"""`solar-collector demo`: the built-in simulators, collected into the embedded store.

Needs no account and no database. It starts each vendor simulator that has a
client on loopback, builds a config whose sources point at them, runs the real
daemon (same budgets, spool and sink as always) for a short while or until
Ctrl-C, then prints what it collected per device: fields, last values, units.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from collector.app import App
from collector.config import Config, config_from_dict
from collector.log import configure, get_logger
from collector.schema.fields import field_spec
from collector.simulators import SIMULATORS
from collector.simulators import sungrow as sungrow_sim
from collector.sinks.local import LocalStore
from collector.vendors import VENDORS

log = get_logger(__name__)

#: Per vendor slug: the simulator's demo constructor and the source's credentials.
DEMO_SOURCES: dict[str, dict[str, Any]] = {
    "foxess": {"credentials": {"api_key": "demo-foxess-key"}, "timezone": "Europe/Berlin"},
    "sungrow": {
        "credentials": {
            "appkey": sungrow_sim.DEMO_APPKEY,
            "access_key": sungrow_sim.DEMO_ACCESS_KEY,
            "username": sungrow_sim.DEMO_USER,
            "password": sungrow_sim.DEMO_PASSWORD,
        },
        "timezone": "Europe/Amsterdam",
    },
}


class SimProcess:
    """A simulated cloud in a process of its own (`python -m collector.simulators SLUG`), as a
    real cloud is apart from us: it stamps a request when it arrives, whatever the daemon or
    another simulator is busy with (in one process, a simulator computing a year of history
    holds the interpreter, and another's per-second check sees squeezed gaps)."""

    def __init__(self, slug: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector.simulators", slug],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    async def url(self, timeout: float = 30.0) -> str:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError("the simulator did not start")
        return line.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def _run(seconds: float, state_dir: Path, out: TextIO) -> int:
    sims: list[SimProcess] = []
    sources = []
    for slug, extra in DEMO_SOURCES.items():
        if slug not in VENDORS or slug not in SIMULATORS:
            continue
        sim = SimProcess(slug)
        sims.append(sim)
        try:
            base_url = await sim.url()
        except BaseException:
            for started in sims:
                started.stop()
            raise
        sources.append(
            {
                "name": f"demo-{slug}",
                "vendor": slug,
                "base_url": base_url,
                "timezone": extra["timezone"],
                **extra["credentials"],
            }
        )
    if not sources:
        print("solar-collector: no vendor with a simulator in this version", file=sys.stderr)
        return 2
    config = config_from_dict({"state_dir": str(state_dir), "sources": sources, "log_level": "warning"})
    configure(config.log_level, config.log_format, config.secrets)
    app = App(config)
    print(
        f"demo: collecting from {len(sources)} simulated cloud(s) for {seconds:.0f} s "
        f"(Ctrl-C to stop early); data in {state_dir}",
        file=out,
    )
    loop = asyncio.get_running_loop()
    runner = asyncio.create_task(app.run())
    stopper = loop.call_later(seconds, app.request_stop)
    try:
        code = await runner
    finally:
        stopper.cancel()
        for sim in sims:
            sim.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    show(config, out)
    return code


def show(config: Config, out: TextIO) -> None:
    """What the embedded store holds: per measurement and device, each field's last value."""
    path = config.state_dir / "local.db"
    if not path.exists():
        print("demo: nothing collected", file=out)
        return
    store = LocalStore(path)
    try:
        # What a new user came for first: the inverters, then energy, faults, site,
        # and the collector's own health last.
        order = {"inverter": 0, "ev_charger": 1, "energy": 2, "fault": 3, "site": 4, "collector": 5}
        series = sorted(
            store.series(), key=lambda s: (order.get(s.measurement, 9), s.measurement, sorted(s.tags.items()))
        )
    finally:
        store.close()
    for s in series:
        tags = dict(s.tags)
        who = tags.get("device") or tags.get("source", "")
        extra = f" period={tags['period']}" if "period" in tags else ""
        when = dt.datetime.fromtimestamp(s.time, dt.UTC).isoformat(timespec="seconds")
        print(f"\n{s.measurement} {who}{extra}  (last data {when})", file=out)
        for name in sorted(s.fields):
            spec = field_spec(s.measurement, name)
            unit = spec.unit if spec is not None and spec.unit else ""
            value = s.fields[name]
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            print(f"  {name:<36} {text:>14} {unit}", file=out)
    print(f"\ndemo: {len(series)} series; `solar-collector export` prints them as line protocol", file=out)


def main(seconds: float, state_dir: str | None, out: TextIO = sys.stdout) -> int:
    if state_dir is not None:
        return asyncio.run(_run(seconds, Path(state_dir), out))
    # Ctrl-C is handled by the daemon itself (a graceful stop), then the summary.
    with tempfile.TemporaryDirectory(prefix="solar-collector-demo-") as tmp:
        return asyncio.run(_run(seconds, Path(tmp), out))


__all__: Sequence[str] = ["main", "show"]
