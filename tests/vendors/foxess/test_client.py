"""FoxessClient I/O logic against a scripted fake cloud: batching, paging, dedupe, faults,
energy, history, quota, retries and errors. (End-to-end contract tests against the
simulator come later.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from structlog.testing import capture_logs

from collector.clock import FakeClock
from collector.errors import (
    VendorAuthError,
    VendorDataQualityError,
    VendorQuotaError,
    VendorTransientError,
)
from collector.state import State
from collector.vendors.base import Device, HistoryCapable, PollResult, VendorClient
from collector.vendors.foxess import FoxessClient
from collector.vendors.foxess.client import (
    ACCESS_COUNT_PATH,
    DEVICE_LIST_PATH,
    FAULT_TABLE_PATH,
    GENERATION_PATH,
    HISTORY_PATH,
    PLANT_LIST_PATH,
    REAL_PATH,
    REPORT_PATH,
)
from collector.vendors.foxess.transport import FoxessTransport
from tests.vendors.foxess.fakecloud import KEY, FakeFox, Req, budget, ok, serve, slow, source

T = TypeVar("T")
T0 = 1726084857  # 2024-09-11 21:00:57 BST


def foxtime(ts: int, tz: str = "Europe/London") -> str:
    local = datetime.fromtimestamp(ts, ZoneInfo(tz))
    off = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "") + off


def real_reply(
    times: dict[str, int], extra: dict[str, list[dict[str, Any]]] | None = None
) -> Callable[[Req], Any]:
    """Answer real/query for the SNs asked, each at its time in `times`."""

    def handler(req: Req) -> Any:
        out = []
        for sn in req.body["sns"]:
            datas = [
                {"unit": "kW", "name": "PVPower", "variable": "pvPower", "value": 1.5},
                {"name": "Running State", "variable": "runningState", "value": "163"},
                *(extra or {}).get(sn, []),
            ]
            out.append({"datas": datas, "time": foxtime(times[sn]), "deviceSN": sn})
        return ok(out)

    return handler


def access_ok(_: Req) -> Any:
    return ok({"total": "1440", "remaining": "1300"})


class Env:
    """One test's fake cloud, state, clock and client factory."""

    def __init__(self, tmp_path: Path, fake: FakeFox, url: str, start: float) -> None:
        self.fake = fake
        self.url = url
        self.clock = FakeClock(start)
        self.state = State(tmp_path / "state")
        self.budget = budget(self.state, self.clock)
        self.http = aiohttp.ClientSession()

    def client(self, **kw: Any) -> FoxessClient:
        devices = kw.pop("devices", None)
        return FoxessClient(
            source(self.url, devices=devices, **kw),
            self.http,
            self.budget,
            self.state,
            clock=self.clock,
            retry_delay=(2.0, 2.0),
        )


def run(tmp_path: Path, fake: FakeFox, body: Callable[[Env], Awaitable[T]], start: float = T0 + 100) -> T:
    async def main() -> T:
        async with serve(fake) as url:
            env = Env(tmp_path, fake, url, start)
            try:
                return await body(env)
            finally:
                await env.http.close()

    return asyncio.run(main())


def dev(sn: str, site: str = "st-1", tz: str = "Europe/London", **meta: object) -> Device:
    return Device(sn=sn, site=site, timezone=tz, meta=meta)


def lines(result: PollResult, measurement: str | None = None) -> list[str]:
    return [p.to_line() for p in result.points if measurement in (None, p.measurement)]


def land(env: Env, result: PollResult, stream: str) -> None:
    """What the app does once a run's points are durable in the spool: move the cursors."""
    env.state.set_last_seen("home", stream, result.latest)
    for key, value in result.state_updates.items():
        env.state.put(key, value)


# -- the protocols ---------------------------------------------------------------------------------


def test_the_client_satisfies_the_protocols(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        client: VendorClient = env.client()
        assert isinstance(client, HistoryCapable)
        assert client.history_window == 86400

    run(tmp_path, FakeFox(), body)


# -- discovery ------------------------------------------------------------------------------------


def test_discovery_pages_and_assigns_sites_and_zones(tmp_path: Path) -> None:
    fake = FakeFox()
    all_devices = [
        {
            "deviceSN": f"SN{i:03d}",
            "stationID": "st-A" if i % 3 == 0 else ("st-B" if i % 3 == 1 else None),
            "stationName": "Roof",
            "hasBattery": i % 2 == 0,
            "hasPV": True,
            "deviceType": "H1-5.0-E",
            "productType": "H",
            "status": 1,
            "moduleSN": f"M{i:03d}",
        }
        for i in range(250)
    ]

    def device_list(req: Req) -> Any:
        page, size = req.body["currentPage"], req.body["pageSize"]
        rows = all_devices[(page - 1) * size : page * size]
        return ok({"data": rows, "total": 250, "currentPage": page, "pageSize": size})

    fake.on(DEVICE_LIST_PATH, device_list)
    fake.on(
        PLANT_LIST_PATH,
        lambda req: ok(
            {
                "data": [
                    {"stationID": "st-A", "name": "A", "ianaTimezone": "Europe/Berlin"},
                    {"stationID": "st-B", "name": "B", "ianaTimezone": "Mars/Olympus_Mons"},
                ],
                "total": 2,
            }
        ),
    )

    async def body(env: Env) -> None:
        devices = await env.client().discover()
        assert len(devices) == 250
        by = {d.sn: d for d in devices}
        assert (by["SN000"].site, by["SN000"].timezone) == ("st-A", "Europe/Berlin")
        # A zone that is not IANA: the source's. No plant: the source's site.
        assert (by["SN001"].site, by["SN001"].timezone) == ("st-B", "Europe/London")
        assert (by["SN002"].site, by["SN002"].timezone) == ("home", "Europe/London")
        assert by["SN000"].meta["has_battery"] is True and by["SN001"].meta["has_battery"] is False
        pages = [r.body for r in fake.calls(DEVICE_LIST_PATH)]
        assert pages == [{"currentPage": p, "pageSize": 100} for p in (1, 2, 3)]
        assert all(r.method == "POST" and r.signature_ok for r in fake.requests)
        n = len(fake.requests)
        again = await env.client().discover()  # cached in state: no calls
        assert len(fake.requests) == n and [d.sn for d in again] == [d.sn for d in devices]
        assert again[0] == devices[0]
        only = await env.client(devices=("SN005", "NOPE")).discover()
        assert [d.sn for d in only] == ["SN005"]

    run(tmp_path, fake, body)


def test_concurrent_discovery_fetches_once(tmp_path: Path) -> None:
    # The app may open a source from two stream jobs at once.
    fake = FakeFox()
    fake.on(
        DEVICE_LIST_PATH, lambda req: ok({"data": [{"deviceSN": "SN1", "stationID": "st-1"}], "total": 1})
    )
    fake.on(PLANT_LIST_PATH, lambda req: ok({"data": [], "total": 0}))

    async def body(env: Env) -> None:
        client = env.client()
        a, b = await asyncio.gather(client.discover(), client.discover())
        assert a == b and len(fake.calls(DEVICE_LIST_PATH)) == 1

    run(tmp_path, fake, body)


def test_discovery_survives_a_refused_plant_list(tmp_path: Path) -> None:
    fake = FakeFox()
    fake.on(
        DEVICE_LIST_PATH, lambda req: ok({"data": [{"deviceSN": "SN1", "stationID": "st-1"}], "total": 1})
    )
    fake.on(PLANT_LIST_PATH, lambda req: {"errno": 40257, "msg": "bad body", "result": None})

    async def body(env: Env) -> None:
        [d] = await env.client().discover()
        assert (d.sn, d.site, d.timezone) == ("SN1", "st-1", "Europe/London")

    run(tmp_path, fake, body)


# -- live -------------------------------------------------------------------------------------------


def test_live_batches_50_serials_per_call_and_counts_each_inverter(tmp_path: Path) -> None:
    fake = FakeFox()
    sns = [f"SN{i:03d}" for i in range(120)]
    fake.on(REAL_PATH, real_reply(dict.fromkeys(sns, T0)))
    fake.on(ACCESS_COUNT_PATH, access_ok)

    async def body(env: Env) -> None:
        # The hourly access count is an account-level call, which the budget counts
        # against every device too: checked already, so only the batches count here.
        env.state.put("foxess:home:access_checked", str(int(env.clock.time())))
        result = await env.client().poll("live", [dev(sn) for sn in sns])
        calls = fake.calls(REAL_PATH)
        assert [len(c.body["sns"]) for c in calls] == [50, 50, 20]
        assert [sn for c in calls for sn in c.body["sns"]] == sns
        assert all("variables" not in c.body for c in calls)  # all variables
        assert len(result.points) == 120 and result.latest == dict.fromkeys(sns, T0)
        usage = env.budget.account.usage()
        per_device = {name.split("/")[-1]: u["per_day"][0] for name, u in usage.items() if "/" in name}
        assert per_device == dict.fromkeys(sns, 1)  # one batched call counts once against each
        assert fake.calls(ACCESS_COUNT_PATH) == []

    run(tmp_path, fake, body)


def test_an_unchanged_data_time_is_not_written_again(tmp_path: Path) -> None:
    fake = FakeFox()
    times = {"SN1": T0}
    fake.on(REAL_PATH, real_reply(times))
    fake.on(ACCESS_COUNT_PATH, access_ok)

    async def body(env: Env) -> None:
        client = env.client()
        first = await client.poll("live", [dev("SN1")])
        assert len(first.points) == 1 and first.latest == {"SN1": T0}
        # The app makes the points durable, then advances the cursor.
        env.state.set_last_seen("home", "live", first.latest)
        second = await client.poll("live", [dev("SN1")])
        assert second.points == [] and second.latest == {}
        assert second.next_data_at is not None
        # After a restart too: the cursor is in state.
        third = await env.client().poll("live", [dev("SN1")])
        assert third.points == []
        times["SN1"] = T0 + 300
        fourth = await client.poll("live", [dev("SN1")])
        assert [p.time for p in fourth.points] == [T0 + 300]

    run(tmp_path, fake, body)


def test_next_data_at_follows_the_upload_phase(tmp_path: Path) -> None:
    fake = FakeFox()
    fake.on(REAL_PATH, real_reply({"SN1": T0, "SN2": T0 + 40}))
    fake.on(ACCESS_COUNT_PATH, access_ok)

    async def body(env: Env) -> None:
        result = await env.client().poll("live", [dev("SN1"), dev("SN2")])
        # now = T0 + 100 (+ budget spacing): both upload again at T0+300 / T0+340; the call
        # that sees both new is 20 s after the later one.
        assert result.next_data_at == T0 + 340 + 20

    run(tmp_path, fake, body)


def test_faults_start_and_end_across_a_restart(tmp_path: Path) -> None:
    fake = FakeFox()
    times = {"SN1": T0}
    fault = {"SN1": [{"variable": "currentFault", "value": "4113"}]}
    extra: dict[str, list[dict[str, Any]]] = dict(fault)

    def real(req: Req) -> Any:
        return real_reply(times, extra)(req)

    fake.on(REAL_PATH, real)
    fake.on(ACCESS_COUNT_PATH, access_ok)
    fake.on(
        FAULT_TABLE_PATH,
        lambda req: ok(
            [{"4113": {"en": "Grid lost", "zh_CN": "电网丢失"}}, {"4116": {"en": "Bus over voltage"}}]
        ),
    )

    head = "fault,device=SN1,site=st-1,source=home,vendor=foxess"

    async def body(env: Env) -> None:
        first = await env.client().poll("live", [dev("SN1")])
        assert lines(first, "fault") == [f'{head} code=4113i,message="Grid lost",active=1i {T0}']
        assert "fault_code=4113i" in lines(first, "inverter")[0]
        env.state.set_last_seen("home", "live", first.latest)
        # Restart: a new client, the same state. Still faulted: no new fault point.
        times["SN1"] = T0 + 300
        second = await env.client().poll("live", [dev("SN1")])
        assert lines(second, "fault") == [] and len(lines(second, "inverter")) == 1
        env.state.set_last_seen("home", "live", second.latest)
        # Another restart; the fault has cleared: its end at the first clear data time.
        times["SN1"] = T0 + 600
        extra["SN1"] = [{"variable": "currentFault", "value": ""}]
        third = await env.client().poll("live", [dev("SN1")])
        assert lines(third, "fault") == [f'{head} code=4113i,message="Grid lost",active=0i {T0 + 600}']
        env.state.set_last_seen("home", "live", third.latest)
        # Two faults at once: one second apart, so neither overwrites the other.
        times["SN1"] = T0 + 900
        extra["SN1"] = [{"variable": "currentFault", "value": "4116, 4113"}]
        fourth = await env.client().poll("live", [dev("SN1")])
        assert [
            (p.fields["code"], p.fields["active"], p.time) for p in fourth.points if p.measurement == "fault"
        ] == [
            (4116, 1, T0 + 900),
            (4113, 1, T0 + 901),
        ]
        assert len(fake.calls(FAULT_TABLE_PATH)) == 1  # cached in state for a day

    run(tmp_path, fake, body)


def test_one_failed_batch_keeps_the_others(tmp_path: Path) -> None:
    fake = FakeFox()
    sns = [f"SN{i:03d}" for i in range(60)]
    good = real_reply(dict.fromkeys(sns, T0))
    fake.on(
        REAL_PATH, lambda req: good(req) if "SN000" in req.body["sns"] else {"errno": 41200, "result": None}
    )
    fake.on(ACCESS_COUNT_PATH, access_ok)

    async def body(env: Env) -> None:
        result = await env.client().poll("live", [dev(sn) for sn in sns])
        assert len(result.points) == 50
        assert len(fake.calls(REAL_PATH)) == 3  # 1 good + the failing batch and its one retry
        with pytest.raises(VendorTransientError):
            await env.client().poll("live", [dev("SN055")])

    run(tmp_path, fake, body)


# -- transport: signature on every attempt, errors, no key anywhere -----------------------------------


def test_a_retry_is_signed_again(tmp_path: Path) -> None:
    fake = FakeFox()
    answers = [{"errno": 41203, "msg": "Operation timeout", "result": None}, ok({"data": [], "total": 0})]
    fake.on(DEVICE_LIST_PATH, lambda req: answers.pop(0))
    fake.on(PLANT_LIST_PATH, lambda req: ok({"data": [], "total": 0}))

    async def body(env: Env) -> None:
        assert await env.client().discover() == []
        first, second = fake.calls(DEVICE_LIST_PATH)
        assert first.signature_ok and second.signature_ok
        assert int(second.headers["timestamp"]) >= int(first.headers["timestamp"]) + 2000
        assert first.headers["signature"] != second.headers["signature"]
        assert first.headers["lang"] == "en"
        # Both attempts took a budget slot (account-level calls: the account counter).
        assert env.budget.account.usage()[env.budget.account.key]["per_day"][0] == 3

    run(tmp_path, fake, body)


@pytest.mark.parametrize(
    ("reply", "cls", "attempts"),
    [
        ({"errno": 40402, "msg": "Your request exceeds the limit", "result": None}, VendorQuotaError, 1),
        ({"errno": 41809, "msg": f"invalid token {KEY}", "result": None}, VendorAuthError, 1),
        ((200, "text/html", "<html><body>502 Bad Gateway</body></html>"), VendorTransientError, 2),
        ((200, "application/json", '{"errno": 0, "result": [}'), VendorDataQualityError, 1),
        ((401, "application/json", "{}"), VendorAuthError, 1),
        ((503, "text/plain", "busy"), VendorTransientError, 2),
        (ok({"not": "a list"}), VendorDataQualityError, 1),
    ],
)
def test_errors_become_our_exceptions_without_the_key(
    tmp_path: Path, reply: Any, cls: type[Exception], attempts: int
) -> None:
    fake = FakeFox()
    fake.on(REAL_PATH, lambda req: reply)

    async def body(env: Env) -> None:
        with capture_logs() as logs, pytest.raises(cls) as info:
            await env.client().poll("live", [dev("SN1")])
        assert type(info.value) is cls
        assert KEY not in str(info.value) and KEY not in repr(logs)
        assert len(fake.calls(REAL_PATH)) == attempts
        if isinstance(info.value, VendorQuotaError):
            assert info.value.retry_at is not None and info.value.retry_at >= env.clock.time() + 3000

    run(tmp_path, fake, body)


def test_timeouts_and_refused_connections_are_transient(tmp_path: Path) -> None:
    fake = FakeFox()
    fake.on(REAL_PATH, lambda req: slow(2.0, ok([])))

    async def body(env: Env) -> None:
        api = FoxessTransport(
            http=env.http,
            budget=env.budget,
            base_url=env.url,
            api_key=KEY,
            clock=env.clock,
            retries=0,
            timeout=0.2,
        )
        with pytest.raises(VendorTransientError, match="no answer within"):
            await api.post(REAL_PATH, {"sns": ["SN1"]}, devices=["SN1"])
        closed = FoxessTransport(
            http=env.http,
            budget=env.budget,
            base_url="http://127.0.0.1:9",
            api_key=KEY,
            clock=env.clock,
            retries=0,
        )
        with pytest.raises(VendorTransientError, match="connection failed") as info:
            await closed.get(ACCESS_COUNT_PATH)
        assert KEY not in str(info.value)

    run(tmp_path, fake, body)


# -- energy -----------------------------------------------------------------------------------------


def report_reply(req: Req) -> Any:
    slots = {"day": 24, "month": 31, "year": 12}[req.body["dimension"]]
    return ok([{"variable": v, "unit": "kWh", "values": [0.5] * slots} for v in req.body["variables"]])


def test_energy_reports_generation_and_rollover(tmp_path: Path) -> None:
    fake = FakeFox()
    fake.on(REPORT_PATH, report_reply)
    fake.on(
        GENERATION_PATH, lambda req: ok({"today": 17.699999999999818, "month": 867.6, "cumulative": 5765.7})
    )
    now = 1715430000  # 2024-05-11 13:20 BST

    async def body(env: Env) -> None:
        client = env.client()
        battery, plain = dev("SN1", has_battery=True), dev("SN2", has_battery=False)
        first = await client.poll("energy", [battery, plain])
        land(env, first, "energy")
        reqs = [r.body for r in fake.calls(REPORT_PATH)]
        assert [(r["sn"], r["dimension"], r["year"], r.get("month"), r.get("day")) for r in reqs] == [
            ("SN1", "day", 2024, 5, 11),
            ("SN1", "month", 2024, 5, None),
            ("SN1", "year", 2024, None, None),
            ("SN2", "day", 2024, 5, 11),
            ("SN2", "month", 2024, 5, None),
            ("SN2", "year", 2024, None, None),
        ]
        assert "chargeEnergyToTal" in reqs[0]["variables"] and "chargeEnergyToTal" not in reqs[3]["variables"]
        periods = [p.tags["period"] for p in first.points if p.tags["device"] == "SN1"]
        # Hours 00..13 of today, days 1..11 of May, months Jan..May: nothing in the future.
        assert (periods.count("hour"), periods.count("day"), periods.count("month")) == (14, 11, 5)
        assert fake.calls(GENERATION_PATH) == []  # no live data time known yet
        hour0 = next(p for p in first.points if p.tags["period"] == "hour")
        assert hour0.time == 1715382000 and hour0.fields["yield_wh"] == 500.0  # 2024-05-10T23:00Z

        env.state.set_last_seen("home", "live", {"SN1": T0})
        second = await client.poll("energy", [battery])
        land(env, second, "energy")
        # No point yet: the answer has no data time, the next live poll stamps it
        # (tests/vendors/foxess/test_generation.py).
        assert all(p.measurement == "energy" for p in second.points)
        pending = json.loads(env.state.get("foxess:home:generation-pending:SN1") or "")
        assert pending["ts_prev"] == T0 and pending["fields"] == {
            "yield_energy_today_wh": 17700.0,
            "yield_energy_total_wh": 5765700.0,
        }
        assert fake.calls(GENERATION_PATH)[0].query == {"sn": "SN1"}
        third = await client.poll("energy", [battery])  # the same live time: no generation call
        land(env, third, "energy")
        assert len(fake.calls(GENERATION_PATH)) == 1 and all(p.measurement == "energy" for p in third.points)

        # Past midnight: yesterday's day report once more (its last hour is final now).
        env.clock.now = now + 11 * 3600  # 2024-05-12 00:20 BST
        n = len(fake.calls(REPORT_PATH))
        land(env, await client.poll("energy", [battery]), "energy")
        rollover = [(r.body["dimension"], r.body.get("day")) for r in fake.calls(REPORT_PATH)[n:]]
        assert rollover == [("day", 11), ("day", 12), ("month", None), ("year", None)]
        n = len(fake.calls(REPORT_PATH))
        await client.poll("energy", [battery])
        assert [(r.body["dimension"], r.body.get("day")) for r in fake.calls(REPORT_PATH)[n:]] == [
            ("day", 12),
            ("month", None),
            ("year", None),
        ]

    run(tmp_path, fake, body, start=now)


# -- history ----------------------------------------------------------------------------------------


def test_history_one_window_same_mapping_as_live(tmp_path: Path) -> None:
    fake = FakeFox()
    start = 1715382000  # 2024-05-11 00:00 BST
    samples = [start - 60, start + 176, start + 476, start + 86400]

    def history(req: Req) -> Any:
        return ok(
            [
                {
                    "deviceSN": req.body["sn"],
                    "datas": [
                        {
                            "unit": "kW",
                            "name": "PVPower",
                            "variable": "pvPower",
                            "data": [{"time": foxtime(t), "value": 0.213} for t in samples],
                        }
                    ],
                }
            ]
        )

    fake.on(HISTORY_PATH, history)

    async def body(env: Env) -> None:
        client = env.client()
        result = await client.history(dev("SN1"), start, start + 86400)
        [call] = fake.calls(HISTORY_PATH)
        assert call.body == {"sn": "SN1", "begin": start * 1000, "end": (start + 86400) * 1000}
        assert [p.time for p in result.points] == [start + 176, start + 476]  # [start, end) only
        assert result.points[0].fields == {"pv_power_w": 213.0}
        assert result.latest == {"SN1": start + 476}
        with pytest.raises(ValueError, match="24 h"):
            await client.history(dev("SN1"), start, start + 86401)

    run(tmp_path, fake, body)


# -- quota ------------------------------------------------------------------------------------------


def test_access_count_is_checked_hourly_and_pauses_at_zero(tmp_path: Path) -> None:
    fake = FakeFox()
    fake.on(REAL_PATH, real_reply({"SN1": T0}))
    fake.on(ACCESS_COUNT_PATH, lambda req: ok({"total": 1440, "remaining": 0}))
    synced: list[tuple[int, int]] = []

    async def body(env: Env) -> None:
        def fake_sync(remaining: int, total: int, window: float = 86400.0) -> int:
            synced.append((remaining, total))
            return 0

        env.budget.sync_remaining = fake_sync  # type: ignore[method-assign]
        await env.client().poll("live", [dev("SN1")])
        assert synced == [(0, 1440)]
        assert env.budget.account.paused_until() is not None
        assert fake.calls(ACCESS_COUNT_PATH)[0].method == "GET"

    run(tmp_path, fake, body)


def test_a_rate_limited_side_call_pauses_but_keeps_the_points(tmp_path: Path) -> None:
    fake = FakeFox()
    fake.on(REAL_PATH, real_reply({"SN1": T0}))
    fake.on(ACCESS_COUNT_PATH, lambda req: {"errno": 40400, "msg": "too frequent", "result": None})

    async def body(env: Env) -> None:
        result = await env.client().poll("live", [dev("SN1")])
        assert len(result.points) == 1
        assert env.budget.account.paused_until() is not None

    run(tmp_path, fake, body)


def test_unknown_stream(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        with pytest.raises(ValueError):
            await env.client().poll("bogus", [])

    run(tmp_path, FakeFox(), body)


def test_fault_table_json_is_cached_per_base_url(tmp_path: Path) -> None:
    # A corrupt cache entry is refetched, never trusted.
    fake = FakeFox()
    fake.on(FAULT_TABLE_PATH, lambda req: ok([{"1": {"en": "One"}}]))

    async def body(env: Env) -> None:
        client = env.client()
        env.state.put(f"foxess:fault-table:{env.url}", "{not json")
        assert await client._fault_messages() == {"1": "One"}
        assert json.loads(env.state.get(f"foxess:fault-table:{env.url}") or "") == {"1": "One"}

    run(tmp_path, fake, body)
