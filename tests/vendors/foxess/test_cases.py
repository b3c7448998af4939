"""Each `cases/<scenario>/` folder: a recorded-style response → exactly the expected line protocol.

A folder holds `response.json` (shaped like the real answers in research/foxess.md,
fake serials), `case.json` (endpoint, time zone, source, site, optional `now`, and a
note saying what the case proves), `request.json` where the answer alone lacks
context (reports), and `expected.lp`, written by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collector.schema.fields import point_problems
from collector.schema.mapping import MappingStats
from collector.vendors.foxess import PARSERS
from tests.conftest import ROOT

CASES = Path(__file__).parent / "cases"
FOLDERS = sorted(p for p in CASES.iterdir() if p.is_dir())


def run_case(folder: Path, stats: MappingStats | None = None) -> list[str]:
    case = json.loads((folder / "case.json").read_text())
    request = folder / "request.json"
    kw: dict[str, Any] = {
        "tz": case["tz"],
        "request": request.read_text() if request.exists() else None,
        "source": case["source"],
        "site": case["site"],
        "stats": MappingStats() if stats is None else stats,
    }
    if "now" in case:
        kw["now"] = case["now"]
    parser = PARSERS[("foxess", case["endpoint"])]
    points = list(parser((folder / "response.json").read_text(), **kw))
    for point in points:
        assert point_problems(point) == [], point
    return [p.to_line() for p in points]


def test_there_are_cases() -> None:
    assert len(FOLDERS) >= 9
    for folder in FOLDERS:
        case = json.loads((folder / "case.json").read_text())
        assert case["endpoint"] in ("real", "history", "report") and case.get("note"), folder.name


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_case(folder: Path) -> None:
    expected = (folder / "expected.lp").read_text().splitlines()
    stats = MappingStats()
    assert run_case(folder, stats) == expected
    # `dropped` in case.json: the records refused whole, as [device, reason] (issue #7 §4).
    case = json.loads((folder / "case.json").read_text())
    assert [[device, reason] for device, reason, _ in stats.drops] == case.get("dropped", [])
    # `implausible`: the vendor keys whose values the physics rules out (issue #7 §2).
    implausible = sorted(
        src for (reason, src), n in stats.detail.items() if reason == "implausible" for _ in range(n)
    )
    assert implausible == case.get("implausible", [])


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_case_through_the_parse_command(folder: Path) -> None:
    """`solar-collector parse`, as a user runs it, prints the case's lines (without the tags it
    cannot know: source, site); a refused record is said on stderr with its device, exit 1."""
    case = json.loads((folder / "case.json").read_text())
    args = ["parse", "--vendor", "foxess", "--endpoint", case["endpoint"], "--tz", case["tz"]]
    if (folder / "request.json").exists():
        args += ["--request", str(folder / "request.json")]
    run = subprocess.run(
        [sys.executable, "-m", "collector", *args, str(folder / "response.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    expected = (folder / "expected.lp").read_text().splitlines()
    site, source = f",site={case['site']}", f",source={case['source']}"
    untagged = [line.replace(site, "").replace(source, "") for line in expected]
    if "now" not in case:  # without `now`, parse writes every slot (future zeros too)
        assert run.stdout.splitlines() == untagged
    dropped = case.get("dropped", [])
    assert run.returncode == (1 if dropped else 0), run.stderr
    for device, reason in dropped:
        assert f"record dropped: device {device}: " in run.stderr and f"({reason})" in run.stderr


def test_parse_defaults_leave_unknown_tags_out() -> None:
    # `solar-collector parse` knows no source or site: those tags are left out of the line.
    raw = (CASES / "real_v1_fault" / "response.json").read_text()
    line = PARSERS[("foxess", "real")](raw, tz="UTC", request=None)[0].to_line()
    assert line.startswith("inverter,device=TESTSN0000A0001,vendor=foxess ")


def test_report_parser_needs_the_request() -> None:
    raw = (CASES / "report_day_corrupt" / "response.json").read_text()
    with pytest.raises(ValueError, match="request"):
        PARSERS[("foxess", "report")](raw, tz="UTC", request=None)
