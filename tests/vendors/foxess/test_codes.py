"""Every errno of the field notes, and every kind of bad answer, becomes the right exception."""

from __future__ import annotations

import json

import pytest

from collector.errors import (
    VendorAuthError,
    VendorDataQualityError,
    VendorError,
    VendorQuotaError,
    VendorRateLimitError,
    VendorResponseError,
    VendorTransientError,
)
from collector.vendors.foxess.codes import QUOTA_PAUSE, RATE_LIMIT_PAUSE, error_for, result_of, unwrap

NOW = 1_700_000_000.0
KEY = "secret-api-key-4711"

# research/foxess.md §3.2, one row per errno found → the class we promise.
ERRNOS: list[tuple[int, type[VendorError]]] = [
    (30000, VendorTransientError),
    (40256, VendorAuthError),
    (40257, VendorResponseError),
    (40261, VendorResponseError),
    (40400, VendorRateLimitError),
    (40401, VendorRateLimitError),
    (40402, VendorQuotaError),
    (41200, VendorTransientError),
    (41201, VendorTransientError),
    (41202, VendorTransientError),
    (41203, VendorTransientError),
    (41807, VendorAuthError),
    (41808, VendorAuthError),
    (41809, VendorAuthError),
    (41810, VendorAuthError),
    (41811, VendorAuthError),
    (41930, VendorResponseError),
    (41935, VendorTransientError),
    (42015, VendorResponseError),
    (44096, VendorResponseError),
    (44098, VendorTransientError),
    (99999, VendorResponseError),  # unknown: not retried blindly
]


def body(errno: object, msg: str | None = "x", result: object = None) -> str:
    out: dict[str, object] = {"errno": errno, "result": result}
    if msg is not None:
        out["msg"] = msg
    return json.dumps(out)


@pytest.mark.parametrize(("errno", "cls"), ERRNOS)
def test_every_errno_maps_to_its_class(errno: int, cls: type[VendorError]) -> None:
    err = error_for(errno, endpoint="/op/v0/device/list", now=NOW)
    assert type(err) is cls
    assert err.code == errno and err.vendor == "foxess" and err.endpoint == "/op/v0/device/list"
    with pytest.raises(cls):
        unwrap(200, body(errno), endpoint="/op/v0/device/list", now=NOW)


def test_retry_times() -> None:
    quota = error_for(40402, endpoint="/e", now=NOW)
    assert isinstance(quota, VendorQuotaError) and quota.retry_at == NOW + QUOTA_PAUSE
    for errno in (40400, 40401):
        limited = error_for(errno, endpoint="/e", now=NOW)
        assert isinstance(limited, VendorRateLimitError) and limited.retry_at == NOW + RATE_LIMIT_PAUSE


def test_msg_is_never_matched() -> None:
    # errno decides; msg wording changed in 2025 ("success" → "Operation successful").
    assert unwrap(200, body(0, "Your request exceeds the limit", [1]), endpoint="/e", now=NOW) == [1]
    with pytest.raises(VendorQuotaError):
        unwrap(200, body(40402, "success"), endpoint="/e", now=NOW)
    with pytest.raises(VendorQuotaError):
        unwrap(200, body(40402, None), endpoint="/e", now=NOW)  # msg may be absent


def test_errno_as_a_numeric_string_is_read() -> None:
    assert unwrap(200, body("0", result={"a": 1}), endpoint="/e", now=NOW) == {"a": 1}
    with pytest.raises(VendorAuthError):
        unwrap(200, body("41809"), endpoint="/e", now=NOW)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, VendorAuthError),
        (403, VendorAuthError),
        (406, VendorAuthError),
        (429, VendorRateLimitError),
        (400, VendorResponseError),
        (404, VendorResponseError),
        (500, VendorTransientError),
        (502, VendorTransientError),
        (503, VendorTransientError),
    ],
)
def test_http_status(status: int, cls: type[VendorError]) -> None:
    with pytest.raises(cls) as info:
        unwrap(status, "<html>oops</html>", endpoint="/e", now=NOW)
    assert type(info.value) is cls and info.value.code == status


def test_429_honours_retry_after() -> None:
    with pytest.raises(VendorRateLimitError) as info:
        unwrap(429, "", endpoint="/e", now=NOW, headers={"Retry-After": "120"})
    assert info.value.retry_at == NOW + 120
    with pytest.raises(VendorRateLimitError) as info:
        unwrap(429, "", endpoint="/e", now=NOW, headers={"Retry-After": "soon"})
    assert info.value.retry_at == NOW + RATE_LIMIT_PAUSE


def test_http_200_is_not_success() -> None:
    with pytest.raises(VendorTransientError, match="HTML page"):
        unwrap(
            200, "<!DOCTYPE html><title>Maintenance</title>", endpoint="/e", now=NOW, content_type="text/html"
        )
    with pytest.raises(VendorDataQualityError, match="malformed JSON"):
        unwrap(200, '{"errno": 0, "result": [', endpoint="/e", now=NOW)
    with pytest.raises(VendorDataQualityError, match="no errno"):
        unwrap(200, '{"result": []}', endpoint="/e", now=NOW)
    with pytest.raises(VendorDataQualityError, match="no errno"):
        unwrap(200, "[1, 2]", endpoint="/e", now=NOW)
    with pytest.raises(VendorDataQualityError, match="not a number"):
        unwrap(200, body("zero"), endpoint="/e", now=NOW)
    with pytest.raises(VendorDataQualityError):
        unwrap(200, "", endpoint="/e", now=NOW)


def test_the_key_never_appears_in_a_message() -> None:
    # Even if the vendor echoed it back in msg.
    for errno, _ in ERRNOS:
        err = error_for(errno, endpoint="/e", now=NOW, msg=f"bad token {KEY}", secrets=(KEY,))
        assert KEY not in str(err)
    with pytest.raises(VendorAuthError) as info:
        unwrap(200, body(41809, f"invalid token {KEY}"), endpoint="/e", now=NOW, secrets=(KEY,))
    assert KEY not in str(info.value) and "***" in str(info.value)


def test_saved_responses_accept_envelope_or_bare_result() -> None:
    assert result_of(body(0, result=[{"a": 1}])) == [{"a": 1}]
    assert result_of('[{"a": 1}]') == [{"a": 1}]
    with pytest.raises(VendorQuotaError):
        result_of(body(40402))
