"""iSolarCloud HTTP transport (layer 1): gateway, headers, encryption, budget, token, retries.

One `SungrowTransport` per appkey + account. Each call is a POST of a JSON body with
`appkey`, `token` and `lang` (research/sungrow.md §3.1: the anchors put `lang` in the
body, the English doc lists it as a header; without it answers are Chinese), headers
`sys_code: 901` and `x-access-key`; with `rsa_public_key` set, the body is encrypted
as `auth.seal` describes and the reply decrypted (plain replies accepted).

Every attempt — the first, each retry, the login, the `/timestamp` probe — takes its
own budget slot (the budget is per appkey: `budget_scope="account"`) and passes the
ticket to the request, so the per-second spacing runs from the send.

What is retried, and how often:

* E00003 (token invalid): one re-login (`TokenStore`: one login at a time across
  processes, the token re-read first), then the call once more. The token is kept in
  the state database and reused across restarts and processes; no other code logs in.
* E913 (clock skew): the gateway's clock is read from `GET /timestamp` (vendor doc
  Appendix 7) or, failing that, the `Date` header, the offset kept, the call repeated
  once (research/sungrow.md §3.3).
* Transient errors (5xx, HTML, empty, invalid JSON, undecryptable replies, timeouts,
  -1/000/011/E910/E997): at most `retries` more attempts after a short jittered pause.
* Everything else goes up: rate limits and quota to the app (which pauses the
  account until `retry_at`), E916 after recording the login back-off in the state.
  E999 (hourly quota) first says "the next full hour"; whether the gateway counts
  clock hours (as `getOpenApiCallInfo`'s per-hour lists suggest) or a sliding hour
  (the simulator's stricter reading) is undocumented (research/sungrow.md §4.3), so
  an E999 again within the hour after the first says "an hour after the first".

Secrets — token, AES key, password, access key, appkey — never go into a log line or
an exception message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from collector.clock import Clock
from collector.errors import ConfigError, VendorRateLimitError, VendorTransientError
from collector.log import REDACTOR, get_logger
from collector.state import State
from collector.vendors.http import send
from collector.vendors.sungrow.auth import (
    LOGIN_LOCK_TTL,
    LOGIN_PATH,
    PublicKeyError,
    ReplyDecryptError,
    SealedRequest,
    TokenStore,
    account_id,
    check_login,
    load_public_key,
    login_body,
    seal,
)
from collector.vendors.sungrow.codes import (
    HOURLY_QUOTA_CODES,
    QUOTA_MARGIN,
    VENDOR,
    ClockSkewError,
    LoginRefusedError,
    LoginThrottledError,
    TokenInvalidError,
    gateway_time,
    unwrap,
)

if TYPE_CHECKING:  # collector.budget imports collector.vendors: no cycle at run time
    from collector.budget import CallTicket, SourceBudget

log = get_logger(__name__)

#: The regional gateways (vendor doc Appendix 8; research/sungrow.md §1).
REGIONS: dict[str, str] = {
    "cn": "https://gateway.isolarcloud.com",
    "intl": "https://gateway.isolarcloud.com.hk",
    "eu": "https://gateway.isolarcloud.eu",
    "au": "https://augateway.isolarcloud.com",
}
DEFAULT_REGION = "eu"
SYS_CODE = "901"  # third-party callers (vendor doc §1.3 (5))
LANG = "_en_US"  # with the underscore: "en_US" is answered 010 (research/sungrow.md §3.1)
CONTENT_TYPE = "application/json;charset=UTF-8"
TIMESTAMP_PATH = "/timestamp"

REQUEST_TIMEOUT = 30.0
RETRIES = 1
RETRY_DELAY = (2.0, 6.0)
#: How long a call waits for another process's login before giving up (transient).
LOGIN_WAIT = LOGIN_LOCK_TTL + 30.0
#: How often a waiter looks at the login lock again (real time: the holder does real I/O).
LOCK_POLL = 0.05


def base_url_for(region: str | None = None, base_url: str | None = None) -> str:
    """`base_url` when given (e.g. a simulator), else the gateway of `region` (default eu)."""
    if base_url:
        return base_url.rstrip("/")
    name = (region or DEFAULT_REGION).strip().lower()
    if name not in REGIONS:
        raise ConfigError("region", f"unknown Sungrow region {region!r}; one of {', '.join(REGIONS)}")
    return REGIONS[name]


class SungrowTransport:
    """Budgeted, optionally encrypted calls to one iSolarCloud gateway for one appkey + account."""

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        budget: SourceBudget,
        state: State,
        clock: Clock,
        appkey: str,
        access_key: str,
        username: str,
        password: str,
        region: str | None = None,
        base_url: str | None = None,
        rsa_public_key: str | None = None,
        retries: int = RETRIES,
        retry_delay: tuple[float, float] = RETRY_DELAY,
        timeout: float = REQUEST_TIMEOUT,
        login_wait: float = LOGIN_WAIT,
        lang: str = LANG,
    ) -> None:
        self._http = http
        self._budget = budget
        self._clock = clock
        self._base = base_url_for(region, base_url)
        self._appkey = appkey
        self._access_key = access_key
        self._username = username
        self._password = password
        try:
            self._public_key = load_public_key(rsa_public_key) if rsa_public_key else None
        except PublicKeyError as err:
            raise ConfigError("rsa_public_key", str(err)) from None
        self._retries = retries
        self._retry_delay = retry_delay
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._login_wait = login_wait
        self._lang = lang
        self._tokens = TokenStore(state, clock, account_id(appkey, username))
        self._token: str | None = None
        self._login_lock = asyncio.Lock()
        self._holder = f"{os.getpid()}-{secrets.token_hex(4)}"
        #: The gateway's clock minus ours, seconds (learnt on E913).
        self.clock_offset = 0.0
        #: Logins this transport made (not counting ones it took from another process).
        self.logins = 0
        #: When the current run of E999 answers began (None: the last call was not E999).
        self._quota_since: float | None = None
        self._last_date: str | None = None

    @property
    def encrypted(self) -> bool:
        return self._public_key is not None

    @property
    def base_url(self) -> str:
        return self._base

    def _secrets(self, *more: str) -> tuple[str, ...]:
        return tuple(s for s in (self._token, self._appkey, self._access_key, self._password, *more) if s)

    # -- the public calls --------------------------------------------------------------------------
    async def call(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        devices: Sequence[str] = (),
        max_wait: float | None = None,
        allow_null: bool = False,
    ) -> Any:
        """POST `path` with `params` plus appkey, token and lang; returns `result_data`.

        Logs in first when no token is stored; after E00003 logs in again (once) and
        repeats the call. `devices` names what the call covers (for the budget)."""
        relogged = False
        while True:
            token = await self.token()
            # `lang` in the body: the English doc lists it as a header, the CN-doc and every
            # working client as a body parameter (research/sungrow.md §3.1).
            body = {**(params or {}), "appkey": self._appkey, "token": token, "lang": self._lang}
            try:
                data = await self._request(
                    path, body, devices=devices, max_wait=max_wait, allow_null=allow_null
                )
            except TokenInvalidError:
                if relogged:
                    raise
                relogged = True
                log.info("sungrow.token_invalid", endpoint=path, action="log in again")
                await self._renew(stale=token)
                continue
            self._tokens.touch(token)
            return data

    async def token(self) -> str:
        """The token in use: ours, else the stored one, else a new login."""
        if self._token is None:
            stored = self._tokens.get()
            if stored is not None:
                REDACTOR.update((stored,))
                self._token = stored
                return stored
            return await self._renew(stale=None)
        return self._token

    async def login(self) -> str:
        """Log in now (replacing the current token), one login at a time across processes."""
        return await self._renew(stale=self._token or self._tokens.get())

    # -- login --------------------------------------------------------------------------------------
    async def _renew(self, *, stale: str | None) -> str:
        """A token other than `stale`: one another process just stored, or our own login."""
        async with self._login_lock:
            deadline = time.monotonic() + self._login_wait
            while True:
                current = self._tokens.get()
                if current is not None and current != stale:
                    return self._use(current)
                if self._tokens.try_lock(self._holder):
                    try:
                        current = self._tokens.get()  # re-read: a login may have finished meanwhile
                        if current is not None and current != stale:
                            return self._use(current)
                        token = await self._login()
                        self._tokens.put(token)
                        return self._use(token)
                    finally:
                        self._tokens.unlock(self._holder)
                if time.monotonic() >= deadline:
                    raise VendorTransientError(
                        f"iSolarCloud {LOGIN_PATH}: another process has been logging in "
                        f"for {self._login_wait:g} s",
                        vendor=VENDOR,
                        endpoint=LOGIN_PATH,
                    )
                await asyncio.sleep(LOCK_POLL)  # the holder's login is real I/O: wait in real time

    def _use(self, token: str) -> str:
        REDACTOR.update((token,))
        self._token = token
        return token

    async def _login(self) -> str:
        until = self._tokens.backoff_until()
        if until is not None:
            # E916 earlier (here or in another process): no login attempt before then.
            raise LoginThrottledError(
                f"iSolarCloud {LOGIN_PATH}: logins paused after E916 (login too frequently)",
                retry_at=until,
                vendor=VENDOR,
                endpoint=LOGIN_PATH,
                code="E916",
            )
        refused = self._tokens.refused_state(self._password)
        if refused is not None:
            # Refused lately with this very password: another try would only count towards
            # locking the account (login_state 2). A new password in the config is tried.
            raise LoginRefusedError(
                f"iSolarCloud {LOGIN_PATH}: this password was refused lately (login_state {refused[:8]}); "
                "not trying it again — check username and password in the config",
                login_state=refused,
                vendor=VENDOR,
                endpoint=LOGIN_PATH,
                code=f"login_state {refused[:8]}",
            )
        body = login_body(
            self._appkey, self._username, self._password, encrypted=self.encrypted, lang=self._lang
        )
        try:
            data = await self._request(LOGIN_PATH, body, devices=(), max_wait=None, allow_null=False)
        except LoginThrottledError as err:
            self._tokens.back_off(err.retry_at or self._clock.time())
            log.warning("sungrow.login_throttled", retry_at=err.retry_at)
            raise
        try:
            result = check_login(data, endpoint=LOGIN_PATH)  # login_state, not result_code alone
        except LoginRefusedError as err:
            self._tokens.mark_refused(self._password, err.login_state)
            log.error("sungrow.login_refused", login_state=err.login_state, error=str(err))
            raise
        self.logins += 1
        log.info("sungrow.login", user_id=result.user_id or None)
        return result.token

    # -- one request, with the clock and transient retries ------------------------------------------
    async def _request(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        devices: Sequence[str],
        max_wait: float | None,
        allow_null: bool,
    ) -> Any:
        clock_fixed = False
        retries = 0
        while True:
            try:
                data = await self._attempt(path, body, devices, max_wait, allow_null)
                self._quota_since = None
                return data
            except VendorRateLimitError as err:
                again = self._hourly_quota(err) if err.code in HOURLY_QUOTA_CODES else err
                if again is not err:
                    raise again from err
                raise
            except ClockSkewError:
                if clock_fixed:
                    raise
                clock_fixed = True
                if not await self._correct_clock():
                    raise
            except VendorTransientError as err:
                if retries >= self._retries:
                    raise
                retries += 1
                log.info("sungrow.retry", endpoint=path, attempt=retries, error=str(err))
                await self._clock.sleep(random.uniform(*self._retry_delay))

    def _hourly_quota(self, err: VendorRateLimitError) -> VendorRateLimitError:
        """E999: the next full hour on the first one (a clock-hour quota frees then); on
        another within the hour, an hour after the first — a sliding hour has freed by then
        (research/sungrow.md §4.3 leaves open which the gateway counts)."""
        now = self._clock.time()
        since = self._quota_since
        if since is None or now - since > 3600.0 + QUOTA_MARGIN:
            self._quota_since = now
            return err
        # Not the next full hour again (that would be the clock-hour guess once more).
        retry_at = max(since + 3600.0 + QUOTA_MARGIN, now + QUOTA_MARGIN)
        return VendorRateLimitError(
            f"{err} again: retrying an hour after the first",
            retry_at=retry_at,
            vendor=err.vendor,
            endpoint=err.endpoint,
            code=err.code,
        )

    def _slot(
        self, endpoint: str, devices: Sequence[str], max_wait: float | None
    ) -> contextlib.AbstractAsyncContextManager[CallTicket]:
        if max_wait is None:
            return self._budget.call(endpoint=endpoint, devices=devices)
        return self._budget.call(endpoint=endpoint, devices=devices, max_wait=max_wait)

    async def _attempt(
        self,
        path: str,
        body: Mapping[str, Any],
        devices: Sequence[str],
        max_wait: float | None,
        allow_null: bool,
    ) -> Any:
        # Budget first, for every attempt: a retry is a call the vendor counts.
        async with self._slot(path, devices, max_wait) as ticket:
            headers = {"Content-Type": CONTENT_TYPE, "sys_code": SYS_CODE, "x-access-key": self._access_key}
            sealed: SealedRequest | None = None
            if self._public_key is not None:
                # Sealed per attempt: a fresh AES key, nonce and timestamp every time.
                now_ms = int((self._clock.time() + self.clock_offset) * 1000)
                sealed = seal(body, self._public_key, now_ms)
                headers["x-random-secret-key"] = sealed.secret_key_header
                wire = sealed.wire_body
            else:
                wire = json.dumps(dict(body), ensure_ascii=False, separators=(",", ":"))
            status, text, resp_headers = await self._send("POST", path, headers, wire.encode("utf-8"), ticket)
        more = (sealed.aes_key,) if sealed is not None else ()
        if sealed is not None:
            try:
                text = sealed.open(text)
            except ReplyDecryptError as err:
                log.warning("sungrow.reply_undecryptable", endpoint=path, status=status, error=str(err))
                raise VendorTransientError(
                    f"iSolarCloud {path}: HTTP {status}, {err}", vendor=VENDOR, endpoint=path, code=status
                ) from None
        return unwrap(
            status,
            text,
            endpoint=path,
            now=self._clock.time(),
            content_type=resp_headers.get("Content-Type", ""),
            headers=resp_headers,
            secrets=self._secrets(*more),
            allow_null=allow_null,
        )

    async def _send(
        self, method: str, path: str, headers: Mapping[str, str], data: bytes | None, ticket: CallTicket
    ) -> tuple[int, str, Mapping[str, str]]:
        status, text, resp_headers = await send(
            self._http,
            method,
            self._base + path,
            ticket=ticket,
            timeout=self._timeout,
            title="iSolarCloud",
            vendor=VENDOR,
            endpoint=path,
            data=data,
            headers=dict(headers),
        )
        self._last_date = resp_headers.get("Date", self._last_date)
        return status, text, resp_headers

    async def _correct_clock(self) -> bool:
        """After E913: the gateway's clock from `GET /timestamp`, else the last `Date`
        header; True when the offset could be set."""
        date_before = self._last_date
        text, date = "", date_before
        try:
            async with self._slot(TIMESTAMP_PATH, (), None) as ticket:
                status, body, resp_headers = await self._send(
                    "GET", TIMESTAMP_PATH, {"sys_code": SYS_CODE}, None, ticket
                )
            if status < 300:
                text = body
            date = resp_headers.get("Date", date_before)
        except VendorTransientError as err:
            log.info("sungrow.timestamp_unavailable", error=str(err))
        server = gateway_time(text, None)
        source = "timestamp"
        if server is None:
            # The `/timestamp` answer's format is undocumented (research/sungrow.md §3.3):
            # the Date header, to the second, is the fallback (roth-andreas REQ-API-017).
            server = gateway_time("", date)
            source = "date_header"
        if server is None:
            log.warning("sungrow.clock_unknown", note="E913 and the gateway's time could not be read")
            return False
        self.clock_offset = server - self._clock.time()
        log.warning("sungrow.clock_corrected", offset_s=round(self.clock_offset, 3), source=source)
        return True
