"""No cursor moves before its points are durable, and no fetched data is thrown away.

* Report / generation cursors come back in `state_updates` (the app stores them after
  spooling the points); a run that fails first leaves them where they were.
* A rate / quota / auth / budget refusal ends the run at once, but the points already
  fetched come back with the error in `PollResult.error`.
* A bad fault-table answer never fails the live poll, and is not asked for again within
  the hour.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.errors import (
    BudgetExhaustedError,
    VendorAuthError,
    VendorQuotaError,
    VendorRateLimitError,
    VendorTransientError,
)
from collector.vendors.foxess.client import (
    ACCESS_COUNT_PATH,
    FAULT_TABLE_PATH,
    FAULT_TABLE_RETRY,
    GENERATION_PATH,
    REAL_PATH,
    REPORT_PATH,
)
from tests.vendors.foxess.fakecloud import FakeFox, Req, ok
from tests.vendors.foxess.test_client import (
    T0,
    Env,
    access_ok,
    dev,
    land,
    lines,
    real_reply,
    report_reply,
    run,
)

MAY_11 = 1715430000  # 2024-05-11 13:20 BST
MAY_12 = MAY_11 + 11 * 3600  # 2024-05-12 00:20 BST


def key(name: str) -> str:
    return f"foxess:home:{name}"


def asked(fake: FakeFox, since: int = 0) -> list[tuple[str, str, int | None]]:
    return [(r.body["sn"], r.body["dimension"], r.body.get("day")) for r in fake.calls(REPORT_PATH)[since:]]


# -- report / generation cursors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "cls"),
    [
        ({"errno": 41203, "msg": "Operation timeout", "result": None}, VendorTransientError),
        ({"errno": 40400, "msg": "too frequent", "result": None}, VendorRateLimitError),
    ],
)
def test_a_failed_month_report_leaves_the_day_cursor_unmoved(
    tmp_path: Path, refusal: dict[str, Any], cls: type[Exception]
) -> None:
    fake = FakeFox()
    month_fails = [False]

    def report(req: Req) -> Any:
        if month_fails[0] and req.body["dimension"] == "month":
            return refusal
        return report_reply(req)

    fake.on(REPORT_PATH, report)
    day, month, year = key("report:SN1:day"), key("report:SN1:month"), key("report:SN1:year")

    async def body(env: Env) -> None:
        client = env.client()
        first = await client.poll("energy", [dev("SN1")])
        assert set(first.state_updates) == {day, month, year}
        assert env.state.get(day) is None  # nothing stored during the run: the app stores it
        land(env, first, "energy")
        on_the_11th = env.state.get(day)
        assert on_the_11th is not None and json.loads(on_the_11th)["day"] == 11

        # Past midnight: yesterday's final report, today's; then the month call fails.
        env.clock.now = MAY_12
        month_fails[0] = True
        n = len(fake.calls(REPORT_PATH))
        failed = await client.poll("energy", [dev("SN1")])
        assert [a[1:] for a in asked(fake, n) if a[1] != "month"] == [("day", 11), ("day", 12)]
        assert isinstance(failed.error, cls)
        assert env.state.get(day) == on_the_11th  # unmoved
        # The day reports' points came back; only the answered day report's cursor with them.
        assert failed.points and set(failed.state_updates) == {day}
        assert not any(p.tags["period"] == "day" for p in failed.points)  # no month report

        # The app never made them durable (say it died): the next run asks for the 11th again.
        month_fails[0] = False
        n = len(fake.calls(REPORT_PATH))
        again = await client.poll("energy", [dev("SN1")])
        assert [a[1:] for a in asked(fake, n)] == [("day", 11), ("day", 12), ("month", None), ("year", None)]
        assert again.error is None and set(again.state_updates) == {day, month, year}
        land(env, again, "energy")
        assert json.loads(env.state.get(day) or "")["day"] == 12
        n = len(fake.calls(REPORT_PATH))
        await client.poll("energy", [dev("SN1")])
        assert [a[1:] for a in asked(fake, n)] == [("day", 12), ("month", None), ("year", None)]

    run(tmp_path, fake, body, start=MAY_11)


def test_the_generation_cursor_moves_only_when_the_app_lands_the_run(tmp_path: Path) -> None:
    fake = FakeFox()
    fake.on(REPORT_PATH, report_reply)
    fake.on(GENERATION_PATH, lambda req: ok({"today": 1.5, "cumulative": 100.0}))

    async def body(env: Env) -> None:
        env.state.set_last_seen("home", "live", {"SN1": T0})
        first = await env.client().poll("energy", [dev("SN1")])
        assert first.state_updates[key("generation:SN1")] == str(T0)
        assert key("generation-pending:SN1") in first.state_updates
        assert env.state.get(key("generation:SN1")) is None
        assert env.state.get(key("generation-pending:SN1")) is None
        # Not landed: the same client asks again (the point was never durable).
        second = await env.client().poll("energy", [dev("SN1")])
        assert len(fake.calls(GENERATION_PATH)) == 2
        land(env, second, "energy")
        # Landed: a new client (a restart) does not ask again for the same live time.
        await env.client().poll("energy", [dev("SN1")])
        assert len(fake.calls(GENERATION_PATH)) == 2

    run(tmp_path, fake, body, start=MAY_11)


# -- a refusal keeps what was fetched -------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "cls"),
    [
        ({"errno": 40400, "msg": "too frequent", "result": None}, VendorRateLimitError),
        ({"errno": 40402, "msg": "Your request exceeds the limit", "result": None}, VendorQuotaError),
        ({"errno": 41809, "msg": "invalid token", "result": None}, VendorAuthError),
        ("budget", BudgetExhaustedError),
    ],
)
def test_a_refused_second_batch_keeps_the_first_and_stops(
    tmp_path: Path, refusal: Any, cls: type[Exception]
) -> None:
    fake = FakeFox()
    sns = [f"SN{i:03d}" for i in range(120)]
    good = real_reply(dict.fromkeys(sns, T0))
    fake.on(ACCESS_COUNT_PATH, access_ok)
    fake.on(FAULT_TABLE_PATH, lambda req: ok([{"4113": {"en": "Grid lost"}}]))
    envs: list[Env] = []

    def real(req: Req) -> Any:
        if len(fake.calls(REAL_PATH)) == 1:
            if refusal == "budget":  # the account is paused meanwhile: the next slot is refused
                envs[0].budget.pause(envs[0].clock.time() + 3600, "test")
            return good(req)
        return refusal

    fake.on(REAL_PATH, real)

    async def body(env: Env) -> None:
        envs.append(env)
        result = await env.client().poll("live", [dev(sn) for sn in sns])
        assert isinstance(result.error, cls)
        assert len(lines(result, "inverter")) == 50
        assert result.latest == dict.fromkeys(sns[:50], T0)
        # No third batch, no side calls after the refusal.
        assert len(fake.calls(REAL_PATH)) == (1 if refusal == "budget" else 2)
        assert fake.calls(ACCESS_COUNT_PATH) == [] and fake.calls(FAULT_TABLE_PATH) == []

    run(tmp_path, fake, body)


def test_a_refused_first_batch_still_raises(tmp_path: Path) -> None:
    fake = FakeFox()
    fake.on(REAL_PATH, lambda req: {"errno": 40400, "msg": "too frequent", "result": None})

    async def body(env: Env) -> None:
        with pytest.raises(VendorRateLimitError):
            await env.client().poll("live", [dev(f"SN{i:03d}") for i in range(120)])
        assert len(fake.calls(REAL_PATH)) == 1

    run(tmp_path, fake, body)


def test_a_refusal_mid_energy_keeps_the_devices_fetched_and_stops(tmp_path: Path) -> None:
    fake = FakeFox()

    def report(req: Req) -> Any:
        if req.body["sn"] == "SN2":
            return {"errno": 40402, "msg": "Your request exceeds the limit", "result": None}
        return report_reply(req)

    fake.on(REPORT_PATH, report)
    fake.on(GENERATION_PATH, lambda req: ok({"today": 1.5, "cumulative": 100.0}))

    async def body(env: Env) -> None:
        env.state.set_last_seen("home", "live", {"SN1": T0, "SN2": T0, "SN3": T0})
        result = await env.client().poll("energy", [dev("SN1"), dev("SN2"), dev("SN3")])
        assert isinstance(result.error, VendorQuotaError)
        assert {p.tags["device"] for p in result.points} == {"SN1"} and len(result.points) > 1
        assert set(result.state_updates) == {
            key("report:SN1:day"),
            key("report:SN1:month"),
            key("report:SN1:year"),
            key("generation:SN1"),
            key("generation-pending:SN1"),
        }
        # SN2's first call was refused: nothing after it (not SN2's generation, not SN3).
        assert asked(fake) == [
            ("SN1", "day", 11),
            ("SN1", "month", None),
            ("SN1", "year", None),
            ("SN2", "day", 11),
        ]
        assert [r.query["sn"] for r in fake.calls(GENERATION_PATH)] == ["SN1"]
        # Refused before anything was fetched: raised.
        with pytest.raises(VendorQuotaError):
            await env.client().poll("energy", [dev("SN2"), dev("SN1")])

    run(tmp_path, fake, body, start=MAY_11)


# -- the fault table ------------------------------------------------------------------------------


@pytest.mark.parametrize("table", [ok("not a table"), ok(42), (200, "text/html", "<html>oops</html>")])
def test_a_bad_fault_table_never_fails_the_live_poll(tmp_path: Path, table: Any) -> None:
    fake = FakeFox()
    times = {"SN1": T0}
    extra: dict[str, list[dict[str, Any]]] = {"SN1": [{"variable": "currentFault", "value": "4113"}]}
    fake.on(REAL_PATH, lambda req: real_reply(times, extra)(req))
    fake.on(ACCESS_COUNT_PATH, access_ok)
    fake.on(FAULT_TABLE_PATH, lambda req: table)
    head = "fault,device=SN1,site=st-1,source=home,vendor=foxess"

    async def body(env: Env) -> None:
        client = env.client()
        first = await client.poll("live", [dev("SN1")])
        assert first.error is None and len(lines(first, "inverter")) == 1
        assert lines(first, "fault") == [f"{head} code=4113i,active=1i {T0}"]  # no message
        fetched = len(fake.calls(FAULT_TABLE_PATH))
        assert fetched >= 1
        land(env, first, "live")

        # The fault ends five minutes later: written, and the table is not asked for again.
        times["SN1"] = T0 + 300
        extra["SN1"] = []
        env.clock.now = T0 + 400
        second = await client.poll("live", [dev("SN1")])
        assert lines(second, "fault") == [f"{head} code=4113i,active=0i {T0 + 300}"]
        assert len(fake.calls(FAULT_TABLE_PATH)) == fetched
        land(env, second, "live")

        # An hour after the failure it is asked for once more.
        times["SN1"] = T0 + 600
        extra["SN1"] = [{"variable": "currentFault", "value": "4113"}]
        env.clock.now = T0 + 100 + FAULT_TABLE_RETRY + 60
        third = await client.poll("live", [dev("SN1")])
        assert len(lines(third, "fault")) == 1
        assert len(fake.calls(FAULT_TABLE_PATH)) == 2 * fetched

    run(tmp_path, fake, body)
