"""Budgets under a fake clock: no limit ever exceeded, across restarts, live before backfill."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest

from collector import budget as budget_mod
from collector.budget import BACKFILL, LIVE, BudgetBook
from collector.clock import FakeClock
from collector.errors import BudgetExhaustedError
from collector.state import State
from collector.vendors import VENDOR_SPECS
from collector.vendors.base import Limits

FOX = VENDOR_SPECS["foxess"]
SOLAX = VENDOR_SPECS["solax"]
CREDS = {"api_key": "k-123"}


def max_in_window(times: Sequence[float], length: float) -> int:
    """The most calls in any sliding window of `length` seconds (the vendor's view)."""
    ts = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(ts):
        while ts[j] <= t - length:
            j += 1
        best = max(best, i - j + 1)
    return best


def assert_within(times: Sequence[float], limits: Limits) -> None:
    for name, length, limit in limits.windows():
        got = max_in_window(times, length)
        assert got <= limit, f"{name}: {got} calls in a {length:.0f} s window, limit {limit}"


def calls_of(state: State, counter: str) -> list[float]:
    return [ts for _, ts, _ in state.load_calls(counter, 0)]


def test_live_loop_never_exceeds_minute_hour_day(tmp_path: Path) -> None:
    """A greedy caller for two simulated days never gets more than any window allows."""
    clock = FakeClock()
    state = State(tmp_path)
    limits = Limits(per_second=1, per_minute=9, per_hour=200, per_day=1000)
    acct = BudgetBook(state, clock).account(SOLAX, {"token_id": "t"}, limits)
    made: list[float] = []

    async def greedy() -> None:
        end = clock.time() + 2 * 86400
        while clock.time() < end:
            try:
                await acct.acquire(endpoint="/x")
                made.append(clock.time())
            except BudgetExhaustedError as err:
                await clock.sleep((err.retry_at or clock.time() + 60) - clock.time())

    asyncio.run(greedy())
    assert_within(made, limits)
    # and the budget is used, not wasted: close to the daily limit on each day
    assert len(made) >= 1900


def test_restart_keeps_the_days_count(tmp_path: Path) -> None:
    """1440/day per inverter: calls made before a restart still count after it."""
    clock = FakeClock()
    limits = Limits(per_second=1, per_day=1440)

    async def spend(n: int) -> int:
        state = State(tmp_path)
        acct = BudgetBook(state, clock).account(FOX, CREDS, limits)
        done = 0
        for _ in range(n):
            try:
                await acct.acquire(endpoint="/op/v0/device/real/query", devices=["SN1"], max_wait=5)
                done += 1
            except BudgetExhaustedError:
                break
        state.close()
        return done

    assert asyncio.run(spend(1000)) == 1000
    clock.advance(3600)  # the daemon restarts an hour later
    assert asyncio.run(spend(1000)) == 440
    state = State(tmp_path)
    key = BudgetBook(state, clock).account(FOX, CREDS, limits).key
    assert_within(calls_of(state, f"{key}/SN1"), limits)


def test_live_starves_backfill_not_the_reverse(tmp_path: Path) -> None:
    """Backfill runs flat out beside 5-minute live polls; every live poll gets its call."""
    clock = FakeClock()
    state = State(tmp_path)
    limits = Limits(per_second=1, per_day=1440)
    acct = BudgetBook(state, clock).account(FOX, CREDS, limits)
    acct.add_live_plan({86400.0: 289.0})
    live_ok: list[float] = []
    live_refused: list[float] = []
    backfill_ok: list[float] = []
    end = clock.time() + 2 * 86400

    async def live() -> None:
        budget_mod.priority.set(LIVE)
        while clock.time() < end:
            try:
                await acct.acquire(endpoint="/op/v1/device/real/query", devices=["SN1"])
                live_ok.append(clock.time())
            except BudgetExhaustedError:
                live_refused.append(clock.time())
            await clock.sleep(300)

    async def backfill() -> None:
        budget_mod.priority.set(BACKFILL)
        while clock.time() < end:
            try:
                await acct.acquire(endpoint="/op/v0/device/history/query", devices=["SN1"])
                backfill_ok.append(clock.time())
            except BudgetExhaustedError as err:
                await clock.sleep(max(1.0, (err.retry_at or clock.time() + 600) - clock.time()))

    async def both() -> None:
        await asyncio.gather(live(), backfill())

    asyncio.run(both())
    assert live_refused == []
    assert len(live_ok) >= 575
    assert backfill_ok, "backfill got none of the spare budget"
    every = calls_of(state, f"{acct.key}/SN1")
    assert_within(every, Limits(per_day=1440))
    # FoxESS counts the per-second limit per endpoint
    assert_within(live_ok, limits)
    assert_within(backfill_ok, limits)
    # backfill used the spare budget: it and live together come close to the limit
    assert max_in_window(every, 86400) >= 1440 - 100


def test_one_batched_call_counts_against_each_inverter(tmp_path: Path) -> None:
    clock = FakeClock()
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(FOX, CREDS, Limits(per_second=1, per_day=1440))

    async def go() -> None:
        await acct.acquire(endpoint="/op/v1/device/real/query", devices=["A", "B", "C"])

    asyncio.run(go())
    usage = acct.usage()
    assert {k.rsplit("/", 1)[1]: v["per_day"][0] for k, v in usage.items()} == {"A": 1, "B": 1, "C": 1}


def test_per_second_limit_is_per_endpoint_for_foxess(tmp_path: Path) -> None:
    clock = FakeClock()
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(FOX, CREDS, Limits(per_second=1, per_day=1440))
    stamps: dict[str, list[float]] = {"/a": [], "/b": []}

    async def caller(ep: str) -> None:
        for _ in range(5):
            await acct.acquire(endpoint=ep, devices=["SN"])
            stamps[ep].append(clock.time())

    async def go() -> None:
        await asyncio.gather(caller("/a"), caller("/b"))

    asyncio.run(go())
    for ep, times in stamps.items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 1.0, ep
    # the two endpoints did not wait for each other
    assert stamps["/a"][-1] - stamps["/a"][0] < 6


def test_two_sources_with_one_credential_share_a_budget(tmp_path: Path) -> None:
    clock = FakeClock()
    book = BudgetBook(State(tmp_path), clock)
    a = book.account(SOLAX, {"token_id": "same"}, Limits(per_minute=9))
    b = book.account(SOLAX, {"token_id": "same"}, Limits(per_minute=5))
    c = book.account(SOLAX, {"token_id": "other"}, Limits(per_minute=9))
    assert a is b and a is not c
    assert a.limits.per_minute == 5  # the stricter of the two wins


def test_vendor_rate_limit_pauses_the_account_across_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(SOLAX, {"token_id": "t"}, Limits(per_minute=9))
    acct.pause(clock.time() + 3600, "code 2003: too many calls")
    state.close()

    state2 = State(tmp_path)
    acct2 = BudgetBook(state2, clock).account(SOLAX, {"token_id": "t"}, Limits(per_minute=9))

    async def go() -> None:
        await acct2.acquire()

    with pytest.raises(BudgetExhaustedError) as info:
        asyncio.run(go())
    assert info.value.retry_at == pytest.approx(clock.time() + 3600)
    clock.advance(3601)
    asyncio.run(go())


def test_the_account_key_does_not_contain_the_secret() -> None:
    key = budget_mod.account_key("foxess", {"api_key": "super-secret-value"})
    assert "super-secret-value" not in key and key.startswith("foxess:")


def test_two_processes_on_one_state_dir_share_the_limit(tmp_path: Path) -> None:
    """The daemon and a `backfill` command running at once still never exceed a limit."""
    import subprocess
    import sys

    script = f"""
import asyncio, sys
from pathlib import Path
from collector.budget import BudgetBook
from collector.clock import SystemClock
from collector.errors import BudgetExhaustedError
from collector.state import State
from collector.vendors import VENDOR_SPECS
from collector.vendors.base import Limits

async def main():
    acct = BudgetBook(State(Path({str(tmp_path)!r})), SystemClock()).account(
        VENDOR_SPECS["solax"], {{"token_id": "t"}}, Limits(per_minute=7))
    got = 0
    for _ in range(40):
        try:
            await acct.acquire(max_wait=0)
            got += 1
        except BudgetExhaustedError:
            pass
    print(got)

asyncio.run(main())
"""
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]
    got = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert sum(got) == 7, got


def test_the_vendors_own_count_is_taken_in_when_it_is_higher(tmp_path: Path) -> None:
    """FoxESS getAccessCount: calls the vendor saw that we did not make count against us."""
    clock = FakeClock()
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(FOX, CREDS, Limits(per_second=1, per_day=1440))

    async def calls() -> None:
        await acct.acquire(endpoint="/list")  # an account-level call
        await acct.acquire(endpoint="/real", devices=["A", "B"])  # counts once on each inverter

    asyncio.run(calls())
    assert acct.sync_remaining(remaining=2880 - 3, total=2880) == 0  # we agree: 3 calls
    assert acct.sync_remaining(remaining=2880 - 103, total=2880) == 100  # someone else made 100
    per_device = {k.rsplit("/", 1)[-1]: v["per_day"][0] for k, v in acct.usage().items() if "/" in k}
    assert per_device == {"A": 51, "B": 51}


def test_account_level_calls_count_against_every_inverter(tmp_path: Path) -> None:
    """The vendor's pool is the inverters' limits added up: a device-list call takes from it."""
    clock = FakeClock()
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(FOX, CREDS, Limits(per_second=1, per_day=10))

    async def go() -> list[str]:
        await acct.acquire(endpoint="/real", devices=["A"])
        for _ in range(9):
            await acct.acquire(endpoint="/list")  # account-level
        try:
            await acct.acquire(endpoint="/real", devices=["A"], max_wait=60)
        except BudgetExhaustedError:
            return ["refused"]
        return ["allowed"]

    assert asyncio.run(go()) == ["refused"]  # A's 10/day is used: 1 own call + 9 account calls
    # and the vendor-count sync sees 10 calls, not 19
    assert acct.sync_remaining(remaining=0, total=10) == 0


def test_a_clock_stepped_back_does_not_block_the_slot(tmp_path: Path) -> None:
    clock = FakeClock()
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(FOX, CREDS, Limits(per_second=1, per_day=1440))

    async def go() -> None:
        await acct.acquire(endpoint="/real", devices=["A"])
        clock.now -= 600  # NTP steps the wall clock back ten minutes
        await acct.acquire(endpoint="/real", devices=["A"], max_wait=5)

    asyncio.run(go())


def test_a_nonsense_vendor_count_is_bounded(tmp_path: Path) -> None:
    clock = FakeClock()
    acct = BudgetBook(State(tmp_path), clock).account(FOX, CREDS, Limits(per_second=1, per_day=1440))
    assert acct.sync_remaining(remaining=5, total=3) == 0  # not a count
    assert acct.sync_remaining(remaining=0, total=99_999_999_999) == 1440  # at most a full day
