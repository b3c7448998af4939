"""Every result_code of the field notes, every bad body and every login_state → the right exception."""

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
from collector.vendors.sungrow.auth import check_login
from collector.vendors.sungrow.codes import (
    IP_SWITCH_PAUSE,
    LOGIN_BACKOFF,
    QUOTA_MARGIN,
    THROTTLE_PAUSE,
    ClockSkewError,
    CryptoError,
    LoginRefusedError,
    LoginThrottledError,
    NotGrantedError,
    TokenInvalidError,
    error_for,
    gateway_time,
    throttle_retry_at,
    unwrap,
)

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
TOKEN = "505120_2a62bd4e737e4e8fabc9caaa97f032c6"
APPKEY = "ABCDEF0123456789ABCDEF0123456789"

# research/sungrow.md §9.2 (and §4.3), one row per code → the class we promise.
CODES: list[tuple[str, type[VendorError]]] = [
    ("-1", VendorTransientError),
    ("000", VendorTransientError),
    ("001", VendorResponseError),
    ("002", VendorResponseError),
    ("003", VendorResponseError),
    ("009", VendorResponseError),
    ("010", VendorResponseError),
    ("011", VendorTransientError),
    ("E00000", VendorAuthError),
    ("E00001", VendorAuthError),
    ("E00002", CryptoError),
    ("E00003", TokenInvalidError),
    ("E998", VendorQuotaError),
    ("E999", VendorRateLimitError),
    ("E900", NotGrantedError),
    ("E901", VendorRateLimitError),
    ("E902", CryptoError),
    ("E903", VendorRateLimitError),
    ("E904", CryptoError),
    ("E905", CryptoError),
    ("E906", CryptoError),
    ("E907", CryptoError),
    ("E908", CryptoError),
    ("E909", CryptoError),
    ("E910", VendorTransientError),
    ("E911", VendorAuthError),
    ("E912", VendorAuthError),
    ("E913", ClockSkewError),
    ("E914", VendorAuthError),
    ("E916", LoginThrottledError),
    ("E917", VendorResponseError),
    ("E918", VendorAuthError),
    ("E919", VendorAuthError),
    ("E994", NotGrantedError),
    ("E995", VendorResponseError),
    ("E996", NotGrantedError),
    ("E997", VendorTransientError),
    ("E123", VendorResponseError),  # unknown: not retried blindly
]


def env(code: object, msg: str | None = "x", data: object = None) -> str:
    out: dict[str, object] = {"req_serial_num": "20211122306b4be899a371b8bca02c1a", "result_code": code}
    if msg is not None:
        out["result_msg"] = msg
    out["result_data"] = data
    return json.dumps(out)


@pytest.mark.parametrize(("code", "cls"), CODES)
def test_every_code_maps_to_its_class(code: str, cls: type[VendorError]) -> None:
    err = error_for(code, endpoint="/openapi/getDeviceList", now=NOW)
    assert type(err) is cls
    assert err.code == code and err.vendor == "sungrow" and err.endpoint == "/openapi/getDeviceList"
    with pytest.raises(cls):
        unwrap(200, env(code), endpoint="/openapi/getDeviceList", now=NOW)


def test_the_classes_sit_in_the_tree_where_the_scheduler_looks() -> None:
    assert issubclass(TokenInvalidError, VendorAuthError)
    assert issubclass(CryptoError, VendorAuthError)
    assert issubclass(LoginRefusedError, VendorAuthError)
    assert issubclass(LoginThrottledError, VendorRateLimitError)
    assert issubclass(NotGrantedError, VendorResponseError)
    assert issubclass(ClockSkewError, VendorTransientError)


def test_quota_retry_times() -> None:
    hourly = error_for("E999", endpoint="/e", now=NOW)
    assert isinstance(hourly, VendorRateLimitError)
    assert hourly.retry_at == 1_700_002_800.0 + QUOTA_MARGIN  # 23:00 UTC, the next full hour
    monthly = error_for("E998", endpoint="/e", now=NOW)
    assert isinstance(monthly, VendorQuotaError)
    assert monthly.retry_at == 1_700_006_400.0 + QUOTA_MARGIN  # the next UTC midnight
    late = error_for("E998", endpoint="/e", now=1_700_006_000.0)  # 23:53: at least an hour
    assert late.retry_at == 1_700_006_000.0 + 3600.0  # type: ignore[attr-defined]
    login = error_for("E916", endpoint="/openapi/login", now=NOW)
    assert isinstance(login, LoginThrottledError) and login.retry_at == NOW + LOGIN_BACKOFF


def test_throttle_retry_from_the_headers() -> None:
    # Retry-After wins, in seconds or as an HTTP date.
    assert throttle_retry_at({"Retry-After": "7"}, NOW) == NOW + 7
    assert throttle_retry_at({"retry-after": "Tue, 14 Nov 2023 22:13:50 GMT"}, NOW) == NOW + 30
    # The token bucket: 0 left, 10 per second → a token in 0.1 s; never sooner than 1 s.
    # With the burst known and nothing left, the whole window (15 / 10 per s = 1.5 s): the
    # gateway may count 15 calls per 1.5 s rather than refill a bucket (research/sungrow.md §4.3).
    bucket = {
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Replenish-Rate": "10",
        "X-RateLimit-Burst-Capacity": "15",
    }
    assert throttle_retry_at(bucket, NOW) == NOW + 1.5
    assert throttle_retry_at({**bucket, "X-RateLimit-Burst-Capacity": "5"}, NOW) == NOW + 1.0
    slow = {"x-ratelimit-remaining": "0", "x-ratelimit-replenish-rate": "0.2"}
    assert throttle_retry_at(slow, NOW) == NOW + 5.0
    # Nothing usable: the fixed pauses.
    assert throttle_retry_at({}, NOW) == NOW + THROTTLE_PAUSE
    assert throttle_retry_at({"Retry-After": "soon"}, NOW) == NOW + THROTTLE_PAUSE
    assert throttle_retry_at({"Retry-After": "-5"}, NOW) == NOW + THROTTLE_PAUSE
    assert throttle_retry_at({"Retry-After": "999999999"}, NOW) == NOW + 86400
    with pytest.raises(VendorRateLimitError) as info:
        unwrap(200, env("E901"), endpoint="/e", now=NOW, headers={"Retry-After": "42"})
    assert info.value.retry_at == NOW + 42
    e903 = error_for("E903", endpoint="/e", now=NOW)
    assert isinstance(e903, VendorRateLimitError) and e903.retry_at == NOW + IP_SWITCH_PAUSE


def test_http_429_and_statuses_without_an_envelope() -> None:
    with pytest.raises(VendorRateLimitError) as info:
        unwrap(429, "", endpoint="/e", now=NOW, headers={"X-RateLimit-Replenish-Rate": "0.5"})
    assert info.value.retry_at == NOW + 2.0 and info.value.code == 429
    for status, cls in [
        (500, VendorTransientError),
        (502, VendorTransientError),
        (503, VendorTransientError),
        (401, VendorAuthError),
        (403, VendorAuthError),
        (400, VendorResponseError),
        (404, VendorResponseError),
    ]:
        with pytest.raises(cls) as err:
            unwrap(status, "<html>oops</html>", endpoint="/e", now=NOW)
        assert type(err.value) is cls and err.value.code == status


def test_an_envelope_decides_whatever_the_status() -> None:
    with pytest.raises(TokenInvalidError):
        unwrap(401, env("E00003", "er_token_login_invalid"), endpoint="/e", now=NOW)
    with pytest.raises(VendorTransientError):
        unwrap(500, env("1", data={"a": 1}), endpoint="/e", now=NOW)


def test_success_and_null_result_data() -> None:
    assert unwrap(200, env("1", "success", {"a": 1}), endpoint="/e", now=NOW) == {"a": 1}
    assert unwrap(200, env(1, "success", [1]), endpoint="/e", now=NOW) == [1]  # a bare number 1
    with pytest.raises(VendorDataQualityError, match="without result_data"):
        unwrap(200, env("1", "success", None), endpoint="/e", now=NOW)
    assert unwrap(200, env("1", "success", None), endpoint="/e", now=NOW, allow_null=True) is None


def test_http_200_is_not_success() -> None:
    with pytest.raises(VendorTransientError, match="HTML page"):
        unwrap(200, "<!DOCTYPE html><title>502</title>", endpoint="/e", now=NOW, content_type="text/html")
    with pytest.raises(VendorTransientError, match="HTML page"):
        unwrap(200, "  <html></html>", endpoint="/e", now=NOW)
    with pytest.raises(VendorTransientError, match="empty"):
        unwrap(200, "", endpoint="/e", now=NOW)
    with pytest.raises(VendorTransientError, match="empty"):
        unwrap(200, " \n", endpoint="/e", now=NOW)
    with pytest.raises(VendorTransientError, match="invalid JSON"):
        unwrap(200, '{"result_code": "1", "result_data": [', endpoint="/e", now=NOW)
    with pytest.raises(VendorDataQualityError, match="no result_code"):
        unwrap(200, '{"result_data": []}', endpoint="/e", now=NOW)
    with pytest.raises(VendorDataQualityError, match="no result_code"):
        unwrap(200, "[1, 2]", endpoint="/e", now=NOW)
    with pytest.raises(VendorDataQualityError, match="not usable"):
        unwrap(200, env(None), endpoint="/e", now=NOW)


def test_the_message_is_never_matched() -> None:
    # The code decides; the message may say anything, in any language, or be absent.
    assert unwrap(200, env("1", "er_token_login_invalid", {"ok": 1}), endpoint="/e", now=NOW) == {"ok": 1}
    with pytest.raises(VendorQuotaError):
        unwrap(200, env("E998", "success"), endpoint="/e", now=NOW)
    with pytest.raises(TokenInvalidError):
        unwrap(200, env("E00003", None), endpoint="/e", now=NOW)
    with pytest.raises(NotGrantedError):
        unwrap(200, env("E900", "未授权"), endpoint="/e", now=NOW)


def test_secrets_never_appear_in_a_message() -> None:
    echoed = f"bad token {TOKEN} for appkey {APPKEY}"
    for code, _ in CODES:
        err = error_for(code, endpoint="/e", now=NOW, msg=echoed, secrets=(TOKEN, APPKEY))
        assert TOKEN not in str(err) and APPKEY not in str(err)
    with pytest.raises(TokenInvalidError) as info:
        unwrap(200, env("E00003", echoed), endpoint="/e", now=NOW, secrets=(TOKEN, APPKEY))
    assert TOKEN not in str(info.value) and "***" in str(info.value)


# -- login ------------------------------------------------------------------------------------------


def test_login_success_needs_login_state_1_and_a_token() -> None:
    got = check_login({"login_state": "1", "token": TOKEN, "user_id": "505120", "err_times": "0"})
    assert got.token == TOKEN and got.user_id == "505120"
    with pytest.raises(VendorDataQualityError):
        check_login({"login_state": "1", "token": None})
    with pytest.raises(VendorDataQualityError):
        check_login("nope")


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("-1", "does not exist"),
        ("0", "wrong password"),
        ("2", "too many wrong passwords"),
        ("5", "locked by the administrator"),
        ("7", "unknown login_state"),
        (None, "unknown login_state"),
    ],
)
def test_login_states_are_refusals(state: str | None, words: str) -> None:
    # result_code "1" with login_state "-1" is a wrong account (CN-doc 用户登陆 2.2).
    data = {"login_state": state, "token": None, "err_times": "3", "remain_times": "2", "msg": "账号不存在"}
    with pytest.raises(LoginRefusedError, match=words) as info:
        check_login(unwrap(200, env("1", "账号不存在", data), endpoint="/openapi/login", now=NOW))
    assert info.value.login_state == (state or "")
    assert "remain_times 2" in str(info.value)


def test_login_state_as_a_number_is_read() -> None:
    assert check_login({"login_state": 1, "token": TOKEN}).token == TOKEN


# -- the gateway's clock -------------------------------------------------------------------------


def test_gateway_time_from_timestamp_answers_or_the_date_header() -> None:
    assert gateway_time("1700000123456", None) == 1_700_000_123.456
    assert gateway_time("1700000123", None) == 1_700_000_123.0
    assert gateway_time('{"result_code": "1", "result_data": "1700000123456"}', None) == 1_700_000_123.456
    assert gateway_time('{"timestamp": 1700000123456}', None) == 1_700_000_123.456
    assert gateway_time('{"result_data": {"timestamp": "1700000123"}}', None) == 1_700_000_123.0
    date = "Tue, 14 Nov 2023 22:15:00 GMT"
    assert gateway_time("<html>", date) == 1_700_000_100.0
    assert gateway_time("", date) == 1_700_000_100.0
    assert gateway_time("", None) is None
    assert gateway_time("no", "not a date") is None
