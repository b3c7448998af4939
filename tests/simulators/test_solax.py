"""The SolaX Cloud simulator's protocol rules, checked with a plain aiohttp client.

The expected envelopes, codes, units and signs below are written from the field notes
(``shared/research/solax.md`` §2-§5) and the vendor docs, not imported from the simulator: they are
the spec check. The simulator runs on a :class:`ManualClock`; the helper moves it 6 s before each call
(10 calls a minute fit) unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from collector.simulators import SERVED_BY, SIMULATORS
from collector.simulators.base import Injection, ManualClock
from collector.simulators.ev import (
    AVAILABLE,
    CHARGING,
    FAULTED,
    FINISHING,
    PREPARING,
    SUSPENDED_EV,
    Charger,
    ChargerFault,
    ChargeSession,
    EvFleet,
)
from collector.simulators.plant import Battery, Fault, GridCharge, Inverter, Plant, PvString, Site, local_time
from collector.simulators.solax import (
    FIELD_UNITS,
    PILE_CMD_PATH,
    PILE_INFO_PATH,
    REALTIME_PATH,
    BatteryFault,
    PileQuirks,
    SolaxAccount,
    SolaxLimits,
    SolaxQuirks,
    SolaxSim,
)

ZONE = "Europe/Berlin"
TOKEN = "202301010000000000000042"
OTHER_TOKEN = "202301010000000000000043"
HYB, HYB_WIFI = "H34TEST00001", "SRTEST0001"
PVO, PVO_WIFI = "XB3TEST00002", "SWTEST0002"
X1H, X1H_WIFI = "H15TEST00003", "SRTEST0003"
OTHER_WIFI = "SRTEST0004"
PENDING, NEVER = "SXTEST0008", "SXTEST0009"
PILE = "C311TEST000001"
DAY = date(2026, 6, 15)  # CEST; sunrise ~04:45, sunset ~21:30 in Berlin
NOON = local_time(ZONE, DAY, 12)
DOC_FIELDS = [
    "inverterSN",
    "sn",
    "acpower",
    "yieldtoday",
    "yieldtotal",
    "feedinpower",
    "feedinenergy",
    "consumeenergy",
    "feedinpowerM2",
    "soc",
    "peps1",
    "peps2",
    "peps3",
    "inverterType",
    "inverterStatus",
    "uploadTime",
    "batPower",
    "powerdc1",
    "powerdc2",
    "powerdc3",
    "powerdc4",
    "batStatus",
]
"""doc §7.1 "Returned message", in order."""
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def make_plant(commissioned: date = DAY - timedelta(days=3), faults: tuple[Fault, ...] = ()) -> Plant:
    hybrid = Inverter(
        HYB,
        "X3-Hybrid-G4",
        10000,
        (PvString(6.0, 0.3), PvString(4.0, -0.3)),
        battery=Battery(10000, max_power_w=5000, grid_charge=GridCharge(2, 5, 90, 2500)),
        phases=3,
        load_kwh_per_day=14.0,
        logger_sn=HYB_WIFI,
    )
    pv = Inverter(PVO, "X1-Boost", 3300, (PvString(3.6),), logger_sn=PVO_WIFI)
    x1 = Inverter(
        X1H,
        "X1-Hybrid-G4",
        5000,
        (PvString(3.0), PvString(2.0)),
        battery=Battery(6300, max_power_w=3000),
        logger_sn=X1H_WIFI,
    )
    other = Inverter("H34TEST00004", "X3-Hybrid-G4", 8000, (PvString(5.0),), phases=3, logger_sn=OTHER_WIFI)
    site = Site("site-1", "Test", ZONE, 52.5, 13.4, (hybrid, pv, x1, other), commissioned)
    return Plant([site], faults=faults)


def make_fleet(
    commissioned: date = DAY - timedelta(days=3), faults: tuple[ChargerFault, ...] = ()
) -> EvFleet:
    return EvFleet([Charger(PILE, ZONE, commissioned)], seed=11, faults=faults)


def make_sim(now: float = NOON, *, plant: Plant | None = None, **kwargs: Any) -> SolaxSim:
    accounts = kwargs.pop(
        "accounts",
        [
            SolaxAccount(TOKEN, (HYB_WIFI, PVO_WIFI, X1H_WIFI), (PILE,), (PENDING,), (NEVER,)),
            SolaxAccount(OTHER_TOKEN, (OTHER_WIFI,), ()),
        ],
    )
    return SolaxSim(
        plant if plant is not None else make_plant(),
        accounts=accounts,
        fleet=kwargs.pop("fleet", make_fleet()),
        clock=ManualClock(now),
        **kwargs,
    )


class Sx:
    """A minimal client: v2 POST with the ``tokenId`` header; the pile GET with query parameters."""

    def __init__(self, sim: SolaxSim, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session
        clock = sim.clock
        assert isinstance(clock, ManualClock)
        self.clock = clock
        self.status = 0
        self.content_type = ""

    async def _read(self, resp: aiohttp.ClientResponse) -> Any:
        self.status = resp.status
        self.content_type = resp.content_type
        text = await resp.text()
        try:
            return json.loads(text)
        except ValueError:
            return text

    async def realtime(
        self, wifi_sn: str, *, token: str | None = TOKEN, tick: float = 6.0, raw: str | None = None
    ) -> Any:
        self.clock.advance(tick)
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["tokenId"] = token
        data = raw if raw is not None else json.dumps({"wifiSn": wifi_sn})
        async with self.session.post(self.sim.base_url + REALTIME_PATH, data=data, headers=headers) as resp:
            return await self._read(resp)

    async def pile(self, pile_sn: str | None, *, token: str | None = TOKEN, tick: float = 6.0) -> Any:
        self.clock.advance(tick)
        params = {}
        if token is not None:
            params["tokenId"] = token
        if pile_sn is not None:
            params["pileSn"] = pile_sn
        async with self.session.get(self.sim.base_url + PILE_INFO_PATH, params=params) as resp:
            return await self._read(resp)

    async def ok(self, wifi_sn: str, **kwargs: Any) -> dict[str, Any]:
        env = await self.realtime(wifi_sn, **kwargs)
        assert self.status == 200 and env["success"] is True and env["code"] == 0, env
        result: dict[str, Any] = env["result"]
        return result


@asynccontextmanager
async def served(sim: SolaxSim) -> AsyncIterator[Sx]:
    async with sim, aiohttp.ClientSession() as session:
        yield Sx(sim, session)


def utc_of(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def local_of(text: str, fold: int = 0) -> int:
    naive = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return int(naive.replace(tzinfo=ZoneInfo(ZONE), fold=fold).timestamp())


def within(served_value: Any, truth: float, name: str) -> bool:
    """A served value is the truth rounded to the field's resolution (notes §3.1)."""
    resolution = FIELD_UNITS[name][1]
    return isinstance(served_value, int | float) and abs(served_value - truth) <= resolution / 2 + 1e-9


# ------------------------------------------------------------------------------------------------
# Envelopes and shapes


def test_v2_success_envelope_and_fields() -> None:
    async def main() -> None:
        async with served(make_sim()) as sx:
            env = await sx.realtime(HYB_WIFI)
            assert sx.status == 200 and list(env) == ["success", "exception", "result", "code"]
            assert env["success"] is True and env["exception"] == "operation success" and env["code"] == 0
            result = env["result"]
            assert [k for k in result if k != "utcDateTime"] == DOC_FIELDS
            assert result["inverterSN"] == HYB and result["sn"] == HYB_WIFI
            assert result["inverterType"] == "14" and result["inverterStatus"] == "102"
            assert result["batStatus"] == "0"
            assert result == sx.sim.record(HYB_WIFI, sx.clock())
        sim = make_sim(quirks=SolaxQuirks(success_text="Query success!"))
        async with served(sim) as sx:
            env = await sx.realtime(HYB_WIFI)
            assert env["exception"] == "Query success!" and env["success"] is True
            assert sx.sim.calls[-1].code == 0 and sx.sim.calls[-1].outcome == "ok"

    run(main())


def test_units_and_signs_against_the_truth() -> None:
    """notes §3.1: W and kWh; feedinpower + = export; batPower + = charging; yield = AC output."""
    sim = make_sim()
    signs: dict[str, set[int]] = {"feedinpower": set(), "batPower": set()}
    for minute in range(0, 24 * 60, 20):
        t = local_time(ZONE, DAY, minute // 60, minute % 60)
        rec, truth = sim.record(HYB_WIFI, t), sim.truth(HYB_WIFI, t)
        assert rec is not None and truth is not None and truth.battery is not None
        bat = truth.battery
        assert utc_of(rec["utcDateTime"]) == truth.t and t - 300 < truth.t <= t
        assert within(rec["acpower"], truth.ac_power_w, "acpower")
        export = truth.grid_export_power_w - truth.grid_import_power_w
        assert within(rec["feedinpower"], export, "feedinpower")
        assert within(rec["batPower"], bat.charge_power_w - bat.discharge_power_w, "batPower")
        assert within(rec["soc"], bat.soc_pct, "soc")
        assert within(rec["yieldtoday"], truth.today.yield_wh / 1000, "yieldtoday")
        assert within(rec["yieldtotal"], truth.total.yield_wh / 1000, "yieldtotal")
        assert within(rec["feedinenergy"], truth.total.grid_export_wh / 1000, "feedinenergy")
        assert within(rec["consumeenergy"], truth.total.grid_import_wh / 1000, "consumeenergy")
        for i in (0, 1):
            assert within(rec[f"powerdc{i + 1}"], truth.strings[i].power_w, f"powerdc{i + 1}")
        assert rec["powerdc3"] is None and rec["powerdc4"] is None  # X3-Hybrid-G4: 2 MPPTs
        assert rec["peps1"] == rec["peps2"] == rec["peps3"] == 0  # 3-phase, no EPS load
        for name in signs:
            if abs(rec[name]) >= 5:
                signs[name].add(1 if rec[name] > 0 else -1)
        if abs(export) >= 5:
            assert (rec["feedinpower"] > 0) == (truth.grid_export_power_w > 0)
    assert signs == {"feedinpower": {1, -1}, "batPower": {1, -1}}
    # grid charging at night: AC output negative, import (feedinpower < 0), battery charging
    rec = sim.record(HYB_WIFI, local_time(ZONE, DAY, 2, 30))
    assert rec is not None and rec["acpower"] < 0 and rec["feedinpower"] < 0 < rec["batPower"]
    # single-phase hybrid: peps1 0, the phases it lacks null
    x1 = sim.record(X1H_WIFI, NOON)
    assert x1 is not None and x1["inverterType"] == "15"
    assert (x1["peps1"], x1["peps2"], x1["peps3"]) == (0, None, None)
    # energy fields are floats at their resolution
    assert isinstance(x1["yieldtotal"], float) and round(x1["yieldtotal"], 1) == x1["yieldtotal"]
    assert isinstance(x1["feedinenergy"], float) and round(x1["feedinenergy"], 2) == x1["feedinenergy"]


def test_same_record_between_uploads() -> None:
    async def main() -> None:
        sim = make_sim()
        async with served(sim) as sx:
            first = await sx.ok(HYB_WIFI, tick=0)
            upload = utc_of(first["utcDateTime"])
            nxt = upload + 300  # Inverter.upload_interval_s
            sx.clock.set(nxt - 1)
            assert await sx.ok(HYB_WIFI, tick=0) == first
            sx.clock.set(nxt)
            second = await sx.ok(HYB_WIFI, tick=0)
            assert utc_of(second["utcDateTime"]) == nxt and second != first

    run(main())


def test_pv_only_sleeps_at_night_with_zero_placeholders() -> None:
    sim = make_sim()
    evening = sim.record(PVO_WIFI, local_time(ZONE, DAY, 23))
    night = sim.record(PVO_WIFI, local_time(ZONE, DAY + timedelta(days=1), 3))
    assert evening is not None and evening == night
    last = utc_of(evening["utcDateTime"])
    assert sim.plant.truth(PVO, last).state != "standby"
    assert sim.plant.truth(PVO, last + 300).state == "standby"  # the next upload slot: asleep
    assert local_of(evening["uploadTime"]) > local_time(ZONE, DAY, 20)
    assert within(evening["yieldtoday"], sim.plant.truth(PVO, last).today.yield_wh / 1000, "yieldtoday")
    # PV-only model: 0 placeholders (not null) for the battery and EPS fields, batStatus "0"
    assert evening["inverterType"] == "4"
    assert evening["soc"] == 0 and evening["batPower"] == 0 and evening["batStatus"] == "0"
    assert evening["peps1"] == evening["peps2"] == evening["peps3"] == 0
    assert evening["feedinpowerM2"] is None
    assert evening["powerdc2"] == 0 and evening["powerdc3"] is None  # X1-Boost: 2 MPPTs, one string
    morning_t = local_time(ZONE, DAY + timedelta(days=1), 6)
    morning = sim.record(PVO_WIFI, morning_t)
    assert morning is not None and morning_t - 300 < utc_of(morning["utcDateTime"]) <= morning_t
    assert morning["yieldtoday"] < 1.0 < evening["yieldtoday"]
    # the hybrid uploads all night
    three = local_time(ZONE, DAY + timedelta(days=1), 3)
    hyb = sim.record(HYB_WIFI, three)
    assert hyb is not None and three - 300 < utc_of(hyb["utcDateTime"]) <= three
    # placeholders off: nulls
    sim = make_sim(quirks=SolaxQuirks(pv_only_placeholders=False))
    rec = sim.record(PVO_WIFI, NOON)
    assert rec is not None and rec["soc"] is None and rec["batPower"] is None and rec["batStatus"] is None

    async def main() -> None:
        async with served(make_sim(now=three)) as sx:
            assert await sx.ok(PVO_WIFI, tick=0) == night

    run(main())


def test_inverter_status_and_battery_status() -> None:
    pv_fault = Fault(PVO, 2, local_time(ZONE, DAY, 11), local_time(ZONE, DAY, 11, 30))
    perm = Fault(X1H, 9, local_time(ZONE, DAY, 13), local_time(ZONE, DAY, 13, 30), permanent=True)
    bf = BatteryFault(HYB, local_time(ZONE, DAY, 14), local_time(ZONE, DAY, 14, 20))
    sim = make_sim(
        plant=make_plant(faults=(pv_fault, perm)),
        battery_faults=[bf],
        dongle_quirks={PVO_WIFI: SolaxQuirks(night_sleep=False, standby_status="110")},
    )

    def status(sn: str, h: int, m: int = 0, key: str = "inverterStatus") -> Any:
        rec = sim.record(sn, local_time(ZONE, DAY, h, m) + 1)
        assert rec is not None
        return rec[key]

    assert status(PVO_WIFI, 11, 20) == "103" and status(PVO_WIFI, 12) == "102"
    assert status(X1H_WIFI, 13, 20) == "104"
    assert status(PVO_WIFI, 1) == "110"  # awake at night (quirk off): standby
    # one upload falls in the 300-s grid check after sunrise (STARTUP_CHECK_S): status 100
    morning = sim.plant.upload_times(PVO, local_time(ZONE, DAY, 3), local_time(ZONE, DAY, 7))
    starting = [u for u in morning if sim.plant.truth(PVO, u).state == "starting"]
    assert len(starting) == 1
    rec = sim.record(PVO_WIFI, starting[0])
    assert rec is not None and rec["inverterStatus"] == "100"
    assert status(HYB_WIFI, 14, 10, "batStatus") == "1" and status(HYB_WIFI, 14, 30, "batStatus") == "0"


def test_utc_datetime_and_local_upload_time_across_dst() -> None:
    autumn = date(2026, 10, 25)  # 03:00 CEST → 02:00 CET
    sim = make_sim(plant=make_plant(autumn - timedelta(days=2)), fleet=make_fleet(autumn - timedelta(days=2)))
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC).timestamp()  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC).timestamp()  # 02:30 CET
    a, b = sim.record(HYB_WIFI, first), sim.record(HYB_WIFI, second)
    assert a is not None and b is not None
    assert a["uploadTime"][:13] == b["uploadTime"][:13] == "2026-10-25 02"  # the repeated hour
    assert utc_of(b["utcDateTime"]) - utc_of(a["utcDateTime"]) == 3600
    assert local_of(a["uploadTime"], fold=0) == utc_of(a["utcDateTime"])
    assert local_of(b["uploadTime"], fold=1) == utc_of(b["utcDateTime"])
    spring = date(2026, 3, 29)  # 02:00 CET → 03:00 CEST
    sim = make_sim(plant=make_plant(spring - timedelta(days=2)), fleet=make_fleet(spring - timedelta(days=2)))
    for hour_utc, offset in ((0, 3600), (2, 7200)):
        t = datetime(2026, 3, 29, hour_utc, 30, tzinfo=UTC).timestamp()
        rec = sim.record(HYB_WIFI, t)
        assert rec is not None and local_of(rec["uploadTime"]) == utc_of(rec["utcDateTime"])
        naive = datetime.strptime(rec["uploadTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        assert naive - utc_of(rec["utcDateTime"]) == offset
    # utcDateTime off (Sunvec's is unverified): the key is absent, uploadTime stays local
    sim = make_sim(quirks=SolaxQuirks(utc_datetime=False), brand="sunvec")
    rec = sim.record(HYB_WIFI, NOON)
    assert rec is not None and "utcDateTime" not in rec and list(rec) == DOC_FIELDS
    assert NOON - 300 < local_of(rec["uploadTime"]) <= NOON and sim.vendor == "sunvec"


def test_stale_replica_answers() -> None:
    async def main() -> None:
        async with served(make_sim()) as sx:
            fresh = await sx.ok(HYB_WIFI, tick=1)
            sx.sim.serve_stale(HYB_WIFI, count=1, age_uploads=2)
            stale = await sx.ok(HYB_WIFI, tick=1)
            assert utc_of(stale["utcDateTime"]) == utc_of(fresh["utcDateTime"]) - 600
            assert await sx.ok(HYB_WIFI, tick=1) == fresh
            assert [s.stale for s in sx.sim.served] == [False, True, False]
        sim = make_sim(dongle_quirks={HYB_WIFI: SolaxQuirks(stale_every=3)})
        async with served(sim) as sx:
            stamps = [utc_of((await sx.ok(HYB_WIFI, tick=1))["utcDateTime"]) for _ in range(6)]
            newest = max(stamps)
            assert [s != newest for s in stamps] == [False, False, True, False, False, True]
            assert all(newest - s in (0, 300) for s in stamps)

    run(main())


def test_no_data_yet_and_never_reported() -> None:
    async def main() -> None:
        async with served(make_sim()) as sx:
            env = await sx.realtime(PENDING)
            assert env == {"success": True, "exception": "operation success", "result": None, "code": 0}
            env = await sx.realtime(NEVER)
            # notes §2.2: the v1 quirk, success false with a string result and code 0
            assert env == {
                "success": False,
                "exception": "Query success!",
                "result": "this sn did not access!",
                "code": 0,
            }
            assert [c.outcome for c in sx.sim.calls] == ["ok", "error"]
            assert [c.code for c in sx.sim.calls] == [0, 0]
        before = make_sim(now=local_time(ZONE, DAY - timedelta(days=3), 2))  # commissioned, no upload yet
        async with served(before) as sx:
            env = await sx.realtime(PVO_WIFI, tick=0)
            assert env["success"] is True and env["result"] is None

    run(main())


# ------------------------------------------------------------------------------------------------
# Errors


def test_token_errors_echo_the_token() -> None:
    async def main() -> None:
        async with served(make_sim()) as sx:
            bad = "202301019999999999999999"
            env = await sx.realtime(HYB_WIFI, token=bad)
            assert env == {"exception": "token invalid!", "code": 103, "tokenId": bad, "success": False}
            assert list(env) == ["exception", "code", "tokenId", "success"]
            env = await sx.pile(PILE, token=bad)
            assert env["code"] == 103 and env["tokenId"] == bad and env["success"] is False
            env = await sx.realtime(HYB_WIFI, token=None)
            assert env == {
                "success": False,
                "exception": "Interface Unauthorized",
                "result": None,
                "code": 1001,
            }
            assert [c.outcome for c in sx.sim.calls] == ["auth"] * 3
            assert [c.code for c in sx.sim.calls] == [103, 103, 1001]
            assert sx.sim.violations == 0 and sx.sim.usage(TOKEN) == (0, 0)

    run(main())


def test_no_auth_1003_and_parameter_1002() -> None:
    async def main() -> None:
        async with served(make_sim()) as sx:
            no_auth = {"success": False, "exception": "no auth!", "result": None, "code": 1003}
            assert await sx.realtime(OTHER_WIFI) == no_auth  # another account's dongle
            assert await sx.realtime(HYB) == no_auth  # the inverter SN instead of the dongle's
            assert (await sx.realtime(OTHER_WIFI, token=OTHER_TOKEN))["success"] is True
            bad = {"success": False, "exception": "Parameter validation failed", "result": None, "code": 1002}
            for raw in ("not json", "", "[]", '{"sn": "SRTEST0001"}', '{"wifiSn": ""}', '{"wifiSn": 7}'):
                assert await sx.realtime(HYB_WIFI, raw=raw) == bad, raw
            assert await sx.pile(None) == bad
            assert sx.sim.usage(TOKEN)[1] == 9  # they all passed authentication: they count

    run(main())


def test_injected_faults() -> None:
    async def main() -> None:
        async with served(make_sim()) as sx:
            sim = sx.sim
            sim.inject(REALTIME_PATH, Injection.errno(2001))
            assert await sx.realtime(HYB_WIFI) == {
                "success": False,
                "exception": "Operation failed",
                "result": None,
                "code": 2001,
            }
            sim.inject(REALTIME_PATH, Injection.errno(2002))
            assert (await sx.realtime(HYB_WIFI))["exception"] == "Data not found"
            sim.inject("*", Injection.html(503))
            page = await sx.pile(PILE)
            assert sx.status == 503 and sx.content_type == "text/html" and "<html>" in page
            sim.inject(REALTIME_PATH, Injection.http(500))
            await sx.realtime(HYB_WIFI)
            assert sx.status == 500 and sx.content_type == "text/plain"
            sim.inject(REALTIME_PATH, Injection.nulls())
            env = await sx.realtime(HYB_WIFI)
            assert env["success"] is True and env["result"]["acpower"] is None
            assert env["result"]["inverterStatus"] == "102"  # strings untouched
            sim.inject(REALTIME_PATH, Injection.malformed())
            text = await sx.realtime(HYB_WIFI)
            assert isinstance(text, str) and text.startswith('{"success":true')
            sim.inject(REALTIME_PATH, Injection.hang(30))
            sx.clock.advance(6)
            with pytest.raises(asyncio.TimeoutError):
                async with sx.session.post(
                    sim.base_url + REALTIME_PATH,
                    json={"wifiSn": HYB_WIFI},
                    headers={"tokenId": TOKEN},
                    timeout=aiohttp.ClientTimeout(total=0.05),
                ) as resp:
                    await resp.read()

    run(main())


# ------------------------------------------------------------------------------------------------
# Limits and lock-out


def test_per_minute_refusal_is_per_token_and_shared_by_endpoints() -> None:
    async def main() -> None:
        async with served(make_sim()) as sx:
            t0 = sx.clock()
            for i in range(10):
                if i % 2:
                    assert (await sx.pile(PILE, tick=1))["success"] is True
                else:
                    await sx.ok(HYB_WIFI, tick=1)
            refused = {
                "success": False,
                "exception": "Request calls within the current minute > threshold",
                "result": None,
                "code": 104,
            }
            assert await sx.realtime(HYB_WIFI, tick=1) == refused
            assert await sx.pile(PILE, tick=0) == refused
            assert (await sx.realtime(OTHER_WIFI, token=OTHER_TOKEN, tick=0))["success"] is True
            assert sx.sim.violations == 2 and sx.sim.lockouts == 0
            assert sx.sim.usage(TOKEN) == (10, 12)  # refusals count against the day, not the minute
            sx.clock.set(t0 + 61)  # the first call (t0 + 1) leaves the window
            await sx.ok(HYB_WIFI, tick=0)
            assert [c.code for c in sx.sim.calls if c.account == TOKEN][-3:] == [104, 104, 0]

    run(main())


def test_daily_refusal_code_3() -> None:
    async def main() -> None:
        async with served(make_sim(limits=SolaxLimits(per_day=25))) as sx:
            first = sx.clock() + 7
            for _ in range(25):
                await sx.ok(HYB_WIFI, tick=7)
            env = await sx.realtime(HYB_WIFI, tick=7)
            assert env["success"] is False and env["code"] == 3 and env["result"] is None
            assert "exceed the maximum call threshold" in env["exception"]
            assert sx.sim.calls[-1].outcome == "limited" and sx.sim.calls[-1].limit == "per_day"
            sx.clock.set(first + 86400)  # the first call leaves the sliding day
            await sx.ok(HYB_WIFI, tick=0)
            assert sx.sim.violations == 1

    run(main())


def test_three_refusals_in_a_row_lock_the_token_for_an_hour() -> None:
    locked = {
        "success": False,
        "exception": "There have been several violations in a row, and the system will prohibit calls "
        "within the next hour",
        "result": None,
        "code": 1,
    }

    async def main() -> None:
        async with served(make_sim()) as sx:
            sim = sx.sim
            t0 = sx.clock()
            for _ in range(10):
                await sx.ok(HYB_WIFI, tick=1)
            for _ in range(2):
                assert (await sx.realtime(HYB_WIFI, tick=1))["code"] == 104
            sx.clock.set(t0 + 61)
            await sx.ok(HYB_WIFI, tick=0)  # a call passing the limits ends the streak
            for _ in range(2):
                assert (await sx.realtime(HYB_WIFI, tick=0.1))["code"] == 104
            assert sim.locked_until(TOKEN) is None
            assert (await sx.pile(PILE, tick=0.1))["code"] == 104  # third in a row (any endpoint)
            third = sx.clock()
            assert sim.locked_until(TOKEN) == third + 3600
            counted = sim.usage(TOKEN)
            assert await sx.realtime(HYB_WIFI, tick=1) == locked
            assert await sx.pile(PILE, tick=0) == locked
            assert (await sx.realtime(OTHER_WIFI, token=OTHER_TOKEN, tick=0))["success"] is True
            sx.clock.set(third + 3599)
            assert await sx.realtime(HYB_WIFI, tick=0) == locked  # does not extend the lock-out
            assert sim.violations == 5 and sim.lockouts == 3
            assert sim.usage(TOKEN)[1] == counted[1]  # locked calls count nowhere
            sx.clock.set(third + 3600)
            await sx.ok(HYB_WIFI, tick=0)
            assert sim.locked_until(TOKEN) is None
            outcomes = [c.outcome for c in sim.calls if c.account == TOKEN]
            assert outcomes.count("locked") == 3 and outcomes[-1] == "ok"
        async with served(make_sim()) as sx:
            sx.sim.lock_out(TOKEN)
            assert await sx.realtime(HYB_WIFI) == locked
            assert sx.sim.lockouts == 1 and sx.sim.violations == 0

    run(main())


# ------------------------------------------------------------------------------------------------
# EV charger


def find_session(fleet: EvFleet, *, paused: bool, days: int = 40) -> ChargeSession:
    for i in range(days):
        s = fleet.session_of_day(PILE, DAY + timedelta(days=i))
        if s is not None and (s.pause is not None) == paused:
            return s
    raise AssertionError("no such session")


def test_ev_sessions_status_energy_and_reset() -> None:
    fleet = make_fleet()
    for paused in (True, False):
        s = find_session(fleet, paused=paused)
        assert s.plug_in < s.charge_start < s.charge_end < s.unplug
        # the session energy is the integral of the power, to the second
        integral = (
            sum(fleet.truth(PILE, t).power_w for t in range(s.charge_start - 3, s.charge_end + 3)) / 3600
        )
        assert integral == pytest.approx(s.need_wh, abs=1e-6)
        assert fleet.truth(PILE, s.unplug - 1).session_energy_wh == pytest.approx(s.need_wh, abs=1e-6)
        assert fleet.truth(PILE, s.plug_in).status == PREPARING
        assert fleet.truth(PILE, s.charge_start).status == CHARGING
        assert fleet.truth(PILE, s.charge_end).status == FINISHING
        assert fleet.truth(PILE, s.unplug).status == AVAILABLE
        assert fleet.truth(PILE, s.unplug).mode == 0 and fleet.truth(PILE, s.plug_in).mode == s.mode
        assert s.power_w in (7360.0, 11040.0) or s.mode != 1
        if s.pause is not None:
            mid = fleet.truth(PILE, (s.pause[0] + s.pause[1]) // 2)
            assert mid.status == SUSPENDED_EV and mid.power_w == 0
        # the energy stays after unplug and resets when the next session starts
        nxt = next(x for x in fleet.sessions(PILE, s.unplug, s.unplug + 30 * 86400) if x.plug_in > s.plug_in)
        before = fleet.truth(PILE, nxt.plug_in - 1)
        assert before.status == AVAILABLE and before.session_energy_wh == pytest.approx(s.need_wh, abs=1e-6)
        assert fleet.truth(PILE, nxt.plug_in).session_energy_wh == 0.0


def test_ev_fault_interrupts_charging() -> None:
    s = find_session(make_fleet(), paused=False)
    fault = ChargerFault(PILE, s.charge_start + 600, s.charge_start + 1200)
    fleet = make_fleet(faults=(fault,))
    assert fleet.truth(PILE, s.charge_start + 900).status == FAULTED
    assert fleet.truth(PILE, s.charge_start + 900).power_w == 0
    e1, e2 = (fleet.truth(PILE, t).session_energy_wh for t in (fault.start, fault.end))
    assert e1 == e2
    assert fleet.truth(PILE, s.unplug - 1).session_energy_wh == pytest.approx(s.need_wh - s.power_w / 6)


def test_pile_api_envelope_units_and_session_energy() -> None:
    s = find_session(make_fleet(), paused=True)

    async def main() -> None:
        async with served(make_sim(now=s.plug_in - 120)) as sx:
            sim = sx.sim
            env = await sx.pile(PILE, tick=0)
            assert list(env) == ["success", "exception", "result"]  # pile doc §3.2.7: no code
            assert env["success"] is True and env["exception"] == "query success"
            assert list(env["result"]) == ["chargerStatus", "chargingMode", "chargeEnergy", "chargingPower"]
            assert sim.calls[-1].code == 0
            previous = env["result"]["chargeEnergy"]
            assert await sx.pile("C311TEST999999") == {
                "success": False,
                "exception": "Query success!",
                "result": "no auth!",
                "code": 0,
            }
            # poll once a minute through the session: power in W, energy the session's kWh
            sx.clock.set(s.plug_in - 60)
            samples = []
            while sx.clock() < s.charge_end + 180:
                r = (await sx.pile(PILE, tick=60))["result"]
                truth = sim.charger_truth(PILE, sx.clock())
                assert truth is not None and r["chargerStatus"] == truth.status
                assert r["chargingPower"] == truth.power_w and isinstance(r["chargingPower"], float)
                assert abs(r["chargeEnergy"] - truth.session_energy_wh / 1000) <= 0.05 + 1e-9
                samples.append(r)
            statuses = [r["chargerStatus"] for r in samples]
            assert statuses[0] == AVAILABLE and samples[0]["chargeEnergy"] == previous
            assert {PREPARING, CHARGING, SUSPENDED_EV, FINISHING} <= set(statuses)
            after_plug = samples[statuses.index(PREPARING)]
            assert after_plug["chargeEnergy"] == 0.0  # a new session starts from 0
            riemann_kwh = sum(r["chargingPower"] for r in samples) * 60 / 3.6e6
            # four power edges (start, pause, resume, end), each off by at most one 60-s sample
            assert abs(riemann_kwh - samples[-1]["chargeEnergy"]) <= 4 * s.power_w * 60 / 3.6e6 + 0.05
            assert samples[-1]["chargeEnergy"] == round(s.need_wh / 1000, 1)
            assert sim.pile_commands == []
        assert s.pause is not None
        sim = make_sim(now=(s.charge_start + s.pause[0]) // 2, pile_quirks=PileQuirks(power_kw=True))
        async with served(sim) as sx:
            r = (await sx.pile(PILE, tick=0))["result"]
            assert r["chargerStatus"] == CHARGING and r["chargingPower"] == round(s.power_w / 1000, 2)

    run(main())


def test_pile_cmd_is_never_served() -> None:
    async def main() -> None:
        async with served(make_sim()) as sx:
            await sx.ok(HYB_WIFI)
            await sx.pile(PILE)
            assert sx.sim.pile_commands == []
            body = {"tokenId": TOKEN, "rwType": "2", "cmdType": "1", "cmdValue": "0", "sns": [PILE]}
            async with sx.session.post(sx.sim.base_url + PILE_CMD_PATH, json=body) as resp:
                env = await resp.json()
            assert env["success"] is False and env["code"] == 2001
            (cmd,) = sx.sim.pile_commands
            assert cmd.method == "POST" and cmd.outcome == "error"
            assert sx.sim.usage(TOKEN) == (2, 2)

    run(main())


# ------------------------------------------------------------------------------------------------
# Demo and registration


def test_demo_clouds() -> None:
    from collector.simulators import solax

    sim = SolaxSim.demo(clock=ManualClock(datetime.now(UTC).timestamp()))
    assert sim.vendor == "solax" and set(sim.accounts) == {solax.DEMO_TOKEN}
    now = sim.clock()
    hyb, pvo = sim.record(solax.DEMO_HYBRID_WIFI_SN, now), sim.record(solax.DEMO_PV_WIFI_SN, now)
    assert hyb is not None and hyb["inverterType"] == "14" and "utcDateTime" in hyb
    assert pvo is not None and pvo["inverterType"] == "4" and pvo["soc"] == 0
    assert sim.pile_record(solax.DEMO_PILE_SN, now) is not None
    sunvec = SIMULATORS["sunvec"].demo()
    assert isinstance(sunvec, SolaxSim) and sunvec.vendor == "sunvec" and sunvec.brand == "sunvec"
    rec = sunvec.record(solax.DEMO_SUNVEC_WIFI_SN, now)
    assert rec is not None and "utcDateTime" not in rec and rec["inverterType"] == "15"
    assert set(sunvec.accounts) == {solax.DEMO_SUNVEC_TOKEN} and solax.DEMO_SUNVEC_TOKEN != solax.DEMO_TOKEN
    assert len(solax.DEMO_TOKEN) == 24 and solax.DEMO_TOKEN.isdigit()
    assert SIMULATORS["solax"] is SolaxSim and SERVED_BY == {"solax_ev": "solax"}
    assert solax.demo_source("solax_ev")["devices"] == [solax.DEMO_PILE_SN]


def test_python_m_serves_the_demo_cloud() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector.simulators", "solax"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        credentials = proc.stderr.readline()
        from collector.simulators.solax import DEMO_HYBRID_WIFI_SN, DEMO_PILE_SN, DEMO_TOKEN

        assert f"token_id={DEMO_TOKEN}" in credentials and DEMO_PILE_SN in credentials

        async def main() -> None:
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    url + REALTIME_PATH, json={"wifiSn": DEMO_HYBRID_WIFI_SN}, headers={"tokenId": DEMO_TOKEN}
                ) as resp,
            ):
                env = await resp.json()
            assert env["success"] is True and env["result"]["sn"] == DEMO_HYBRID_WIFI_SN

        run(main())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
