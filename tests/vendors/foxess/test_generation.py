"""`/op/v0/device/generation` has no data time: its answer is kept pending by the energy run
and stamped by the next live poll (rules (a), (b), (c) of `collector.vendors.foxess.generation`).

The fake cloud here keeps a truth: each inverter uploads every 300 s at data times
`T + k·300`, each upload reaching the cloud `ARRIVE` s after its data time; real-time
answers and generation answers both reflect the newest upload the cloud has at the moment
of the request. A generation value written at time t must be the value of the upload t.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from collector.vendors.base import PollResult
from collector.vendors.foxess.client import (
    ACCESS_COUNT_PATH,
    GENERATION_GUARD,
    GENERATION_PATH,
    REAL_PATH,
    REPORT_PATH,
    UPLOAD_LAG,
    UPLOAD_PERIOD,
)
from collector.vendors.foxess.generation import PendingGeneration, resolve, window_wait
from tests.vendors.foxess.fakecloud import FakeFox, Req, ok
from tests.vendors.foxess.test_client import Env, access_ok, dev, land, real_reply, report_reply, run

T = 1715429700  # 2024-05-11 13:15 BST, an upload's data time (a multiple of 300)
ARRIVE = 5  # an upload reaches the cloud this long after its data time (< UPLOAD_LAG)
TODAY, TOTAL = "yield_energy_today_wh", "yield_energy_total_wh"


def key(name: str) -> str:
    return f"foxess:home:{name}"


# -- the rule, pure ------------------------------------------------------------------------------


def pend(called_at: float, ts_prev: int = T, answered_at: float | None = None) -> PendingGeneration:
    return PendingGeneration(
        called_at, called_at if answered_at is None else answered_at, ts_prev, {TODAY: 1.0}
    )


@pytest.mark.parametrize(
    ("pending", "ts_new", "expected"),
    [
        (pend(T + 100), T, ("wait", None)),  # no new upload yet
        (pend(T + 100), T - 300, ("wait", None)),
        (pend(T + 330), T + 300, ("stamp", T + 300)),  # (a): T+300 had arrived, still the newest
        (pend(T + 1000), T + 900, ("stamp", T + 900)),  # (a), after an outage too
        (pend(T + 100), T + 300, ("stamp", T)),  # (b): the next upload came after the call
        # (b): its data time is after the answer
        (pend(T + 290, answered_at=T + 299), T + 300, ("stamp", T)),
        # (c): it may have come during the call
        (pend(T + 290, answered_at=T + 301), T + 300, ("drop", None)),
        (pend(T + 310), T + 300, ("drop", None)),  # (c): within the lag window after the upload
        (pend(T + 100), T + 900, ("drop", None)),  # (c): uploads missed in between (outage)
    ],
)
def test_the_rule(pending: PendingGeneration, ts_new: int, expected: tuple[str, int | None]) -> None:
    assert resolve(pending, ts_new, period=UPLOAD_PERIOD, lag=UPLOAD_LAG) == expected


@pytest.mark.parametrize(
    ("now", "wait"),
    [
        (T + 10, 0.0),  # T itself is seen already: no window
        (T + 294, 0.0),
        (T + 295, 25.0),  # the call could last past the upload at T+300
        (T + 300, 20.0),
        (T + 319, 1.0),  # T+300 may not have reached the cloud yet
        (T + 320, 0.0),
        (T + 899, 21.0),  # a later upload, the same phase
    ],
)
def test_the_window_around_an_expected_upload(now: float, wait: float) -> None:
    got = window_wait(now, T, period=UPLOAD_PERIOD, lag=UPLOAD_LAG, guard=GENERATION_GUARD)
    assert got == pytest.approx(wait)


@pytest.mark.parametrize(
    "text", [None, "", "{not json", '{"called_at": 1}', '{"called_at": 1, "ts_prev": 2}']
)
def test_an_unreadable_record_is_none(text: str | None) -> None:
    assert PendingGeneration.from_json(text) is None


def test_a_record_round_trips() -> None:
    p = PendingGeneration(T + 1.5, T + 2.5, T, {TODAY: 17700.0, TOTAL: 5765700.0})
    assert PendingGeneration.from_json(p.to_json()) == p


# -- against a fake cloud with a truth ------------------------------------------------------------


class Cloud:
    """Uploads every 300 s at data times T + phase + k·300 (none while a device is down);
    the cloud's answers reflect the newest upload that has arrived by the request."""

    def __init__(
        self,
        down: tuple[int, int] | None = None,
        call_takes: float = 0.0,
        phase: dict[str, int] | None = None,
    ) -> None:
        self.fake = FakeFox()
        self.env: Env | None = None
        self.phase = phase or {}
        self.down = down  # (from, to): no upload with a data time in [from, to)
        self.call_takes = call_takes  # a generation answer comes this long after the request
        self.generation_calls: list[tuple[str, float]] = []  # (sn, clock time)
        self.fake.on(REPORT_PATH, report_reply)
        self.fake.on(ACCESS_COUNT_PATH, access_ok)
        self.fake.on(REAL_PATH, self._real)
        self.fake.on(GENERATION_PATH, self._generation)

    def now(self) -> float:
        assert self.env is not None
        return self.env.clock.time()

    def newest(self, sn: str, t: float) -> int:
        first = T + self.phase.get(sn, 0)
        d = first + int((t - ARRIVE - first) // UPLOAD_PERIOD) * int(UPLOAD_PERIOD)
        while self.down and self.down[0] <= d < self.down[1]:
            d -= int(UPLOAD_PERIOD)
        return d

    @staticmethod
    def value(data_time: int) -> tuple[float, float]:
        """today / lifetime yield (kWh) of the upload at `data_time`: a new value each upload."""
        k = (data_time - T) // int(UPLOAD_PERIOD)
        return 10.0 + 0.5 * k, 5000.0 + 0.5 * k

    def _real(self, req: Req) -> Any:
        return real_reply({sn: self.newest(sn, self.now()) for sn in req.body["sns"]})(req)

    def _generation(self, req: Req) -> Any:
        self.generation_calls.append((req.query["sn"], self.now()))
        today, total = self.value(self.newest(req.query["sn"], self.now()))
        assert self.env is not None
        self.env.clock.now += self.call_takes  # the answer was read at the request's time
        return ok({"today": today, "month": 300.0, "cumulative": total})

    def check(self, result: PollResult) -> list[int]:
        """Every generation value written is the truth's at its timestamp; their times."""
        times = []
        for p in result.points:
            if p.measurement == "inverter" and TODAY in p.fields:
                today, total = self.value(p.time)
                assert dict(p.fields) == {TODAY: today * 1000, TOTAL: total * 1000}, p
                times.append(p.time)
        return times


def drive(tmp_path: Path, cloud: Cloud, body: Callable[[Env], Awaitable[None]]) -> None:
    async def wrapped(env: Env) -> None:
        env.state.put(key("access_checked"), "1")  # no hourly access count in these runs
        cloud.env = env
        await body(env)

    run(tmp_path, cloud.fake, wrapped, start=T + ARRIVE + 15)


async def at(env: Env, t: float, stream: str, sns: list[str]) -> PollResult:
    """Run a stream at clock time `t` (or now, if later) and land it as the app would."""
    env.clock.now = max(env.clock.now, t)
    result = await env.client().poll(stream, [dev(sn) for sn in sns])
    assert result.error is None
    land(env, result, stream)
    return result


def generation_points(result: PollResult) -> list[int]:
    return [p.time for p in result.points if p.measurement == "inverter" and TODAY in p.fields]


def test_b_the_next_upload_came_after_the_call_so_it_reflected_the_cursor(tmp_path: Path) -> None:
    cloud = Cloud()

    async def body(env: Env) -> None:
        await at(env, T + 20, "live", ["SN1"])  # cursor: T
        energy = await at(env, T + 100, "energy", ["SN1"])
        assert generation_points(energy) == [] and env.state.get(key("generation-pending:SN1"))
        live = await at(env, T + 320, "live", ["SN1"])  # sees T+300
        assert cloud.check(live) == [T]
        assert env.state.get(key("generation-pending:SN1")) == ""  # cleared
        assert env.state.get(key("generation:SN1")) == str(T)
        # The live cursor is T+300 now, a newer upload: the next energy run asks again.
        await at(env, T + 400, "energy", ["SN1"])
        assert len(cloud.generation_calls) == 2

    drive(tmp_path, cloud, body)


def test_a_the_newest_upload_had_arrived_before_the_call(tmp_path: Path) -> None:
    cloud = Cloud()

    async def body(env: Env) -> None:
        await at(env, T + 20, "live", ["SN1"])  # cursor: T
        # The energy run reaches the device late: the cloud has had T+300 since T+305.
        energy = await at(env, T + 400, "energy", ["SN1"])
        assert generation_points(energy) == []
        assert json.loads(env.state.get(key("generation-pending:SN1")) or "")["ts_prev"] == T
        live = await at(env, T + 420, "live", ["SN1"])  # sees T+300, still the newest
        assert cloud.check(live) == [T + 300]
        # The live point of T+300 is in the same run: the same series and time, fields merge.
        [gen] = [p for p in live.points if TODAY in p.fields]
        [snap] = [p for p in live.points if TODAY not in p.fields]
        assert (snap.measurement, snap.tags, snap.time) == (gen.measurement, gen.tags, gen.time)
        assert env.state.get(key("generation:SN1")) == str(T + 300)
        # It reflected T+300, the live cursor: not asked again for that upload.
        await at(env, T + 500, "energy", ["SN1"])
        assert len(cloud.generation_calls) == 1

    drive(tmp_path, cloud, body)


def test_c_a_call_that_straddles_an_upload_is_dropped_and_counted(tmp_path: Path) -> None:
    # Made 10 s before the upload at T+300 (outside its window), answered 12 s later: the
    # cloud may have read T or T+300, the live poll cannot tell which.
    cloud = Cloud(call_takes=12)

    async def body(env: Env) -> None:
        await at(env, T + 20, "live", ["SN1"])
        await at(env, T + 288, "energy", ["SN1"])
        [(_, called)] = cloud.generation_calls
        assert T + 300 - 15 < called < T + 300 - GENERATION_GUARD
        live = await at(env, T + 320, "live", ["SN1"])  # sees T+300
        assert [p.time for p in live.points] == [T + 300]  # the live point only
        assert live.skipped_values == 2  # today and total
        assert env.state.get(key("generation-pending:SN1")) == ""
        # The generation cursor stays at T, the live cursor is T+300: asked again.
        await at(env, T + 400, "energy", ["SN1"])
        assert len(cloud.generation_calls) == 2
        live = await at(env, T + 620, "live", ["SN1"])
        assert cloud.check(live) == [T + 300]

    drive(tmp_path, cloud, body)


def test_no_call_is_made_within_an_upload_window(tmp_path: Path) -> None:
    # The run reaches SN1 5 s after its upload at T+300 (which may not be in the cloud
    # yet): its generation call waits until the window has passed, after SN2's reports.
    cloud = Cloud(phase={"SN2": 150})  # SN2 uploads at T-150, T+150, ...

    async def body(env: Env) -> None:
        await at(env, T + 20, "live", ["SN1", "SN2"])
        await at(env, T + 303, "energy", ["SN1", "SN2"])
        calls = dict(cloud.generation_calls)
        assert list(calls) == ["SN2", "SN1"]
        assert calls["SN1"] >= T + 300 + UPLOAD_LAG
        live = await at(env, T + 330, "live", ["SN1", "SN2"])
        assert sorted(cloud.check(live)) == [T + 150, T + 300]  # (a) for both
        assert live.skipped_values == 0

    drive(tmp_path, cloud, body)


def test_c_an_outage_between_call_and_live_poll_is_dropped(tmp_path: Path) -> None:
    cloud = Cloud(down=(T + 300, T + 900))

    async def body(env: Env) -> None:
        await at(env, T + 20, "live", ["SN1"])
        await at(env, T + 100, "energy", ["SN1"])
        live = await at(env, T + 920, "live", ["SN1"])  # the next upload the cloud has: T+900
        assert [p.time for p in live.points] == [T + 900]  # the live point only
        assert live.skipped_values == 2
        assert env.state.get(key("generation-pending:SN1")) == ""

    drive(tmp_path, cloud, body)


def test_still_pending_while_no_new_upload_has_come(tmp_path: Path) -> None:
    cloud = Cloud()

    async def body(env: Env) -> None:
        await at(env, T + 20, "live", ["SN1"])
        await at(env, T + 100, "energy", ["SN1"])
        record = env.state.get(key("generation-pending:SN1"))
        live = await at(env, T + 200, "live", ["SN1"])  # still T
        assert live.points == [] and live.state_updates == {} and live.skipped_values == 0
        assert env.state.get(key("generation-pending:SN1")) == record
        # Another energy run meanwhile: the same upload, and one answer already waits.
        await at(env, T + 250, "energy", ["SN1"])
        assert len(cloud.generation_calls) == 1
        # Even when the live cursor has moved on (a live run landed without settling it,
        # e.g. one that started before the record was stored): one answer at a time.
        env.state.set_last_seen("home", "live", {"SN1": T + 300})
        await at(env, T + 330, "energy", ["SN1"])
        assert len(cloud.generation_calls) == 1
        live = await at(env, T + 340, "live", ["SN1"])
        assert cloud.check(live) == [T]

    drive(tmp_path, cloud, body)


def test_a_late_in_list_device_now_gets_its_generation_values(tmp_path: Path) -> None:
    # 100 inverters: 3 reports each at 1 call/s per endpoint make the energy run last over
    # 300 s, longer than an upload period. The old rule (ask only while the live time is
    # less than 280 s old) never asked the later devices; all are asked now, and placed.
    sns = [f"SN{i:03d}" for i in range(100)]
    cloud = Cloud()

    async def body(env: Env) -> None:
        await at(env, T + 20, "live", sns)  # cursor: T for all
        energy = await at(env, T + 25, "energy", sns)
        assert generation_points(energy) == []
        called = dict(cloud.generation_calls)
        assert sorted(called) == sns
        assert called[sns[-1]] - T > UPLOAD_PERIOD - UPLOAD_LAG  # the old rule: skipped
        # The devices the run reached around the upload at T+300 were asked at the end.
        order = list(called)
        in_turn, moved = order[: order.index(sns[-1]) + 1], order[order.index(sns[-1]) + 1 :]
        assert in_turn == sorted(in_turn) and 0 < len(moved) <= 10
        assert not any(T + 300 - GENERATION_GUARD <= t < T + 300 + UPLOAD_LAG for t in called.values())
        live = await at(env, T + 320, "live", sns)  # T+300 (T+600 is not in yet)
        stamped = {p.tags["device"]: p.time for p in live.points if TODAY in p.fields}
        cloud.check(live)  # each value is the truth's at its timestamp
        assert set(stamped) == set(sns) and live.skipped_values == 0  # every one placed
        before = [sn for sn in sns if called[sn] < T + 300]
        assert before and len(before) < len(sns)  # the run spans the upload
        assert all(stamped[sn] == T for sn in before)  # (b)
        assert all(stamped[sn] == T + 300 for sn in sns if sn not in before)  # (a)
        assert all(env.state.get(key(f"generation-pending:{sn}")) == "" for sn in sns)

    drive(tmp_path, cloud, body)
