"""SolaX-family envelopes → exceptions: every code, the v1 string quirk, transport failures, and
the token the cloud echoes, which never reaches an exception text. Real answers come from the
simulator over HTTP; the rest are bodies shaped like the field notes' samples."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from collector.errors import (
    VendorAuthError,
    VendorDataQualityError,
    VendorError,
    VendorRateLimitError,
    VendorResponseError,
    VendorTransientError,
)
from collector.simulators.base import Injection, ManualClock, SimThread
from collector.simulators.solax import (
    DEMO_HYBRID_WIFI_SN,
    DEMO_NEVER_WIFI_SN,
    DEMO_PENDING_WIFI_SN,
    DEMO_TOKEN,
    PILE_INFO_PATH,
    REALTIME_PATH,
    SolaxSim,
)
from collector.vendors.solax.codes import (
    CODE3_PAUSE,
    LOCKOUT_PAUSE,
    MINUTE_PAUSE,
    DongleRefusedError,
    LockedOutError,
    NoDataError,
    unwrap,
)

NOW = 1_790_000_000.0
TOKEN = "202604130015254712345678"


def run(body: Any, status: int = 200, content_type: str = "application/json", device: str = "SRX") -> Any:
    text = body if isinstance(body, str) else json.dumps(body)
    return unwrap(
        status, text, vendor="solax", title="SolaX Cloud", endpoint="realtimeInfo/get", now=NOW,
        device=device, content_type=content_type, secrets=(TOKEN,),
    )  # fmt: skip


def refused(body: Any, **kw: Any) -> VendorError:
    with pytest.raises(VendorError) as info:
        run(body, **kw)
    assert TOKEN not in str(info.value)
    return info.value


def test_success_returns_the_result_whatever_the_text() -> None:
    for text in ("Query success!", "operation success", "query success", ""):
        got = run({"success": True, "exception": text, "result": {"acpower": 152}, "code": 0})
        assert got == {"acpower": 152}
    # v1 and the pile API: no code on success
    assert run({"success": True, "exception": "query success", "result": {"chargerStatus": 0}}) == {
        "chargerStatus": 0
    }


@pytest.mark.parametrize(
    ("code", "cls", "pause"),
    [
        (103, VendorAuthError, None),
        (1001, VendorAuthError, None),
        (1, LockedOutError, LOCKOUT_PAUSE),
        (104, VendorRateLimitError, MINUTE_PAUSE),
        ("104", VendorRateLimitError, MINUTE_PAUSE),
        (3, VendorRateLimitError, CODE3_PAUSE),
        (1003, DongleRefusedError, None),
        (2001, VendorTransientError, None),
        (2002, VendorTransientError, None),
        (1002, VendorResponseError, None),
        (1004, VendorResponseError, None),
        (4711, VendorResponseError, None),
    ],
)
def test_codes(code: Any, cls: type[VendorError], pause: float | None) -> None:
    err = refused({"success": False, "exception": f"whatever {TOKEN}", "result": None, "code": code})
    assert type(err) is cls
    assert err.vendor == "solax" and err.code == int(code)
    if pause is not None:
        assert isinstance(err, VendorRateLimitError) and err.retry_at == NOW + pause
    if isinstance(err, DongleRefusedError):
        assert err.device == "SRX" and "dongle" in str(err)


def test_the_echoed_token_is_never_quoted() -> None:
    body = {"exception": "token invalid!", "code": 103, "tokenId": TOKEN, "success": False}
    err = refused(body)
    assert isinstance(err, VendorAuthError) and "***" not in str(err) and "token invalid!" in str(err)
    err = refused({"success": False, "exception": f"bad token {TOKEN}", "code": 103})
    assert "***" in str(err)


@pytest.mark.parametrize(
    ("result", "cls"),
    [
        ("no auth!", DongleRefusedError),
        (" no auth! ", DongleRefusedError),
        ("this sn did not access!", NoDataError),
        ("token invalid!", VendorAuthError),
        ("something else", VendorResponseError),
    ],
)
def test_v1_string_result_with_code_0(result: str, cls: type[VendorError]) -> None:
    for extra in ({"code": 0}, {}):
        err = refused({"success": False, "exception": "Query success!", "result": result, **extra})
        assert type(err) is cls


def test_no_data_and_odd_envelopes() -> None:
    err = refused({"success": True, "exception": "operation success", "result": None, "code": 0})
    assert isinstance(err, NoDataError) and err.device == "SRX"
    assert isinstance(refused({"success": True, "result": [1, 2], "code": 0}), VendorDataQualityError)
    assert type(refused({"success": False, "exception": "error", "result": None})) is VendorResponseError
    assert type(refused({"result": {"acpower": 1}})) is VendorDataQualityError  # no envelope
    assert type(refused([1, 2])) is VendorDataQualityError


@pytest.mark.parametrize(
    ("status", "text", "ctype", "cls"),
    [
        (503, "<html><body>Maintenance</body></html>", "text/html", VendorTransientError),
        (200, "<!DOCTYPE html><html>maintenance</html>", "text/html", VendorTransientError),
        (502, "", "text/plain", VendorTransientError),
        (200, "", "application/json", VendorTransientError),
        (200, '{"success": tr', "application/json", VendorTransientError),
        (429, "", "text/plain", VendorRateLimitError),
        (401, "", "text/plain", VendorAuthError),
        (404, "not found", "text/plain", VendorResponseError),
    ],
)
def test_transport_failures(status: int, text: str, ctype: str, cls: type[VendorError]) -> None:
    err = refused(text, status=status, content_type=ctype)
    assert type(err) is cls


def test_a_success_envelope_on_an_error_status_is_transient() -> None:
    assert type(refused({"success": True, "result": {}, "code": 0}, status=502)) is VendorTransientError


# -- the simulator's real answers ---------------------------------------------------------------


async def _post(
    session: aiohttp.ClientSession, url: str, token: str, sn: str
) -> VendorError | dict[str, Any]:
    async with session.post(url + REALTIME_PATH, json={"wifiSn": sn}, headers={"tokenId": token}) as resp:
        text = await resp.text()
        try:
            return unwrap(
                resp.status, text, vendor="solax", title="SolaX Cloud", endpoint="realtimeInfo/get",
                now=NOW, device=sn, content_type=resp.content_type, secrets=(token,),
            )  # fmt: skip
        except VendorError as err:
            assert token not in str(err)
            return err


def test_the_simulators_answers_are_classified() -> None:
    asyncio.run(_classified())


async def _classified() -> None:
    clock = ManualClock(time.time())  # the demo plant is commissioned 40 days before today
    sim = SolaxSim.demo(clock=clock)
    with SimThread(sim) as served:
        async with aiohttp.ClientSession() as s:
            ok = await _post(s, served.url, DEMO_TOKEN, DEMO_HYBRID_WIFI_SN)
            assert isinstance(ok, dict) and "acpower" in ok
            assert isinstance(await _post(s, served.url, TOKEN, DEMO_HYBRID_WIFI_SN), VendorAuthError)
            assert isinstance(await _post(s, served.url, DEMO_TOKEN, "SWNOTMINE1"), DongleRefusedError)
            assert isinstance(await _post(s, served.url, DEMO_TOKEN, DEMO_PENDING_WIFI_SN), NoDataError)
            assert isinstance(await _post(s, served.url, DEMO_TOKEN, DEMO_NEVER_WIFI_SN), NoDataError)
            sim.inject(REALTIME_PATH, Injection.html(503))
            assert isinstance(
                await _post(s, served.url, DEMO_TOKEN, DEMO_HYBRID_WIFI_SN), VendorTransientError
            )
            async with s.get(
                served.url + PILE_INFO_PATH, params={"tokenId": DEMO_TOKEN, "pileSn": "NOPE"}
            ) as resp:
                with pytest.raises(DongleRefusedError):  # the pile API's v1-style "no auth!"
                    unwrap(
                        resp.status, await resp.text(), vendor="solax_ev", title="SolaX EV",
                        endpoint="getPileInfo", now=NOW, device="NOPE", secrets=(DEMO_TOKEN,),
                    )  # fmt: skip
            for _ in range(20):
                got = await _post(s, served.url, DEMO_TOKEN, DEMO_HYBRID_WIFI_SN)
                if isinstance(got, VendorError):
                    break
            assert type(got) is VendorRateLimitError and got.code == 104
            sim.lock_out(DEMO_TOKEN)
            got = await _post(s, served.url, DEMO_TOKEN, DEMO_HYBRID_WIFI_SN)
            assert isinstance(got, LockedOutError)
            # the pile API shares the token's lock-out
            async with s.get(
                served.url + PILE_INFO_PATH, params={"tokenId": DEMO_TOKEN, "pileSn": "NOPE"}
            ) as resp:
                with pytest.raises(LockedOutError):
                    unwrap(
                        resp.status, await resp.text(), vendor="solax_ev", title="SolaX EV",
                        endpoint="getPileInfo", now=NOW, device="NOPE", secrets=(DEMO_TOKEN,),
                    )  # fmt: skip
