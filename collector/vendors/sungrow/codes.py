"""iSolarCloud answers → our exceptions (layer 1). HTTP 200 is not success; `result_code` is.

Every code of research/sungrow.md §9.2 (vendor doc Appendix 2 + the portal doc's
appendix 2) is classified here by the code alone: the `result_msg` text is only
quoted, never matched (it is Chinese without `lang`, and its wording differs
between gateways: research/sungrow.md §3.1, §4.1).

* `TokenInvalidError` (a `VendorAuthError`): E00003 — the token expired or was
  replaced; the transport logs in again once and repeats the call.
* `VendorAuthError`: E00000, E00001, E911, E912, E914, E918, E919 — appkey, access
  key, service or whitelist refused: a config problem, retrying cannot help.
* `CryptoError` (a `VendorAuthError`): E00002, E902, E904–E909 — the encrypted call
  was refused (the app needs encryption, or the RSA public key is wrong).
* `LoginRefusedError` (a `VendorAuthError`): login answered `result_code "1"` but a
  `login_state` other than "1" (raised by `auth.check_login`).
* `LoginThrottledError` (a `VendorRateLimitError`): E916 "login too frequently".
* `VendorRateLimitError`: E999 hourly quota — retry at the next full hour
  (`getOpenApiCallInfo` lists the quota by hour; a sliding hour is not ruled out,
  research/sungrow.md §4.3, so the transport waits an hour after the first E999 when
  a second one follows).
* `VendorQuotaError`: E998 monthly quota — probe again at the next UTC midnight.
* `VendorRateLimitError`: E901 "call too frequently", E903 "IP switching too
  frequent", HTTP 429 — retry after the gateway's `Retry-After` / `X-RateLimit-*`
  headers, or a fixed pause.
* `NotGrantedError` (a `VendorResponseError`): E900 (and E994/E996) — this endpoint is
  not granted to the appkey: the caller disables that stream, nothing else stops.
* `ClockSkewError` (a `VendorTransientError`): E913 — our timestamp is too far from the
  gateway's; the transport corrects its clock offset and repeats the call once.
* `VendorTransientError`: -1, 000, 011, E910 (repeated nonce: the next attempt has a
  new one), E997; HTTP 5xx; HTML, empty or invalid-JSON bodies.
* `VendorResponseError`: 001–003, 009, 010, E917, E995 and any unknown code; other
  HTTP 4xx without an envelope — the request itself was refused.
* `VendorDataQualityError`: success with `result_data` null, or a JSON answer that is
  not an envelope.
"""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Mapping
from typing import Any

from collector.errors import (
    VendorAuthError,
    VendorDataQualityError,
    VendorError,
    VendorQuotaError,
    VendorRateLimitError,
    VendorResponseError,
    VendorTransientError,
)
from collector.vendors.base import http_failure, json_body, quote_message

VENDOR = "sungrow"
SUCCESS = "1"


class TokenInvalidError(VendorAuthError):
    """E00003: the token is no longer valid (expired after 24 h unused, or replaced)."""


class CryptoError(VendorAuthError):
    """The gateway refused our encryption (or asked for it): check `rsa_public_key`."""


class LoginRefusedError(VendorAuthError):
    """The login answered with a `login_state` other than success; `login_state` says which."""

    def __init__(self, message: str, *, login_state: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.login_state = login_state


class LoginThrottledError(VendorRateLimitError):
    """E916: too many logins; no login before `retry_at`."""


class NotGrantedError(VendorResponseError):
    """E900: this endpoint is not granted to the appkey (or not in its API family)."""


class ClockSkewError(VendorTransientError):
    """E913: the request's timestamp is too far from the gateway's clock."""


TOKEN_CODES = frozenset({"E00003"})  # er_token_login_invalid, HTTP 200 (research/sungrow.md §4.1)
AUTH_CODES = frozenset(
    {
        "E00000",  # invalid appkey
        "E00001",  # API service has expired
        "E911",  # missing x-access-key header
        "E912",  # illegal x-access-key
        "E914",  # appkey and x-access-key do not match
        "E918",  # denied by the IP whitelist (portal doc only)
        "E919",  # denied by the user whitelist (portal doc only)
    }
)
CRYPTO_CODES = frozenset(
    {
        "E00002",  # parameter decryption exception
        "E902",  # request is not encrypted: this app requires rsa_public_key
        "E904",  # missing x-random-secret-key header
        "E905",  # AES decryption exception
        "E906",  # RSA decryption exception: most likely a wrong rsa_public_key
        "E907",  # AES key length must be 16
        "E908",  # missing api_key_param
        "E909",  # invalid nonce format (32 letters and digits)
    }
)
HOURLY_QUOTA_CODES = frozenset({"E999"})  # er_hour_call_api_times_upper_limit
MONTHLY_QUOTA_CODES = frozenset({"E998"})  # er_month_call_api_times_upper_limit (CN/portal doc only)
THROTTLE_CODES = frozenset({"E901"})  # call too frequently
IP_SWITCH_CODES = frozenset({"E903"})  # abnormal network environment: IP switching too frequent
LOGIN_THROTTLE_CODES = frozenset({"E916"})  # login too frequently (threshold undocumented)
CLOCK_CODES = frozenset({"E913"})  # expired request: timestamp vs server time
NOT_GRANTED_CODES = frozenset(
    {
        "E900",  # unauthorized access: endpoint not granted / wrong API family / no such endpoint
        # "system not found" / "API not found": KRoperUK pysolarcloud reads both as "not
        # available to this account" (research/sungrow.md §2.2) — treated like E900.
        "E994",
        "E996",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "-1",  # internal exception of service
        "000",  # unknown exception
        "011",  # SQL exception
        "E910",  # repeated nonce: every attempt builds a new one, so a retry can pass
        "E997",  # response transform error (server side)
    }
)
REQUEST_CODES = frozenset(
    {
        "001",  # missing appkey
        "002",  # missing token
        "003",  # missing sys_code
        "009",  # missing parameter (e.g. ps_key_list)
        "010",  # invalid parameter value: window > 3 h, > 100 points, bad lang (§9.2, §4.1)
        "E917",  # missing required header (roth-andreas REQ-API-019)
        "E995",  # request body too large
    }
)

#: E901 / 429 without usable headers: the bucket refills at ~10/s (vendor doc headers,
#: research/sungrow.md §4.3), so a few seconds would do; E901 might also be a limit we
#: do not know, so wait longer than the bucket needs.
THROTTLE_PAUSE = 10.0
#: Never retry a throttle sooner than this, whatever the headers say.
THROTTLE_MIN = 1.0
#: E903: the gateway saw our IP change too often; undocumented how long it holds that.
IP_SWITCH_PAUSE = 300.0
#: E916: how long no login is tried (the threshold is undocumented: research/sungrow.md §4.1).
LOGIN_BACKOFF = 900.0
#: Margin after the hour / day boundary before probing a quota again (clock differences).
QUOTA_MARGIN = 30.0

def next_hour(now: float) -> float:
    """The next full hour (UTC; the gateways' zones are whole hours) plus a margin."""
    return (math.floor(now / 3600.0) + 1) * 3600.0 + QUOTA_MARGIN


def next_day(now: float) -> float:
    """The next UTC midnight plus a margin."""
    return (math.floor(now / 86400.0) + 1) * 86400.0 + QUOTA_MARGIN


def _header(headers: Mapping[str, str], name: str) -> str | None:
    low = name.lower()
    for key, value in headers.items():
        if key.lower() == low:
            return value
    return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        out = float(value.strip())
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def throttle_retry_at(
    headers: Mapping[str, str] | None, now: float, default: float = THROTTLE_PAUSE
) -> float:
    """When to call again after E901 / HTTP 429, from the gateway's headers.

    `Retry-After` (seconds or an HTTP date) wins. Otherwise the Spring Cloud Gateway
    token-bucket headers the vendor doc's screenshots show (`X-RateLimit-Remaining`,
    `X-RateLimit-Replenish-Rate`, `X-RateLimit-Requested-Tokens`; research/sungrow.md
    §4.3, an inference there): the time the bucket needs to refill what one request
    takes — or, when it is empty and `X-RateLimit-Burst-Capacity` is given, the whole
    `burst / rate` window (right for a sliding window too). Neither → `default`.
    Never sooner than `THROTTLE_MIN`, never later than a day.
    """
    h = headers or {}
    retry_after = _header(h, "Retry-After")
    seconds = _number(retry_after)
    if seconds is None and retry_after:
        try:
            when = email.utils.parsedate_to_datetime(retry_after)
            seconds = when.timestamp() - now
        except (TypeError, ValueError):
            seconds = None
    if seconds is None:
        rate = _number(_header(h, "X-RateLimit-Replenish-Rate"))
        if rate is not None and rate > 0:
            remaining = _number(_header(h, "X-RateLimit-Remaining")) or 0.0
            requested = _number(_header(h, "X-RateLimit-Requested-Tokens")) or 1.0
            seconds = max(requested - max(remaining, 0.0), 1.0) / rate
            burst = _number(_header(h, "X-RateLimit-Burst-Capacity"))
            if burst is not None and burst > 0 and remaining <= 0:
                # A token bucket has a token again after 1/rate, but whether the gateway
                # refills a bucket or counts `burst` calls per `burst / rate` seconds is an
                # inference (research/sungrow.md §4.3; the simulator counts the window, the
                # stricter reading): an empty bucket waits for the whole window.
                seconds = max(seconds, burst / rate)
    if seconds is None or seconds < 0:
        seconds = default
    return now + min(max(seconds, THROTTLE_MIN), 86400.0)


def error_for(
    code: str,
    *,
    endpoint: str,
    now: float,
    msg: object = None,
    headers: Mapping[str, str] | None = None,
    secrets: tuple[str, ...] = (),
) -> VendorError:
    """The exception for a `result_code` other than "1" (the one place that classifies them)."""
    text = f"iSolarCloud {endpoint}: result_code {code}{quote_message(msg, secrets)}"
    kw: dict[str, Any] = {"vendor": VENDOR, "endpoint": endpoint, "code": code}
    if code in TOKEN_CODES:
        return TokenInvalidError(text + " (token invalid or expired: log in again)", **kw)
    if code in CRYPTO_CODES:
        return CryptoError(text + " (encrypted call refused: check rsa_public_key)", **kw)
    if code in AUTH_CODES:
        return VendorAuthError(text + " (appkey, access_key or whitelist refused)", **kw)
    if code in HOURLY_QUOTA_CODES:
        # An hourly quota: a rate limit to us (VendorQuotaError is for a day or longer).
        return VendorRateLimitError(text + " (hourly quota used up)", retry_at=next_hour(now), **kw)
    if code in MONTHLY_QUOTA_CODES:
        # Monthly quota: its reset (month start, gateway zone) is not documented; probing
        # once a day costs one call and never waits a month on a wrong guess.
        return VendorQuotaError(
            text + " (monthly quota used up)", retry_at=max(next_day(now), now + 3600.0), **kw
        )
    if code in LOGIN_THROTTLE_CODES:
        return LoginThrottledError(text + " (too many logins)", retry_at=now + LOGIN_BACKOFF, **kw)
    if code in THROTTLE_CODES:
        return VendorRateLimitError(text + " (too frequent)", retry_at=throttle_retry_at(headers, now), **kw)
    if code in IP_SWITCH_CODES:
        return VendorRateLimitError(
            text + " (the gateway saw the IP address change too often)",
            retry_at=throttle_retry_at(headers, now, IP_SWITCH_PAUSE),
            **kw,
        )
    if code in CLOCK_CODES:
        return ClockSkewError(text + " (request timestamp too far from the gateway's clock)", **kw)
    if code in NOT_GRANTED_CODES:
        return NotGrantedError(text + " (not granted to this appkey)", **kw)
    if code in TRANSIENT_CODES:
        return VendorTransientError(text + " (server-side failure, try later)", **kw)
    if code in REQUEST_CODES:
        return VendorResponseError(text + " (request refused: missing or invalid parameter)", **kw)
    return VendorResponseError(text + " (unknown result_code)", **kw)


def result_code(value: object) -> str | None:
    """The envelope's `result_code` as a string ("1", "E00003", "010"); None if unusable.

    It is a string in every sample (research/sungrow.md §5.1); a bare number 1 is read too.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def unwrap(
    status: int,
    text: str,
    *,
    endpoint: str,
    now: float,
    content_type: str = "",
    headers: Mapping[str, str] | None = None,
    secrets: tuple[str, ...] = (),
    allow_null: bool = False,
) -> Any:
    """Check an HTTP answer (already decrypted) and return its `result_data`, or raise.

    A body with a `result_code` envelope is classified by that code whatever the HTTP
    status (clients decrypt and read 2xx–4xx answers alike: research/sungrow.md §3.2 6.);
    otherwise the status decides. The body itself is never quoted.
    """
    kw: dict[str, Any] = {"vendor": VENDOR, "endpoint": endpoint, "code": status}
    where = f"iSolarCloud {endpoint}: HTTP {status}"
    body = json_body(text, content_type)
    if isinstance(body, dict) and "result_code" in body:
        code = result_code(body["result_code"])
        if code is None:
            raise VendorDataQualityError(f"{where}: result_code is not usable", **kw)
        if code != SUCCESS:
            raise error_for(
                code, endpoint=endpoint, now=now, msg=body.get("result_msg"), headers=headers, secrets=secrets
            )
        if status >= 300:
            raise VendorTransientError(f"{where} with a success envelope", **kw)
        data = body.get("result_data")
        if data is None and not allow_null:
            raise VendorDataQualityError(f"{where}: success without result_data", **kw)
        return data
    raise http_failure(
        status, text, content_type, body=body, where=where, envelope="result_code",
        retry_at=throttle_retry_at(headers, now), kw=kw,
    )  # fmt: skip


def _epoch(value: Any) -> float | None:
    """A Unix time from seconds or milliseconds (number or digit string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = _number(value)
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return float(value) / 1000.0 if value > 1e11 else float(value)


def gateway_time(text: str, date_header: str | None) -> float | None:
    """The gateway's clock from a `GET /timestamp` answer, else from a `Date` header.

    The vendor doc names `/timestamp` for E913 (Appendix 7) but not its answer's format
    (research/sungrow.md §3.3): a bare number (ms or s), or an envelope / object whose
    `result_data` or `timestamp` holds one, is accepted; otherwise the HTTP `Date`
    header (what roth-andreas uses, REQ-API-017), to the second.
    """
    found: float | None = None
    stripped = text.strip()
    if stripped:
        try:
            body: Any = json.loads(stripped)
        except ValueError:
            body = stripped
        if isinstance(body, dict):
            for key in ("result_data", "timestamp", "data"):
                inner = body.get(key)
                if isinstance(inner, dict):
                    inner = inner.get("timestamp")
                found = _epoch(inner)
                if found is not None:
                    break
        else:
            found = _epoch(body)
    if found is None and date_header:
        try:
            parsed = email.utils.parsedate_tz(date_header)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            found = float(email.utils.mktime_tz(parsed))
    return found
