"""FoxESS responses as the vendor sends them (layer 2): its names, its units, no conversion.

Each reader takes the envelope's `result` (already checked by `codes.unwrap`) and
returns frozen records, or raises `VendorDataQualityError` when the shape is not
the one the field notes show. Values stay raw (number, numeric string, "", None);
units stay the vendor's strings. Shapes: research/foxess.md §4.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collector.errors import VendorDataQualityError
from collector.vendors.base import text_value
from collector.vendors.foxess.codes import VENDOR


def _bad(endpoint: str, what: str) -> VendorDataQualityError:
    return VendorDataQualityError(f"FoxESS {endpoint}: {what}", vendor=VENDOR, endpoint=endpoint)


def _list(value: Any, endpoint: str, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(endpoint, f"{what} is {type(value).__name__}, not a list")
    return value


# -- real-time: POST /op/v1/device/real/query (and v0) --------------------------------------


@dataclass(frozen=True)
class RealValue:
    """One `datas` item: `{"variable", "unit"?, "name", "value"?}`."""

    variable: str
    unit: str | None
    value: Any  # number, numeric string, "", None, or absent (None)


@dataclass(frozen=True)
class RealRecord:
    """One device of a real-time answer. `time` is per device (see `read_real`)."""

    device_sn: str
    time: str | None
    values: tuple[RealValue, ...]


def _device_entries(result: Any, endpoint: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(serial number, entry) of each per-device object of a `result` list."""
    for item in _list(result, endpoint, "result"):
        if not isinstance(item, dict):
            raise _bad(endpoint, "a device entry is not an object")
        sn = text_value(item.get("deviceSN"))
        if sn is None:
            raise _bad(endpoint, "a device entry has no deviceSN")
        yield sn, item


def read_real(result: Any, endpoint: str = "real/query") -> list[RealRecord]:
    """Devices of a v0/v1 real-time `result` (a list, one object per device).

    `time` sits at device level in every recorded answer, though the doc's v1 table
    nests it in each `datas` item (research/foxess.md §4.1): we read the device's
    `time`, else the first item's.
    """
    out: list[RealRecord] = []
    for sn, item in _device_entries(result, endpoint):
        values: list[RealValue] = []
        item_time: str | None = None
        for data in _list(item.get("datas"), endpoint, "datas"):
            if not isinstance(data, dict):
                continue
            var = text_value(data.get("variable"))
            if var is None:
                continue
            values.append(RealValue(var, text_value(data.get("unit")), data.get("value")))
            if item_time is None:
                item_time = text_value(data.get("time"))
        out.append(RealRecord(sn, text_value(item.get("time")) or item_time, tuple(values)))
    return out


# -- history: POST /op/v0/device/history/query -------------------------------------------------


@dataclass(frozen=True)
class HistorySeries:
    """One variable's samples: `{"variable", "unit", "name", "data": [{time, value}]}`."""

    variable: str
    unit: str | None
    samples: tuple[tuple[str, Any], ...]  # (time string, raw value)


@dataclass(frozen=True)
class HistoryRecord:
    device_sn: str
    series: tuple[HistorySeries, ...]


def read_history(result: Any, endpoint: str = "history/query") -> list[HistoryRecord]:
    """Devices of a history `result` (research/foxess.md §4.2)."""
    out: list[HistoryRecord] = []
    for sn, item in _device_entries(result, endpoint):
        series: list[HistorySeries] = []
        for data in _list(item.get("datas"), endpoint, "datas"):
            if not isinstance(data, dict):
                continue
            var = text_value(data.get("variable"))
            if var is None:
                continue
            samples = tuple(
                (t, s.get("value"))
                for s in _list(data.get("data"), endpoint, f"{var}.data")
                if isinstance(s, dict) and (t := text_value(s.get("time"))) is not None
            )
            series.append(HistorySeries(var, text_value(data.get("unit")), samples))
        out.append(HistoryRecord(sn, tuple(series)))
    return out


# -- reports: POST /op/v0/device/report/query ----------------------------------------------------


@dataclass(frozen=True)
class ReportSeries:
    """`{"variable", "unit", "values": [...]}`: 24 (day), 31 (month) or 12 (year) slots."""

    variable: str
    unit: str | None
    values: tuple[Any, ...]


@dataclass(frozen=True)
class ReportRequest:
    """The request body that produced a report (the answer alone lacks SN, date, dimension)."""

    sn: str
    dimension: str  # "day" | "month" | "year"
    year: int
    month: int | None
    day: int | None
    variables: tuple[str, ...]

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sn": self.sn, "year": self.year}
        if self.month is not None:
            out["month"] = self.month
        if self.day is not None:
            out["day"] = self.day
        out["dimension"] = self.dimension
        out["variables"] = list(self.variables)
        return out


def read_report(result: Any, endpoint: str = "report/query") -> list[ReportSeries]:
    out: list[ReportSeries] = []
    for item in _list(result, endpoint, "result"):
        if not isinstance(item, dict):
            raise _bad(endpoint, "a report entry is not an object")
        var = text_value(item.get("variable"))
        if var is None:
            continue
        values = _list(item.get("values"), endpoint, f"{var}.values")
        out.append(ReportSeries(var, text_value(item.get("unit")), tuple(values)))
    return out


def read_report_request(text_or_body: str | Mapping[str, Any]) -> ReportRequest:
    """The report request body (JSON text or mapping) → ReportRequest; ValueError if unusable."""
    body: Any = json.loads(text_or_body) if isinstance(text_or_body, str) else text_or_body
    if not isinstance(body, Mapping):
        raise ValueError("the report request must be a JSON object")
    dimension = body.get("dimension")
    if dimension not in ("day", "month", "year"):
        raise ValueError(f"report request: dimension must be day, month or year, not {dimension!r}")

    def num(key: str, required: bool) -> int | None:
        value = body.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
            raise ValueError(f"report request: {key} must be a whole number, not {value!r}")
        return int(value)

    year = num("year", True)
    month = num("month", dimension in ("day", "month"))
    day = num("day", dimension == "day")
    assert year is not None
    variables = body.get("variables") or []
    if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
        raise ValueError("report request: variables must be a list of names")
    return ReportRequest(str(body.get("sn") or ""), str(dimension), year, month, day, tuple(variables))


# -- discovery and the rest ---------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of a paged list: its items, and the vendor's total (None: not given)."""

    items: tuple[Mapping[str, Any], ...]
    total: int | None


def read_page(result: Any, endpoint: str) -> Page:
    """`{"data": [...], "total", "currentPage", "pageSize"}`; `pageList` tolerated (com.foxess)."""
    if not isinstance(result, dict):
        raise _bad(endpoint, "a list page is not an object")
    raw = result.get("data", result.get("pageList"))
    items = tuple(i for i in _list(raw, endpoint, "data") if isinstance(i, dict))
    total = result.get("total")
    if isinstance(total, str) and total.strip().isdigit():
        total = int(total)
    return Page(items, total if isinstance(total, int) and not isinstance(total, bool) else None)


@dataclass(frozen=True)
class DeviceItem:
    """One `/op/v0/device/list` row (research/foxess.md §4.4)."""

    device_sn: str
    station_id: str | None
    station_name: str | None
    module_sn: str | None
    device_type: str | None
    product_type: str | None
    has_battery: bool | None
    has_pv: bool | None
    status: int | None  # 1 online, 2 fault, 3 offline


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false"):
        return value in (1, "1", "true")
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def read_device(item: Mapping[str, Any]) -> DeviceItem | None:
    sn = text_value(item.get("deviceSN"))
    if sn is None:
        return None
    return DeviceItem(
        device_sn=sn,
        station_id=text_value(item.get("stationID")),
        station_name=text_value(item.get("stationName")),
        module_sn=text_value(item.get("moduleSN")),
        device_type=text_value(item.get("deviceType")),
        product_type=text_value(item.get("productType")),
        has_battery=_bool(item.get("hasBattery")),
        has_pv=_bool(item.get("hasPV")),
        status=_int(item.get("status")),
    )


@dataclass(frozen=True)
class PlantItem:
    """One `/op/v0/plant/list` row: `{stationID, name, ianaTimezone}` (research/foxess.md §4.9)."""

    station_id: str
    name: str | None
    iana_timezone: str | None


def read_plant(item: Mapping[str, Any]) -> PlantItem | None:
    sid = text_value(item.get("stationID"))
    if sid is None:
        return None
    return PlantItem(sid, text_value(item.get("name")), text_value(item.get("ianaTimezone")))


@dataclass(frozen=True)
class Generation:
    """`/op/v0/device/generation`: kWh, plant time zone, each possibly missing (§4.6)."""

    today: Any
    month: Any
    cumulative: Any


def read_generation(result: Any, endpoint: str = "device/generation") -> Generation:
    if not isinstance(result, dict):
        raise _bad(endpoint, "the generation result is not an object")
    return Generation(result.get("today"), result.get("month"), result.get("cumulative"))


@dataclass(frozen=True)
class AccessCount:
    total: int
    remaining: int


def read_access_count(result: Any, endpoint: str = "user/getAccessCount") -> AccessCount:
    """`{"total", "remaining"}`: strings per the doc, ints in later answers — both accepted (§3.1)."""
    if not isinstance(result, dict):
        raise _bad(endpoint, "the access-count result is not an object")
    total, remaining = _int(result.get("total")), _int(result.get("remaining"))
    if total is None or remaining is None:
        raise _bad(endpoint, "total / remaining are not whole numbers")
    return AccessCount(total, remaining)


def read_fault_table(result: Any, endpoint: str = "device/fault/get", lang: str = "en") -> dict[str, str]:
    """Fault code → message: a list of single-key objects `{"<code>": {"en": …}}` (doc; §4.7).

    A plain object `{"<code>": {…}}` is accepted too.
    """
    entries: Sequence[Any] = [result] if isinstance(result, dict) else _list(result, endpoint, "result")
    out: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        for code, texts in entry.items():
            text = texts.get(lang) or texts.get("en") if isinstance(texts, dict) else texts
            if isinstance(text, str) and text.strip():
                out[str(code).strip()] = text.strip()
    return out
