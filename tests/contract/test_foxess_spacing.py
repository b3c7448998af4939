"""Issue #6 §1b: the per-second spacing holds between requests as they reach the cloud.

The real app and FoxESS client backfill against the simulator (its real limit: 1 query per
second per endpoint, refused with errno 40400) on the real clock, while every request is held
back a random 0–300 ms between its budget grant and its send (a trace hook on the HTTP session,
standing in for a busy event loop or a slow connection). Before the fix the spacing was reserved
at the grant, so a late send shrank the next gap below a second and the cloud refused it.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from collector import budget as budget_mod
from collector.app import App
from collector.config import load_config
from collector.simulators.base import SimThread
from tests.contract.conftest import (
    HISTORY,
    KEY,
    ZONE,
    RecordingSim,
    config_text,
    hybrid,
    one_site,
    pv_only,
    write_config,
)

SNS = ("60H3BF0000000071", "60F3BF0000000072")
DAYS = 3


def late_sends(seed: int, real: Any = budget_mod.send_trace) -> Any:
    """`budget.send_trace` plus a random delay before each request leaves."""
    rng = random.Random(seed)

    def make() -> aiohttp.TraceConfig:
        trace: aiohttp.TraceConfig = real()

        async def on_start(_s: aiohttp.ClientSession, _ctx: SimpleNamespace, _p: Any) -> None:
            await asyncio.sleep(rng.uniform(0.0, 0.3))  # the send is late, on purpose

        trace.on_request_start.append(on_start)
        return trace

    return make


@pytest.mark.parametrize("seed", [1, 2])
def test_late_sends_never_shrink_the_gap_the_cloud_sees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(budget_mod, "send_trace", late_sends(seed))
    today = datetime.now(ZoneInfo(ZONE)).date()
    since, until = today - timedelta(days=DAYS + 1), today - timedelta(days=1)
    make = one_site([hybrid(SNS[0]), pv_only(SNS[1])], since - timedelta(days=5))
    sim = RecordingSim(make(), api_keys={KEY: None})  # the cloud's real limits
    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml", config_text(tmp_path / "state", served.url, influx=None)
        )
        app = App(load_config(cfg))
        code = asyncio.run(
            app.backfill(
                source=None,
                device=None,
                since=datetime.combine(since, datetime.min.time()),
                until=datetime.combine(until, datetime.min.time()),
            )
        )
    assert code == 0
    assert sim.violations == 0
    assert all(c.outcome == "ok" for c in sim.calls), [(c.path, c.code) for c in sim.calls]
    arrivals = [c.t for c in sim.calls_to(HISTORY)]
    assert len(arrivals) == len(SNS) * DAYS
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 1.0, gaps
