"""The real SungrowTransport (layer 1) against the real SungrowSim, plain and encrypted.

Both were written separately from the vendor doc and the field notes
(``shared/research/sungrow.md``); this suite is where they meet. The simulator runs in the
test's own event loop on a free loopback port, on a :class:`Shared` virtual clock that the
transport, its budget and the state database share (``sleep`` advances it at once), so
nothing here sleeps in real time. The budget is the app's: a ``BudgetBook`` over a ``State``
in ``tmp_path``, and the aiohttp session carries ``budget.send_trace()``.

Where the two read the documents differently and the notes do not decide, the simulator keeps the
stricter reading and the client was made to cope with both: the hourly quota (a sliding hour in the
simulator, clock hours suggested by ``getOpenApiCallInfo``: notes §4.3) and the per-second throttle
(a ``burst`` per ``burst / rate`` window in the simulator, a token bucket in the notes' inference).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from structlog.testing import capture_logs

from collector.budget import BudgetBook, SourceBudget, send_trace
from collector.errors import VendorAuthError, VendorRateLimitError
from collector.simulators.base import Injection, ManualClock
from collector.simulators.sungrow import (
    DEMO_SITE_ID,
    GatewayKeys,
    SungrowApp,
    SungrowLimits,
    SungrowSim,
    SungrowUser,
    code_id,
    code_name,
    demo_plant,
)
from collector.state import State
from collector.vendors import VENDOR_SPECS
from collector.vendors.sungrow.codes import (
    THROTTLE_MIN,
    CryptoError,
    LoginRefusedError,
    LoginThrottledError,
    NotGrantedError,
)
from collector.vendors.sungrow.transport import SungrowTransport

APPKEY = "APPKEY00000000000000000CONTRACT"
ACCESS = "accesskey0000000000000contract01"
USER = "owner@example.com"
PASSWORD = "Contract-pw-9b7e"
PS_ID = 5150001
T0 = datetime(2026, 6, 15, 10, 0, 7, tzinfo=UTC).timestamp()  # a summer morning, not on an hour
PLANTS = "/openapi/getPowerStationList"
DEVICES = "/openapi/getDeviceList"
REALTIME = "/openapi/getDeviceRealTimeData"
FAULTS = "/openapi/getFaultAlarmInfo"
SPEC = VENDOR_SPECS["sungrow"]
MODES = pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
T = TypeVar("T")


class Shared(ManualClock):
    """One virtual time: the simulator calls it, the transport / budget / state use ``time()``
    and ``sleep()`` (which advances it at once)."""

    def time(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


class Skewed:
    """The transport's own clock, off the shared one by ``offset`` seconds."""

    def __init__(self, base: Shared, offset: float) -> None:
        self.base = base
        self.offset = offset

    def time(self) -> float:
        return self.base.t + self.offset

    async def sleep(self, seconds: float) -> None:
        await self.base.sleep(seconds)


class Env:
    def __init__(self, tmp_path: Path, sim: SungrowSim, clock: Shared, url: str) -> None:
        self.tmp_path = tmp_path
        self.sim = sim
        self.clock = clock
        self.url = url
        self.state = State(tmp_path / "state", clock)
        self.budget = self.new_budget(self.state)
        self.http = aiohttp.ClientSession(trace_configs=[send_trace()])

    def new_budget(self, state: State) -> SourceBudget:
        creds = {"appkey": APPKEY, "access_key": ACCESS, "username": USER, "password": PASSWORD}
        return SourceBudget(BudgetBook(state, self.clock).account(SPEC, creds, SPEC.default_limits))

    def transport(
        self, *, state: State | None = None, budget: SourceBudget | None = None, **kw: Any
    ) -> SungrowTransport:
        kw.setdefault("password", PASSWORD)
        kw.setdefault("clock", self.clock)
        kw.setdefault("rsa_public_key", self.sim.rsa_public_key)  # the form the simulator hands out
        return SungrowTransport(
            http=self.http,
            budget=budget or self.budget,
            state=state or self.state,
            appkey=APPKEY,
            access_key=ACCESS,
            username=USER,
            base_url=self.url,
            retry_delay=(1.0, 1.0),
            **kw,
        )

    def calls(self, path: str) -> list[str | None]:
        """The result codes the simulator answered on ``path``, in order."""
        return [code_name(r.code) for r in self.sim.calls_to(path)]


def make_sim(clock: Shared, *, encrypted: bool, app: dict[str, Any] | None = None, **kw: Any) -> SungrowSim:
    return SungrowSim(
        demo_plant(date(2026, 5, 1)),
        apps=[SungrowApp(APPKEY, ACCESS, encrypted_only=encrypted, **(app or {}))],
        users=[SungrowUser(USER, PASSWORD, 505120)],
        keys=GatewayKeys() if encrypted else None,
        ps_ids={DEMO_SITE_ID: PS_ID},
        clock=clock,
        **kw,
    )


def run(
    tmp_path: Path,
    body: Callable[[Env], Awaitable[T]],
    *,
    encrypted: bool,
    app: dict[str, Any] | None = None,
    **kw: Any,
) -> T:
    async def main() -> T:
        clock = Shared(T0)
        sim = make_sim(clock, encrypted=encrypted, app=app, **kw)
        url = await sim.start()
        env = Env(tmp_path, sim, clock, url)
        try:
            return await body(env)
        finally:
            await env.http.close()
            await sim.stop()
            env.state.close()

    return asyncio.run(main())


# -- login and calls ---------------------------------------------------------------------------------


@MODES
def test_login_then_discovery_and_realtime_return_result_data(tmp_path: Path, encrypted: bool) -> None:
    async def body(env: Env) -> None:
        api = env.transport()
        assert api.encrypted is encrypted
        plants = await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert [p["ps_id"] for p in plants["pageList"]] == [PS_ID]
        devices = await api.call(DEVICES, {"ps_id": PS_ID, "curPage": 1, "size": 50})
        hybrid = next(d for d in devices["pageList"] if d["device_type"] == 14)
        live = await api.call(
            REALTIME,
            # bare point ids for realtime (doc §2.14.5 sample; the simulator's Decision)
            {"device_type": 14, "point_id_list": ["13003", "13141"], "ps_key_list": [hybrid["ps_key"]]},
            devices=[hybrid["ps_key"]],
        )
        point = live["device_point_list"][0]["device_point"]
        assert point["ps_key"] == hybrid["ps_key"]
        assert point["p13003"] is not None and 0.0 <= float(point["p13141"]) <= 1.0
        assert api.logins == 1
        assert env.calls("/openapi/login") == ["1"]
        assert env.calls(PLANTS) == env.calls(DEVICES) == env.calls(REALTIME) == ["1"]
        assert env.budget.account.calls_made == 4  # a budget slot per request, the login included
        assert env.sim.violations == 0

    run(tmp_path, body, encrypted=encrypted)


@MODES
def test_a_second_transport_sharing_the_state_reuses_the_token(tmp_path: Path, encrypted: bool) -> None:
    async def body(env: Env) -> None:
        first = env.transport()
        await first.call(PLANTS, {"curPage": 1, "size": 10})
        second = env.transport(state=State(env.tmp_path / "state", env.clock))
        await second.call(PLANTS, {"curPage": 1, "size": 10})
        assert (first.logins, second.logins) == (1, 0)
        assert env.calls("/openapi/login") == ["1"]
        assert env.calls(PLANTS) == ["1", "1"]

    run(tmp_path, body, encrypted=encrypted)


# -- token expiry ------------------------------------------------------------------------------------


@MODES
def test_a_revoked_token_costs_exactly_one_relogin(tmp_path: Path, encrypted: bool) -> None:
    async def body(env: Env) -> None:
        api = env.transport()
        await api.call(PLANTS, {"curPage": 1, "size": 10})
        env.sim.expire_tokens()  # the gateway drops every token (E00003 from now on)
        env.clock.advance(60.0)
        data = await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert data["pageList"]
        assert api.logins == 2
        assert env.calls("/openapi/login") == ["1", "1"]
        assert env.calls(PLANTS) == ["1", "E00003", "1"]

    run(tmp_path, body, encrypted=encrypted)


@MODES
def test_the_sliding_expiry_passed_mid_run_costs_exactly_one_relogin(tmp_path: Path, encrypted: bool) -> None:
    async def body(env: Env) -> None:
        api = env.transport()
        await api.call(PLANTS, {"curPage": 1, "size": 10})
        # Kept alive by calls within the sliding 24 h (doc §1.1): no login for two days.
        for _ in range(4):
            env.clock.advance(12 * 3600.0)
            await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert api.logins == 1
        env.clock.advance(env.sim.settings.token_ttl_s + 60.0)  # past the gateway's sliding expiry
        await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert api.logins == 2
        assert env.calls("/openapi/login") == ["1", "1"]
        assert env.calls(PLANTS)[-1] == "1"

    run(tmp_path, body, encrypted=encrypted)


# -- clock skew --------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-600.0, 900.0])
def test_clock_skew_is_corrected_and_one_retry_succeeds(tmp_path: Path, offset: float) -> None:
    """Only encrypted calls carry a timestamp (``api_key_param``), so only they can be E913."""

    async def body(env: Env) -> None:
        api = env.transport(clock=Skewed(env.clock, offset))
        with capture_logs() as logs:
            data = await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert data["pageList"]
        corrected = [e for e in logs if e["event"] == "sungrow.clock_corrected"]
        assert [e["source"] for e in corrected] == ["timestamp"]  # the simulator's /timestamp was read
        assert abs(api.clock_offset + offset) <= 1.0
        assert env.calls("/openapi/login") == ["E913", "1"]
        # corrected for good: the next call is accepted at once
        await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert env.calls(PLANTS) == ["1", "1"]

    run(tmp_path, body, encrypted=True)


# -- limits ------------------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize("minute", [0, 45], ids=["early-in-hour", "late-in-hour"])
def test_hourly_quota_used_up_is_a_rate_limit_until_it_frees(
    tmp_path: Path, encrypted: bool, minute: int
) -> None:
    """The simulator counts a sliding hour (its stricter reading; the notes §4.3 leave clock hour
    vs sliding open): the client's first guess, the next full hour, holds early in the hour; late
    in it a second E999 moves the retry to an hour after the first, and that one holds."""

    async def body(env: Env) -> None:
        env.clock.advance(minute * 60.0)
        api = env.transport()
        for _ in range(4):  # login + 4 calls = the hour's 5
            await api.call(PLANTS, {"curPage": 1, "size": 10})
        first = env.clock.t
        refusals = 0
        while True:
            try:
                data = await api.call(PLANTS, {"curPage": 1, "size": 10})
            except VendorRateLimitError as err:
                refusals += 1
                assert err.code == "E999" and refusals <= 2
                assert err.retry_at is not None and env.clock.t < err.retry_at <= first + 3600.0 + 60.0
                for secret in (PASSWORD, ACCESS, APPKEY):
                    assert secret not in str(err)
                env.clock.set(err.retry_at)
                continue
            break
        assert data["pageList"]
        assert refusals == (1 if minute == 0 else 2)
        assert env.calls(PLANTS)[4:] == ["E999"] * refusals + ["1"]

    run(tmp_path, body, encrypted=encrypted, app={"per_hour": 5})


@MODES
def test_throttle_e901_is_a_rate_limit_at_the_headers_retry_time(tmp_path: Path, encrypted: bool) -> None:
    async def body(env: Env) -> None:
        api = env.transport()
        await api.call(PLANTS, {"curPage": 1, "size": 10})
        # A second transport with a budget of its own (another host, say) on the same appkey.
        other = env.transport(budget=env.new_budget(State(env.tmp_path / "other", env.clock)))
        now = env.clock.t
        with pytest.raises(VendorRateLimitError) as caught:
            for _ in range(3):
                await other.call(PLANTS, {"curPage": 1, "size": 10})
        err = caught.value
        assert err.code == "E901"
        assert "E901" in env.calls(PLANTS)
        # The headers: burst 2, 1 per second, none left → the whole 2 s window.
        window = env.sim.settings.burst / env.sim.settings.replenish_per_s
        assert err.retry_at is not None
        assert now < err.retry_at <= env.clock.t + max(window, THROTTLE_MIN) + 0.01
        env.clock.set(err.retry_at)  # the retry time holds
        assert (await other.call(PLANTS, {"curPage": 1, "size": 10}))["pageList"]

    run(tmp_path, body, encrypted=encrypted, limits=SungrowLimits(burst=2, replenish_per_s=1))


@MODES
def test_injected_e901_uses_the_rate_limit_headers(tmp_path: Path, encrypted: bool) -> None:
    async def body(env: Env) -> None:
        api = env.transport()
        await api.call(PLANTS, {"curPage": 1, "size": 10})
        env.sim.inject(PLANTS, Injection.errno(code_id("E901"), "Call too frequently"))
        with pytest.raises(VendorRateLimitError) as caught:
            await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert caught.value.code == "E901"
        assert caught.value.retry_at is not None
        assert env.clock.t < caught.value.retry_at <= env.clock.t + 60.0

    run(tmp_path, body, encrypted=encrypted)


# -- refusals ----------------------------------------------------------------------------------------


@MODES
def test_e900_for_a_non_granted_endpoint_is_not_granted(tmp_path: Path, encrypted: bool) -> None:
    async def body(env: Env) -> None:
        api = env.transport()
        with pytest.raises(NotGrantedError) as caught:
            await api.call(FAULTS, {"curPage": 1, "size": 10})
        assert caught.value.code == "E900"
        # Nothing else stops: the token is fine, other endpoints answer.
        assert (await api.call(PLANTS, {"curPage": 1, "size": 10}))["pageList"]
        assert api.logins == 1

    run(tmp_path, body, encrypted=encrypted, app={"denied": frozenset({FAULTS})})


@MODES
def test_a_wrong_password_is_login_refused_without_the_secret(tmp_path: Path, encrypted: bool) -> None:
    wrong = "Wrong-pw-31337"

    async def body(env: Env) -> None:
        api = env.transport(password=wrong)
        with pytest.raises(LoginRefusedError) as caught:
            await api.call(PLANTS, {"curPage": 1, "size": 10})
        err = caught.value
        assert err.login_state == "0"
        for secret in (wrong, PASSWORD, ACCESS, APPKEY):
            assert secret not in str(err) and secret not in repr(err.args)
        assert env.calls("/openapi/login") == ["1"]
        # The same wrong password is not tried again (it would count towards the account lock).
        with pytest.raises(LoginRefusedError):
            await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert env.calls("/openapi/login") == ["1"]
        assert env.calls(PLANTS) == []

    run(tmp_path, body, encrypted=encrypted)


@MODES
def test_http_429_is_a_rate_limit_too(tmp_path: Path, encrypted: bool) -> None:
    """The simulator answers E901 with HTTP 200 (its Decision: 429 vs E901 is undocumented, notes
    §4.3); the client reads a bare 429 with the rate-limit headers as well."""

    async def body(env: Env) -> None:
        api = env.transport()
        await api.call(PLANTS, {"curPage": 1, "size": 10})
        env.sim.inject(PLANTS, Injection.http(429))
        with pytest.raises(VendorRateLimitError) as caught:
            await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert caught.value.code == 429 and caught.value.retry_at is not None

    run(tmp_path, body, encrypted=encrypted)


def test_an_app_that_needs_encryption_refuses_a_plain_transport(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        api = env.transport(rsa_public_key=None)
        with pytest.raises(CryptoError) as caught:
            await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert caught.value.code == "E902"
        assert env.calls("/openapi/login") == ["E902"]

    run(tmp_path, body, encrypted=True)


def test_a_wrong_public_key_is_e906_answered_in_plain(tmp_path: Path) -> None:
    """Before the gateway knows the AES key its refusals are plain JSON; the encrypted
    transport reads them (notes §3.2 6.: robust clients accept plain replies)."""

    async def body(env: Env) -> None:
        api = env.transport(rsa_public_key=GatewayKeys().public_key_b64)
        with pytest.raises(CryptoError) as caught:
            await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert caught.value.code == "E906"

    run(tmp_path, body, encrypted=True)


@MODES
def test_a_wrong_access_key_is_an_auth_error(tmp_path: Path, encrypted: bool) -> None:
    async def body(env: Env) -> None:
        api = SungrowTransport(
            http=env.http,
            budget=env.budget,
            state=env.state,
            clock=env.clock,
            appkey=APPKEY,
            access_key="wrong-access-key-0000000000000000",
            username=USER,
            password=PASSWORD,
            base_url=env.url,
            rsa_public_key=env.sim.rsa_public_key,
        )
        with pytest.raises(VendorAuthError) as caught:
            await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert caught.value.code == "E912"
        assert "wrong-access-key" not in str(caught.value)

    run(tmp_path, body, encrypted=encrypted)


@MODES
def test_e916_logins_too_frequent_pauses_logins(tmp_path: Path, encrypted: bool) -> None:
    async def body(env: Env) -> None:
        api = env.transport()
        await api.call(PLANTS, {"curPage": 1, "size": 10})
        env.sim.expire_tokens()
        with pytest.raises(LoginThrottledError) as caught:
            await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert caught.value.code == "E916" and caught.value.retry_at is not None
        # Neither this transport nor another on the same state tries a login before then.
        again = env.transport(state=State(env.tmp_path / "state", env.clock))
        with pytest.raises(LoginThrottledError):
            await again.call(PLANTS, {"curPage": 1, "size": 10})
        assert env.calls("/openapi/login") == ["1", "E916"]

    run(tmp_path, body, encrypted=encrypted, limits=SungrowLimits(logins_per_hour=1))
