"""FaultTracker: starts and ends from successive snapshots, durable across restarts and failed deliveries."""

from __future__ import annotations

from pathlib import Path

from collector.schema.mapping import MappingStats
from collector.state import State
from collector.vendors.foxess.faults import FaultEvent, FaultTracker, fault_points
from collector.vendors.foxess.mapping import device_tags


def ev(code: int, time: int, active: bool) -> FaultEvent:
    return FaultEvent("SN1", code, time, active)


def test_start_and_end(tmp_path: Path) -> None:
    t = FaultTracker(State(tmp_path), "k")
    assert t.observe("SN1", 100, [], delivered=0) == []
    assert t.observe("SN1", 400, [7, 9], delivered=100) == [ev(7, 400, True), ev(9, 400, True)]
    assert t.observe("SN1", 700, [9], delivered=400) == [ev(7, 700, False)]
    assert t.open_faults() == {"SN1": {9: 400}}
    assert t.observe("SN1", 1000, [], delivered=700) == [ev(9, 1000, False)]
    assert t.open_faults() == {}


def test_a_restart_neither_reopens_nor_loses(tmp_path: Path) -> None:
    state = State(tmp_path)
    assert FaultTracker(state, "k").observe("SN1", 400, [7], delivered=100) == [ev(7, 400, True)]
    # New process, same state: still open → nothing; closed while we were down → its end.
    assert FaultTracker(state, "k").observe("SN1", 700, [7], delivered=400) == []
    assert FaultTracker(state, "k").observe("SN1", 5000, [], delivered=700) == [ev(7, 5000, False)]


def test_an_undelivered_snapshot_repeats_its_events(tmp_path: Path) -> None:
    t = FaultTracker(State(tmp_path), "k")
    assert t.observe("SN1", 400, [7], delivered=100) == [ev(7, 400, True)]
    # The app could not spool those points (cursor still 100): the same snapshot comes
    # again and must produce the start again, not nothing.
    assert t.observe("SN1", 400, [7], delivered=100) == [ev(7, 400, True)]
    # Delivered now; the next snapshot sees the fault as open.
    assert t.observe("SN1", 700, [7], delivered=400) == []


def test_devices_are_independent(tmp_path: Path) -> None:
    t = FaultTracker(State(tmp_path), "k")
    t.observe("A", 400, [1], delivered=0)
    assert t.observe("B", 400, [], delivered=0) == []
    assert t.open_faults() == {"A": {1: 400}}


def test_points_of_one_instant_are_a_second_apart() -> None:
    pts = fault_points(
        [ev(7, 700, False), ev(9, 700, True), FaultEvent("SN2", 9, 700, True)],
        {"9": "Bus over voltage"},
        lambda sn: device_tags("src", "site", sn),
        MappingStats(),
    )
    assert [(p.tags["device"], p.time, dict(p.fields)) for p in pts] == [
        ("SN1", 700, {"code": 7, "active": 0}),
        ("SN1", 701, {"code": 9, "message": "Bus over voltage", "active": 1}),
        ("SN2", 700, {"code": 9, "message": "Bus over voltage", "active": 1}),
    ]
