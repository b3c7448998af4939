"""The FoxESS Cloud simulator's protocol rules, checked with a plain aiohttp client.

The signing below is written from the field notes (``shared/research/foxess.md`` §2.1), not imported
from the simulator: it is the spec check. The simulator runs on a :class:`ManualClock`; the helper
moves it one second before each call (the per-endpoint limit) unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Collection, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from collector.simulators.base import Injection, ManualClock
from collector.simulators.foxess import FoxessLimits, FoxessQuirks, FoxessSim
from collector.simulators.plant import (
    Battery,
    Fault,
    GridCharge,
    Inverter,
    Outage,
    Plant,
    PvString,
    Site,
    local_midnight,
    local_time,
)

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key-0001"
OTHER_KEY = "test-key-0002"
ZONE = "Europe/Berlin"
HYB = "TESTHYB00000001"
PVO = "TESTPVO00000002"
SPRING = date(2025, 3, 30)  # last Sunday of March: 02:00 CET → 03:00 CEST
AUTUMN = date(2025, 10, 26)  # last Sunday of October: 03:00 CEST → 02:00 CET
T = TypeVar("T")


def sign(path: str, token: str, timestamp: str) -> str:
    """notes §2.1: md5 of path + the 4 characters backslash r backslash n + key + the same + timestamp."""
    return hashlib.md5(rf"{path}\r\n{token}\r\n{timestamp}".encode()).hexdigest()


def parse_time(text: str) -> int:
    """notes §4.10: local wall clock, zone abbreviation, then a trailing ±HHMM — parse the offset only."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \S*?([+-])(\d\d)(\d\d)", text)
    assert m, text
    offset = (int(m[3]) * 60 + int(m[4])) * (1 if m[2] == "+" else -1)
    local = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return int(local.timestamp()) - offset * 60


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def make_plant(
    commissioned: date = SPRING - timedelta(days=3),
    *,
    faults: Collection[Fault] = (),
    outages: Collection[Outage] = (),
    extra: int = 0,
    with_hybrid: bool = True,
) -> Plant:
    hybrid = Inverter(
        HYB,
        "H3-8.0-E",
        8000,
        (PvString(5.0, 0.3), PvString(3.0, -0.3)),
        battery=Battery(10360, packs=2, max_power_w=5000, grid_charge=GridCharge(2, 5, 90, 2500)),
        phases=3,
        load_kwh_per_day=14.0,
        logger_sn="LOGHYB01",
    )
    pv = Inverter(PVO, "F3000", 3000, (PvString(3.3),), logger_sn="LOGPVO02")
    more = tuple(Inverter(f"TESTXTR{i:08d}", "F3000", 3000, (PvString(2.0),)) for i in range(extra))
    inverters = ((hybrid,) if with_hybrid else ()) + (pv, *more)
    site = Site("site-1", "Test Site", ZONE, 52.5, 13.4, inverters, commissioned)
    return Plant([site], faults=faults, outages=outages)


def make_sim(
    now: float,
    plant: Plant | None = None,
    *,
    keys: Mapping[str, Collection[str] | None] | None = None,
    **kwargs: Any,
) -> FoxessSim:
    return FoxessSim(
        plant if plant is not None else make_plant(),
        api_keys=keys if keys is not None else {KEY: None},
        clock=ManualClock(now),
        **kwargs,
    )


class Fox:
    """A minimal signed client, as the notes describe the real cloud's contract."""

    def __init__(self, sim: FoxessSim, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session
        clock = sim.clock
        assert isinstance(clock, ManualClock)
        self.clock = clock

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        key: str = KEY,
        timestamp: str | None = None,
        signature: str | None = None,
        drop: Collection[str] = (),
        tick: float = 1.0,
        raw: bytes | None = None,
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        self.clock.advance(tick)
        ts = str(int(self.clock() * 1000)) if timestamp is None else timestamp
        headers = {
            "token": key,
            "timestamp": ts,
            "signature": sign(path, key, ts) if signature is None else signature,
            "lang": "en",
            "Content-Type": "application/json",
        }
        for name in drop:
            headers.pop(name)
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["data"] = json.dumps(body)
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        async with self.session.request(method, self.sim.base_url + path, **kwargs) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kwargs)

    async def get(self, path: str, params: Mapping[str, str] | None = None, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("GET", path, params=params, **kwargs)

    async def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        status, data = await self.call(method, path, body, **kwargs)
        assert status == 200 and data["errno"] == 0, data
        return data["result"]


@asynccontextmanager
async def served(sim: FoxessSim) -> AsyncIterator[Fox]:
    async with sim, aiohttp.ClientSession() as session:
        yield Fox(sim, session)


def errno(reply: tuple[int, Any]) -> int:
    status, data = reply
    assert status == 200, reply
    assert data["result"] is None
    return int(data["errno"])


def values(device: Mapping[str, Any]) -> dict[str, Any]:
    return {d["variable"]: d.get("value") for d in device["datas"]}


NOON = local_time(ZONE, SPRING - timedelta(days=1), 12)  # Saturday 2025-03-29 12:00 CET

# ------------------------------------------------------------------------------------------------
# Auth


def test_signing_golden_vector_from_the_notes() -> None:
    text = r"/op/v0/device/real/query\r\n00000000-0000-0000-0000-000000000000\r\n1700000000000"
    assert len(text) == 81
    assert sign("/op/v0/device/real/query", "00000000-0000-0000-0000-000000000000", "1700000000000") == (
        "6f87e56417f1a153f7922fd957037c38"
    )
    crlf = "/op/v0/device/real/query\r\n00000000-0000-0000-0000-000000000000\r\n1700000000000"
    assert hashlib.md5(crlf.encode()).hexdigest() == "dd1de7394ca36ad9d0427ae6621e26c3"


def test_signature_rules() -> None:
    async def scenario() -> None:
        sim = make_sim(NOON)
        async with served(sim) as fox:
            count = "/op/v0/user/getAccessCount"
            assert await fox.ok("GET", count)
            # GET parameters are not signed: the path alone is
            gen = "/op/v0/device/generation"
            assert await fox.ok("GET", gen, params={"sn": HYB})
            ts = str(int(fox.clock() * 1000) + 1000)
            with_query = sign(f"{gen}?sn={HYB}", KEY, ts)
            assert errno(await fox.get(gen, {"sn": HYB}, timestamp=ts, signature=with_query)) == 40256
            # real CR LF instead of the literal backslash sequence is refused (notes §2.1)
            ts = str(int(fox.clock() * 1000) + 1000)
            crlf = hashlib.md5(f"{count}\r\n{KEY}\r\n{ts}".encode()).hexdigest()
            assert errno(await fox.get(count, timestamp=ts, signature=crlf)) == 40256
            assert errno(await fox.get(count, signature="0" * 32)) == 40256
            for header in ("signature", "timestamp", "token", "lang"):
                assert errno(await fox.get(count, drop=[header])) == 40256
            # a stale timestamp (signed correctly) is refused; the re-signed retry is accepted
            stale = str(int((fox.clock() - 61) * 1000) + 1000)
            assert errno(await fox.get(count, timestamp=stale, signature=sign(count, KEY, stale))) == 40256
            assert await fox.ok("GET", count)
            recent = str(int((fox.clock() - 59) * 1000) + 1000)
            assert await fox.ok("GET", count, timestamp=recent, signature=sign(count, KEY, recent))
            # an unknown key is HTTP 401 (notes §2.2)
            status, body = await fox.get(count, key="no-such-key")
            assert status == 401 and body["errno"] != 0
            # header names are case-insensitive
            fox.clock.advance(1)
            ts = str(int(fox.clock() * 1000))
            headers = {"Token": KEY, "Timestamp": ts, "Signature": sign(count, KEY, ts), "Lang": "en"}
            async with fox.session.get(sim.base_url + count, headers=headers) as resp:
                assert (await resp.json())["errno"] == 0
        outcomes = [c.outcome for c in sim.calls]
        assert outcomes.count("auth") == 9 and sim.violations == 0

    run(scenario())


def test_body_errors_are_http_200_with_errno() -> None:
    async def scenario() -> None:
        sim = make_sim(NOON, keys={KEY: [HYB], OTHER_KEY: [PVO]})
        async with served(sim) as fox:
            assert errno(await fox.post("/op/v0/device/list", raw=b"{not json")) == 40257
            assert errno(await fox.post("/op/v0/device/list", {"currentPage": 1, "pageSize": 5})) == 40257
            assert errno(await fox.post("/op/v0/device/list", {"currentPage": 0, "pageSize": 10})) == 40257
            # another account's inverter
            assert errno(await fox.get("/op/v0/device/detail", {"sn": PVO})) == 41930
            assert errno(await fox.get("/op/v0/device/detail")) == 40257
            # v0 real-time query without sn: errno 0, result null (notes §4.1)
            status, data = await fox.post("/op/v0/device/real/query", {})
            assert status == 200 and data == {"errno": 0, "msg": data["msg"], "result": None}
            devices = await fox.ok("POST", "/op/v0/device/list", {"currentPage": 1, "pageSize": 10})
            assert [d["deviceSN"] for d in devices["data"]] == [HYB]

    run(scenario())


# ------------------------------------------------------------------------------------------------
# Limits


def test_one_call_per_second_per_endpoint() -> None:
    async def scenario() -> None:
        sim = make_sim(NOON, keys={KEY: None, OTHER_KEY: None})
        async with served(sim) as fox:
            body = {"currentPage": 1, "pageSize": 10}
            assert await fox.ok("POST", "/op/v0/device/list", body)
            assert errno(await fox.post("/op/v0/device/list", body, tick=0)) == 40400
            # another endpoint, and another account, in the same second: fine
            assert await fox.ok("GET", "/op/v0/user/getAccessCount", tick=0)
            assert await fox.ok("POST", "/op/v0/device/list", body, key=OTHER_KEY, tick=0)
            assert errno(await fox.post("/op/v0/device/list", body, tick=0.5)) == 40400
            assert await fox.ok("POST", "/op/v0/device/list", body, tick=0.5)
        assert sim.violations == 2
        limited = [c for c in sim.calls if c.outcome == "limited"]
        assert {c.limit for c in limited} == {"per_endpoint_second"}

    run(scenario())


def test_daily_quota_of_1440_calls_per_inverter() -> None:
    async def scenario() -> None:
        sim = make_sim(NOON, make_plant(with_hybrid=False))
        async with served(sim) as fox:
            path = "/op/v0/user/getAccessCount"
            first = await fox.ok("GET", path)
            assert first == {"total": "1440", "remaining": "1439"}  # strings, as documented
            for _ in range(1438):
                await fox.ok("GET", path)
            assert await fox.ok("GET", path) == {"total": "1440", "remaining": "0"}
            assert errno(await fox.get(path)) == 40402
            assert errno(await fox.post("/op/v0/device/list", {"currentPage": 1, "pageSize": 10})) == 40402
            assert sim.violations == 2
            fox.clock.advance(86400 - 1441)  # the first call leaves the sliding 24-h window
            assert await fox.ok("GET", path, tick=0) == {"total": "1440", "remaining": "0"}
        assert len(sim.calls) == 1443 and [c.outcome for c in sim.calls].count("ok") == 1441

    started = time.monotonic()
    run(scenario())
    assert time.monotonic() - started < 15


def test_batch_counts_against_every_inverter_and_refused_calls_cost_quota() -> None:
    async def scenario() -> None:
        sim = make_sim(NOON, limits=FoxessLimits(per_inverter_per_day=3))
        async with served(sim) as fox:
            real = "/op/v1/device/real/query"
            for _ in range(3):
                assert len(await fox.ok("POST", real, {"sns": [HYB, PVO], "variables": ["pvPower"]})) == 2
            assert sim.quota(KEY) == (6, 0)
            assert errno(await fox.post(real, {"sns": [HYB], "variables": ["pvPower"]})) == 40402
            assert errno(await fox.get("/op/v0/user/getAccessCount")) == 40402

        sim = make_sim(NOON, limits=FoxessLimits(per_inverter_per_day=5), access_count_strings=False)
        async with served(sim) as fox:
            count = "/op/v0/user/getAccessCount"
            assert await fox.ok("GET", count) == {"total": 10, "remaining": 9}
            assert errno(await fox.get(count, tick=0)) == 40400  # still costs a call (notes §3.3)
            assert await fox.ok("GET", count) == {"total": 10, "remaining": 7}
            # a v1 batch of two inverters costs two
            await fox.ok("POST", "/op/v1/device/real/query", {"sns": [HYB, PVO], "variables": ["SoC_1"]})
            assert await fox.ok("GET", count) == {"total": 10, "remaining": 4}

    run(scenario())


# ------------------------------------------------------------------------------------------------
# Discovery


def test_device_list_paging_and_plant_endpoints() -> None:
    async def scenario() -> None:
        sim = make_sim(NOON, make_plant(extra=10))
        async with served(sim) as fox:
            path = "/op/v0/device/list"
            page1 = await fox.ok("POST", path, {"currentPage": 1, "pageSize": 10})
            page2 = await fox.ok("POST", path, {"currentPage": 2, "pageSize": 10})
            assert page1["total"] == page2["total"] == 12
            assert len(page1["data"]) == 10 and len(page2["data"]) == 2
            sns = [d["deviceSN"] for d in page1["data"] + page2["data"]]
            assert sorted(sns) == sorted(inv.sn for inv in sim.plant.inverters)
            hybrid = next(d for d in page1["data"] if d["deviceSN"] == HYB)
            assert hybrid["hasBattery"] is True and hybrid["status"] == 1 and hybrid["stationID"] == "site-1"
            plants = await fox.ok("POST", "/op/v0/plant/list", {"currentPage": 1, "pageSize": 10})
            assert plants["data"] == [{"stationID": "site-1", "name": "Test Site", "ianaTimezone": ZONE}]
            detail = await fox.ok("GET", "/op/v0/plant/detail", params={"id": "site-1"})
            assert detail["timezone"] == ZONE
            parse_time(detail["createDate"])
            device = await fox.ok("GET", "/op/v1/device/detail", params={"sn": HYB})
            bmu = [b for b in device["batteryList"] if b["type"] == "bmu"]
            assert sum({b["batterySN"]: b["capacity"] for b in bmu}.values()) == 10360
            assert device["capacity"] == 8 and device["batteryDesignCapacity"] == 10.36
            catalogue = await fox.ok("GET", "/op/v0/device/variable/get")
            keys = {next(iter(item)) for item in catalogue}
            assert {"pvPower", "todayYield", "ResidualEnergy", "meterPower", "runningState"} <= keys

    run(scenario())


# ------------------------------------------------------------------------------------------------
# Real-time data


def test_v1_accepts_up_to_50_sns() -> None:
    async def scenario() -> None:
        sim = make_sim(NOON)
        async with served(sim) as fox:
            real = "/op/v1/device/real/query"
            fifty = [HYB, PVO] + [f"UNKNOWN{i:08d}" for i in range(48)]
            result = await fox.ok("POST", real, {"sns": fifty, "variables": ["pvPower"]})
            assert [d["deviceSN"] for d in result] == [HYB, PVO]  # others' SNs are dropped
            assert (
                errno(await fox.post(real, {"sns": [*fifty, "ONEMORE"], "variables": ["pvPower"]})) == 40257
            )
            assert errno(await fox.post(real, {"variables": ["pvPower"]})) == 40257

    run(scenario())


def test_realtime_units_signs_and_shapes_match_the_truth() -> None:
    night = local_time(ZONE, SPRING - timedelta(days=1), 3, 30)  # grid-charge window, no PV

    async def scenario() -> None:
        sim = make_sim(night, quirks={HYB: FoxessQuirks(residual_unit="0.01kWh")})
        async with served(sim) as fox:
            result = await fox.ok("POST", "/op/v1/device/real/query", {"sns": [HYB, PVO]})
            now = fox.clock()
        hyb, pvo = result
        truth = sim.plant.snapshot(HYB, now)
        assert truth is not None and truth.battery is not None
        assert parse_time(hyb["time"]) == truth.t and "datas" in hyb
        v = values(hyb)
        units = {d["variable"]: d.get("unit") for d in hyb["datas"]}
        # charging from the grid: AC output negative, meter positive = import, invBatPower negative
        assert truth.ac_power_w < 0 and truth.battery.charge_power_w > 0
        assert v["generationPower"] == pytest.approx(truth.ac_power_w / 1000, abs=0.001)
        assert v["meterPower"] == pytest.approx(v["gridConsumptionPower"]) and v["meterPower"] > 0
        assert v["feedinPower"] == 0
        assert v["invBatPower"] == pytest.approx(-v["batChargePower"], abs=0.001) and v["invBatPower"] < 0
        assert v["invBatCurrent"] < 0
        assert v["loadsPower"] == pytest.approx(truth.load_power_w / 1000, abs=0.001)
        # two packs: SoC_1 / Soc_2, no aggregate SoC, batVolt 0 beside batVolt_1
        assert "SoC" not in v and "batTemperature" not in v
        assert (v["SoC_1"] + v["Soc_2"]) / 2 == pytest.approx(truth.battery.soc_pct, abs=1)
        assert v["batVolt"] == 0 and v["batVolt_1"] > 300
        assert units["ResidualEnergy"] == "0.01kWh"
        assert v["ResidualEnergy"] * 10 == pytest.approx(truth.battery.residual_energy_wh, abs=10)
        assert units["energyThroughput"] == "Wh"  # labelled Wh, the number is kWh
        throughput = truth.total.battery_charge_wh + truth.total.battery_discharge_wh
        assert v["energyThroughput"] == pytest.approx(throughput / 1000, abs=0.01)
        assert v["generation"] == pytest.approx(truth.total.yield_wh / 1000, abs=0.1)
        assert "todayYield" not in v  # not sent by H3 models (notes §4.1)
        assert v["runningState"] == "163" and units["runningState"] is None
        assert v["currentFault"] == "" and v["currentFaultCount"] == "0"
        assert units["invTemperation"] == "℃"

        p = values(pvo)
        pv_truth = sim.plant.snapshot(PVO, now)
        assert pv_truth is not None
        assert p["runningState"] == "161"  # solar-only at night: waiting
        assert {d["variable"]: d.get("unit") for d in pvo["datas"]}["todayYield"] == "kW"
        assert p["todayYield"] == pytest.approx(pv_truth.today.yield_wh / 1000, abs=0.1)
        assert "SoC" not in p and "invBatPower" not in p

    run(scenario())


def test_idle_battery_split_is_null() -> None:
    plant = make_plant()
    start = local_time(ZONE, SPRING - timedelta(days=1), 0)
    idle = next(
        u
        for u in plant.upload_times(HYB, start, start + 86400)
        if (b := plant.truth(HYB, u).battery) is not None and b.charge_power_w == b.discharge_power_w == 0
    )

    async def scenario() -> None:
        sim = make_sim(idle, plant)
        async with served(sim) as fox:
            real = await fox.ok("POST", "/op/v0/device/real/query", {"sn": HYB}, tick=0)
        v = values(real[0])
        assert v["batChargePower"] is None and v["batDischargePower"] is None and v["invBatPower"] == 0

    run(scenario())


def test_fault_schedule_shows_up() -> None:
    day = SPRING - timedelta(days=1)
    fault = Fault(PVO, 8, local_time(ZONE, day, 12), local_time(ZONE, day, 13), "PV Voltage Fault")

    async def scenario() -> None:
        sim = make_sim(local_time(ZONE, day, 12, 30), make_plant(faults=[fault]))
        async with served(sim) as fox:
            real = await fox.ok("POST", "/op/v1/device/real/query", {"sns": [PVO]})
            listed = await fox.ok("POST", "/op/v0/device/list", {"currentPage": 1, "pageSize": 10})
            table = await fox.ok("GET", "/op/v0/device/fault/get")
        v = values(real[0])
        assert v["runningState"] == "165" and v["currentFault"] == "8" and v["currentFaultCount"] == "1"
        assert v["pvPower"] == 0
        assert {d["deviceSN"]: d["status"] for d in listed["data"]} == {HYB: 1, PVO: 2}
        assert any("8" in item for item in table)

    run(scenario())


@pytest.mark.parametrize(
    ("day", "before", "after"),
    [
        (SPRING, ("01:", "CET+0100"), ("03:", "CEST+0200")),
        (AUTUMN, ("02:", "CEST+0200"), ("02:", "CET+0100")),
    ],
)
def test_time_strings_follow_the_site_zone_across_dst(
    day: date, before: tuple[str, str], after: tuple[str, str]
) -> None:
    utc_midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())

    async def scenario() -> None:
        sim = make_sim(utc_midnight + 2700, make_plant(commissioned=day - timedelta(days=1)))
        async with served(sim) as fox:
            first = (await fox.ok("POST", "/op/v1/device/real/query", {"sns": [PVO]}))[0]["time"]
            fox.clock.advance(3600)
            second = (await fox.ok("POST", "/op/v1/device/real/query", {"sns": [PVO]}))[0]["time"]
            # the local day in one history call (23 h in spring; 25 h in autumn is over the limit)
            begin = local_midnight(ZONE, day)
            end = local_midnight(ZONE, day + timedelta(days=1))
            history = "/op/v0/device/history/query"
            fox.clock.set(end + 600)
            body = {"sn": PVO, "variables": ["pvPower"], "begin": begin * 1000, "end": end * 1000 - 1}
            if end - begin > 86400:
                assert errno(await fox.post(history, body)) == 40257
                body["end"] = (begin + 86400) * 1000
            series = (await fox.ok("POST", history, body))[0]["datas"][0]["data"]
        assert first.startswith(f"{day} {before[0]}") and first.endswith(before[1]), first
        assert second.startswith(f"{day} {after[0]}") and second.endswith(after[1]), second
        assert parse_time(second) - parse_time(first) == 3600
        stamps = [parse_time(p["time"]) for p in series]
        assert stamps == sim.plant.upload_times(PVO, begin, min(end - 1, begin + 86400))
        assert {p["time"][20:-5] for p in series} == {"CET", "CEST"}

    run(scenario())


# ------------------------------------------------------------------------------------------------
# History


def test_history_window_rules_cadence_and_energy() -> None:
    day = SPRING - timedelta(days=1)
    begin = local_midnight(ZONE, day)

    async def scenario() -> None:
        sim = make_sim(begin + 86400 + 3600, quirks={HYB: FoxessQuirks(history_string_every=5)})
        async with served(sim) as fox:
            path = "/op/v0/device/history/query"
            window: dict[str, Any] = {"sn": PVO, "begin": begin * 1000, "end": (begin + 86400) * 1000 + 1}
            assert errno(await fox.post(path, window)) == 40257
            assert errno(await fox.post(path, {"sn": PVO, "begin": begin * 1000})) == 40257
            assert errno(await fox.post(path, {**window, "begin": window["end"] + 1})) == 40257
            window["end"] -= 1
            result = await fox.ok(
                "POST", path, {**window, "variables": ["pvPower", "generationPower", "nope"]}
            )
            strings = await fox.ok("POST", path, {**window, "sn": HYB, "variables": ["SoC_1"]})
        assert result[0]["deviceSN"] == PVO
        by_var = {d["variable"]: d for d in result[0]["datas"]}
        assert set(by_var) == {"pvPower", "generationPower"} and by_var["pvPower"]["unit"] == "kW"
        points = by_var["pvPower"]["data"]
        stamps = [parse_time(p["time"]) for p in points]
        assert stamps == sim.plant.upload_times(PVO, begin, begin + 86400)
        assert all(b - a == 300 for a, b in itertools.pairwise(stamps))
        for p, u in zip(points, stamps, strict=True):
            assert p["value"] == pytest.approx(sim.plant.truth(PVO, u).pv_power_w / 1000, abs=0.001)
        # 5-minute samples integrate to the day's energy
        sampled_kwh = sum(p["value"] for p in points) * 300 / 3600
        true_kwh = sim.plant.energy(PVO, begin, begin + 86400).pv_wh / 1000
        assert sampled_kwh == pytest.approx(true_kwh, rel=0.02)
        soc = strings[0]["datas"][0]["data"]
        assert any(isinstance(p["value"], str) for p in soc)  # notes §4.2
        assert all(float(p["value"]) >= 0 for p in soc)

    run(scenario())


# ------------------------------------------------------------------------------------------------
# Reports and generation


def test_reports_shapes_undercount_nulls_and_labels() -> None:
    day = SPRING - timedelta(days=2)  # 2025-03-28
    outage = Outage(PVO, local_time(ZONE, day, 10), local_time(ZONE, day, 11, 10))
    plant = make_plant(outages=[outage])
    now = local_time(ZONE, SPRING + timedelta(days=2), 10)

    async def scenario() -> None:
        sim = make_sim(now, plant, quirks={PVO: FoxessQuirks(report_corruption=False)})
        async with served(sim) as fox:
            path = "/op/v0/device/report/query"
            variables = ["generation", "feedin", "gridConsumption", "loads", "PVEnergyTotal"]
            base = {"sn": PVO, "year": 2025, "variables": variables}
            hours = await fox.ok("POST", path, {**base, "month": 3, "day": day.day, "dimension": "day"})
            month = await fox.ok("POST", path, {**base, "month": 3, "dimension": "month"})
            april = await fox.ok("POST", path, {**base, "month": 4, "dimension": "month"})
            year = await fox.ok("POST", path, {**base, "dimension": "year"})
            assert errno(await fox.post(path, {**base, "dimension": "week"})) == 40257
            assert errno(await fox.post(path, {**base, "month": 3, "dimension": "day"})) == 40257
            assert errno(await fox.post(path, {**base, "month": 2, "day": 30, "dimension": "day"})) == 40257
        assert [r["variable"] for r in hours] == variables and all(r["unit"] == "kWh" for r in hours)
        gen_hours = hours[0]["values"]
        assert len(gen_hours) == 24 and len(month[0]["values"]) == 31 and len(year[0]["values"]) == 12
        assert gen_hours[10] is None  # no upload in that hour
        assert gen_hours[0] == 0 and gen_hours[12] > 0
        # each hour runs from its first to its last upload: the hours under-count the day
        truth_kwh = sim.plant.energy(PVO, local_midnight(ZONE, day), local_midnight(ZONE, day) + 86400)
        day_total = month[0]["values"][day.day - 1]
        assert day_total == pytest.approx(truth_kwh.yield_wh / 1000, abs=0.2)
        assert sum(v for v in gen_hours if v is not None) < day_total
        # future days are 0.0; the days before commissioning too
        assert month[0]["values"][day.day - 3] == 0 and month[0]["values"][30] > 0  # 26th, 31st
        assert april[0]["values"][0] > 0 and april[0]["values"][1:] == [0.0] * 30  # now: 1 April 10:00
        # year: values in request order, labels rotated (notes §4.3 (a))
        assert [r["variable"] for r in year] == [*variables[1:], variables[0]]
        march = sum(v for v in month[0]["values"] if v is not None)
        assert year[0]["values"][2] == pytest.approx(march, abs=0.2)

    run(scenario())


def test_report_corruption_is_maskable() -> None:
    now = local_time(ZONE, SPRING + timedelta(days=1), 12)
    sim = make_sim(now)
    days = [SPRING - timedelta(days=2), SPRING - timedelta(days=1), SPRING]
    variables = ["generation", "feedin", "gridConsumption", "loads", "PVEnergyTotal", "chargeEnergyToTal"]
    corrupt = [
        (d, var, slot)
        for d in days
        for var in variables
        if (slot := sim.corrupted_slot(HYB, var, "day", 2025, 3, d.day)) is not None
    ]
    assert corrupt  # the rule corrupts about one report in three
    d, var, slot = corrupt[0]
    body = {"sn": HYB, "year": 2025, "month": 3, "day": d.day, "dimension": "day", "variables": [var]}

    async def scenario(sim: FoxessSim) -> list[float | None]:
        async with served(sim) as fox:
            result = await fox.ok("POST", "/op/v0/device/report/query", body)
        return list(result[0]["values"])

    bad = run(scenario(sim))
    clean = run(scenario(make_sim(now, quirks={HYB: FoxessQuirks(report_corruption=False)})))
    value = bad[slot]
    assert value is not None and value > 200_000_000
    assert (int(value * 10) & 0xFFFF) / 10 == pytest.approx(clean[slot], abs=1e-6)
    assert [v for i, v in enumerate(bad) if i != slot] == [v for i, v in enumerate(clean) if i != slot]


def test_generation_today_null_until_the_first_upload() -> None:
    plant = make_plant()
    midnight = local_midnight(ZONE, SPRING - timedelta(days=1))
    first = plant.upload_times(PVO, midnight, midnight + 300)[0]

    async def scenario() -> None:
        sim = make_sim(first - 1, plant)
        async with served(sim) as fox:
            early = await fox.ok("GET", "/op/v0/device/generation", params={"sn": PVO}, tick=0)
            fox.clock.set(midnight + 15 * 3600)
            later = await fox.ok("GET", "/op/v0/device/generation", params={"sn": PVO}, tick=0)
        assert early["today"] is None and early["cumulative"] > 0
        truth = plant.truth(PVO, plant.upload_time(PVO, midnight + 15 * 3600) or 0)
        assert later["today"] == pytest.approx(truth.today.yield_wh / 1000, abs=0.15)
        assert later["cumulative"] == pytest.approx(truth.total.yield_wh / 1000, abs=0.1)
        assert later["month"] == pytest.approx(later["cumulative"], abs=0.1)  # commissioned this month

    run(scenario())


# ------------------------------------------------------------------------------------------------
# Fault injection


def test_fault_injection_hook() -> None:
    async def scenario() -> None:
        sim = make_sim(NOON)
        async with served(sim) as fox:
            listing = "/op/v0/device/list"
            page = {"currentPage": 1, "pageSize": 10}
            sim.inject(listing, Injection.errno(41200), count=2)
            assert errno(await fox.post(listing, page)) == 41200
            assert errno(await fox.post(listing, page)) == 41200
            assert await fox.ok("POST", listing, page)

            sim.inject(listing, Injection.http(503))
            assert (await fox.post(listing, page))[0] == 503
            sim.inject(listing, Injection.html(502))
            status, text = await fox.post(listing, page)
            assert status == 502 and isinstance(text, str) and "<html>" in text
            sim.inject(listing, Injection.malformed())
            status, text = await fox.post(listing, page)
            assert status == 200 and isinstance(text, str) and text.startswith('{"errno":0')

            sim.inject("*", Injection.hang(30))
            with pytest.raises(asyncio.TimeoutError):
                await fox.post(listing, page, timeout=0.2)

            real = "/op/v1/device/real/query"
            sim.inject(real, Injection.nulls())
            nulls = await fox.ok("POST", real, {"sns": [HYB], "variables": ["pvPower", "SoC_1"]})
            assert values(nulls[0]) == {"pvPower": None, "SoC_1": None}
            sim.inject(real, Injection.strings())
            strings = await fox.ok("POST", real, {"sns": [HYB], "variables": ["pvPower", "SoC_1"]})
            assert all(isinstance(v, str) for v in values(strings[0]).values())
            assert await fox.ok("POST", listing, page)
            assert sim.injector.pending() == 0
        outcomes = [c.outcome for c in sim.calls]
        assert outcomes.count("injected") == 8 and sim.violations == 0
        assert sim.quota(KEY)[1] == 2880 - len(sim.calls)  # injected calls cost quota like real ones

    run(scenario())


# ------------------------------------------------------------------------------------------------
# Standalone


def test_standalone_module_prints_its_url_and_serves() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    async def call(url: str) -> Any:
        path = "/op/v0/user/getAccessCount"
        ts = str(int(time.time() * 1000))
        headers = {
            "token": "k-standalone",
            "timestamp": ts,
            "signature": sign(path, "k-standalone", ts),
            "lang": "en",
        }
        async with aiohttp.ClientSession() as session, session.get(url + path, headers=headers) as resp:
            return await resp.json()

    args = [sys.executable, "-m", "collector.simulators", "foxess", "--port", "0", "--key", "k-standalone"]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
            assert run(call(url))["result"] == {"total": "2880", "remaining": "2879"}
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
