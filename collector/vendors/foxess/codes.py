"""FoxESS answers → our exceptions (layer 1). HTTP 200 is not success; `errno` is.

Every errno in research/foxess.md §3.2 is classified here, by number only — the
`msg` text changed wording in 2025 and broke a client that compared it (§3.2,
foxess-ha 821c7b7), so it is only ever quoted, never matched.

* `VendorAuthError`: 40256, 41807–41811; HTTP 401, 403, 406 — header, signature or
  timestamp refused, bad or expired key, missing permission.
* `VendorRateLimitError`: 40400, 40401; HTTP 429 — per-second "too frequent" /
  "try later": retry after `RATE_LIMIT_PAUSE` (or the Retry-After header).
* `VendorQuotaError`: 40402 — the daily quota is used up: probe again after `QUOTA_PAUSE`.
* `VendorTransientError`: 30000, 41200–41203, 41935, 44098; HTTP 5xx; HTML pages;
  timeouts and connection errors (transport.py) — maintenance and server failures.
* `VendorResponseError`: 40257, 40261, 41930, 42015, 44096, any unknown errno; other
  HTTP 4xx — the request itself was refused: retrying cannot help.
* `VendorDataQualityError`: a non-JSON body, no `errno`, a wrong envelope.
"""

from __future__ import annotations

import json
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
from collector.vendors.base import load_saved, looks_like_html, quote_message

VENDOR = "foxess"

AUTH_ERRNOS = frozenset(
    {
        40256,  # header problem: "illegal signature" / "illegal timestamp" / "no signature" (doc; §3.2)
        41807,  # wrong credentials (foxess-ha README; EnergyStats login-failure.json)
        41808,  # token expired (EnergyStats badtoken.json; jbub)
        41809,  # invalid token (foxess-ha README; com.foxess test/cases/auth.js)
        41810,  # invalid token (EnergyStats)
        41811,  # missing permission (com.foxess FoxEssClient.js)
    }
)
RATE_LIMIT_ERRNOS = frozenset(
    {
        40400,  # too frequent: the 1/s per-endpoint limit (doc "Common error solutions")
        40401,  # "try later" (EnergyStats trylater.json)
    }
)
QUOTA_ERRNOS = frozenset({40402})  # daily quota exhausted (foxess-ha#268; EnergyStats; jbub; batpred)
TRANSIENT_ERRNOS = frozenset(
    {
        30000,  # servers in maintenance (EnergyStats FoxAPIService.swift)
        41200,  # "Query data failed": platform outages (foxess-ha#226, #278); see note below
        41201,  # batpred transient set
        41202,  # "ProgramBranchNotProcessed" (Roses.SolarAPI); batpred transient set
        41203,  # "Operation timeout": inverter/cloud comms (foxess-ha#311)
        41935,  # batpred transient set
        44098,  # batpred transient set (2026)
    }
)
# 41200 is permanent for a few device/endpoint pairs (EVO device/detail; §3.2). We call
# neither, and a transient class with bounded retries cannot burn the quota.
REQUEST_ERRNOS = frozenset(
    {
        40257,  # request body invalid (doc); also "not available on this model" (TonyM)
        40261,  # incorrect inverter id (legacy API; foxess-ha README)
        41930,  # incorrect inverter id (foxess-ha README)
        42015,  # setting not supported by this device (batpred)
        44096,  # unsupported function / settings locked by a schedule (TonyM; batpred)
    }
)

#: Pause after 40400/40401/429 without a Retry-After. The limit is 1/s per endpoint,
#: so a minute is plenty for our own spacing; com.foxess waits 5 min and batpred up to
#: 31 s (research/foxess.md §3.3). A minute never costs a 5-minute live poll.
RATE_LIMIT_PAUSE = 60.0
#: After 40402 the reset time is unknown (§3.1: "no anchor determines it"): probe hourly,
#: not every minute — the retry loop that made foxess-ha#268 worse (§7.2).
QUOTA_PAUSE = 3600.0


def error_for(
    errno: int,
    *,
    endpoint: str,
    now: float,
    msg: object = None,
    secrets: tuple[str, ...] = (),
) -> VendorError:
    """The exception for a non-zero `errno` (the one place that classifies them)."""
    text = f"FoxESS {endpoint}: errno {errno}{quote_message(msg, secrets)}"
    kw: dict[str, Any] = {"vendor": VENDOR, "endpoint": endpoint, "code": errno}
    if errno in AUTH_ERRNOS:
        return VendorAuthError(text + " (the API key, signature or clock was refused)", **kw)
    if errno in QUOTA_ERRNOS:
        return VendorQuotaError(text + " (daily quota used up)", retry_at=now + QUOTA_PAUSE, **kw)
    if errno in RATE_LIMIT_ERRNOS:
        return VendorRateLimitError(text + " (too frequent)", retry_at=now + RATE_LIMIT_PAUSE, **kw)
    if errno in TRANSIENT_ERRNOS:
        return VendorTransientError(text + " (server-side failure, try later)", **kw)
    if errno in REQUEST_ERRNOS:
        return VendorResponseError(text + " (request refused)", **kw)
    return VendorResponseError(text + " (unknown errno)", **kw)


def _retry_after(value: str | None, now: float) -> float:
    if value:
        try:
            seconds = float(value.strip())
        except ValueError:
            seconds = -1.0
        if 0 <= seconds <= 86400:
            return now + seconds
    return now + RATE_LIMIT_PAUSE


def unwrap(
    status: int,
    text: str,
    *,
    endpoint: str,
    now: float,
    content_type: str = "",
    headers: Mapping[str, str] | None = None,
    secrets: tuple[str, ...] = (),
) -> Any:
    """Check an HTTP answer and return the envelope's `result`, or raise our exception.

    `{"errno": 0, "result": …}` is success (errno may be a numeric string); anything
    else raises. The body is never quoted (it might be a proxy page of any size).
    """
    kw: dict[str, Any] = {"vendor": VENDOR, "endpoint": endpoint, "code": status}
    where = f"FoxESS {endpoint}: HTTP {status}"
    if status in (401, 403, 406):
        # 401: unknown key (com.foxess "verified live"); 406: "requires signature" (EnergyStats).
        raise VendorAuthError(f"{where} (the API key or signature was refused)", **kw)
    if status == 429:
        retry = _retry_after((headers or {}).get("Retry-After"), now)
        raise VendorRateLimitError(f"{where} (too many requests)", retry_at=retry, **kw)
    if status >= 500:
        raise VendorTransientError(f"{where} (server error)", **kw)
    if status >= 400:
        raise VendorResponseError(f"{where} (request refused)", **kw)
    if looks_like_html(content_type, text):
        raise VendorTransientError(f"{where} answered an HTML page ({len(text)} bytes), not JSON", **kw)
    try:
        body = json.loads(text)
    except ValueError:
        raise VendorDataQualityError(f"{where} answered malformed JSON ({len(text)} bytes)", **kw) from None
    if not isinstance(body, dict) or "errno" not in body:
        raise VendorDataQualityError(f"{where}: the answer has no errno envelope", **kw)
    errno = _errno(body["errno"])
    if errno is None:
        raise VendorDataQualityError(f"{where}: errno {str(body['errno'])[:20]!r} is not a number", **kw)
    if errno != 0:
        raise error_for(errno, endpoint=endpoint, now=now, msg=body.get("msg"), secrets=secrets)
    return body.get("result")


def _errno(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def result_of(text: str, *, endpoint: str = "saved response") -> Any:
    """`result` of a saved response (for the `parse` command): the envelope is checked
    when there is one; a bare result (list / object without `errno`) is accepted."""
    body = load_saved(text, title="FoxESS", vendor=VENDOR, endpoint=endpoint)
    if isinstance(body, dict) and "errno" in body:
        return unwrap(200, text, endpoint=endpoint, now=0.0, content_type="application/json")
    return body
