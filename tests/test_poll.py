"""One job's runs under a fake clock: back-off after failures, recovery, partial results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from collector.app import App
from collector.clock import FakeClock
from collector.config import config_from_dict
from collector.errors import VendorRateLimitError, VendorResponseError, VendorTransientError
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


class HistoryClient(FlakyClient):
    """History for two devices: X's model has none (the vendor refuses), Y's has."""

    history_window = 86400.0
    history_calls: ClassVar[list[str]] = []

    async def discover(self) -> Sequence[Device]:
        return [Device("X", "site"), Device("Y", "site")]

    async def history(self, device: Device, start: int, end: int) -> PollResult:
        await self.budget.acquire(endpoint="/history", devices=[device.sn])
        HistoryClient.history_calls.append(device.sn)
        if device.sn == "X":
            raise VendorResponseError("not available on this model", code=40257)
        tags = {"vendor": "foxess", "source": "s", "site": "site", "device": device.sn}
        return PollResult([Point("inverter", tags, {"pv_power_w": 1.0}, t) for t in range(start, end, 300)])


def test_a_refused_gap_does_not_block_the_others_and_is_not_asked_again(tmp_path: Path) -> None:
    clock = FakeClock()
    HistoryClient.history_calls = []
    config = config_from_dict(
        {"state_dir": str(tmp_path), "sources": [{"name": "s", "vendor": "foxess", "api_key": "k"}]}
    )

    async def go() -> None:
        app = App(config, clock=clock, vendors={"foxess": HistoryClient})  # type: ignore[dict-item]
        await app.start()
        rt = app.sources[0]
        assert app.state is not None and app.spool is not None and app.forwarder is not None
        try:
            await app._ensure_open(rt)
            start = int(clock.time()) - 3 * 86400
            app.state.add_gap("s", "X", start, start + 3600)
            app.state.add_gap("s", "Y", start, start + 3600)
            first = await app._backfill_pass(rt)
            assert first == "incomplete"  # X's window was refused
            assert HistoryClient.history_calls == ["X", "Y"]  # Y was not blocked by X
            assert app.state.gaps("s") == [("X", start, start + 3600)]  # Y's gap is filled
            assert app.spool.pending + app.forwarder.written == 12  # an hour of Y at 5 minutes
            second = await app._backfill_pass(rt)
            assert second == ""
            assert HistoryClient.history_calls == ["X", "Y"]  # the refused window is not asked again
            assert app.state.gaps("s") == []
        finally:
            await app.close()

    asyncio.run(go())


class ShortRetentionSink:
    """The app's sink, as if its server kept points for two days (RetentionSink)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name

    async def open(self, session: Any) -> None:
        await self.inner.open(session)

    async def write(self, lines: Sequence[str]) -> Any:
        return await self.inner.write(lines)

    async def close(self) -> None:
        await self.inner.close()

    async def retention(self) -> float | None:
        return 2 * 86400.0


def test_a_gap_older_than_the_sinks_retention_costs_no_call(tmp_path: Path) -> None:
    """The clamp is in the Backfiller, so the daemon's gap refill gets it too: a gap wholly
    before the retention's first day is forgotten without a vendor call; a later one is fetched."""
    clock = FakeClock()
    HistoryClient.history_calls = []
    config = config_from_dict(
        {"state_dir": str(tmp_path), "sources": [{"name": "s", "vendor": "foxess", "api_key": "k"}]}
    )

    async def go() -> None:
        app = App(config, clock=clock, vendors={"foxess": HistoryClient})  # type: ignore[dict-item]
        await app.start()
        app.sink = ShortRetentionSink(app.sink)
        rt = app.sources[0]
        assert app.state is not None
        try:
            await app._ensure_open(rt)
            old = int(clock.time()) - 5 * 86400
            recent = int(clock.time()) - 6 * 3600
            app.state.add_gap("s", "Y", old, old + 3600)
            assert await app._backfill_pass(rt) == ""
            assert HistoryClient.history_calls == []
            assert app.state.gaps("s") == []
            app.state.add_gap("s", "Y", recent, recent + 3600)
            assert await app._backfill_pass(rt) == ""
            assert HistoryClient.history_calls == ["Y"]
        finally:
            await app.close()

    asyncio.run(go())


def test_a_wider_gap_with_the_same_start_survives_removal(tmp_path: Path) -> None:
    from collector.state import State

    state = State(tmp_path)
    state.add_gap("s", "D", 100, 200)
    state.add_gap("s", "D", 100, 900)  # the outage went on
    state.remove_gap("s", "D", 100, 200)  # what a pass had fetched
    assert state.gaps("s") == [("D", 100, 900)]
