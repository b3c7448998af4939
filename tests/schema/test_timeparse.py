"""Vendor timestamps → UTC seconds: epoch, ISO, FoxESS zone strings, naive local across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from collector.schema.timeparse import TimeParseError, parse_zone, to_utc_seconds

BERLIN = ZoneInfo("Europe/Berlin")
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    "value",
    [
        T0,
        float(T0),
        T0 + 0.9,
        str(T0),
        f" {T0} ",
        f"{T0}.5",
        T0 * 1000,
        T0 * 1000 + 999,
        str(T0 * 1000),
        float(T0 * 1000),
        T0 * 10**6,
        T0 * 10**9,
    ],
)
def test_epoch_seconds_and_milliseconds(value: object) -> None:
    assert to_utc_seconds(value) == T0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-06T13:23:04Z", utc(2026, 10, 6, 13, 23, 4)),  # SolaX utcDateTime
        ("2026-10-06T13:23:04.750Z", utc(2026, 10, 6, 13, 23, 4)),
        ("2024-11-14T16:00:50+08:00", utc(2024, 11, 14, 8, 0, 50)),  # Sungrow update time
        ("2024-11-14T16:00:50+0800", utc(2024, 11, 14, 8, 0, 50)),
        ("2024-11-14 16:00:50 +0800", utc(2024, 11, 14, 8, 0, 50)),
        ("2024-11-14T16:00:50-05:30", utc(2024, 11, 14, 21, 30, 50)),
        ("2024-01-02 10:05:00 UTC", utc(2024, 1, 2, 10, 5, 0)),
        ("2024-01-02 10:05:00 GMT", utc(2024, 1, 2, 10, 5, 0)),
        ("2024-01-02 10:05:00Z", utc(2024, 1, 2, 10, 5, 0)),
    ],
)
def test_iso_with_offset(text: str, expected: int) -> None:
    assert to_utc_seconds(text, BERLIN) == expected
    assert to_utc_seconds(text, None) == expected  # the offset needs no zone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02 10:05:00 CET+0100", utc(2024, 1, 2, 9, 5, 0)),
        ("2024-09-11 21:00:57 BST+0100", utc(2024, 9, 11, 20, 0, 57)),
        ("2024-05-11 00:02:56 CEST+0200", utc(2024, 5, 10, 22, 2, 56)),
        ("2024-01-02 10:05:00 GMT+0000", utc(2024, 1, 2, 10, 5, 0)),
        ("2024-01-02 10:05:00 +03+0300", utc(2024, 1, 2, 7, 5, 0)),  # numeric abbreviation
        ("2024-01-02 10:05:00 CET+01:00", utc(2024, 1, 2, 9, 5, 0)),
        ("2024-01-02 10:05:00 +0530", utc(2024, 1, 2, 4, 35, 0)),
    ],
)
def test_foxess_zone_strings_offset_wins(text: str, expected: int) -> None:
    # The offset wins over both the abbreviation and the site zone given.
    assert to_utc_seconds(text, ZoneInfo("America/New_York")) == expected


def test_naive_local_in_site_zone() -> None:
    # SolaX live sample: uploadTime 15:23:04 local (CEST) == utcDateTime 13:23:04Z.
    assert to_utc_seconds("2026-10-06 15:23:04", BERLIN) == to_utc_seconds("2026-10-06T13:23:04Z")
    assert to_utc_seconds("2024-01-02 10:05:00", BERLIN) == utc(2024, 1, 2, 9, 5, 0)
    assert to_utc_seconds("2024-01-02T10:05", BERLIN) == utc(2024, 1, 2, 9, 5, 0)
    assert to_utc_seconds("2024/01/02 10:05:00", BERLIN) == utc(2024, 1, 2, 9, 5, 0)
    assert to_utc_seconds("2024-01-02", BERLIN) == utc(2024, 1, 1, 23, 0, 0)  # local midnight


def test_sungrow_compact_local_times() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    expected = utc(2023, 1, 16, 7, 15, 0)
    assert to_utc_seconds("20230116151500", shanghai) == expected
    assert to_utc_seconds(20230116151500, shanghai) == expected  # unquoted JSON number
    assert to_utc_seconds(20230116151500.0, shanghai) == expected
    assert to_utc_seconds("202301161515", shanghai) == expected


def test_spring_forward_gap_is_shifted_forward() -> None:
    # Berlin 2024-03-31: 02:00 CET → 03:00 CEST; 02:30 does not exist.
    assert to_utc_seconds("2024-03-31 01:59:59", BERLIN) == utc(2024, 3, 31, 0, 59, 59)
    assert to_utc_seconds("2024-03-31 02:30:00", BERLIN) == utc(2024, 3, 31, 1, 30, 0)  # = 03:30 CEST
    assert to_utc_seconds("2024-03-31 03:30:00", BERLIN) == utc(2024, 3, 31, 1, 30, 0)
    assert to_utc_seconds("2024-03-31 03:00:00", BERLIN) == utc(2024, 3, 31, 1, 0, 0)


def test_fall_back_ambiguous_takes_first_occurrence() -> None:
    # Berlin 2024-10-27: 03:00 CEST → 02:00 CET; 02:30 happens twice, fold=0 is the CEST one.
    assert to_utc_seconds("2024-10-27 02:30:00", BERLIN) == utc(2024, 10, 27, 0, 30, 0)
    assert to_utc_seconds("2024-10-27 01:59:00", BERLIN) == utc(2024, 10, 26, 23, 59, 0)
    assert to_utc_seconds("2024-10-27 03:00:00", BERLIN) == utc(2024, 10, 27, 2, 0, 0)
    # With the offset given (FoxESS), both occurrences are distinct.
    assert to_utc_seconds("2024-10-27 02:30:00 CEST+0200") == utc(2024, 10, 27, 0, 30, 0)
    assert to_utc_seconds("2024-10-27 02:30:00 CET+0100") == utc(2024, 10, 27, 1, 30, 0)


def test_datetime_and_date_objects() -> None:
    assert to_utc_seconds(datetime(2024, 1, 2, 10, 5, tzinfo=UTC)) == utc(2024, 1, 2, 10, 5, 0)
    assert to_utc_seconds(datetime(2024, 1, 2, 10, 5), BERLIN) == utc(2024, 1, 2, 9, 5, 0)
    assert to_utc_seconds(date(2024, 7, 1), BERLIN) == utc(2024, 6, 30, 22, 0, 0)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        True,
        "",
        "   ",
        "yesterday",
        "2024-13-01 10:00:00",
        "2024-02-30",
        "2024-01-02 25:00:00",
        "2024-01-02 10:05:00 CET",
        "2024-01-02 10:05:00 +2500",
        "2024-01-02 10:05:00 Europe/Berlin",
        0,
        -1,
        "0",
        86400,
        10**21,
        float("nan"),
        float("inf"),
        "20240102",
        [T0],
        {"time": T0},
    ],
)
def test_bad_input(bad: object) -> None:
    with pytest.raises(TimeParseError):
        to_utc_seconds(bad, BERLIN)
    assert issubclass(TimeParseError, ValueError)


@pytest.mark.parametrize(
    "value", ["2024-01-02 10:05:00", "2024-01-02", datetime(2024, 1, 2), "20230116151500"]
)
def test_naive_without_zone_is_refused(value: object) -> None:
    with pytest.raises(TimeParseError, match="time zone"):
        to_utc_seconds(value, None)


def test_parse_zone() -> None:
    assert parse_zone("Europe/Berlin") == BERLIN
    assert parse_zone("UTC") is UTC
    assert parse_zone("GMT+1") == timezone(timedelta(hours=1))  # Sungrow: GMT+1 means UTC+1
    assert parse_zone("GMT-1") == timezone(timedelta(hours=-1))
    assert parse_zone("UTC+08:00") == timezone(timedelta(hours=8))
    assert parse_zone("+0530") == timezone(timedelta(hours=5, minutes=30))
    for bad in ("", "Mars/Olympus", "GMT+99", "../etc"):
        with pytest.raises(TimeParseError):
            parse_zone(bad)
