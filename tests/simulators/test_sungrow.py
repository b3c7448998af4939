"""The iSolarCloud gateway simulator's protocol rules, checked with a plain aiohttp client.

The encrypted call below is written from the field notes (``shared/research/sungrow.md`` §3.2) and
the vendor doc's Appendix 4-7, not imported from the simulator: it is the spec check. The simulator
runs on a :class:`ManualClock`; the helper moves it a little before each call so the gateway
throttle (15 per burst) stays out of the way unless a test wants it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import load_der_public_key

from collector.simulators import SIMULATORS
from collector.simulators.base import Injection, ManualClock
from collector.simulators.plant import Battery, Fault, Inverter, Plant, PvString, Site, local_time
from collector.simulators.sungrow import (
    GatewayKeys,
    SungrowApp,
    SungrowLimits,
    SungrowSim,
    SungrowUser,
    code_id,
)

APPKEY = "APPKEY0000000000000000000000TEST"
ACCESS = "accesskey000000000000000000test1"
USER = "owner@example.com"
PASSWORD = "s3cret-pass"
ZONE = "Europe/Berlin"
PS_ID = 4242001
HYB = "A2400000001"
PVO = "A2400000002"
DAY = date(2026, 6, 15)  # CEST, UTC+2; standard time GMT+1
NOON = local_time(ZONE, DAY, 12)
COMMISSIONED = DAY - timedelta(days=5)
FAULT = Fault(PVO, 5, local_time(ZONE, DAY, 9), local_time(ZONE, DAY, 9, 30), "Grid Overvoltage")
OPEN_FAULT = Fault(PVO, 7, local_time(ZONE, DAY, 11, 50), local_time(ZONE, DAY, 13), "Grid Undervoltage")
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def make_plant() -> Plant:
    hybrid = Inverter(
        HYB,
        "SH8.0RT",
        8000,
        (PvString(5.0, 0.3), PvString(3.0, -0.3)),
        battery=Battery(9600, max_power_w=5000),
        phases=3,
        load_kwh_per_day=14.0,
        logger_sn="B2400000101",
    )
    pv = Inverter(PVO, "SG3.0RS", 3000, (PvString(3.3),), logger_sn="B2400000102")
    site = Site("site-1", "Test Plant", ZONE, 52.5, 13.4, (hybrid, pv), COMMISSIONED)
    return Plant([site], faults=[FAULT, OPEN_FAULT])


def make_sim(
    now: float = NOON, *, encrypted: bool = False, plant: Plant | None = None, **kwargs: Any
) -> SungrowSim:
    app = kwargs.pop("app", SungrowApp(APPKEY, ACCESS, encrypted_only=encrypted))
    return SungrowSim(
        plant if plant is not None else make_plant(),
        apps=[app],
        users=[SungrowUser(USER, PASSWORD, 505120)],
        keys=GatewayKeys() if encrypted or kwargs.pop("with_keys", False) else None,
        ps_ids={"site-1": PS_ID},
        clock=ManualClock(now),
        **kwargs,
    )


# ------------------------------------------------------------------------------------------------
# The client side, from the notes


def rsa_secret_header(public_key_b64: str, aes_key: str) -> str:
    """notes §3.2 step 2: X.509 SPKI key, RSA PKCS#1 v1.5, base64 URL-safe without padding."""
    key = load_der_public_key(base64.b64decode(public_key_b64))
    assert isinstance(key, RSAPublicKey)
    return (
        base64.urlsafe_b64encode(key.encrypt(aes_key.encode(), asym_padding.PKCS1v15())).decode().rstrip("=")
    )


def key16(key: str) -> bytes:
    """doc Appendix 5 ``getSecretKey``: the UTF-8 key padded with '0' / cut to 16 bytes."""
    raw = key.encode()[:16]
    return raw + b"0" * (16 - len(raw))


def aes_hex(data: bytes, key: str) -> str:
    """notes §3.2 step 4: AES-128-ECB, PKCS5 padding, upper-case hex."""
    padder = sym_padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key16(key)), modes.ECB()).encryptor()
    return (enc.update(padder.update(data) + padder.finalize()) + enc.finalize()).hex().upper()


def aes_unhex(text: str, key: str) -> bytes:
    dec = Cipher(algorithms.AES(key16(key)), modes.ECB()).decryptor()
    unpadder = sym_padding.PKCS7(128).unpadder()
    data = dec.update(bytes.fromhex(text)) + dec.finalize()
    return unpadder.update(data) + unpadder.finalize()


class Sg:
    """A minimal V1 client: headers ``sys_code`` / ``x-access-key``, appkey + token + lang in the body."""

    def __init__(self, sim: SungrowSim, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session
        clock = sim.clock
        assert isinstance(clock, ManualClock)
        self.clock = clock
        self.token: str | None = None
        self.encrypt = sim.rsa_public_key is not None
        self.skew_ms = 0
        self.last_headers: Mapping[str, str] = {}
        self.last_text = ""

    async def call(
        self,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        tick: float = 0.2,
        headers: Mapping[str, str | None] | None = None,
        appkey: str = APPKEY,
        encrypt: bool | None = None,
        aes_key: str | None = None,
        api_key_param: Any = None,
        raw: str | None = None,
    ) -> dict[str, Any]:
        self.clock.advance(tick)
        payload: dict[str, Any] = {"appkey": appkey, "lang": "_en_US", **(body or {})}
        if self.token is not None and "token" not in payload:
            payload["token"] = self.token
        hdrs: dict[str, str] = {
            "Content-Type": "application/json;charset=UTF-8",
            "sys_code": "901",
            "x-access-key": ACCESS,
        }
        encrypted = self.encrypt if encrypt is None else encrypt
        key = aes_key or secrets.token_hex(8)
        if encrypted:
            public = self.sim.rsa_public_key
            assert public is not None
            hdrs["x-random-secret-key"] = rsa_secret_header(public, key)
            payload["api_key_param"] = (
                {"nonce": uuid.uuid4().hex, "timestamp": str(int(self.clock() * 1000) + self.skew_ms)}
                if api_key_param is None
                else api_key_param
            )
        for name, value in (headers or {}).items():
            if value is None:
                hdrs.pop(name, None)
            else:
                hdrs[name] = value
        data = raw if raw is not None else json.dumps(payload)
        if encrypted and raw is None:
            data = aes_hex(data.encode(), key)
        async with self.session.post(self.sim.base_url + path, data=data, headers=hdrs) as resp:
            assert resp.status == 200
            self.last_headers = resp.headers
            text = await resp.text()
        self.last_text = text
        if encrypted and not text.startswith("{"):
            text = aes_unhex(text, key).decode()
        envelope: dict[str, Any] = json.loads(text)
        return envelope

    async def ok(self, path: str, body: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        env = await self.call(path, body, **kwargs)
        assert env["result_code"] == "1", env
        return env["result_data"]

    async def login(self, password: str = PASSWORD) -> dict[str, Any]:
        data: dict[str, Any] = await self.ok(
            "/openapi/login", {"user_account": USER, "user_password": password}
        )
        if data["login_state"] == "1":
            self.token = data["token"]
        return data


@asynccontextmanager
async def served(sim: SungrowSim) -> AsyncIterator[Sg]:
    async with sim, aiohttp.ClientSession() as session:
        yield Sg(sim, session)


async def logged_in(sg: Sg) -> Sg:
    state = await sg.login()
    assert state["login_state"] == "1"
    return sg


def code(env: Mapping[str, Any]) -> str:
    return str(env["result_code"])


def num(v: Any) -> float:
    assert isinstance(v, str), v  # notes §5.2: numbers arrive as strings
    return float(v)


def local(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=ZoneInfo(ZONE))


# ------------------------------------------------------------------------------------------------
# Login and token


def test_login_success_and_token_format() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            data = await sg.login()
            assert data["login_state"] == "1"
            user_id, _, rest = data["token"].partition("_")
            assert user_id == "505120" and len(rest) == 32  # notes §3.1: <user_id>_<32 hex>
            plants = await sg.ok("/openapi/getPowerStationList", {"curPage": 1, "size": 10})
            assert plants["rowCount"] == 1

    run(main())


def test_login_failures_are_result_code_1_with_a_login_state() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            data = await sg.ok("/openapi/login", {"user_account": "nobody", "user_password": "x"})
            assert data["login_state"] == "-1" and not data["token"]
            states = [(await sg.login("wrong"))["login_state"] for _ in range(5)]
            assert states == ["0", "0", "0", "0", "2"]  # doc §2.1.4: 2 = locked after wrong passwords
            assert (await sg.login())["login_state"] == "2"  # still locked, even with the password
            missing = await sg.call("/openapi/login", {"user_account": USER})
            assert code(missing) == "009"

    run(main())


def test_admin_locked_account_is_state_5() -> None:
    sim = SungrowSim(
        make_plant(),
        apps=[SungrowApp(APPKEY, ACCESS)],
        users=[SungrowUser(USER, PASSWORD, 1, locked=True)],
        clock=ManualClock(NOON),
    )

    async def main() -> None:
        async with served(sim) as sg:
            assert (await sg.login())["login_state"] == "5"

    run(main())


def test_token_sliding_expiry_then_e00003() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            await logged_in(sg)
            body = {"curPage": 1, "size": 10}
            for _ in range(3):  # doc §1.1: every call resets the 24 h
                await sg.ok("/openapi/getPowerStationList", body, tick=23 * 3600)
            env = await sg.call("/openapi/getPowerStationList", body, tick=24 * 3600 + 1)
            assert code(env) == "E00003" and env["result_data"] is None
            await logged_in(sg)
            await sg.ok("/openapi/getPowerStationList", body)

    run(main())


def test_new_login_revokes_the_old_token_and_foreign_tokens_fail() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            await logged_in(sg)
            old = sg.token
            await logged_in(sg)
            body = {"curPage": 1, "size": 10}
            assert code(await sg.call("/openapi/getPowerStationList", {**body, "token": old})) == "E00003"
            assert code(await sg.call("/openapi/getPowerStationList", {**body, "token": "1_abc"})) == "E00003"
            sg.token = None
            assert code(await sg.call("/openapi/getPowerStationList", body)) == "002"

    run(main())


def test_header_and_appkey_codes() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            await logged_in(sg)
            body = {"curPage": 1, "size": 10}
            path = "/openapi/getPowerStationList"
            assert code(await sg.call(path, body, headers={"x-access-key": None})) == "E911"
            assert code(await sg.call(path, body, headers={"x-access-key": "nope"})) == "E912"
            assert code(await sg.call(path, body, headers={"sys_code": None})) == "003"
            assert code(await sg.call(path, body, appkey="")) == "001"
            assert code(await sg.call(path, body, appkey="UNKNOWN")) == "E00000"
            assert code(await sg.call(path, {**body, "lang": "en_US"})) == "010"  # notes §3.1

    run(main())


def test_appkey_with_another_apps_access_key_is_e914() -> None:
    sim = SungrowSim(
        make_plant(),
        apps=[SungrowApp(APPKEY, ACCESS), SungrowApp("OTHERAPP", "otheraccess")],
        users=[SungrowUser(USER, PASSWORD, 1)],
        clock=ManualClock(NOON),
    )

    async def main() -> None:
        async with served(sim) as sg:
            env = await sg.call(
                "/openapi/login", {"user_account": USER, "user_password": PASSWORD}, appkey="OTHERAPP"
            )
            assert code(env) == "E914"

    run(main())


def test_login_throttle_e916() -> None:
    async def main() -> None:
        async with served(make_sim(limits=SungrowLimits(logins_per_hour=3))) as sg:
            for _ in range(3):
                await logged_in(sg)
            env = await sg.call("/openapi/login", {"user_account": USER, "user_password": PASSWORD})
            assert code(env) == "E916"
            sg.clock.advance(3600)
            await logged_in(sg)

    run(main())


# ------------------------------------------------------------------------------------------------
# Encryption


def test_encrypted_round_trip() -> None:
    async def main() -> None:
        async with served(make_sim(encrypted=True)) as sg:
            await logged_in(sg)
            assert not sg.last_text.startswith("{")  # the reply was encrypted (upper-case hex)
            assert sg.last_text == sg.last_text.upper()
            devices = await sg.ok("/openapi/getDeviceList", {"ps_id": str(PS_ID), "curPage": 1, "size": 50})
            assert devices["rowCount"] >= 2

    run(main())


def test_every_endpoint_answers_encrypted() -> None:
    async def main() -> None:
        async with served(make_sim(now=local_time(ZONE, DAY, 14), encrypted=True)) as sg:
            await logged_in(sg)
            key = f"{PS_ID}_14_1_1"
            calls: list[tuple[str, dict[str, Any]]] = [
                ("/openapi/getOpenApiCallInfo", {}),
                ("/openapi/getOpenPointInfo", {"device_type": "1", "type": "2", "curPage": 1, "size": 10}),
                (
                    "/openapi/getDeviceRealTimeData",
                    {"device_type": "14", "point_id_list": ["13141"], "ps_key_list": [key]},
                ),
                ("/openapi/getPVInverterRealTimeData", {"sn_list": [PVO]}),
                ("/openapi/getDevicePointMinuteDataList", minute_body("20260615100000", "20260615130000")),
                (
                    "/openapi/getDevicePointsDayMonthYearDataList",
                    {
                        "ps_key_list": [key],
                        "data_point": "p13112",
                        "data_type": "2",
                        "query_type": "1",
                        "start_time": "20260611",
                        "end_time": "20260615",
                    },
                ),
                ("/openapi/getFaultAlarmInfo", {"curPage": 1, "size": 10}),
            ]
            for path, body in calls:
                data = await sg.ok(path, body)
                assert data, path
                assert not sg.last_text.startswith("{"), path
            assert (
                code(await sg.call("/openapi/getFaultAlarmInfo", {"curPage": 1, "size": 10}, encrypt=False))
                == "E902"
            )

    run(main())


def test_plain_call_to_an_encrypted_only_app_is_e902() -> None:
    async def main() -> None:
        async with served(make_sim(encrypted=True)) as sg:
            env = await sg.call(
                "/openapi/login", {"user_account": USER, "user_password": PASSWORD}, encrypt=False
            )
            assert code(env) == "E902"

    run(main())


def test_clock_skew_e913_then_timestamp_endpoint_fixes_it() -> None:
    async def main() -> None:
        async with served(make_sim(encrypted=True)) as sg:
            sg.skew_ms = -10 * 60 * 1000
            env = await sg.call("/openapi/login", {"user_account": USER, "user_password": PASSWORD})
            assert code(env) == "E913"
            async with sg.session.get(sg.sim.base_url + "/timestamp") as resp:
                server_ms = int(json.loads(await resp.text())["result_data"])
            sg.skew_ms = server_ms - int(sg.clock() * 1000)
            await logged_in(sg)
            date_header = sg.last_headers["Date"]  # notes §3.3: the Date header uses the gateway clock
            assert (
                abs(
                    datetime.strptime(date_header, "%a, %d %b %Y %H:%M:%S GMT")
                    .replace(tzinfo=UTC)
                    .timestamp()
                    - sg.clock()
                )
                < 2
            )

    run(main())


def test_encryption_error_codes() -> None:
    async def main() -> None:
        async with served(make_sim(encrypted=True)) as sg:
            login = {"user_account": USER, "user_password": PASSWORD}
            nonce = uuid.uuid4().hex
            param = {"nonce": nonce, "timestamp": str(int(sg.clock() * 1000))}
            assert code(await sg.call("/openapi/login", login, api_key_param=param, tick=0)) == "1"
            assert code(await sg.call("/openapi/login", login, api_key_param=param, tick=0)) == "E910"
            bad_nonce = {"nonce": "short", "timestamp": str(int(sg.clock() * 1000))}
            assert code(await sg.call("/openapi/login", login, api_key_param=bad_nonce)) == "E909"
            assert code(await sg.call("/openapi/login", login, api_key_param="x")) == "E908"
            assert code(await sg.call("/openapi/login", login, aes_key="short-key")) == "E907"
            assert code(await sg.call("/openapi/login", login, raw="NOTHEX")) == "E905"
            env = await sg.call("/openapi/login", login, headers={"x-random-secret-key": "AAAA"})
            assert code(env) == "E906"
            # encrypted for another key pair: E906, not a "wrong length" E907 (OpenSSL's implicit
            # rejection hands back random bytes rather than failing)
            other = rsa_secret_header(GatewayKeys().public_key_b64, "A123456zA123456z")
            env = await sg.call("/openapi/login", login, headers={"x-random-secret-key": other})
            assert code(env) == "E906"
            env = await sg.call("/openapi/login", login, headers={"x-random-secret-key": None}, raw="ABCDEF")
            assert code(env) == "E904"

    run(main())


def test_bad_cipher_injection_does_not_decrypt() -> None:
    async def main() -> None:
        async with served(make_sim(encrypted=True)) as sg:
            sg.sim.inject_bad_cipher("/openapi/login")
            with pytest.raises(ValueError):
                await logged_in(sg)
            await logged_in(sg)

    run(main())


# ------------------------------------------------------------------------------------------------
# Limits and grants


def test_hourly_quota_e999_and_call_info() -> None:
    app = SungrowApp(APPKEY, ACCESS, per_hour=6)

    async def main() -> None:
        async with served(make_sim(app=app)) as sg:
            await logged_in(sg)
            info = await sg.ok("/openapi/getOpenApiCallInfo")
            assert info["curr_hour_accessed_times"] == "2"  # login + this call
            assert info["per_hour_access_times_config"][0] == {"hour": "0", "max_call_times": 6}
            assert info["per_day_access_times_config"] == "144"
            for _ in range(4):
                await sg.ok("/openapi/getPowerStationList", {"curPage": 1, "size": 10})
            env = await sg.call("/openapi/getPowerStationList", {"curPage": 1, "size": 10})
            assert code(env) == "E999" and env["result_data"] is None
            assert sg.sim.violations == 1
            sg.clock.advance(3600)
            await sg.ok("/openapi/getPowerStationList", {"curPage": 1, "size": 10})

    run(main())


def test_throttle_e901_with_ratelimit_headers() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            await logged_in(sg)
            remaining = []
            for _ in range(14):
                await sg.ok("/openapi/getPowerStationList", {"curPage": 1, "size": 10}, tick=0)
                remaining.append(int(sg.last_headers["X-RateLimit-Remaining"]))
            assert sg.last_headers["X-RateLimit-Burst-Capacity"] == "15"
            assert sg.last_headers["X-RateLimit-Replenish-Rate"] == "10"
            assert remaining[0] == 13 and remaining[-1] == 0
            env = await sg.call("/openapi/getPowerStationList", {"curPage": 1, "size": 10}, tick=0)
            assert code(env) == "E901"
            sg.clock.advance(2)
            await sg.ok("/openapi/getPowerStationList", {"curPage": 1, "size": 10})

    run(main())


def test_not_granted_and_unknown_endpoints_are_e900() -> None:
    app = SungrowApp(APPKEY, ACCESS, denied=frozenset({"/openapi/getFaultAlarmInfo"}))

    async def main() -> None:
        async with served(make_sim(app=app)) as sg:
            await logged_in(sg)
            env = await sg.call("/openapi/getFaultAlarmInfo", {"curPage": 1, "size": 10})
            assert code(env) == "E900"
            assert code(await sg.call("/openapi/noSuchEndpoint", {})) == "E900"

    run(main())


# ------------------------------------------------------------------------------------------------
# Discovery


def test_plant_list_shape() -> None:
    async def main() -> None:
        sim = make_sim()
        async with served(sim) as sg:
            await logged_in(sg)
            row = (await sg.ok("/openapi/getPowerStationList", {"curPage": 1, "size": 10}))["pageList"][0]
            assert row["ps_id"] == PS_ID
            assert row["ps_current_time_zone"] == "GMT+1"  # fixed standard offset, even in CEST
            assert row["ps_status"] == 1 and row["ps_fault_status"] == 1  # OPEN_FAULT is active
            truths = [sim.plant.snapshot(sn, sg.clock()) for sn in (HYB, PVO)]
            power = sum(t.ac_power_w for t in truths if t)
            total = sum(t.total.yield_wh for t in truths if t)
            scale = {"W": 1, "kW": 1e3, "MW": 1e6, "Wh": 1, "kWh": 1e3, "MWh": 1e6}
            for key, want in (("curr_power", power), ("total_energy", total)):
                unit, value = row[key]["unit"], num(row[key]["value"])
                assert abs(value) < 1000 or unit in ("MW", "MWh")
                assert value * scale[unit] == pytest.approx(want, abs=scale[unit] * 0.0006)

    run(main())


def test_device_list_ps_keys_and_types() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            await logged_in(sg)
            body = {"ps_id": str(PS_ID), "curPage": 1, "size": 50}
            rows = (await sg.ok("/openapi/getDeviceList", body))["pageList"]
            types = {r["device_sn"]: r["device_type"] for r in rows}
            assert types[HYB] == 14 and types[PVO] == 1
            assert {r["device_type"] for r in rows} >= {1, 7, 14, 43}
            for r in rows:
                ps, dtype, dcode, ch = r["ps_key"].split("_")
                assert (int(ps), int(dtype), int(dcode), int(ch)) == (
                    PS_ID,
                    r["device_type"],
                    r["device_code"],
                    1,
                )
                assert r["dev_status"] in ("0", "1")
            only = await sg.ok("/openapi/getDeviceList", {**body, "device_type_list": ["1"]})
            assert [r["device_type"] for r in only["pageList"]] == [1]
            virtual = await sg.ok("/openapi/getDeviceList", {**body, "is_virtual_unit": "1"})
            assert [r["ps_key"] for r in virtual["pageList"]] == [f"{PS_ID}_11_0_0"]
            assert code(await sg.call("/openapi/getDeviceList", {"curPage": 1, "size": 10})) == "009"

    run(main())


def test_open_point_info() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            await logged_in(sg)
            data = await sg.ok(
                "/openapi/getOpenPointInfo", {"device_type": "14", "type": "2", "curPage": 1, "size": 200}
            )
            ids = {r["point_id"] for r in data["pageList"]}
            assert {13003, 13119, 13141, 13149, 13121, 13126, 13150} <= ids

    run(main())


# ------------------------------------------------------------------------------------------------
# Live data


def ps_key(sg: Sg, dtype: int, code_: int) -> str:
    return f"{PS_ID}_{dtype}_{code_}_1"


def test_ess_realtime_against_truth() -> None:
    async def main() -> None:
        sim = make_sim()
        async with served(sim) as sg:
            await logged_in(sg)
            ids = [
                "13003",
                "13011",
                "13119",
                "13149",
                "13121",
                "13126",
                "13150",
                "13141",
                "13142",
                "13112",
                "13134",
                "99999",
            ]
            data = await sg.ok(
                "/openapi/getDeviceRealTimeData",
                {
                    "device_type": "14",
                    "point_id_list": ids,
                    "ps_key_list": [f"{PS_ID}_14_1_1", f"{PS_ID}_1_2_1"],
                },
            )
            assert data["fail_ps_key_list"] == [f"{PS_ID}_1_2_1"]
            (item,) = data["device_point_list"]
            dp = item["device_point"]
            u = sim.plant.upload_time(HYB, sg.clock())
            assert u is not None
            truth = sim.plant.truth(HYB, u)
            # notes §5.3: plant-local yyyyMMddHHmmss of the 5-minute bucket holding the upload
            t_dev = local(dp["device_time"]).timestamp()
            assert 0 <= u - t_dev < 300 and local(dp["device_time"]).minute % 5 == 0
            bat = truth.battery
            assert bat is not None
            assert num(dp["p13003"]) == pytest.approx(truth.pv_power_w, abs=0.06)
            assert num(dp["p13119"]) == pytest.approx(truth.load_power_w, abs=0.06)
            assert num(dp["p13149"]) == pytest.approx(truth.grid_import_power_w, abs=0.06)
            assert num(dp["p13121"]) == pytest.approx(truth.grid_export_power_w, abs=0.06)
            assert num(dp["p13126"]) >= 0 and num(dp["p13150"]) >= 0  # notes §6.2: magnitudes
            assert num(dp["p13126"]) - num(dp["p13150"]) == pytest.approx(
                bat.charge_power_w - bat.discharge_power_w, abs=0.1
            )
            assert num(dp["p13141"]) == pytest.approx(bat.soc_pct / 100, abs=0.0006)  # fraction
            assert num(dp["p13142"]) == pytest.approx(bat.soh_pct / 100, abs=0.0006)
            assert num(dp["p13112"]) == pytest.approx(truth.today.pv_wh, abs=0.06)
            assert num(dp["p13134"]) == pytest.approx(truth.total.pv_wh, abs=0.06)
            assert dp["p99999"] is None
            assert dp["dev_status"] == 1  # an integer here (notes §5.2)

    run(main())


def test_realtime_parameter_rules() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            await logged_in(sg)
            path = "/openapi/getDeviceRealTimeData"
            keys = [f"{PS_ID}_14_1_1"]
            assert code(await sg.call(path, {"device_type": "14", "point_id_list": ["13003"]})) == "009"
            assert code(await sg.call(path, {"device_type": "14", "ps_key_list": keys})) == "009"
            many = [str(13000 + i) for i in range(101)]
            assert (
                code(await sg.call(path, {"device_type": "14", "point_id_list": many, "ps_key_list": keys}))
                == "010"
            )
            by_sn = await sg.ok(
                path, {"device_type": "14", "point_id_list": ["13003"], "sn_list": [HYB, "NOPE"]}
            )
            assert by_sn["fail_sn_list"] == ["NOPE"] and len(by_sn["device_point_list"]) == 1

    run(main())


def test_pv_inverter_realtime_formats() -> None:
    async def main() -> None:
        sim = make_sim()
        async with served(sim) as sg:
            await logged_in(sg)
            data = await sg.ok("/openapi/getPVInverterRealTimeData", {"ps_key_list": [f"{PS_ID}_1_2_1"]})
            dp = data["device_point_list"][0]["device_point"]
            u = sim.plant.upload_time(PVO, sg.clock())
            assert u is not None
            truth = sim.plant.truth(PVO, u)
            assert num(dp["p24"]) == pytest.approx(truth.ac_power_w, abs=0.06)
            assert num(dp["p1"]) == pytest.approx(truth.today.yield_wh, abs=0.06)
            assert num(dp["p2"]) == pytest.approx(truth.total.yield_wh, abs=0.06)
            assert num(dp["p27"]) == pytest.approx(truth.grid_frequency_hz * 10, abs=0.06)  # 0.1 Hz quirk
            assert dp["p19"] is None and dp["p15"] is None  # single phase: no phase B, no line voltage
            assert dp["p43"] == ""  # placeholder
            assert dp["p70"] is None  # not fitted: null
            assert truth.state == "fault"  # OPEN_FAULT runs 11:50-13:00
            assert dp["p5"] == "--" and dp["p304"] == "1"
            assert dp["dev_fault_status"] == 1

    run(main())


def test_meter_sign_and_battery_fractions() -> None:
    async def main() -> None:
        sim = make_sim()
        async with served(sim) as sg:
            await logged_in(sg)
            u = sim.plant.upload_time(HYB, sg.clock())
            assert u is not None
            truth = sim.plant.truth(HYB, u)
            meter = await sg.ok(
                "/openapi/getDeviceRealTimeData",
                {"device_type": "7", "point_id_list": ["8018"], "ps_key_list": [f"{PS_ID}_7_1_1"]},
            )
            p8018 = num(meter["device_point_list"][0]["device_point"]["p8018"])
            assert p8018 == pytest.approx(truth.grid_import_power_w - truth.grid_export_power_w, abs=0.06)
            bat = await sg.ok(
                "/openapi/getDeviceRealTimeData",
                {"device_type": "43", "point_id_list": ["58604"], "ps_key_list": [f"{PS_ID}_43_1_1"]},
            )
            assert truth.battery is not None
            soc = num(bat["device_point_list"][0]["device_point"]["p58604"])
            assert soc == pytest.approx(truth.battery.soc_pct / 100, abs=0.0006)

    run(main())


# ------------------------------------------------------------------------------------------------
# History


def minute_body(
    start: str, end: str, points: str = "p13003,p13141", keys: list[str] | None = None
) -> dict[str, Any]:
    return {
        "points": points,
        "ps_key_list": keys or [f"{PS_ID}_14_1_1"],
        "start_time_stamp": start,
        "end_time_stamp": end,
        "minute_interval": "5",
    }


def test_minute_data_window_and_values() -> None:
    async def main() -> None:
        sim = make_sim(now=local_time(ZONE, DAY, 18))
        async with served(sim) as sg:
            await logged_in(sg)
            path = "/openapi/getDevicePointMinuteDataList"
            env = await sg.call(path, minute_body("20260615080000", "20260615110000"))
            rows = env["result_data"][f"{PS_ID}_14_1_1"]
            assert len(rows) == 37  # 08:00 … 11:00, both ends (doc §2.7.5)
            for row in rows[::6]:
                g = local(row["time_stamp"]).timestamp()
                (u,) = [x for x in sim.plant.upload_times(HYB, g, g + 299)]
                truth = sim.plant.truth(HYB, u)
                assert num(row["p13003"]) == pytest.approx(truth.pv_power_w, abs=0.06)
            over = await sg.call(path, minute_body("20260615080000", "20260615110500"))
            assert code(over) == "010"  # notes §5.8: > 3 h
            fifty = ",".join(f"p{13000 + i}" for i in range(50))
            assert code(await sg.call(path, minute_body("20260615080000", "20260615090000", fifty))) == "010"
            mixed = minute_body(
                "20260615080000", "20260615090000", keys=[f"{PS_ID}_14_1_1", f"{PS_ID}_1_2_1"]
            )
            assert code(await sg.call(path, mixed)) == "010"
            bare = await sg.ok(path, minute_body("20260615080000", "20260615090000", "13003"))
            assert all(set(r) == {"time_stamp"} for r in bare[f"{PS_ID}_14_1_1"])  # notes §5.8
            illegal = await sg.call(
                path, minute_body("20260615080000", "20260615090000", keys=[f"{PS_ID}_14_1_1", "1_14_9_1"])
            )
            assert code(illegal) == "1" and illegal["result_msg"] == "illegal device list:1_14_9_1"
            missing = minute_body("20260615080000", "20260615090000")
            del missing["end_time_stamp"]
            assert code(await sg.call(path, missing)) == "009"

    run(main())


def test_minute_data_same_day_is_configurable() -> None:
    async def main() -> None:
        for current_day, expect_rows in ((True, True), (False, False)):
            sim = make_sim(now=local_time(ZONE, DAY, 12), current_day=current_day)
            async with served(sim) as sg:
                await logged_in(sg)
                data = await sg.ok(
                    "/openapi/getDevicePointMinuteDataList", minute_body("20260615090000", "20260615115500")
                )
                assert bool(data[f"{PS_ID}_14_1_1"]) is expect_rows

    run(main())


def test_day_month_year_limits_and_values() -> None:
    async def main() -> None:
        sim = make_sim(now=local_time(ZONE, DAY, 20))
        async with served(sim) as sg:
            await logged_in(sg)
            path = "/openapi/getDevicePointsDayMonthYearDataList"
            base = {
                "ps_key_list": [f"{PS_ID}_14_1_1"],
                "data_point": "p13112,p13134",
                "data_type": "2",
                "order": "0",
                "query_type": "1",
            }
            data = await sg.ok(path, {**base, "start_time": "20260610", "end_time": "20260615"})
            rows = data[f"{PS_ID}_14_1_1"]["p13112"]
            assert [r["time_stamp"] for r in rows] == [f"202606{d}" for d in range(10, 16)]  # today included
            for r in rows:
                d = datetime.strptime(r["time_stamp"], "%Y%m%d").date()
                a = local_time(ZONE, d, 0)
                b = min(local_time(ZONE, d + timedelta(days=1), 0) - 1, int(sg.clock()))
                ub = sim.plant.upload_time(HYB, b)
                assert ub is not None
                want = sim.plant.energy(HYB, a, ub).pv_wh
                assert num(r["2"]) == pytest.approx(want, abs=0.0001)
                assert len(r["2"].split(".")[1]) == 4  # notes §5.2: 4 decimals
            ok100 = await sg.call(path, {**base, "start_time": "20260307", "end_time": "20260614"})
            assert code(ok100) == "1"
            bad = await sg.call(path, {**base, "start_time": "20260306", "end_time": "20260614"})
            assert code(bad) == "010"  # 101 days
            month = {**base, "data_type": "4", "query_type": "2"}
            assert code(await sg.call(path, {**month, "start_time": "202407", "end_time": "202606"})) == "1"
            assert code(await sg.call(path, {**month, "start_time": "202406", "end_time": "202606"})) == "010"
            year = {**base, "data_type": "4", "query_type": "3"}
            assert code(await sg.call(path, {**year, "start_time": "2022", "end_time": "2026"})) == "1"
            assert code(await sg.call(path, {**year, "start_time": "2021", "end_time": "2026"})) == "010"
            assert (
                code(
                    await sg.call(
                        path, {**base, "data_type": "4", "start_time": "20260610", "end_time": "20260611"}
                    )
                )
                == "010"
            )  # no day total
            m = await sg.ok(
                path, {**month, "data_point": "p13112", "start_time": "202606", "end_time": "202606"}
            )
            (row,) = m[f"{PS_ID}_14_1_1"]["p13112"]
            ub = sim.plant.upload_time(HYB, sg.clock())
            assert ub is not None
            want = sim.plant.energy(HYB, sim.plant.commissioned_at(HYB), ub).pv_wh
            assert num(row["4"]) == pytest.approx(want, abs=0.0001)

    run(main())


# ------------------------------------------------------------------------------------------------
# Faults and injection


def test_faults_open_and_closed() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            await logged_in(sg)
            path = "/openapi/getFaultAlarmInfo"
            open_rows = (await sg.ok(path, {"curPage": 1, "size": 10, "ps_id": str(PS_ID)}))["pageList"]
            assert [r["fault_name"] for r in open_rows] == ["Grid Undervoltage"]
            assert open_rows[0]["over_time"] == "" and open_rows[0]["create_time"] == "2026-06-15 11:50:00"
            both = await sg.ok(
                path,
                {
                    "curPage": 1,
                    "size": 10,
                    "process_status": "999",
                    "startTime": "202606150000",
                    "endTime": "202606152359",
                },
            )
            closed = [r for r in both["pageList"] if r["process_status"] == 9]
            assert [r["over_time"] for r in closed] == ["2026-06-15 09:30:00"]
            assert closed[0]["ps_key"] == f"{PS_ID}_1_2_1" and closed[0]["fault_type_code"] == 60005
            across = {
                "curPage": 1,
                "size": 10,
                "process_status": "9",
                "startTime": "202605010000",
                "endTime": "202606152359",
            }
            assert code(await sg.call(path, across)) == "010"

    run(main())


def test_injections() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            await logged_in(sg)
            path = "/openapi/getPowerStationList"
            body = {"curPage": 1, "size": 10}
            sg.sim.inject_null_result(path)
            env = await sg.call(path, body)
            assert code(env) == "1" and env["result_data"] is None
            sg.sim.inject(path, Injection.html(502))
            sg.clock.advance(1)
            async with sg.session.post(
                sg.sim.base_url + path,
                json={"appkey": APPKEY, "token": sg.token, **body},
                headers={"sys_code": "901", "x-access-key": ACCESS},
            ) as resp:
                assert resp.status == 502 and "<html>" in await resp.text()
            sg.sim.inject(path, Injection.errno(code_id("E901")))
            assert code(await sg.call(path, body)) == "E901"
            sg.sim.inject(path, Injection.http(200))
            with pytest.raises(ValueError):
                await sg.call(path, body)
            assert sg.last_text == ""

    run(main())


def test_registered_for_python_m() -> None:
    assert SIMULATORS["sungrow"] is SungrowSim
    proc = subprocess.run(
        [sys.executable, "-m", "collector.simulators", "--help"], capture_output=True, text=True, check=True
    )
    assert "sungrow" in proc.stdout
    assert math.isfinite(NOON)


def test_plant_level_points_sum_the_inverters() -> None:
    async def main() -> None:
        sim = make_sim(now=local_time(ZONE, DAY, 15))
        async with served(sim) as sg:
            await logged_in(sg)
            key = f"{PS_ID}_11_0_0"
            ids = ["83033", "83022", "83252", "83549"]
            data = await sg.ok(
                "/openapi/getDeviceRealTimeData",
                {"device_type": "11", "point_id_list": ids, "ps_key_list": [key]},
            )
            dp = data["device_point_list"][0]["device_point"]
            truths = [sim.plant.snapshot(sn, sg.clock()) for sn in (HYB, PVO)]
            assert all(truths)
            power = sum(t.ac_power_w for t in truths if t)
            assert num(dp["p83033"]) == pytest.approx(power, abs=0.1)
            assert num(dp["p83022"]) == pytest.approx(sum(t.today.yield_wh for t in truths if t), abs=0.1)
            bat = truths[0].battery if truths[0] else None
            assert bat is not None and num(dp["p83252"]) == pytest.approx(bat.soc_pct / 100, abs=0.0006)
            assert dp["p83549"] is None  # sign undocumented (notes §6.3): not served
            minute = await sg.ok(
                "/openapi/getDevicePointMinuteDataList",
                minute_body("20260615120000", "20260615130000", "p83033", keys=[key]),
            )
            rows = minute[key]
            assert rows and all(local(r["time_stamp"]).minute % 5 == 0 for r in rows)
            day = await sg.ok(
                "/openapi/getDevicePointsDayMonthYearDataList",
                {
                    "ps_key_list": [key],
                    "data_point": "p83022",
                    "data_type": "2",
                    "order": "0",
                    "query_type": "1",
                    "start_time": "20260614",
                    "end_time": "20260614",
                },
            )
            (row,) = day[key]["p83022"]
            a, b = local_time(ZONE, DAY - timedelta(days=1), 0), local_time(ZONE, DAY, 0) - 1
            want = 0.0
            for sn in (HYB, PVO):
                ub = sim.plant.upload_time(sn, b)
                assert ub is not None
                want += sim.plant.energy(sn, a, ub).yield_wh
            assert num(row["2"]) == pytest.approx(want, abs=0.001)

    run(main())


def test_minute_window_across_the_autumn_change() -> None:
    autumn = date(2026, 10, 25)  # 03:00 CEST → 02:00 CET in Berlin
    inverters = make_plant().sites[0].inverters
    plant = Plant([Site("site-1", "Test Plant", ZONE, 52.5, 13.4, inverters, autumn - timedelta(days=3))])
    sim = make_sim(now=local_time(ZONE, autumn, 18), plant=plant)

    async def main() -> None:
        async with served(sim) as sg:
            await logged_in(sg)
            path = "/openapi/getDevicePointMinuteDataList"
            # 01:00 → 04:00 is three hours on the wall clock but four in real time: refused (strict)
            assert code(await sg.call(path, minute_body("20261025010000", "20261025040000"))) == "010"
            data = await sg.ok(path, minute_body("20261025020000", "20261025025500"))
            stamps = [r["time_stamp"] for r in data[f"{PS_ID}_14_1_1"]]
            assert len(stamps) == 24 and len(set(stamps)) == 12  # the repeated hour: each stamp twice

    run(main())


def test_python_m_serves_the_demo_gateway() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector.simulators", "sungrow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")

        async def main() -> None:
            from collector.simulators.sungrow import DEMO_ACCESS_KEY, DEMO_APPKEY, DEMO_PASSWORD, DEMO_USER

            body = {
                "appkey": DEMO_APPKEY,
                "lang": "_en_US",
                "user_account": DEMO_USER,
                "user_password": DEMO_PASSWORD,
            }
            headers = {"sys_code": "901", "x-access-key": DEMO_ACCESS_KEY}
            async with (
                aiohttp.ClientSession() as session,
                session.post(url + "/openapi/login", json=body, headers=headers) as resp,
            ):
                env = await resp.json()
            assert env["result_code"] == "1" and env["result_data"]["login_state"] == "1"

        run(main())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_placeholder_injection_hidden_devices_and_expired_app() -> None:
    async def main() -> None:
        async with served(make_sim()) as sg:
            await logged_in(sg)
            path = "/openapi/getDeviceRealTimeData"
            body = {
                "device_type": "14",
                "point_id_list": ["13003", "13141"],
                "ps_key_list": [f"{PS_ID}_14_1_1"],
            }
            for value in ("--", "", None):
                sg.sim.inject_values(path, value)
                dp = (await sg.ok(path, body))["device_point_list"][0]["device_point"]
                assert dp["p13003"] == value and dp["p13141"] == value
            sg.sim.hidden.add(f"{PS_ID}_14_1_1")
            gone = await sg.ok(path, body)
            assert gone["device_point_list"] == [] and gone["fail_ps_key_list"] == [f"{PS_ID}_14_1_1"]
            rows = await sg.ok("/openapi/getDeviceList", {"ps_id": str(PS_ID), "curPage": 1, "size": 50})
            assert HYB not in {r["device_sn"] for r in rows["pageList"]}
        async with served(make_sim(app=SungrowApp(APPKEY, ACCESS, expired=True))) as sg:
            env = await sg.call("/openapi/login", {"user_account": USER, "user_password": PASSWORD})
            assert code(env) == "E00001"

    run(main())
