"""SungrowTransport against a scripted fake gateway: headers, encryption, token sharing,
re-login, clock correction, retries, rate limits and secrets kept out of the logs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs

from collector.budget import SourceBudget
from collector.clock import FakeClock
from collector.errors import ConfigError, VendorQuotaError, VendorRateLimitError, VendorTransientError
from collector.state import State
from collector.vendors.sungrow.auth import LOGIN_LOCK_TTL, TokenStore, account_id
from collector.vendors.sungrow.codes import (
    QUOTA_MARGIN,
    ClockSkewError,
    LoginRefusedError,
    LoginThrottledError,
    NotGrantedError,
    TokenInvalidError,
    next_hour,
)
from collector.vendors.sungrow.transport import REGIONS, SungrowTransport, base_url_for
from tests.vendors.sungrow.fakegateway import (
    ACCESS_KEY,
    APPKEY,
    PASSWORD,
    USERNAME,
    FakeGateway,
    Reply,
    Req,
    budget,
    err,
    ok,
    serve,
)

T = TypeVar("T")
T0 = 1_760_000_000.0
PLANTS = "/openapi/getPowerStationList"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def plants(_: Req) -> Any:
    return ok({"rowCount": 1, "pageList": [{"ps_id": 1129147}]})


class Env:
    def __init__(self, tmp_path: Path, fake: FakeGateway, url: str) -> None:
        self.tmp_path = tmp_path
        self.fake = fake
        self.url = url
        self.clock = fake.clock
        self.state = State(tmp_path / "state", self.clock)
        self.budget = budget(self.state, self.clock)
        self.http = aiohttp.ClientSession()

    def transport(
        self, *, state: State | None = None, sbudget: SourceBudget | None = None, **kw: Any
    ) -> SungrowTransport:
        if self.fake.private_key is not None and "rsa_public_key" not in kw:
            kw["rsa_public_key"] = self.fake.public_key_b64()
        kw.setdefault("password", PASSWORD)
        return SungrowTransport(
            http=self.http,
            budget=sbudget or self.budget,
            state=state or self.state,
            clock=self.clock,
            appkey=APPKEY,
            access_key=ACCESS_KEY,
            username=USERNAME,
            base_url=self.url,
            retry_delay=(2.0, 2.0),
            **kw,
        )


def run(tmp_path: Path, fake: FakeGateway, body: Callable[[Env], Awaitable[T]]) -> T:
    async def main() -> T:
        async with serve(fake) as url:
            env = Env(tmp_path, fake, url)
            try:
                return await body(env)
            finally:
                await env.http.close()

    return asyncio.run(main())


def gateway(key: rsa.RSAPrivateKey | None = None, **kw: Any) -> FakeGateway:
    fake = FakeGateway(FakeClock(T0), private_key=key, **kw)
    fake.on(PLANTS, plants)
    return fake


# -- the request ------------------------------------------------------------------------------------


def test_a_plain_call_logs_in_once_and_sends_the_documented_request(tmp_path: Path) -> None:
    fake = gateway()

    async def body(env: Env) -> None:
        api = env.transport()
        assert not api.encrypted
        data = await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert data["pageList"][0]["ps_id"] == 1129147
        await api.call(PLANTS, {"curPage": 1, "size": 10})
        assert [r.path for r in fake.requests] == ["/openapi/login", PLANTS, PLANTS]
        login, call = fake.requests[0], fake.requests[1]
        assert login.body == {
            "appkey": APPKEY,
            "user_account": USERNAME,
            "user_password": PASSWORD,
            "lang": "_en_US",
        }
        assert call.body == {
            "curPage": 1,
            "size": 10,
            "appkey": APPKEY,
            "token": fake.issued[0],
            "lang": "_en_US",
        }
        for req in fake.requests:
            assert req.headers["sys_code"] == "901" and req.headers["x-access-key"] == ACCESS_KEY
            assert req.headers["content-type"].startswith("application/json")
            assert "x-random-secret-key" not in req.headers
        assert env.budget.account.calls_made == 3  # a budget slot per request, the login included

    run(tmp_path, fake, body)


def test_an_encrypted_call_is_sealed_and_its_reply_opened(
    tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    fake = gateway(private_key)

    async def body(env: Env) -> None:
        api = env.transport()
        assert api.encrypted
        assert (await api.call(PLANTS, {"curPage": 1}))["rowCount"] == 1
        login, call = fake.requests
        assert login.encrypted and call.encrypted
        assert login.body["login_type"] == "1"
        assert call.body["token"] == fake.issued[0] and call.body["lang"] == "_en_US"
        keys = {r.aes_key for r in fake.requests}
        nonces = {r.body["api_key_param"]["nonce"] for r in fake.requests}
        assert len(keys) == 2 and len(nonces) == 2  # fresh per request
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", r.headers["x-random-secret-key"]) for r in fake.requests)
        assert call.body["api_key_param"]["timestamp"] == str(int(T0 * 1000))
        # A plain reply to an encrypted call is accepted too.
        fake.plain_replies = True
        assert (await api.call(PLANTS, {"curPage": 1}))["rowCount"] == 1

    run(tmp_path, fake, body)


def test_an_app_that_needs_encryption_says_so(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> None:
    fake = gateway(private_key)

    async def body(env: Env) -> None:
        with pytest.raises(Exception) as info:
            await env.transport(rsa_public_key=None).call(PLANTS)
        assert "E902" in str(info.value) and "rsa_public_key" in str(info.value)

    run(tmp_path, fake, body)


def test_regions_and_bad_keys_are_config_errors() -> None:
    assert base_url_for("eu") == "https://gateway.isolarcloud.eu"
    assert base_url_for("AU") == "https://augateway.isolarcloud.com"
    assert base_url_for(None) == REGIONS["eu"]
    assert base_url_for("cn", "http://127.0.0.1:9/") == "http://127.0.0.1:9"
    assert set(REGIONS) == {"eu", "intl", "cn", "au"}
    with pytest.raises(ConfigError, match="region"):
        base_url_for("mars")

    async def make() -> None:
        clock = FakeClock(T0)
        async with aiohttp.ClientSession() as http:
            with pytest.raises(ConfigError) as info:
                SungrowTransport(
                    http=http,
                    budget=None,  # type: ignore[arg-type]
                    state=None,  # type: ignore[arg-type]
                    clock=clock,
                    appkey=APPKEY,
                    access_key=ACCESS_KEY,
                    username=USERNAME,
                    password=PASSWORD,
                    rsa_public_key="certainly not a key",
                )
            assert info.value.key == "rsa_public_key"

    asyncio.run(make())


# -- the token ----------------------------------------------------------------------------------------


def test_the_token_is_reused_across_transports_and_restarts(tmp_path: Path) -> None:
    fake = gateway()

    async def body(env: Env) -> None:
        await env.transport().call(PLANTS)
        await env.transport().call(PLANTS)  # a second transport, same State: no login
        restarted = State(tmp_path / "state", env.clock)  # another process / a restart
        await env.transport(state=restarted, sbudget=budget(restarted, env.clock)).call(PLANTS)
        assert len(fake.calls("/openapi/login")) == 1
        assert {r.body["token"] for r in fake.calls(PLANTS)} == {fake.issued[0]}

    run(tmp_path, fake, body)


def test_e00003_means_exactly_one_relogin_then_the_call(tmp_path: Path) -> None:
    fake = gateway()

    async def body(env: Env) -> None:
        api = env.transport()
        await api.call(PLANTS)
        fake.expire_tokens()
        assert (await api.call(PLANTS))["rowCount"] == 1
        assert len(fake.calls("/openapi/login")) == 2
        assert [r.body["token"] for r in fake.calls(PLANTS)] == [
            fake.issued[0],
            fake.issued[0],
            fake.issued[1],
        ]
        # The new token is the shared one now.
        await env.transport().call(PLANTS)
        assert len(fake.calls("/openapi/login")) == 2

    run(tmp_path, fake, body)


def test_a_token_refused_right_after_login_is_an_auth_error(tmp_path: Path) -> None:
    fake = gateway()
    fake.on(PLANTS, lambda req: err("E00003", "er_token_login_invalid"))

    async def body(env: Env) -> None:
        with pytest.raises(TokenInvalidError):
            await env.transport().call(PLANTS)
        assert len(fake.calls("/openapi/login")) == 2  # the first login, one re-login: no loop
        assert len(fake.calls(PLANTS)) == 2

    run(tmp_path, fake, body)


def test_concurrent_callers_after_e00003_share_one_login(tmp_path: Path) -> None:
    fake = gateway()

    async def body(env: Env) -> None:
        api, other = env.transport(), env.transport()
        await api.call(PLANTS)
        await other.call(PLANTS)
        fake.expire_tokens()
        results = await asyncio.gather(
            api.call(PLANTS), api.call(PLANTS), other.call(PLANTS), other.call(PLANTS)
        )
        assert all(r["rowCount"] == 1 for r in results)
        assert len(fake.calls("/openapi/login")) == 2  # the first, and one after E00003
        assert api.logins + other.logins == 2

    run(tmp_path, fake, body)


def test_a_login_in_another_process_is_waited_for_and_its_token_taken(tmp_path: Path) -> None:
    fake = gateway()

    async def body(env: Env) -> None:
        other = TokenStore(env.state, env.clock, account_id(APPKEY, USERNAME))
        assert other.try_lock("other-process")  # another process is logging in

        async def finish_elsewhere() -> None:
            await asyncio.sleep(0.2)
            fake.valid_tokens.add("505120_" + "e" * 32)
            other.put("505120_" + "e" * 32)
            other.unlock("other-process")

        done = asyncio.create_task(finish_elsewhere())
        assert (await env.transport().call(PLANTS))["rowCount"] == 1
        await done
        assert fake.calls("/openapi/login") == []  # its token, not a login of our own
        assert fake.calls(PLANTS)[0].body["token"] == "505120_" + "e" * 32

    run(tmp_path, fake, body)


def test_a_login_lock_held_too_long_is_transient(tmp_path: Path) -> None:
    fake = gateway()

    async def body(env: Env) -> None:
        TokenStore(env.state, env.clock, account_id(APPKEY, USERNAME)).try_lock("stuck-process")
        with pytest.raises(VendorTransientError, match="another process"):
            await env.transport(login_wait=0.1).call(PLANTS)
        assert fake.requests == []
        env.clock.advance(LOGIN_LOCK_TTL + 1)  # the stuck holder's lock expires
        assert (await env.transport().call(PLANTS))["rowCount"] == 1

    run(tmp_path, fake, body)


def test_login_refusals_and_e916(tmp_path: Path) -> None:
    fake = gateway()

    async def body(env: Env) -> None:
        with pytest.raises(LoginRefusedError, match="wrong password") as info:
            await env.transport(password="wrong").call(PLANTS)
        assert info.value.login_state == "0"
        assert len(fake.calls("/openapi/login")) == 1  # not retried
        # Nor tried again with the same password, by any transport, for a while (each wrong
        # try counts towards locking the account); the right password is tried at once.
        env.clock.advance(3600)
        with pytest.raises(LoginRefusedError, match="refused lately"):
            await env.transport(password="wrong").call(PLANTS)
        assert len(fake.calls("/openapi/login")) == 1
        assert (await env.transport().call(PLANTS))["rowCount"] == 1
        assert len(fake.calls("/openapi/login")) == 2
        env.state.delete(f"sungrow.token.{account_id(APPKEY, USERNAME)}")
        fake.login_handler = lambda req: err("E916", "Login too frequently")
        with pytest.raises(LoginThrottledError) as throttled:
            await env.transport().call(PLANTS)
        assert throttled.value.retry_at is not None and throttled.value.retry_at > env.clock.time()
        # Backing off: neither this process nor another tries a login before then.
        with pytest.raises(LoginThrottledError):
            await env.transport().call(PLANTS)
        assert len(fake.calls("/openapi/login")) == 3
        env.clock.advance(throttled.value.retry_at - env.clock.time() + 1)
        fake.login_handler = None
        assert (await env.transport().call(PLANTS))["rowCount"] == 1
        assert len(fake.calls("/openapi/login")) == 4

    run(tmp_path, fake, body)


# -- the clock ------------------------------------------------------------------------------------------


def test_e913_corrects_the_clock_from_timestamp_and_retries_once(
    tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    fake = gateway(private_key, skew=900.0)

    async def body(env: Env) -> None:
        api = env.transport()
        assert (await api.call(PLANTS))["rowCount"] == 1
        assert api.clock_offset == pytest.approx(900.0, abs=0.01)
        paths = [r.path for r in fake.requests]
        assert paths == ["/openapi/login", "/timestamp", "/openapi/login", PLANTS]
        stamps = [int(r.body["api_key_param"]["timestamp"]) for r in fake.requests if r.body]
        assert stamps[-1] == int((T0 + 900.0) * 1000)
        assert env.budget.account.calls_made == 4  # the probe took a slot too
        await api.call(PLANTS)  # the offset stays
        assert len(fake.calls("/timestamp")) == 1

    run(tmp_path, fake, body)


def test_e913_falls_back_to_the_date_header(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> None:
    fake = gateway(private_key, skew=-1200.0, timestamp_reply=(404, "<html>not found</html>"))

    async def body(env: Env) -> None:
        api = env.transport()
        assert (await api.call(PLANTS))["rowCount"] == 1
        assert api.clock_offset == pytest.approx(-1200.0, abs=1.0)  # the Date header: to the second

    run(tmp_path, fake, body)


def test_e913_is_retried_once_only(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> None:
    fake = gateway(private_key, skew=900.0, timestamp_reply=(200, "1"))  # a wrong clock from /timestamp

    async def body(env: Env) -> None:
        with pytest.raises(ClockSkewError):
            await env.transport().call(PLANTS)
        assert [r.path for r in fake.requests] == ["/openapi/login", "/timestamp", "/openapi/login"]

    run(tmp_path, fake, body)


# -- retries and limits ------------------------------------------------------------------------------


def test_transient_errors_are_retried_once_each_with_a_budget_slot(tmp_path: Path) -> None:
    fake = gateway()
    answers: Iterator[Reply] = iter([(502, "text/html", "<html>Bad Gateway</html>"), ok({"rowCount": 2})])
    fake.on(PLANTS, lambda req: next(answers))

    async def body(env: Env) -> None:
        api = env.transport()
        assert (await api.call(PLANTS))["rowCount"] == 2
        assert len(fake.calls(PLANTS)) == 2 and env.budget.account.calls_made == 3
        fake.on(PLANTS, lambda req: (200, "application/json", ""))
        with pytest.raises(VendorTransientError, match="empty"):
            await api.call(PLANTS)
        assert len(fake.calls(PLANTS)) == 4

    run(tmp_path, fake, body)


def test_an_undecryptable_reply_is_transient(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> None:
    fake = gateway(private_key)
    fake.on(PLANTS, lambda req: (200, "text/plain", "00" * 32))

    async def body(env: Env) -> None:
        with capture_logs() as logs, pytest.raises(VendorTransientError, match="does not decrypt"):
            await env.transport().call(PLANTS)
        assert len(fake.calls(PLANTS)) == 2
        assert any(e["event"] == "sungrow.reply_undecryptable" for e in logs)

    run(tmp_path, fake, body)


def test_e999_again_within_the_hour_waits_an_hour_after_the_first(tmp_path: Path) -> None:
    """Clock-hour or sliding-hour quota (research/sungrow.md §4.3 leaves it open): the next full
    hour first, an hour after the first E999 when the gateway still refuses then."""
    fake = gateway()

    async def body(env: Env) -> None:
        api = env.transport()
        await api.call(PLANTS)
        fake.on(PLANTS, lambda req: err("E999", "er_hour_call_api_times_upper_limit"))
        first = env.clock.time()
        with pytest.raises(VendorRateLimitError) as info:
            await api.call(PLANTS)
        assert info.value.retry_at == next_hour(first)
        env.clock.now = next_hour(first)
        with pytest.raises(VendorRateLimitError) as info:
            await api.call(PLANTS)
        assert info.value.retry_at == first + 3600.0 + QUOTA_MARGIN and info.value.code == "E999"
        fake.on(PLANTS, plants)
        env.clock.now = first + 3600.0 + QUOTA_MARGIN
        await api.call(PLANTS)  # a success ends the run: the next E999 is a first one again
        fake.on(PLANTS, lambda req: err("E999", "er_hour_call_api_times_upper_limit"))
        with pytest.raises(VendorRateLimitError) as info:
            await api.call(PLANTS)
        assert info.value.retry_at == next_hour(env.clock.time())

    run(tmp_path, fake, body)


def test_e901_raises_with_the_headers_retry_time_and_is_not_retried(tmp_path: Path) -> None:
    fake = gateway()
    throttled = {**err("E901", "Call too frequently"), "_headers": {"Retry-After": "17"}}
    fake.on(PLANTS, lambda req: dict(throttled))

    async def body(env: Env) -> None:
        api = env.transport()
        with pytest.raises(VendorRateLimitError) as info:
            await api.call(PLANTS)
        assert info.value.retry_at == pytest.approx(env.clock.time() + 17)
        assert len(fake.calls(PLANTS)) == 1
        bucket = {"X-RateLimit-Remaining": "0", "X-RateLimit-Replenish-Rate": "0.25"}
        fake.on(PLANTS, lambda req: (429, "text/plain", "", bucket))
        with pytest.raises(VendorRateLimitError) as info:
            await api.call(PLANTS)
        assert info.value.retry_at == pytest.approx(env.clock.time() + 4)
        fake.on(PLANTS, lambda req: err("E998", "er_month_call_api_times_upper_limit"))
        with pytest.raises(VendorQuotaError):
            await api.call(PLANTS)
        fake.on(PLANTS, lambda req: err("E900", "Unauthorized access"))
        with pytest.raises(NotGrantedError):
            await api.call(PLANTS)
        assert len(fake.calls(PLANTS)) == 4

    run(tmp_path, fake, body)


# -- secrets --------------------------------------------------------------------------------------------


def test_no_secret_in_any_log_line_or_error(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> None:
    fake = gateway(private_key, skew=900.0)
    answers: Iterator[Reply] = iter([(503, "text/html", "<html>busy</html>"), ok({"rowCount": 1})])
    fake.on(PLANTS, lambda req: next(answers))

    async def body(env: Env) -> None:
        api = env.transport()
        errors: list[str] = []
        with capture_logs() as logs:
            await api.call(PLANTS)  # E913, /timestamp, a 503 and its retry
            fake.expire_tokens()
            fake.on(PLANTS, lambda req: err("E00003", f"token {fake.issued[-1]} appkey {APPKEY}"))
            try:
                await api.call(PLANTS)  # re-login, E00003 again: raised
            except TokenInvalidError as e:
                errors.append(str(e))
            fake.login_handler = lambda req: err("E916", f"login {USERNAME} {PASSWORD}")
            fake.expire_tokens()
            try:
                await env.transport(state=State(tmp_path / "other", env.clock)).call(PLANTS)
            except LoginThrottledError as e:
                errors.append(str(e))
        events = {e["event"] for e in logs}
        assert {
            "sungrow.login",
            "sungrow.clock_corrected",
            "sungrow.retry",
            "sungrow.token_invalid",
        } <= events
        assert "sungrow.login_throttled" in events
        text = repr(logs) + repr(errors)
        secrets = [
            APPKEY,
            ACCESS_KEY,
            PASSWORD,
            *fake.issued,
            *(r.aes_key for r in fake.requests if r.aes_key),
        ]
        for secret in secrets:
            assert secret and secret not in text
        assert len(errors) == 2

    run(tmp_path, fake, body)


# -- across processes ----------------------------------------------------------------------------------

_CHILD = """
import asyncio, sys
from pathlib import Path
import aiohttp
from collector.clock import SystemClock
from collector.state import State
from collector.vendors.sungrow.transport import SungrowTransport
from tests.vendors.sungrow.fakegateway import ACCESS_KEY, APPKEY, PASSWORD, USERNAME, budget

async def main() -> None:
    clock = SystemClock()
    state = State(Path(sys.argv[2]), clock)
    async with aiohttp.ClientSession() as http:
        api = SungrowTransport(http=http, budget=budget(state, clock), state=state, clock=clock,
                               appkey=APPKEY, access_key=ACCESS_KEY, username=USERNAME,
                               password=PASSWORD, base_url=sys.argv[1])
        data = await api.call("/openapi/getPowerStationList")
        print(data["rowCount"], api.logins)

asyncio.run(main())
"""


def test_processes_sharing_a_state_dir_make_one_login_after_e00003(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    fake = FakeGateway(FakeClock(time.time()), login_delay=1.0)
    fake.on(PLANTS, plants)
    root = Path(__file__).resolve().parents[3]

    async def body(env: Env) -> None:
        await env.transport().call(PLANTS)
        fake.expire_tokens()
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _CHILD,
                env.url,
                str(tmp_path / "state"),
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        # Both children meet the expired token before anyone has a new one.
        for _ in range(400):
            if len([r for r in fake.calls(PLANTS) if r.body["token"] == fake.issued[0]]) >= 3:
                break
            await asyncio.sleep(0.025)
        ours = asyncio.create_task(env.transport().call(PLANTS))
        outs = [await c.communicate() for c in children]
        assert (await ours)["rowCount"] == 1
        for child, (out, errout) in zip(children, outs, strict=True):
            assert child.returncode == 0, errout.decode()[-2000:]
            assert out.splitlines()[-1].split()[0] == b"1"  # the last line: structlog prints too
        assert len(fake.calls("/openapi/login")) == 2  # the first, and one for all three after E00003
        assert len(fake.issued) == 2

    run(tmp_path, fake, body)
