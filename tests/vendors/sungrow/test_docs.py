"""docs/vendors/sungrow.md and the mapping tables are held to each other, both ways."""

from __future__ import annotations

import pytest

from collector.schema.mapping import MappingTable, SplitMap
from collector.schema.plausible import rules_for
from collector.schema.units import parse_unit
from collector.vendors.sungrow.codes import (
    AUTH_CODES,
    CLOCK_CODES,
    CRYPTO_CODES,
    HOURLY_QUOTA_CODES,
    IP_SWITCH_CODES,
    LOGIN_THROTTLE_CODES,
    MONTHLY_QUOTA_CODES,
    NOT_GRANTED_CODES,
    REQUEST_CODES,
    THROTTLE_CODES,
    TOKEN_CODES,
    TRANSIENT_CODES,
)
from collector.vendors.sungrow.mapping import (
    DAY_TABLES,
    ESS_TABLE,
    FAULT_STATE_TABLE,
    FAULT_TABLE,
    LIVE_TABLES,
    METER_TABLE,
    NOT_WRITTEN,
    PLANT_LIST_TABLE,
    PLANT_TABLE,
    PV_TABLE,
    STATE_OF,
    STATE_WORDS,
    TABLES,
)
from tests.conftest import ROOT
from tests.vendors.pages import marked_table

PAGE = ROOT / "docs" / "vendors" / "sungrow.md"


def table(name: str) -> list[list[str]]:
    return marked_table(PAGE, name)


def unit_key(unit: str | None) -> str:
    return "—" if unit is None else parse_unit(unit).symbol


def coded(mtable: MappingTable) -> set[tuple[str, str, str, str]]:
    out = set()
    for row in mtable.rows:
        targets = (row.positive, row.negative) if isinstance(row, SplitMap) else (row.target,)
        for target in targets:
            out.add((row.source, unit_key(row.unit), mtable.quantum_text(target, row.source), target))
    return out


def documented(name: str) -> set[tuple[str, str, str, str]]:
    return {(src, unit_key(None if unit == "—" else unit), q, f) for src, unit, q, f, *_ in table(name)}


@pytest.mark.parametrize(
    ("name", "mtable"),
    [
        ("pv", PV_TABLE),
        ("ess", ESS_TABLE),
        ("meter", METER_TABLE),
        ("plant", PLANT_TABLE),
        ("plant-list", PLANT_LIST_TABLE),
        ("fault", FAULT_TABLE),
        ("fault-state", FAULT_STATE_TABLE),
    ],
)
def test_each_table_matches_the_page(name: str, mtable: MappingTable) -> None:
    assert documented(name) == coded(mtable)


def test_day_tables_match_the_page() -> None:
    page = {(int(t), src, unit_key(u), q, f) for t, src, u, q, f in table("day")}
    code = {(t, *row) for t, mt in DAY_TABLES.items() for row in coded(mt)}
    assert page == code


def test_every_table_is_on_the_page() -> None:
    on_page = {
        PV_TABLE,
        ESS_TABLE,
        METER_TABLE,
        PLANT_TABLE,
        PLANT_LIST_TABLE,
        FAULT_TABLE,
        FAULT_STATE_TABLE,
    }
    assert set(TABLES) == on_page | set(DAY_TABLES.values())


def test_not_written_matches_the_page() -> None:
    page = {(int(t), points): why for t, points, why in table("not-written")}
    assert page == {(t, p): why for t, d in NOT_WRITTEN.items() for p, why in d.items()}


def test_state_table_matches_the_page() -> None:
    rows = table("state")
    assert {int(code): state for code, _, _, state in rows} == dict(STATE_OF)
    assert {int(code): word for code, _, word, _ in rows} == dict(STATE_WORDS)
    assert all(int(h, 16) == int(c) for c, h, _, _ in rows)


def test_plausibility_rules_match_the_page() -> None:
    page = {(f, rule) for f, rule in table("plausible")}
    code = {(t, rule) for mt in LIVE_TABLES.values() for t in mt.targets for rule in rules_for(t)}
    assert page == code


def test_page_says_what_every_result_code_does() -> None:
    text = PAGE.read_text()
    groups = (
        TOKEN_CODES, AUTH_CODES, CRYPTO_CODES, HOURLY_QUOTA_CODES, MONTHLY_QUOTA_CODES, THROTTLE_CODES,
        IP_SWITCH_CODES, LOGIN_THROTTLE_CODES, CLOCK_CODES, NOT_GRANTED_CODES, TRANSIENT_CODES, REQUEST_CODES,
    )  # fmt: skip
    ranges = {"E904", "E905", "E906", "E907", "E908", "E909", "001", "002", "003"}  # written as ranges
    for code in set().union(*groups) - ranges:
        assert f"`{code}`" in text, code


def test_page_names_the_endpoints_and_point_lists() -> None:
    text = PAGE.read_text()
    for name in (
        "getDeviceRealTimeData", "getPVInverterRealTimeData", "getDevicePointMinuteDataList",
        "getDevicePointsDayMonthYearDataList", "getFaultAlarmInfo", "getPowerStationList",
        "LIVE_POINTS", "MINUTE_POINTS", "DAY_POINTS",
    ):  # fmt: skip
        assert f"`{name}" in text, name


def test_page_names_every_endpoint_the_client_calls_and_each_stream() -> None:
    import re

    from collector.vendors.sungrow import SUNGROW_SPEC
    from collector.vendors.sungrow.client import ENDPOINTS
    from collector.vendors.sungrow.transport import REGIONS

    text = PAGE.read_text()
    for endpoint in (*ENDPOINTS, "/openapi/login"):
        assert f"| `{endpoint}` |" in text, endpoint
    for stream in SUNGROW_SPEC.streams:
        assert re.search(rf"\| `{stream.name}` \| ", text), stream.name
    for region, url in REGIONS.items():
        assert f"`{region}`" in text and url in text, region
