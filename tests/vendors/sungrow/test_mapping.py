"""The Sungrow mapping, quirk by quirk, then against real simulator replies and the plant truth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from collector.schema.fields import point_problems
from collector.schema.mapping import MappingStats
from collector.schema.plausible import Memory
from collector.schema.point import Point
from collector.simulators.base import ManualClock
from collector.simulators.plant import Battery, Fault, Inverter, Plant, PvString, Site, local_time
from collector.simulators.sungrow import SungrowApp, SungrowSim, SungrowUser
from collector.vendors.base import Device
from collector.vendors.sungrow.mapping import (
    LIVE_TABLES,
    PARSERS,
    STATE_OF,
    TABLES,
    active_faults,
    day_data_type,
    device_for,
    local_candidates,
    map_day,
    map_faults,
    map_minute,
    map_plants,
    map_realtime,
    parse_day,
    parse_faults,
    parse_minute,
    parse_realtime,
    state_word,
)
from collector.vendors.sungrow.points import DAY_POINTS, LIVE_POINTS, MINUTE_POINTS

T = TypeVar("T")
BERLIN = "Europe/Berlin"
PS = "4242001"
ESS_KEY = f"{PS}_14_1_1"
PV_KEY = f"{PS}_1_2_1"
METER_KEY = f"{PS}_7_1_1"
PLANT_KEY = f"{PS}_11_0_0"


def dev(ps_key: str, sn: str | None = None, tz: str = BERLIN) -> Device:
    return device_for(ps_key, sn=sn, timezone=tz)


def realtime(ps_key: str, values: Mapping[str, Any], time: Any = "20260615120000", **extra: Any) -> Any:
    return {
        "device_point_list": [{"device_point": {"ps_key": ps_key, "device_time": time, **extra, **values}}]
    }


def live(
    ps_key: str,
    values: Mapping[str, Any],
    *,
    time: Any = "20260615120000",
    stats: MappingStats | None = None,
    now: float | None = None,
    **extra: Any,
) -> Point | None:
    stats = MappingStats() if stats is None else stats
    points, _ = map_realtime(realtime(ps_key, values, time, **extra), {ps_key: dev(ps_key)}, stats, now=now)
    for p in points:
        assert point_problems(p) == [], p
    return points[0] if points else None


def fields(ps_key: str, values: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
    p = live(ps_key, values, **kw)
    return dict(p.fields) if p else {}


# ------------------------------------------------------------------------------------------------
# Point lists and tables


def test_point_lists_fit_the_endpoints() -> None:
    assert set(LIVE_POINTS) == set(MINUTE_POINTS) == set(DAY_POINTS) == {1, 7, 11, 14}
    for t, ids in LIVE_POINTS.items():
        assert len(ids) <= 100 and all(i.isdigit() for i in ids), t  # bare ids (doc §2.14.5)
        assert len(MINUTE_POINTS[t]) < 50 and all(
            p == f"p{i}" for p, i in zip(MINUTE_POINTS[t], ids, strict=True)
        )
    assert "13141" in LIVE_POINTS[14] and "p8018" in MINUTE_POINTS[7] and "p1" in DAY_POINTS[1]
    assert "p2" not in DAY_POINTS[1]  # a lifetime counter's month "total" is a level, not energy


def test_every_table_validates_and_has_a_point_kind() -> None:
    measurements = {t.measurement for t in TABLES}
    assert measurements == {"inverter", "site", "energy", "fault"}


# ------------------------------------------------------------------------------------------------
# Values


def test_strings_become_floats_in_base_units() -> None:
    f = fields(ESS_KEY, {"p13003": "1234.5", "p13134": "2096349950.0", "p13138": "402.3"})
    assert f == {"pv_power_w": 1234.5, "pv_energy_total_wh": 2096349950.0, "battery_voltage_v": 402.3}


@pytest.mark.parametrize(
    ("value", "reason"), [(None, "null"), ("", "empty"), ("--", "empty"), ("abc", "non_numeric")]
)
def test_null_empty_and_placeholders_are_left_out_and_counted(value: Any, reason: str) -> None:
    stats = MappingStats()
    f = fields(ESS_KEY, {"p13003": value, "p13119": "500.0"}, stats=stats)
    assert f == {"load_power_w": 500.0}  # never a 0 for unknown
    assert stats.detail[(reason, "p13003")] == 1


def test_a_record_with_only_nulls_writes_no_point_but_counts() -> None:
    stats = MappingStats()
    assert live(ESS_KEY, {"p13003": None, "p13119": "--"}, stats=stats) is None
    assert stats.skipped["null"] == 1 and stats.skipped["empty"] == 1


def test_soc_and_soh_fractions_become_percent() -> None:
    f = fields(ESS_KEY, {"p13141": "0.791", "p13142": "0.99"})
    assert f == {"battery_soc_pct": 79.1, "battery_soh_pct": 99.0}


def test_soc_sent_in_percent_is_implausible_not_7910() -> None:
    stats = MappingStats()
    assert fields(ESS_KEY, {"p13141": "79.1"}, stats=stats) == {}
    assert stats.detail[("implausible", "p13141")] == 1


def test_p27_in_decihertz_is_divided_by_ten() -> None:
    assert fields(PV_KEY, {"p27": "499.9"}) == {"grid_frequency_hz": 49.99}
    assert fields(PV_KEY, {"p27": "50.02"}) == {"grid_frequency_hz": 50.02}
    assert fields(METER_KEY, {"p8064": "500.1"}) == {"grid_frequency_hz": 50.01}


def test_ess_flows_are_non_negative_pairs() -> None:
    f = fields(ESS_KEY, {"p13149": "0.0", "p13121": "2300.0", "p13126": "1500.0", "p13150": "0.0"})
    assert f == {
        "grid_import_power_w": 0.0,
        "grid_export_power_w": 2300.0,
        "battery_charge_power_w": 1500.0,
        "battery_discharge_power_w": 0.0,
    }


@pytest.mark.parametrize(
    ("p8018", "imp", "exp"), [("-6349.0", 0.0, 6349.0), ("812.5", 812.5, 0.0), ("0.0", 0.0, 0.0)]
)
def test_meter_negative_is_export(p8018: str, imp: float, exp: float) -> None:
    f = fields(METER_KEY, {"p8018": p8018})
    assert f == {"grid_import_power_w": imp, "grid_export_power_w": exp}


def test_meter_is_an_inverter_point_under_its_own_tag() -> None:
    stats = MappingStats()
    points, latest = map_realtime(
        realtime(METER_KEY, {"p8018": "-100.0", "p8030": "1000.0"}, device_sn="SNMETER"),
        {METER_KEY: dev(METER_KEY, "SNMETER")},
        stats,
        source="roof",
    )
    (p,) = points
    assert p.measurement == "inverter"
    assert dict(p.tags) == {"vendor": "sungrow", "source": "roof", "site": PS, "device": "SNMETER"}
    assert latest == {"SNMETER": p.time}


def test_plant_device_writes_a_site_point() -> None:
    p = live(PLANT_KEY, {"p83033": "4200.0", "p83022": "12000.0", "p83024": "5000000.0"})
    assert (
        p is not None
        and p.measurement == "site"
        and dict(p.tags) == {"vendor": "sungrow", "source": "", "site": PS}
    )
    assert dict(p.fields) == {
        "power_w": 4200.0,
        "yield_energy_today_wh": 12000.0,
        "yield_energy_total_wh": 5000000.0,
    }


def test_vendor_float_noise_is_rounded_to_its_step() -> None:
    assert fields(ESS_KEY, {"p13003": "1234.56000000001"}) == {"pv_power_w": 1234.6}


def test_other_device_types_are_ignored_and_unknown_devices_dropped() -> None:
    stats = MappingStats()
    data = {
        "device_point_list": [
            {"device_point": {"ps_key": f"{PS}_43_1_1", "device_time": "20260615120000", "p58601": "400.0"}},
            {"device_point": {"ps_key": "999_14_1_1", "device_time": "20260615120000", "p13003": "1.0"}},
            {"device_point": {"device_time": "20260615120000"}},
            "junk",
        ]
    }
    points, latest = map_realtime(data, {f"{PS}_43_1_1": dev(f"{PS}_43_1_1")}, stats)
    assert points == [] and latest == {}
    assert sorted(r for _, r, _ in stats.drops) == ["bad_record", "bad_record", "not_requested"]


# ------------------------------------------------------------------------------------------------
# State


def test_state_table() -> None:
    # The simulator's words (its Decision): run 0, standby 5120, starting 4608, fault 21760, stop 32768.
    assert {c: STATE_OF[c] for c in (0, 5120, 4608, 21760, 32768)} == {
        0: "normal", 5120: "standby", 4608: "starting", 21760: "fault", 32768: "permanent_fault",
    }  # fmt: skip
    assert state_word("37120") == "normal" and state_word("12345") == "unknown"
    f = fields(PV_KEY, {"p29": "21760", "p304": "1"})
    assert f == {"status_code": 21760, "state": "fault"}  # p304 is a flag: not a fault code
    assert fields(ESS_KEY, {"p13146": "999"}) == {"status_code": 999, "state": "unknown"}


# ------------------------------------------------------------------------------------------------
# Time


def test_device_time_is_plant_local() -> None:
    p = live(ESS_KEY, {"p13003": "1.0"}, time="20260615120000")
    assert p is not None and p.time == int(datetime(2026, 6, 15, 10, tzinfo=UTC).timestamp())
    p = live(ESS_KEY, {"p13003": "1.0"}, time=20260115120000)  # an unquoted number (notes §5.2)
    assert p is not None and p.time == int(datetime(2026, 1, 15, 11, tzinfo=UTC).timestamp())


def test_device_time_in_the_spring_gap_is_shifted_forward() -> None:
    # 2026-03-29 02:30 does not exist in Berlin: read with the offset before the gap (CET).
    p = live(ESS_KEY, {"p13003": "1.0"}, time="20260329023000")
    assert p is not None and p.time == int(datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp())
    first, second = local_candidates("20260329033000", ZoneInfo(BERLIN))
    assert first == second == int(datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp())


def test_device_time_in_the_autumn_fold() -> None:
    cest = int(datetime(2026, 10, 25, 0, 30, tzinfo=UTC).timestamp())  # 02:30 CEST
    cet = cest + 3600  # 02:30 CET
    assert local_candidates("20261025023000", ZoneInfo(BERLIN)) == (cest, cet)
    assert (p := live(ESS_KEY, {"p13003": "1.0"}, time="20261025023000")) is not None and p.time == cest
    # with the call's time, the second pass is recognised
    assert (p := live(ESS_KEY, {"p13003": "1.0"}, time="20261025023000", now=cet + 200)) and p.time == cet
    assert (p := live(ESS_KEY, {"p13003": "1.0"}, time="20261025023000", now=cest + 200)) and p.time == cest


def test_minute_rows_across_the_fold_keep_both_passes() -> None:
    stamps = [f"20261025{h:02d}{m:02d}00" for h in (1, 2) for m in (30, 45)]
    stamps += [f"2026102502{m:02d}00" for m in (30, 45)] + ["20261025030000"]
    rows = [{"time_stamp": s, "p13003": str(float(i))} for i, s in enumerate(stamps)]
    points = map_minute({ESS_KEY: rows}, {ESS_KEY: dev(ESS_KEY)}, MappingStats())
    times = [p.time for p in points]
    assert len(set(times)) == len(times) == 7 and times == sorted(times)
    base = int(datetime(2026, 10, 24, 23, 30, tzinfo=UTC).timestamp())  # 01:30 CEST
    assert [t - base for t in times] == [0, 900, 3600, 4500, 7200, 8100, 9000]


def test_records_without_a_readable_time_are_dropped() -> None:
    stats = MappingStats()
    assert live(ESS_KEY, {"p13003": "1.0"}, time=None, stats=stats) is None
    assert live(ESS_KEY, {"p13003": "1.0"}, time="2026-13-01", stats=stats) is None
    assert [r for _, r, _ in stats.drops] == ["no_time", "bad_time"]
    stats = MappingStats()
    points, _ = map_realtime(realtime(ESS_KEY, {"p13003": "1.0"}), {ESS_KEY: dev(ESS_KEY, tz="")}, stats)
    assert points == [] and stats.drops[0][1] == "bad_time"


# ------------------------------------------------------------------------------------------------
# Day data


def test_day_month_year_periods_and_data_types() -> None:
    assert (day_data_type(1), day_data_type(2), day_data_type(3)) == ("2", "4", "4")
    devices = {ESS_KEY: dev(ESS_KEY)}
    data = {ESS_KEY: {"p13112": [{"2": "12000.0000", "3": "0.0", "time_stamp": "20261025"}],
                      "p13147": [{"2": "3000.0000", "time_stamp": "20261025"}]}}  # fmt: skip
    (p,) = map_day(data, {"query_type": "1", "data_type": "2,3"}, devices, MappingStats())
    assert p.measurement == "energy" and p.tags["period"] == "day"
    assert dict(p.fields) == {"pv_wh": 12000.0, "grid_import_wh": 3000.0}
    assert p.time == int(datetime(2026, 10, 24, 22, tzinfo=UTC).timestamp())  # Berlin midnight (CEST)
    month = {ESS_KEY: {"p13112": [{"4": "300000.0", "time_stamp": "202603"}]}}
    (m,) = map_day(month, {"query_type": 2, "data_type": "4"}, devices, MappingStats())
    assert m.tags["period"] == "month" and m.time == int(datetime(2026, 2, 28, 23, tzinfo=UTC).timestamp())
    year = {ESS_KEY: {"p13112": [{"4": "3000000.0", "time_stamp": "2026"}]}}
    (y,) = map_day(year, {"query_type": 3, "data_type": "4"}, devices, MappingStats())
    assert y.tags["period"] == "year" and y.time == int(datetime(2025, 12, 31, 23, tzinfo=UTC).timestamp())
    with pytest.raises(ValueError, match="data_type 4"):
        map_day(month, {"query_type": 2, "data_type": "2"}, devices, MappingStats())


def test_day_rows_with_bad_labels_are_dropped() -> None:
    stats = MappingStats()
    data = {
        ESS_KEY: {"p13112": [{"2": "1.0", "time_stamp": "2026101"}, {"2": "2.0", "time_stamp": "20261026"}]}
    }
    points = map_day(data, {"query_type": 1, "data_type": "2"}, {ESS_KEY: dev(ESS_KEY)}, stats)
    assert len(points) == 1 and [r for _, r, _ in stats.drops] == ["bad_time"]


# ------------------------------------------------------------------------------------------------
# Plant list


def plant_row(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ps_id": 4242001,
        "ps_current_time_zone": "GMT+1",
        "curr_power": {"unit": "kW", "value": "2.868"},
        "today_energy": {"unit": "kWh", "value": "4.85"},
        "total_energy": {"unit": "MWh", "value": "48.364"},
        "total_capcity": {"unit": "kWp", "value": "10"},
        "cur_power_update_time": "2026-06-15T12:00:50+02:00",
        "today_energy_update_time": "2026-06-15T12:00:50+02:00",
        "total_energy_update_time": "2026-06-15T12:00:50+02:00",
    }
    row.update(over)
    return row


def test_plant_list_units_are_scaled() -> None:
    stats = MappingStats()
    (p,) = map_plants([plant_row()], stats, source="s")
    assert p.measurement == "site" and dict(p.tags) == {"vendor": "sungrow", "source": "s", "site": "4242001"}
    assert dict(p.fields) == {
        "power_w": 2868.0,
        "yield_energy_today_wh": 4850.0,
        "yield_energy_total_wh": 48364000.0,
        "capacity_w": 10000.0,
    }
    assert p.time == int(datetime(2026, 6, 15, 10, 0, 50, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("unit", "value", "want"),
    [("W", "358", 358.0), ("MW", "1.5", 1.5e6), ("度", "381.6", None), ("万度", "1.814", None)],
)
def test_plant_list_unit_variants(unit: str, value: str, want: float | None) -> None:
    row = plant_row(curr_power={"unit": unit, "value": value}, total_energy={"unit": unit, "value": value})
    stats = MappingStats()
    (p,) = map_plants({"pageList": [row]}, stats)
    if want is not None:  # a power unit
        assert p.fields["power_w"] == want and "yield_energy_total_wh" not in p.fields
    else:  # 度 = kWh, 万度 = 10 000 kWh (notes §5.5)
        scale = 1e3 if unit == "度" else 1e7
        assert p.fields["yield_energy_total_wh"] == pytest.approx(float(value) * scale)
        assert "power_w" not in p.fields
    assert stats.skipped["unit"] == 1  # the other value's unit is of the wrong dimension


def test_plant_list_unknown_or_missing_units_are_left_out() -> None:
    stats = MappingStats()
    row = plant_row(curr_power={"unit": "horsepower", "value": "3"}, today_energy={"value": "4.85"})
    (p,) = map_plants([row], stats)
    assert "power_w" not in p.fields and "yield_energy_today_wh" not in p.fields
    assert stats.detail[("unit", "curr_power")] == 1 and stats.detail[("unit", "today_energy")] == 1


def test_plant_rows_without_update_time_or_ps_id_are_dropped() -> None:
    stats = MappingStats()
    rows = [
        plant_row(cur_power_update_time=None, today_energy_update_time=None, total_energy_update_time=None),
        {"ps_name": "no id"},
    ]
    assert map_plants(rows, stats) == []
    assert sorted(r for _, r, _ in stats.drops) == ["bad_record", "no_time"]


# ------------------------------------------------------------------------------------------------
# Faults


def fault_rows() -> dict[str, Any]:
    base = {"ps_id": 4242001, "ps_key": PV_KEY, "fault_type": 1, "fault_level": 1, "fault_desc": ""}
    return {
        "pageList": [
            {
                **base,
                "fault_code": "60005.202606.a",
                "fault_type_code": 60005,
                "fault_name": "Grid Overvoltage",
                "process_status": 9,
                "create_time": "2026-06-15 09:00:00",
                "over_time": "2026-06-15 09:30:00",
            },
            {
                **base,
                "fault_code": "60007.202606.b",
                "fault_type_code": 60007,
                "fault_name": "Grid Undervoltage",
                "process_status": 1,
                "create_time": "2026-06-15 11:50:00",
                "over_time": "",
            },
            {
                **base,
                "fault_code": "60008.202606.c",
                "fault_type_code": 60008,
                "fault_name": "",
                "fault_desc": "Islanding",
                "process_status": 1,
                "create_time": "2026-06-15 11:50:00",
                "over_time": "",
            },
        ],
        "rowCount": 3,
    }


def test_fault_records_become_start_and_end_points() -> None:
    stats = MappingStats()
    points = map_faults(fault_rows(), {PV_KEY: dev(PV_KEY, "SNPV")}, {PS: BERLIN}, stats, source="s")
    for p in points:
        assert point_problems(p) == [], p
    at = {(p.time, p.fields["code"]): dict(p.fields) for p in points}

    def t(h: int, m: int) -> int:
        return int(datetime(2026, 6, 15, h, m, tzinfo=ZoneInfo(BERLIN)).timestamp())

    assert at[(t(9, 0), 60005)] == {"code": 60005, "message": "Grid Overvoltage", "level": 1, "active": 1}
    assert at[(t(9, 30), 60005)]["active"] == 0
    assert at[(t(11, 50), 60007)]["active"] == 1
    # two faults starting in the same second: one second apart (the series has no code tag)
    assert at[(t(11, 50) + 1, 60008)] == {"code": 60008, "message": "Islanding", "level": 1, "active": 1}
    assert {p.tags["device"] for p in points} == {"SNPV"}
    assert active_faults(fault_rows(), {PV_KEY: dev(PV_KEY, "SNPV")}) == {"SNPV": (60007, 60008)}


def test_fault_count_joins_the_inverter_point() -> None:
    devices = {PV_KEY: dev(PV_KEY, "SNPV")}
    faults = active_faults(fault_rows(), devices)
    points, _ = map_realtime(realtime(PV_KEY, {"p24": "10.0"}), devices, MappingStats(), faults=faults)
    assert dict(points[0].fields) == {"ac_power_w": 10.0, "fault_count": 2, "fault_code": 60007}
    points, _ = map_realtime(realtime(PV_KEY, {"p24": "10.0"}), devices, MappingStats(), faults={})
    assert dict(points[0].fields) == {"ac_power_w": 10.0, "fault_count": 0}


def test_fault_rows_of_unknown_devices_use_their_ps_key_and_bad_rows_drop() -> None:
    stats = MappingStats()
    rows = fault_rows()
    rows["pageList"][0]["create_time"] = "yesterday"
    points = map_faults(rows, {}, BERLIN, stats)
    assert {p.tags["device"] for p in points} == {PV_KEY}
    assert [r for _, r, _ in stats.drops] == ["bad_time"]


# ------------------------------------------------------------------------------------------------
# Saved answers (`solar-collector parse`)


def envelope(data: Any, code: str = "1") -> str:
    return json.dumps(
        {"req_serial_num": "x", "result_code": code, "result_msg": "success", "result_data": data}
    )


def test_parsers_are_registered() -> None:
    assert set(PARSERS) == {("sungrow", e) for e in ("realtime", "minute", "day", "faults")}


def test_parse_realtime_makes_devices_from_the_answer() -> None:
    rows = [
        {"ps_key": ESS_KEY, "device_sn": "SNESS", "device_time": "20260615120000", "p13003": "10.0"},
        {"ps_key": METER_KEY, "device_sn": None, "device_time": "20260615120000", "p8018": "-5.0"},
    ]
    text = envelope({"device_point_list": [{"device_point": r} for r in rows]})
    lines = [p.to_line() for p in parse_realtime(text, tz=BERLIN)]
    assert lines[0] == f"inverter,device=SNESS,site={PS},vendor=sungrow pv_power_w=10.0 1781517600"
    assert lines[1].startswith(f"inverter,device={METER_KEY},")
    stats = MappingStats()
    assert (
        len(parse_realtime(text, tz=BERLIN, request=json.dumps({"ps_key_list": [ESS_KEY]}), stats=stats)) == 1
    )
    assert [r for _, r, _ in stats.drops] == ["not_requested"]


def test_parse_checks_the_result_code() -> None:
    from collector.vendors.sungrow.codes import TokenInvalidError

    with pytest.raises(TokenInvalidError):
        parse_realtime(envelope(None, "E00003"))


def test_parse_minute_day_and_faults() -> None:
    rows = {ESS_KEY: [{"time_stamp": "20260615120000", "p13003": "1.0"}, {"time_stamp": "20260615120500"}]}
    assert len(parse_minute(envelope(rows), tz=BERLIN)) == 1  # a row without points: no point
    day = {ESS_KEY: {"p13112": [{"2": "5.0", "time_stamp": "20260615"}]}}
    with pytest.raises(ValueError, match="request"):
        parse_day(envelope(day), tz=BERLIN)
    (p,) = parse_day(envelope(day), tz=BERLIN, request=json.dumps({"query_type": "1", "data_type": "2"}))
    assert p.tags["period"] == "day" and p.fields == {"pv_wh": 5.0}
    assert len(parse_faults(envelope(fault_rows()), tz=BERLIN)) == 4


# ------------------------------------------------------------------------------------------------
# Real simulator replies against the plant truth

APPKEY = "APPKEY000000000000000000MAPPING"
ACCESS = "accesskey00000000000000mapping01"
USER = "owner@example.com"
PASSWORD = "Mapping-pw-1"
HYB = "A2400000001"
PVO = "A2400000002"
SITE_PV, SITE_HYB = "pv-site", "hybrid-site"
PS_PV, PS_HYB = 5150001, 5150002
PV_ZONE = "Europe/London"
DAY = date(2026, 6, 15)
NOON = local_time(BERLIN, DAY, 12, 7)
PV_FAULT = Fault(PVO, 5, local_time(PV_ZONE, DAY, 9), local_time(PV_ZONE, DAY, 9, 30), "Grid Overvoltage")
PV_OPEN = Fault(PVO, 7, local_time(PV_ZONE, DAY, 10, 50), local_time(PV_ZONE, DAY, 13), "Grid Undervoltage")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def make_sim(now: float = NOON) -> SungrowSim:
    hybrid = Inverter(
        HYB, "SH8.0RT", 8000, (PvString(5.0, 0.3), PvString(3.0, -0.3)),
        battery=Battery(9600, max_power_w=5000), phases=3, load_kwh_per_day=14.0, logger_sn="B2400000101",
    )  # fmt: skip
    pv = Inverter(PVO, "SG3.0RS", 3000, (PvString(3.3),), logger_sn="B2400000102")
    sites = [
        Site(SITE_PV, "PV Plant", PV_ZONE, 51.5, -0.1, (pv,), DAY - timedelta(days=40)),
        Site(SITE_HYB, "Hybrid Plant", BERLIN, 52.5, 13.4, (hybrid,), DAY - timedelta(days=40)),
    ]
    return SungrowSim(
        Plant(sites, faults=[PV_FAULT, PV_OPEN]),
        apps=[SungrowApp(APPKEY, ACCESS)],
        users=[SungrowUser(USER, PASSWORD, 505120)],
        ps_ids={SITE_PV: PS_PV, SITE_HYB: PS_HYB},
        clock=ManualClock(now),
    )


class Gateway:
    """A plain (unencrypted) V1 caller: the raw answer text, as the client's transport sees it."""

    def __init__(self, sim: SungrowSim, session: aiohttp.ClientSession) -> None:
        self.sim, self.session, self.token = sim, session, ""
        assert isinstance(sim.clock, ManualClock)
        self.clock = sim.clock

    async def text(self, path: str, body: Mapping[str, Any]) -> str:
        self.clock.advance(0.2)  # stay clear of the gateway throttle
        payload = {"appkey": APPKEY, "lang": "_en_US", "token": self.token, **body}
        headers = {
            "sys_code": "901",
            "x-access-key": ACCESS,
            "Content-Type": "application/json;charset=UTF-8",
        }
        async with self.session.post(self.sim.base_url + path, json=payload, headers=headers) as resp:
            return await resp.text()

    async def data(self, path: str, body: Mapping[str, Any]) -> Any:
        env = json.loads(await self.text(path, body))
        assert env["result_code"] == "1", env
        return env["result_data"]

    async def login(self) -> None:
        data = await self.data("/openapi/login", {"user_account": USER, "user_password": PASSWORD})
        self.token = data["token"]

    async def devices(self) -> dict[str, Device]:
        out: dict[str, Device] = {}
        for ps_id, zone in ((PS_PV, PV_ZONE), (PS_HYB, BERLIN)):
            for virtual in ("0", "1"):
                body = {"ps_id": str(ps_id), "curPage": 1, "size": 100, "is_virtual_unit": virtual}
                for row in (await self.data("/openapi/getDeviceList", body))["pageList"]:
                    out[row["ps_key"]] = device_for(
                        row["ps_key"], sn=row["device_sn"], device_type=row["device_type"], timezone=zone
                    )
        return out


async def served(sim: SungrowSim, work: Any) -> Any:
    async with sim, aiohttp.ClientSession() as session:
        gw = Gateway(sim, session)
        await gw.login()
        return await work(gw)


def approx(want: float, tol: float = 0.051) -> Any:
    """Within the vendor's rounding: one decimal of the base unit, unless said otherwise."""
    return pytest.approx(want, abs=tol)


def check(points: list[Point]) -> None:
    for p in points:
        assert point_problems(p) == [], p


def test_simulator_realtime_matches_the_truth() -> None:
    sim = make_sim()

    async def work(gw: Gateway) -> None:
        devices = await gw.devices()
        stats = MappingStats()
        now = gw.clock()
        points: list[Point] = []
        latest: dict[str, int] = {}
        for dtype, keys in ((14, [f"{PS_HYB}_14_1_1"]), (7, [f"{PS_HYB}_7_1_1"]), (11, [f"{PS_HYB}_11_0_0"])):
            body = {"device_type": str(dtype), "point_id_list": list(LIVE_POINTS[dtype]), "ps_key_list": keys}
            data = await gw.data("/openapi/getDeviceRealTimeData", body)
            got, times = map_realtime(data, devices, stats, source="src", now=now, memory=Memory())
            points += got
            latest.update(times)
        data = await gw.data("/openapi/getPVInverterRealTimeData", {"ps_key_list": [f"{PS_PV}_1_1_1"]})
        got, times = map_realtime(data, devices, stats, source="src", now=now)
        points += got
        latest.update(times)
        check(points)
        assert stats.drops == []
        by = {(p.measurement, p.tags.get("device", "")): p for p in points}

        u = sim.plant.upload_time(HYB, now)
        assert u is not None
        truth = sim.plant.truth(HYB, u)
        bat = truth.battery
        assert bat is not None
        ess = by[("inverter", HYB)]
        assert 0 <= u - ess.time < 300 and latest[HYB] == ess.time
        f = ess.fields
        assert f["pv_power_w"] == approx(truth.pv_power_w)
        assert f["ac_power_w"] == approx(truth.ac_power_w)
        assert f["load_power_w"] == approx(truth.load_power_w)
        assert f["grid_import_power_w"] == approx(truth.grid_import_power_w)
        assert f["grid_export_power_w"] == approx(truth.grid_export_power_w)
        assert f["battery_charge_power_w"] == approx(bat.charge_power_w)
        assert f["battery_discharge_power_w"] == approx(bat.discharge_power_w)
        assert f["battery_soc_pct"] == approx(bat.soc_pct, 0.051)  # 0.001 fraction
        assert f["battery_soh_pct"] == approx(bat.soh_pct, 0.051)
        assert f["battery_voltage_v"] == approx(bat.voltage_v)
        assert f["grid_frequency_hz"] == approx(truth.grid_frequency_hz, 0.006)
        assert f["pv_energy_today_wh"] == approx(truth.today.pv_wh)
        assert f["pv_energy_total_wh"] == approx(truth.total.pv_wh)
        assert f["load_energy_total_wh"] == approx(truth.total.load_wh)
        assert f["pv1_voltage_v"] == approx(truth.strings[0].voltage_v)
        assert f["phase_c_current_a"] == approx(truth.phases[2].current_a)
        assert f["state"] == truth.state == "normal" and f["status_code"] == 0

        meter = by[("inverter", f"{HYB}M")].fields
        assert meter["grid_import_power_w"] == approx(truth.grid_import_power_w)
        assert meter["grid_export_power_w"] == approx(truth.grid_export_power_w)
        assert meter["grid_import_energy_total_wh"] == approx(truth.total.grid_import_wh)

        site = by[("site", "")]
        assert site.tags["site"] == str(PS_HYB)
        assert site.fields["power_w"] == approx(truth.ac_power_w, 0.1)

        up = sim.plant.upload_time(PVO, now)
        assert up is not None
        pv_truth = sim.plant.truth(PVO, up)
        pv = by[("inverter", PVO)].fields
        assert pv_truth.state == "fault"  # PV_OPEN
        assert pv["state"] == "fault" and pv["status_code"] == 21760
        assert pv["grid_frequency_hz"] == approx(pv_truth.grid_frequency_hz, 0.006)  # p27 in 0.1 Hz
        assert pv["yield_energy_total_wh"] == approx(pv_truth.total.yield_wh)
        assert "pv1_voltage_v" not in pv  # "--" while not feeding in
        assert stats.detail[("empty", "p5")] == 1

    run(served(sim, work))


def test_simulator_minute_history_matches_the_truth() -> None:
    sim = make_sim(local_time(BERLIN, DAY, 18))

    async def work(gw: Gateway) -> None:
        devices = await gw.devices()
        key = f"{PS_HYB}_14_1_1"
        body = {
            "points": ",".join(MINUTE_POINTS[14]),
            "ps_key_list": [key],
            "start_time_stamp": "20260615090000",
            "end_time_stamp": "20260615120000",
            "minute_interval": "5",
        }
        stats = MappingStats()
        points = map_minute(await gw.data("/openapi/getDevicePointMinuteDataList", body), devices, stats)
        check(points)
        assert len(points) == 37 and stats.drops == []
        for p in points:
            (u,) = sim.plant.upload_times(HYB, p.time, p.time + 299)
            truth = sim.plant.truth(HYB, u)
            assert p.fields["pv_power_w"] == pytest.approx(truth.pv_power_w, abs=0.051)
            assert p.fields["battery_soc_pct"] == pytest.approx(
                truth.battery.soc_pct if truth.battery else 0, abs=0.051
            )
            assert p.fields["grid_export_energy_total_wh"] == pytest.approx(
                truth.total.grid_export_wh, abs=0.051
            )
        # minute and live points of one device are one series (same tags and field names)
        live_data = await gw.data(
            "/openapi/getDeviceRealTimeData",
            {"device_type": "14", "point_id_list": list(LIVE_POINTS[14]), "ps_key_list": [key]},
        )
        (lp,), _ = map_realtime(live_data, devices, MappingStats())
        assert dict(lp.tags) == dict(points[0].tags) and set(lp.fields) == set(points[0].fields)

    run(served(sim, work))


def test_simulator_day_month_year_match_the_truth() -> None:
    sim = make_sim(local_time(BERLIN, DAY, 20))

    async def work(gw: Gateway) -> None:
        devices = await gw.devices()
        key = f"{PS_HYB}_14_1_1"
        path = "/openapi/getDevicePointsDayMonthYearDataList"
        base = {"ps_key_list": [key], "data_point": ",".join(DAY_POINTS[14]), "order": "0"}
        req = {
            **base,
            "query_type": "1",
            "data_type": day_data_type(1),
            "start_time": "20260610",
            "end_time": "20260614",
        }
        stats = MappingStats()
        points = map_day(await gw.data(path, req), req, devices, stats, source="s")
        check(points)
        assert [p.tags["period"] for p in points] == ["day"] * 5 and stats.drops == []
        for p in points:
            d = datetime.fromtimestamp(p.time, ZoneInfo(BERLIN))
            assert (d.hour, d.minute) == (0, 0)
            a = local_time(BERLIN, d.date(), 0)
            ub = sim.plant.upload_time(HYB, local_time(BERLIN, d.date() + timedelta(days=1), 0) - 1)
            assert ub is not None
            e = sim.plant.energy(HYB, a, ub)
            assert p.fields["pv_wh"] == pytest.approx(e.pv_wh, abs=0.001)
            assert p.fields["load_wh"] == pytest.approx(e.load_wh, abs=0.001)
            assert p.fields["battery_charge_wh"] == pytest.approx(e.battery_charge_wh, abs=0.001)
        month = {
            **base,
            "query_type": "2",
            "data_type": day_data_type(2),
            "start_time": "202606",
            "end_time": "202606",
        }
        (m,) = map_day(await gw.data(path, month), month, devices, MappingStats())
        assert m.tags["period"] == "month" and m.time == local_time(BERLIN, date(2026, 6, 1), 0)
        ub = sim.plant.upload_time(HYB, gw.clock())
        assert ub is not None
        e = sim.plant.energy(HYB, local_time(BERLIN, date(2026, 6, 1), 0), ub)
        assert m.fields["grid_import_wh"] == pytest.approx(e.grid_import_wh, abs=0.001)
        # the PV inverter's daily yield, in its own zone
        pv_req = {"ps_key_list": [f"{PS_PV}_1_1_1"], "data_point": "p1", "order": "0", "query_type": "1",
                  "data_type": "2", "start_time": "20260614", "end_time": "20260614"}  # fmt: skip
        (pvp,) = map_day(await gw.data(path, pv_req), pv_req, devices, MappingStats())
        a = local_time(PV_ZONE, date(2026, 6, 14), 0)
        ub = sim.plant.upload_time(PVO, local_time(PV_ZONE, DAY, 0) - 1)
        assert ub is not None and pvp.time == a
        assert pvp.fields["yield_wh"] == pytest.approx(sim.plant.energy(PVO, a, ub).yield_wh, abs=0.001)

    run(served(sim, work))


def test_simulator_faults_and_plant_list_match_the_truth() -> None:
    sim = make_sim()

    async def work(gw: Gateway) -> None:
        devices = await gw.devices()
        body = {"curPage": 1, "size": 50, "process_status": "999", "startTime": "202606150000",
                "endTime": "202606152359"}  # fmt: skip
        data = await gw.data("/openapi/getFaultAlarmInfo", body)
        stats = MappingStats()
        points = map_faults(data, devices, {str(PS_PV): PV_ZONE, str(PS_HYB): BERLIN}, stats, source="s")
        check(points)
        got = sorted((p.time, p.fields["code"], p.fields["active"]) for p in points)
        assert got == [
            (PV_FAULT.start, 60005, 1),
            (PV_FAULT.end, 60005, 0),
            (PV_OPEN.start, 60007, 1),
        ]
        assert {p.tags["device"] for p in points} == {PVO}
        open_only = await gw.data("/openapi/getFaultAlarmInfo", {"curPage": 1, "size": 50})
        assert active_faults(open_only, devices) == {PVO: (60007,)}

        rows = (await gw.data("/openapi/getPowerStationList", {"curPage": 1, "size": 10}))["pageList"]
        plants = map_plants(rows, MappingStats(), source="s", now=gw.clock())
        check(plants)
        by_site = {p.tags["site"]: p for p in plants}
        for site, sn in ((str(PS_PV), PVO), (str(PS_HYB), HYB)):
            t = sim.plant.snapshot(sn, gw.clock())
            assert t is not None
            f = by_site[site].fields
            # ≤ 3 decimals of an auto-scaled unit (kW, kWh, MWh): within half a step
            assert f["power_w"] == pytest.approx(t.ac_power_w, abs=0.51)
            assert f["yield_energy_today_wh"] == pytest.approx(t.today.yield_wh, abs=0.51)
            assert f["yield_energy_total_wh"] == pytest.approx(t.total.yield_wh, abs=500.1)
            assert by_site[site].time == t.t

    run(served(sim, work))


def test_simulator_answers_through_the_parsers() -> None:
    sim = make_sim()

    async def work(gw: Gateway) -> None:
        body = {
            "device_type": "14",
            "point_id_list": list(LIVE_POINTS[14]),
            "ps_key_list": [f"{PS_HYB}_14_1_1"],
        }
        text = await gw.text("/openapi/getDeviceRealTimeData", body)
        (p,) = parse_realtime(text, tz=BERLIN)
        assert p.tags["device"] == HYB and "battery_soc_pct" in p.fields
        assert set(LIVE_TABLES) == set(LIVE_POINTS)

    run(served(sim, work))
