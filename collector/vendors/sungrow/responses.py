"""iSolarCloud answers as the vendor sends them (layer 2): its names, its units, no conversion.

Each reader takes an envelope's `result_data` (already checked by `codes.unwrap`) and
returns frozen records. Values stay raw (numeric strings, `null`, `""`, `"--"`, numbers);
times stay the vendor's text. A `result_data` of the wrong shape raises
`VendorDataQualityError`; one record of the wrong shape (no `ps_key`, not an object) is
refused alone: `stats.drop_record` logs and counts it, the others are read.
Shapes: research/sungrow.md §5 ("notes") and the vendor doc §2 ("doc").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collector.errors import VendorDataQualityError
from collector.schema.mapping import MappingStats
from collector.vendors.base import text_value
from collector.vendors.sungrow.codes import VENDOR

#: A point key of a device map or a history row: `p` and the point id (doc §2.7.4 "p+point id").
POINT_KEY = re.compile(r"^p\d+$")


def _bad(endpoint: str, what: str) -> VendorDataQualityError:
    return VendorDataQualityError(f"iSolarCloud {endpoint}: {what}", vendor=VENDOR, endpoint=endpoint)


def _points(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if isinstance(k, str) and POINT_KEY.match(k)}


def _object(value: Any, endpoint: str, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(endpoint, f"{what} is {type(value).__name__}, not an object")
    return value


def _list(value: Any, endpoint: str, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(endpoint, f"{what} is {type(value).__name__}, not a list")
    return value


# -- getDeviceRealTimeData / getPVInverterRealTimeData (doc §2.14, §2.6) ---------------------------


@dataclass(frozen=True)
class RealtimeRecord:
    """One `device_point` map: the device's keys and its `p<id>` values, as sent."""

    ps_key: str
    device_sn: str | None
    ps_id: str | None
    device_time: Any
    """`yyyyMMddHHmmss` plant-local, a string (or an unquoted number: notes §5.2); may be null."""
    dev_status: Any
    dev_fault_status: Any
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Realtime:
    """A realtime answer: the device records and the ps_keys / SNs the gateway refused."""

    records: tuple[RealtimeRecord, ...]
    failed: tuple[str, ...] = ()


def read_realtime(result_data: Any, stats: MappingStats, endpoint: str = "getDeviceRealTimeData") -> Realtime:
    """`{device_point_list: [{device_point: {...}}], fail_ps_key_list?, fail_sn_list?}`.

    The doc's samples wrap each device in `device_point` (doc §2.14.5; notes §2.2 KRoperUK
    "nested under device_point"); an item that is the device map itself is read too.
    """
    data = _object(result_data, endpoint, "result_data")
    out: list[RealtimeRecord] = []
    for item in _list(data.get("device_point_list"), endpoint, "device_point_list"):
        dp = item.get("device_point", item) if isinstance(item, dict) else None
        ps_key = text_value(dp.get("ps_key")) if isinstance(dp, dict) else None
        if not isinstance(dp, dict) or ps_key is None:
            stats.drop_record("?", "bad_record", "a device_point without a ps_key")
            continue
        out.append(
            RealtimeRecord(
                ps_key=ps_key,
                device_sn=text_value(dp.get("device_sn")),
                ps_id=text_value(dp.get("ps_id")),
                device_time=dp.get("device_time"),
                dev_status=dp.get("dev_status"),
                dev_fault_status=dp.get("dev_fault_status"),
                values=_points(dp),
            )
        )
    failed: list[str] = []
    for key in ("fail_ps_key_list", "fail_sn_list"):
        failed += [t for t in (text_value(x) for x in _list(data.get(key), endpoint, key)) if t]
    return Realtime(tuple(out), tuple(failed))


# -- getDevicePointMinuteDataList (doc §2.7; notes §5.8) -------------------------------------------


@dataclass(frozen=True)
class MinuteRow:
    """One row: its plant-local `time_stamp` and the points that had data (others omitted)."""

    time_stamp: Any
    values: Mapping[str, Any]


@dataclass(frozen=True)
class MinuteSeries:
    ps_key: str
    rows: tuple[MinuteRow, ...]


def read_minute(
    result_data: Any, stats: MappingStats, endpoint: str = "getDevicePointMinuteDataList"
) -> list[MinuteSeries]:
    """`{ps_key: [{time_stamp, p<id>…}, …]}`, rows in the gateway's (chronological) order."""
    data = _object(result_data, endpoint, "result_data")
    out: list[MinuteSeries] = []
    for ps_key, rows in data.items():
        if not isinstance(rows, list):
            stats.drop_record(str(ps_key), "bad_record", "its rows are not a list")
            continue
        kept: list[MinuteRow] = []
        for row in rows:
            if not isinstance(row, dict):
                stats.drop_record(str(ps_key), "bad_record", "a row is not an object")
                continue
            kept.append(MinuteRow(row.get("time_stamp"), _points(row)))
        out.append(MinuteSeries(str(ps_key), tuple(kept)))
    return out


# -- getDevicePointsDayMonthYearDataList (doc §2.8; notes §5.9) ------------------------------------


@dataclass(frozen=True)
class DayRow:
    """One period of one point: `time_stamp` (`yyyyMMdd`, `yyyyMM`, `yyyy`) and the value per
    requested `data_type` code (`"1"` average, `"2"` peak, `"3"` valley, `"4"` total)."""

    time_stamp: Any
    values: Mapping[str, Any]


@dataclass(frozen=True)
class DaySeries:
    ps_key: str
    point: str
    rows: tuple[DayRow, ...]


def read_day(
    result_data: Any, stats: MappingStats, endpoint: str = "getDevicePointsDayMonthYearDataList"
) -> list[DaySeries]:
    """`{ps_key: {p<id>: [{<data_type>: value, time_stamp}, …]}}`."""
    data = _object(result_data, endpoint, "result_data")
    out: list[DaySeries] = []
    for ps_key, per_point in data.items():
        if not isinstance(per_point, dict):
            stats.drop_record(str(ps_key), "bad_record", "its points are not an object")
            continue
        for point, rows in per_point.items():
            if not isinstance(rows, list):
                stats.drop_record(str(ps_key), "bad_record", f"{point}: its rows are not a list")
                continue
            kept: list[DayRow] = []
            for row in rows:
                if not isinstance(row, dict):
                    stats.drop_record(str(ps_key), "bad_record", f"{point}: a row is not an object")
                    continue
                values = {str(k): v for k, v in row.items() if k != "time_stamp"}
                kept.append(DayRow(row.get("time_stamp"), values))
            out.append(DaySeries(str(ps_key), str(point), tuple(kept)))
    return out


@dataclass(frozen=True)
class DayRequest:
    """The request body of a day / month / year query: what the answer alone does not say."""

    query_type: int
    """1 day (`yyyyMMdd`), 2 month (`yyyyMM`), 3 year (`yyyy`) (doc §2.8.3)."""
    data_types: tuple[str, ...]
    points: tuple[str, ...]
    ps_keys: tuple[str, ...]


def _csv(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        items = [str(x) for x in value]
    elif isinstance(value, str | int) and not isinstance(value, bool):
        items = str(value).split(",")
    else:
        items = []
    return tuple(s.strip() for s in items if s.strip())


def read_day_request(body: Mapping[str, Any] | str) -> DayRequest:
    """A day / month / year request body (a mapping or its JSON text); ValueError if unusable."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as err:
            raise ValueError(f"the request body is not JSON: {err}") from None
    if not isinstance(body, Mapping):
        raise ValueError("the request body is not a JSON object")
    try:
        query = int(str(body.get("query_type", "")).strip())
    except ValueError:
        raise ValueError("the request has no query_type 1, 2 or 3") from None
    if query not in (1, 2, 3):
        raise ValueError(f"query_type {query} is not 1 (day), 2 (month) or 3 (year)")
    return DayRequest(
        query, _csv(body.get("data_type")), _csv(body.get("data_point")), _csv(body.get("ps_key_list"))
    )


# -- getFaultAlarmInfo (doc §2.9; notes §5.10) -----------------------------------------------------


@dataclass(frozen=True)
class FaultRecord:
    """One `pageList` row of getFaultAlarmInfo, as sent."""

    ps_id: str | None
    ps_key: str | None
    uid: str | None
    """`fault_code`: the record's unique id (`60064.202411.47b8b34242077`), not a code."""
    type_code: Any
    """`fault_type_code`: the fault's code (60001… PV inverter, 13801… ESS; CN-doc Appendix 8)."""
    fault_type: Any
    level: Any
    process_status: Any
    name: Any
    desc: Any
    create_time: Any
    over_time: Any


@dataclass(frozen=True)
class Faults:
    records: tuple[FaultRecord, ...]
    row_count: int | None


def fault_record(row: Mapping[str, Any]) -> FaultRecord:
    """One getFaultAlarmInfo row (an object) as a record."""
    return FaultRecord(
        ps_id=text_value(row.get("ps_id")),
        ps_key=text_value(row.get("ps_key")),
        uid=text_value(row.get("fault_code")),
        type_code=row.get("fault_type_code"),
        fault_type=row.get("fault_type"),
        level=row.get("fault_level"),
        process_status=row.get("process_status"),
        name=row.get("fault_name"),
        desc=row.get("fault_desc"),
        create_time=row.get("create_time"),
        over_time=row.get("over_time"),
    )


def read_faults(result_data: Any, stats: MappingStats, endpoint: str = "getFaultAlarmInfo") -> Faults:
    """`{pageList: [...], rowCount}` (doc §2.9.4)."""
    data = _object(result_data, endpoint, "result_data")
    out: list[FaultRecord] = []
    for row in _list(data.get("pageList"), endpoint, "pageList"):
        if not isinstance(row, dict):
            stats.drop_record("?", "bad_record", "a fault row is not an object")
            continue
        out.append(fault_record(row))
    count = data.get("rowCount")
    return Faults(tuple(out), count if isinstance(count, int) and not isinstance(count, bool) else None)


# -- getPowerStationList (doc §2.3; notes §5.3, §5.5) ----------------------------------------------


@dataclass(frozen=True)
class Measure:
    """A `{value, unit}` map: auto-scaled per plant (W/kW/MW, Wh/kWh/MWh, 度, 万度; notes §5.5)."""

    value: Any
    unit: str | None


#: The `{value, unit}` maps of a plant row we read, and the update-time field of each (doc §2.3.4).
PLANT_MEASURES: Mapping[str, str] = {
    "curr_power": "cur_power_update_time",
    "today_energy": "today_energy_update_time",
    "total_energy": "total_energy_update_time",
    "total_capcity": "total_capcity_update_time",  # sic: the API's spelling
}


@dataclass(frozen=True)
class PlantRecord:
    ps_id: str
    name: str | None
    time_zone: str | None
    """`ps_current_time_zone`: a fixed `GMT±h` (notes §5.3), not an IANA zone."""
    measures: Mapping[str, Measure]
    update_times: Mapping[str, Any]
    """Measure name → its update time (ISO-8601 with offset, doc §2.3.4), where sent."""


def read_plants(
    page_list: Any, stats: MappingStats, endpoint: str = "getPowerStationList"
) -> list[PlantRecord]:
    """The plant rows of a `pageList` (or of a whole `result_data` holding one)."""
    rows: Sequence[Any]
    if isinstance(page_list, dict):
        rows = _list(page_list.get("pageList"), endpoint, "pageList")
    else:
        rows = _list(page_list, endpoint, "pageList")
    out: list[PlantRecord] = []
    for row in rows:
        ps_id = text_value(row.get("ps_id")) if isinstance(row, dict) else None
        if not isinstance(row, dict) or ps_id is None:
            stats.drop_record("?", "bad_record", "a plant row without a ps_id")
            continue
        measures: dict[str, Measure] = {}
        times: dict[str, Any] = {}
        for name, time_key in PLANT_MEASURES.items():
            m = row.get(name)
            if isinstance(m, dict):
                measures[name] = Measure(m.get("value"), text_value(m.get("unit")))
            elif name in row:
                measures[name] = Measure(m, None)
            if row.get(time_key) not in (None, ""):
                times[name] = row[time_key]
        out.append(
            PlantRecord(
                ps_id,
                text_value(row.get("ps_name")),
                text_value(row.get("ps_current_time_zone")),
                measures,
                times,
            )
        )
    return out
