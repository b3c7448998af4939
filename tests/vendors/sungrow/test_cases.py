"""Each `cases/<scenario>/` folder: a recorded-style answer → exactly the expected line protocol.

A folder holds `response.json` (shaped like the doc's samples and the answers in
research/sungrow.md, fake serials), `case.json` (endpoint, time zone, source, a note saying
what the case proves, and `dropped`: the records refused whole), `request.json` where the
answer alone lacks context (day / month / year), and `expected.lp`, checked by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.schema.fields import point_problems
from collector.schema.mapping import MappingStats
from collector.vendors.sungrow.mapping import PARSERS

CASES = Path(__file__).parent / "cases"
FOLDERS = sorted(p for p in CASES.iterdir() if p.is_dir())


def run_case(folder: Path, stats: MappingStats) -> list[str]:
    case = json.loads((folder / "case.json").read_text())
    request = folder / "request.json"
    parser = PARSERS[("sungrow", case["endpoint"])]
    points = list(
        parser(
            (folder / "response.json").read_text(),
            tz=case["tz"],
            request=request.read_text() if request.exists() else None,
            source=case["source"],
            stats=stats,
        )
    )
    for point in points:
        assert point_problems(point) == [], point
    return [p.to_line() for p in points]


def test_there_are_cases() -> None:
    assert len(FOLDERS) >= 5
    for folder in FOLDERS:
        case = json.loads((folder / "case.json").read_text())
        assert case["endpoint"] in ("realtime", "minute", "day", "faults") and case.get("note"), folder.name


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_case(folder: Path) -> None:
    stats = MappingStats()
    assert run_case(folder, stats) == (folder / "expected.lp").read_text().splitlines()
    case = json.loads((folder / "case.json").read_text())
    assert [[device, reason] for device, reason, _ in stats.drops] == case.get("dropped", [])
