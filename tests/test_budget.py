"""Budgets under a fake clock: no limit ever exceeded, across restarts, live before backfill."""

from __future__ import annotations

import asyncio
import contextlib
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
    acct = BudgetBook(state, clock).account(FOX, CREDS, limits)
    assert len(acct.calls_against("SN1")) == 1440
    assert_within(acct.calls_against("SN1"), limits)


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
    every = acct.calls_against("SN1")
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
    # each: its own call, the account-level list call (it counts against every inverter)
    # and half of the 100
    assert per_device == {"A": 52, "B": 52}


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


def test_calls_before_discovery_count_against_the_inverters_found_later(tmp_path: Path) -> None:
    """Issue #6 §1: the plant and device lists come before any inverter is known; they are
    in the pool that the first live poll is checked against, in this process and the next."""
    clock = FakeClock()
    limits = Limits(per_second=1, per_day=10)

    async def spend(devices: list[str]) -> int:
        state = State(tmp_path)
        acct = BudgetBook(state, clock).account(FOX, CREDS, limits)
        done = 0
        for _ in range(20):
            try:
                await acct.acquire(endpoint="/real", devices=devices, max_wait=5)
                done += 1
            except BudgetExhaustedError:
                break
        state.close()
        return done

    async def discover() -> None:
        state = State(tmp_path)
        acct = BudgetBook(state, clock).account(FOX, CREDS, limits)
        await acct.acquire(endpoint="/plant/list")  # no inverter known yet
        await acct.acquire(endpoint="/device/list")
        state.close()

    asyncio.run(discover())
    assert asyncio.run(spend(["A"])) == 8  # 10 a day: 2 were the lists
    clock.advance(3600)  # a restart later, a second inverter appears
    assert asyncio.run(spend(["B"])) == 8  # the lists count against B as well
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(FOX, CREDS, limits)
    for sn in ("A", "B"):
        assert len(acct.calls_against(sn)) == 10
        assert_within(acct.calls_against(sn), Limits(per_day=10))  # per second: per endpoint


def test_a_discovery_in_another_process_counts_for_this_ones_inverters(tmp_path: Path) -> None:
    """The daemon's inverters feel the lists a `backfill` beside it asked for (one state)."""
    import subprocess
    import sys

    clock = FakeClock(start=__import__("time").time())
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(FOX, CREDS, Limits(per_second=1, per_day=10))

    async def first() -> None:
        await acct.acquire(endpoint="/real", devices=["A"])

    asyncio.run(first())  # A is known to this process's budget
    script = f"""
import asyncio
import contextlib
from pathlib import Path
from collector.budget import BudgetBook
from collector.clock import SystemClock
from collector.state import State
from collector.vendors import VENDOR_SPECS
from collector.vendors.base import Limits

async def main():
    acct = BudgetBook(State(Path({str(tmp_path)!r})), SystemClock()).account(
        VENDOR_SPECS["foxess"], {CREDS!r}, Limits(per_second=1, per_day=10))
    for _ in range(4):
        await acct.acquire(endpoint="/device/list")

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

    async def rest() -> int:
        done = 0
        for _ in range(10):
            try:
                await acct.acquire(endpoint="/real", devices=["A"], max_wait=5)
                done += 1
            except BudgetExhaustedError:
                break
        return done

    assert asyncio.run(rest()) == 5  # 10 − 1 own − 4 lists made by the other process


def test_a_batched_call_is_one_row_in_the_state(tmp_path: Path) -> None:
    """A 50-inverter call is stored once, not once per inverter (issue #6 §6)."""
    import sqlite3

    clock = FakeClock()
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(FOX, CREDS, Limits(per_second=1, per_day=1440))
    sns = [f"SN{i:02d}" for i in range(50)]

    async def go() -> None:
        for _ in range(3):
            await acct.acquire(endpoint="/real", devices=sns)

    asyncio.run(go())
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("SELECT count(*) FROM budget_calls").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM call_groups").fetchone()[0] == 1
    assert {k.rsplit("/", 1)[1]: v["per_day"][0] for k, v in acct.usage().items()} == dict.fromkeys(sns, 3)


def test_state_of_the_previous_release_keeps_its_counts(tmp_path: Path) -> None:
    """A state.db written by 0.1 (a `calls` row per counter) is taken over on start."""
    import sqlite3

    clock = FakeClock()
    key = budget_mod.account_key("foxess", CREDS)
    db = sqlite3.connect(tmp_path / "state.db")
    db.executescript(
        "CREATE TABLE calls (id INTEGER PRIMARY KEY AUTOINCREMENT, counter TEXT NOT NULL,"
        " ts REAL NOT NULL, priority INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE slots (slot TEXT PRIMARY KEY, last REAL NOT NULL);"
    )
    now = clock.time()
    rows = [(f"{key}/A", now - 60, 0)] * 5 + [(key, now - 50, 0), (f"{key}/A", now - 50, 2)]
    rows += [(f"{key}/A", now - 2 * 86400, 0)]  # older than a day: not taken over
    db.executemany("INSERT INTO calls(counter, ts, priority) VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()
    state = State(tmp_path, clock)
    acct = BudgetBook(state, clock).account(FOX, CREDS, Limits(per_second=1, per_day=1440))
    # 5 own calls + the account-level one (its copy, priority 2, is not counted twice)
    assert acct.usage()[f"{key}/A"]["per_day"][0] == 6
    # and the file was rebuilt without the old log, in small pages (fewer bytes per commit)
    check = sqlite3.connect(tmp_path / "state.db")
    assert check.execute("PRAGMA page_size").fetchone()[0] == 1024
    assert check.execute("SELECT count(*) FROM sqlite_master WHERE name = 'calls'").fetchone()[0] == 0


def test_a_late_send_pushes_the_next_call_back(tmp_path: Path) -> None:
    """Issue #6 §1b: the spacing holds between calls as they leave, not as they were granted.
    Each call's request leaves a random 0–400 ms after its slot was granted (a busy event
    loop, a slow connection); the next call on the endpoint waits for that send."""
    import random

    clock = FakeClock()
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(FOX, CREDS, Limits(per_second=1, per_day=1440))
    sent: list[float] = []
    rng = random.Random(6)

    async def caller() -> None:
        for _ in range(10):
            async with acct.call(endpoint="/history", devices=["A"]) as ticket:
                await clock.sleep(rng.uniform(0.0, 0.4))  # the request leaves late
                ticket.sent()
                sent.append(clock.time())
                await clock.sleep(0.2)  # waiting for the answer does not hold the slot

    async def go() -> None:
        await asyncio.gather(caller(), caller(), caller())

    asyncio.run(go())
    sent.sort()
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert len(sent) == 30
    assert min(gaps) >= 1.05 - 1e-6, gaps  # the margin holds between the sends
    assert max(gaps) < 1.05 + 0.41  # and the slot is not left idle either


def test_a_call_that_never_left_counts_as_sent_when_it_ends(tmp_path: Path) -> None:
    clock = FakeClock()
    acct = BudgetBook(State(tmp_path), clock).account(FOX, CREDS, Limits(per_second=1, per_day=1440))
    times: list[float] = []

    async def go() -> None:
        with contextlib.suppress(OSError):
            async with acct.call(endpoint="/real", devices=["A"]):
                await clock.sleep(0.5)
                raise OSError("connection refused")  # no `sent()`
        times.append(clock.time())
        async with acct.call(endpoint="/real", devices=["A"]) as ticket:
            ticket.sent()
            times.append(clock.time())

    asyncio.run(go())
    assert times[1] - times[0] >= 1.05 - 1e-6


def test_processes_wait_for_each_others_sends(tmp_path: Path) -> None:
    """The daemon and a `backfill` beside it on one endpoint: each call's request leaves
    up to 300 ms after its grant, and still no two sends are closer than the spacing."""
    import subprocess
    import sys

    script = f"""
import asyncio, random, time
from pathlib import Path
from collector.budget import BudgetBook
from collector.clock import SystemClock
from collector.state import State
from collector.vendors import VENDOR_SPECS
from collector.vendors.base import Limits

async def main():
    acct = BudgetBook(State(Path({str(tmp_path)!r})), SystemClock()).account(
        VENDOR_SPECS["foxess"], {CREDS!r}, Limits(per_second=2, per_day=1440))
    for _ in range(4):
        async with acct.call(endpoint="/history", devices=["A"]) as ticket:
            await asyncio.sleep(random.uniform(0.0, 0.3))
            ticket.sent()
            print(time.time(), flush=True)

asyncio.run(main())
"""
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    sent = sorted(float(line) for p in procs for line in p.communicate(timeout=60)[0].split())
    assert len(sent) == 8
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 1.05 / 2 - 0.005, gaps  # 2/s with the 5 % margin (ms of clock reads)


SUNGROW = VENDOR_SPECS["sungrow"]
SG_CREDS = {"appkey": "a", "access_key": "x", "username": "u", "password": "p"}


def test_a_vendor_grant_replaces_the_defaults_within_the_configs_limits(tmp_path: Path) -> None:
    """Sungrow's getOpenApiCallInfo grant sets the hour and day; a limit the config set
    is never loosened by it; and a restart starts from the last grant, not the defaults."""
    clock = FakeClock()
    state = State(tmp_path)
    book = BudgetBook(state, clock)
    configured = Limits(per_second=5, per_hour=1500, per_day=48000)  # the config set per_hour
    acct = book.account(SUNGROW, SG_CREDS, configured, ("per_hour",))
    assert acct.grant(Limits(per_hour=14400, per_day=345600))
    assert acct.limits == Limits(per_second=5, per_hour=1500, per_day=345600)
    assert acct.grant(Limits(per_hour=1000, per_day=24000))  # a smaller grant wins over the config
    assert acct.limits == Limits(per_second=5, per_hour=1000, per_day=24000)
    assert not acct.grant(Limits(per_hour=1000, per_day=24000))  # unchanged
    state.close()

    state = State(tmp_path)
    again = BudgetBook(state, clock).account(SUNGROW, SG_CREDS, SUNGROW.default_limits)
    assert again.limits == Limits(per_second=5, per_hour=1000, per_day=24000)
    state.close()

    # A stored grant above what a config now sets: the config's limit holds from the start.
    state = State(tmp_path)
    state.put(f"budget:{again.key}:granted", '{"per_hour": 9000}')
    tight = BudgetBook(state, clock).account(SUNGROW, SG_CREDS, Limits(per_hour=100), ("per_hour",))
    assert tight.limits.per_hour == 100
    state.close()


def test_a_grant_is_what_the_budget_then_enforces(tmp_path: Path) -> None:
    clock = FakeClock()
    state = State(tmp_path)
    acct = BudgetBook(state, clock).account(SUNGROW, SG_CREDS, SUNGROW.default_limits)
    acct.grant(Limits(per_hour=20, per_day=100))
    made: list[float] = []

    async def greedy() -> None:
        end = clock.time() + 3 * 3600
        while clock.time() < end:
            try:
                await acct.acquire(endpoint="/openapi/getDeviceRealTimeData")
                made.append(clock.time())
            except BudgetExhaustedError as err:
                await clock.sleep((err.retry_at or clock.time() + 60) - clock.time())

    asyncio.run(greedy())
    assert_within(made, Limits(per_second=5, per_hour=20, per_day=100))
    assert len(made) >= 55  # it did use the grant: 20 an hour for 3 hours
    state.close()
