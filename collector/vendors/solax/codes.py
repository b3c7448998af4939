"""SolaX-family answers → our exceptions (layer 1). HTTP 200 is not success; `success` and `code` are.

One function, `unwrap`, for the three token APIs (SolaX Cloud v2, Sunvec Connect, the EV
charger's `getPileInfo`): they share the envelope `{success, exception, result, code}`
(vendor doc §5.2; research/solax.md §2.2). It is classified by `success` and `code` alone;
the `exception` text is only quoted (its wording differs between versions and regions:
"Query success!", "operation success", "query success"), never matched.

* `VendorAuthError`: 103 "token invalid!" (undocumented, research/solax.md §2.3), 1001
  "Interface Unauthorized" — the token is refused: a config problem, retrying cannot help.
* `LockedOutError` (a `VendorRateLimitError`): 1 "several violations in a row … prohibit
  calls within the next hour" — the token is locked out; no call before `retry_at` (the
  notes' 61 minutes: an hour plus a margin).
* `VendorRateLimitError`: 104 "Request calls within the current minute > threshold"
  (retry after the minute window, 61 s) and 3 (a call threshold the notes cannot pin down:
  retry after an hour, so that a limit we did not foresee never makes three refusals in a
  row, the lock-out rule).
* `DongleRefusedError` (a `VendorResponseError`): 1003 "no auth!" — the serial is not in
  the token's account (usually the inverter SN given instead of the dongle's). Only that
  device is affected; `device` names it.
* `NoDataError` (a `VendorDataQualityError`): `success: true` with `result: null` (a
  registered dongle that has not uploaded yet).
* `VendorTransientError`: 2001 "Operation failed", 2002 "Data not found" (the notes:
  transient); HTTP 5xx; HTML (maintenance pages), empty or invalid-JSON bodies.
* `VendorResponseError`: 1002 "Parameter validation failed", 1004 "Duplicate data", any
  unknown code, other HTTP 4xx.
* `VendorDataQualityError`: a JSON answer that is not an envelope, or a success whose
  `result` is not an object.

**The v1 quirk** (research/solax.md §2.2): `success: false` while `code` is 0 or absent and
`result` is a *string* that says what went wrong. There is no code to go by, so the few
strings the field notes saw are read — exactly, never a substring: "no auth!" (serial not in
the account) → `DongleRefusedError`, "this sn did not access!" (the dongle never reported)
→ `NoDataError`, "token invalid!" → `VendorAuthError`. Any other string is a
`VendorResponseError` quoting it.

**Secrets.** The cloud echoes the `tokenId` in some error bodies (103: `{"tokenId": …}`).
The body is never quoted, and every quoted text has the token blanked (`secrets`).
"""

from __future__ import annotations

from typing import Any

from collector.errors import (
    VendorAuthError,
    VendorDataQualityError,
    VendorError,
    VendorRateLimitError,
    VendorResponseError,
    VendorTransientError,
)
from collector.vendors.base import http_failure, json_body, quote_message

SUCCESS = 0

LOCKOUT_PAUSE = 3660.0
"""Code 1: the cloud says "within the next hour"; the notes (§4) wait 61 minutes."""
MINUTE_PAUSE = 61.0
"""Code 104: the per-minute window, plus a second."""
CODE3_PAUSE = 3600.0
"""Code 3: a call threshold the notes cannot pin down (5 minutes? the day?). Our budget keeps
every documented limit, so a 3 means one we did not foresee: an hour, and not three refusals
in a row (the lock-out rule)."""

AUTH_CODES = frozenset({103, 1001})  # token invalid (undocumented) / Interface Unauthorized (doc §8.2)
LOCKOUT_CODES = frozenset({1})  # several violations in a row: an hour's ban (notes §2.3, lowprize#7)
MINUTE_CODES = frozenset({104})  # current minute > threshold (notes §2.3, A2)
THROTTLE_CODES = frozenset({3})  # maximum call threshold (notes §2.3, A2; pairing unconfirmed)
SERIAL_CODES = frozenset({1003})  # Data Unauthorized / "no auth!" (doc §8.2 + live A1)
TRANSIENT_CODES = frozenset({2001, 2002})  # Operation failed / Data not found (doc §8.2; notes §8)
REQUEST_CODES = frozenset({1002, 1004})  # Parameter validation failed / Duplicate data (doc §8.2)

#: The v1 quirk's `result` strings (notes §2.2), matched exactly after stripping.
V1_NO_AUTH = "no auth!"
V1_NEVER_REPORTED = "this sn did not access!"
V1_TOKEN_INVALID = "token invalid!"


class DongleRefusedError(VendorResponseError):
    """1003 / "no auth!": the serial is not in the token's account; `device` names it."""

    def __init__(self, message: str, *, device: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.device = device


class NoDataError(VendorDataQualityError):
    """The dongle is registered but has no data (yet): nothing to write, nothing wrong with us."""

    def __init__(self, message: str, *, device: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.device = device


class LockedOutError(VendorRateLimitError):
    """Code 1: the token is locked out for an hour after repeated limit violations."""


def code_of(value: object) -> int | None:
    """The envelope's `code` as an int (0, 103, "104" from a string); None if absent or unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def error_for(
    code: int,
    *,
    vendor: str,
    title: str,
    endpoint: str,
    now: float,
    device: str = "",
    msg: object = None,
    secrets: tuple[str, ...] = (),
) -> VendorError:
    """The exception for an envelope with `success: false` and a `code` (the one place that
    classifies codes)."""
    text = f"{title} {endpoint}: code {code}{quote_message(msg, secrets)}"
    kw: dict[str, Any] = {"vendor": vendor, "endpoint": endpoint, "code": code}
    if code in AUTH_CODES:
        return VendorAuthError(text + " (token refused: check token_id)", **kw)
    if code in LOCKOUT_CODES:
        return LockedOutError(
            text + " (the token is locked out for an hour)", retry_at=now + LOCKOUT_PAUSE, **kw
        )
    if code in MINUTE_CODES:
        return VendorRateLimitError(text + " (per-minute limit)", retry_at=now + MINUTE_PAUSE, **kw)
    if code in THROTTLE_CODES:
        return VendorRateLimitError(text + " (call threshold)", retry_at=now + CODE3_PAUSE, **kw)
    if code in SERIAL_CODES:
        return DongleRefusedError(
            text + f" (serial {device or '?'} is not in this token's account: use the Wi-Fi dongle's "
            "registration number, not the inverter's SN)",
            device=device,
            **kw,
        )
    if code in TRANSIENT_CODES:
        return VendorTransientError(text + " (server-side failure, try later)", **kw)
    if code in REQUEST_CODES:
        return VendorResponseError(text + " (request refused)", **kw)
    return VendorResponseError(text + " (unknown code)", **kw)


def _v1_error(
    result: str, *, vendor: str, title: str, endpoint: str, device: str, secrets: tuple[str, ...]
) -> VendorError:
    said = result.strip()
    text = f"{title} {endpoint}: success false{quote_message(said, secrets)}"
    kw: dict[str, Any] = {"vendor": vendor, "endpoint": endpoint, "code": said[:40] or None}
    if said == V1_NO_AUTH:
        return DongleRefusedError(
            text + f" (serial {device or '?'} is not in this token's account)", device=device, **kw
        )
    if said == V1_NEVER_REPORTED:
        return NoDataError(text + f" ({device or 'the device'} has never reported)", device=device, **kw)
    if said == V1_TOKEN_INVALID:
        return VendorAuthError(text + " (token refused: check token_id)", **kw)
    return VendorResponseError(text + " (refused)", **kw)


def unwrap(
    status: int,
    text: str,
    *,
    vendor: str,
    title: str,
    endpoint: str,
    now: float,
    device: str = "",
    content_type: str = "",
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check an HTTP answer and return its `result` object, or raise (see the module docstring).

    `title` names the cloud in messages ("SolaX Cloud", "Sunvec Connect"); `device` the
    serial asked for. A body with the envelope is classified by it whatever the HTTP status;
    otherwise the status decides. The body itself is never quoted.
    """
    kw: dict[str, Any] = {"vendor": vendor, "endpoint": endpoint, "code": status}
    where = f"{title} {endpoint}: HTTP {status}"
    body = json_body(text, content_type)
    if isinstance(body, dict) and "success" in body:
        success = body.get("success")
        code = code_of(body.get("code"))
        result = body.get("result")
        if success is True and code in (None, SUCCESS):
            if status >= 300:
                raise VendorTransientError(f"{where} with a success envelope", **kw)
            if result is None:
                raise NoDataError(f"{where}: no data for {device or 'the device'} yet", device=device, **kw)
            if not isinstance(result, dict):
                raise VendorDataQualityError(f"{where}: result is not an object", **kw)
            return result
        if code not in (None, SUCCESS):
            raise error_for(
                code, vendor=vendor, title=title, endpoint=endpoint, now=now, device=device,
                msg=body.get("exception"), secrets=secrets,
            )  # fmt: skip
        if isinstance(result, str):
            raise _v1_error(
                result, vendor=vendor, title=title, endpoint=endpoint, device=device, secrets=secrets
            )
        if success is True:  # a code we cannot read beside success
            raise VendorDataQualityError(f"{where}: code is not usable", **kw)
        raise VendorResponseError(
            f"{where}: success {success!r} without a code{quote_message(body.get('exception'), secrets)}",
            **kw,
        )
    raise http_failure(
        status,
        text,
        content_type,
        body=body,
        where=where,
        envelope="success/code",
        retry_at=now + MINUTE_PAUSE,
        kw=kw,
    )
