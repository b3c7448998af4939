"""One job's runs under a fake clock: back-off after failures, recovery, partial results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector.app import App
from collector.clock import FakeClock
from collector.config import config_from_dict
from collector.errors import VendorRateLimitError, VendorTransientError
from collector.schema.point import Point
from collector.vendors.base import Device, PollResult


class FlakyClient:
    """Fails its first `fail` polls, then succeeds; can return partial data with an error."""

    fail = 3
    partial = False

    def __init__(self, source: Any, http: Any, budget: Any, state: Any, *, clock: Any = None) -> None:
        self.source, self.budget = source, budget
        self.attempts = 0

    async def open(self) -> None:
        return None

    async def discover(self) -> Sequence[Device]:
        return [Device("D1", "site")]

    async def poll(self, stream: str, devices: Sequence[Device]) -> PollResult:
        if stream != "live":
            return PollResult()
        self.attempts += 1
        await self.budget.acquire(endpoint="/real", devices=["D1"])
        tags = {"vendor": "foxess", "source": "s", "site": "site", "device": "D1"}
        point = Point("inverter", tags, {"pv_power_w": float(self.attempts)}, 1_700_000_000 + self.attempts)
        if self.partial:
            return PollResult([point], {"D1": point.time}, error=VendorRateLimitError("40400", code=40400))
        if self.attempts <= self.fail:
            raise VendorTransientError("cloud down", code=500)
        return PollResult([point], {"D1": point.time})

    async def close(self) -> None:
        return None


def make_app(tmp_path: Path, clock: FakeClock) -> App:
    config = config_from_dict(
        {"state_dir": str(tmp_path), "sources": [{"name": "s", "vendor": "foxess", "api_key": "k"}]}
    )
    return App(config, clock=clock, vendors={"foxess": FlakyClient})  # type: ignore[dict-item]


def test_a_source_recovers_after_failures_and_skipped_runs_are_not_failures(tmp_path: Path) -> None:
    clock = FakeClock()

    async def go() -> list[bool]:
        app = make_app(tmp_path, clock)
        await app.start()
        rt = app.sources[0]
        outcomes = []
        try:
            for _ in range(12):  # every 5 minutes, as the scheduler would
                outcomes.append(await app.poll(rt, "live"))
                clock.advance(300)
        finally:
            await app.close()
        assert isinstance(rt.client, FlakyClient)
        assert rt.client.attempts <= 8  # back-off skipped some runs
        return outcomes

    outcomes = asyncio.run(go())
    # three failures, skipped runs in between, then it polls again and stays up
    assert outcomes[-4:] == [True, True, True, True]


def test_partial_data_is_delivered_before_the_error_is_handled(tmp_path: Path) -> None:
    clock = FakeClock()
    FlakyClient.partial = True
    try:

        async def go() -> None:
            app = make_app(tmp_path, clock)
            await app.start()
            rt = app.sources[0]
            try:
                assert await app.poll(rt, "live") is False  # the error still counts
                assert app.spool is not None and app.forwarder is not None
                assert app.spool.pending + app.forwarder.written == 1  # the point is durable (or sent)
                assert app.state is not None
                assert app.state.last_seen("s", "live") == {"D1": 1_700_000_001}
                assert rt.budget.account.paused_until() is not None  # and the 40400 paused the account
                assert rt.failures.get("live", 0) == 0  # data came: no back-off
            finally:
                await app.close()

        asyncio.run(go())
    finally:
        FlakyClient.partial = False
