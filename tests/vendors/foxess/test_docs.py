"""docs/vendors/foxess.md and the mapping tables are held to each other, both ways."""

from __future__ import annotations

import re

from collector.schema.mapping import MappingTable, SplitMap
from collector.schema.plausible import rules_for
from collector.schema.units import parse_unit
from collector.vendors.foxess import FOXESS_SPEC
from collector.vendors.foxess.client import ENDPOINTS
from collector.vendors.foxess.mapping import (
    GENERATION_TABLE,
    INVERTER_TABLE,
    NOT_WRITTEN,
    REPORT_TABLE,
    STATE_OF,
)
from collector.vendors.foxess.variables import RUNNING_STATES
from tests.conftest import ROOT
from tests.vendors.pages import marked_table

PAGE = ROOT / "docs" / "vendors" / "foxess.md"
_N = range(1, 19)
_PHASES = (("R", "a"), ("S", "b"), ("T", "c"))


def table(name: str) -> list[list[str]]:
    return marked_table(PAGE, name)


def expand(var: str, field: str) -> list[tuple[str, str]]:
    """`pv{N}Volt`/`pv{N}_voltage_v` → N = 1…18; `{R,S,T}`/`{a,b,c}` → pairs in order."""
    if "{N}" in var:
        return [(var.replace("{N}", str(n)), field.replace("{N}", str(n))) for n in _N]
    if "{R,S,T}" in var:
        return [(var.replace("{R,S,T}", p), field.replace("{a,b,c}", x)) for p, x in _PHASES]
    return [(var, field)]


def unit_key(unit: str | None) -> str:
    return "—" if unit is None else parse_unit(unit).symbol


def documented(name: str) -> set[tuple[str, str, str, str]]:
    """(variable, unit, quantum, field) of each row of a mapping table on the page."""
    out = set()
    for var, unit, quantum, field, *_ in table(name):
        for v, f in expand(var, field):
            out.add((v, unit_key(None if unit == "—" else unit), quantum, f))
    return out


def coded(mtable: MappingTable) -> set[tuple[str, str, str, str]]:
    out = set()
    for row in mtable.rows:
        targets = (row.positive, row.negative) if isinstance(row, SplitMap) else (row.target,)
        for target in targets:
            out.add((row.source, unit_key(row.unit), mtable.quantum_text(target), target))
    return out


def test_inverter_table_matches_the_page() -> None:
    assert documented("inverter") == coded(INVERTER_TABLE)


def test_energy_and_generation_tables_match_the_page() -> None:
    assert documented("energy") == coded(REPORT_TABLE)
    assert documented("generation") == coded(GENERATION_TABLE)


def test_preference_order_matches_the_page() -> None:
    """Each field several variables can yield: the page says which, in the table's order."""
    page = {field: tuple(v.strip(" `") for v in names.split(",")) for field, names in table("preference")}
    several = {t: INVERTER_TABLE.preference(t) for t in INVERTER_TABLE.targets}
    assert page == {t: p for t, p in several.items() if len(p) > 1}


def _fields(pattern: str) -> list[str]:
    if "{N}" in pattern:
        return [pattern.replace("{N}", str(n)) for n in _N]
    if "{a,b,c}" in pattern:
        return [pattern.replace("{a,b,c}", x) for _, x in _PHASES]
    return [pattern]


def test_plausibility_rules_match_the_page() -> None:
    """Every field of the inverter table that a shared rule judges is on the page, with its rule."""
    page = {(f, rule) for field, rule, _ in table("plausible") for f in _fields(field)}
    code = {(t, rule) for t in INVERTER_TABLE.targets for rule in rules_for(t)}
    assert page == code


def test_not_written_matches_the_page() -> None:
    assert {row[0] for row in table("not-written")} == set(NOT_WRITTEN)


def test_state_table_matches_the_page() -> None:
    rows = table("state")
    assert {int(code): state for code, _, state in rows} == dict(STATE_OF)
    assert {int(code): word for code, word, _ in rows} == dict(RUNNING_STATES)


def test_page_names_every_endpoint_and_the_stream_budget() -> None:
    text = PAGE.read_text()
    for endpoint in ENDPOINTS:
        assert f"`{endpoint}`" in text, endpoint
    for stream in FOXESS_SPEC.streams:
        assert re.search(rf"\| `{stream.name}` \|", text), stream.name
