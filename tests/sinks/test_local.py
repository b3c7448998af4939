"""The embedded sink: InfluxDB's overwrite semantics, series(), export() round trip."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from collector.schema.point import Point
from collector.sinks.base import Sink, WriteReport
from collector.sinks.forwarder import Forwarder
from collector.sinks.local import LineProtocolError, LocalSink, LocalStore, parse_line
from collector.sinks.spool import Spool
from collector.sinks.stdout import StdoutSink
from tests.sinks.conftest import run

T0 = 1_700_000_000


def point(t: int, fields: dict[str, float | int | str], device: str = "INV1", **tags: str) -> str:
    return Point("inverter", {"device": device, "site": "home", **tags}, fields, t).to_line()


def norm(line: str) -> tuple[object, ...]:
    """A line's content regardless of field order."""
    p = parse_line(line)
    return (p.measurement, p.tags, tuple(sorted(p.fields)), p.time)


def write(path: Path, lines: list[str]) -> WriteReport:
    async def main() -> WriteReport:
        sink = LocalSink(path)
        assert isinstance(sink, Sink)
        await sink.open(None)
        try:
            return await sink.write(lines)
        finally:
            await sink.close()

    return run(main())


def test_same_series_and_time_merges_fields_newer_value_wins(tmp_path: Path) -> None:
    db = tmp_path / "local.db"
    write(db, [point(T0, {"pv_power_w": 100.0, "state": "ok"})])
    write(db, [point(T0, {"pv_power_w": 250.0, "battery_soc_pct": 80.0})])
    with LocalStore(db) as store:
        assert list(store.export()) == [
            'inverter,device=INV1,site=home battery_soc_pct=80.0,pv_power_w=250.0,state="ok" 1700000000'
        ]


def test_a_different_tag_set_is_a_different_series(tmp_path: Path) -> None:
    db = tmp_path / "local.db"
    write(db, [point(T0, {"p": 1.0}), point(T0, {"p": 2.0}, device="INV2")])
    with LocalStore(db) as store:
        assert len(list(store.export())) == 2
        assert {s.tags["device"]: s.fields["p"] for s in store.series()} == {"INV1": 1.0, "INV2": 2.0}


def test_series_gives_the_last_time_and_last_value_of_each_field(tmp_path: Path) -> None:
    db = tmp_path / "local.db"
    write(
        db,
        [
            point(T0, {"pv_power_w": 1.0, "status_code": 3}),
            point(T0 + 300, {"pv_power_w": 2.0}),
            point(T0 + 600, {"pv_power_w": 3.0, "status_code": 4}),
            point(T0 + 900, {"pv_power_w": 4.0}),
        ],
    )
    with LocalStore(db) as store:
        (series,) = store.series()
    assert series.measurement == "inverter" and dict(series.tags) == {"device": "INV1", "site": "home"}
    assert series.time == T0 + 900
    assert dict(series.fields) == {"pv_power_w": 4.0, "status_code": 4}
    assert dict(series.field_times) == {"pv_power_w": T0 + 900, "status_code": T0 + 600}
    assert isinstance(series.fields["status_code"], int)


def test_export_round_trips_escapes_and_types_in_time_order(tmp_path: Path) -> None:
    db = tmp_path / "local.db"
    tricky = Point(
        "my meas,x",
        {"site": "a b,c=d", "device": "k\\v"},
        {"f v": 1.5, "n": -3, "s": 'he said "hi" \\ bye', "e,q=": 0.0},
        T0 + 600,
    ).to_line()
    lines = [point(T0 + 300, {"p": 2.0}), tricky, point(T0, {"p": 1.0}), "m2 b=t,u=7u 1700000100"]
    assert write(db, lines) == WriteReport(4, 0, [])
    with LocalStore(db) as store:
        exported = list(store.export())
        assert [parse_line(x).time for x in exported] == [T0, T0 + 100, T0 + 300, T0 + 600]
        assert {norm(x) for x in exported} == {norm(x) for x in lines}
        # importing the export elsewhere gives the same store
        copy = tmp_path / "copy.db"
        write(copy, exported)
        with LocalStore(copy) as again:
            assert list(again.export()) == exported
        assert list(store.export(since=T0 + 100, until=T0 + 600)) == exported[1:3]
        assert list(store.export(measurement="m2")) == [exported[1]]


def test_parser_reads_what_point_to_line_writes() -> None:
    parsed = parse_line(Point("m x", {"t,k": "v=1 2"}, {"a b": 'q"\\', "i": 5, "f": 2.0}, 7).to_line())
    assert parsed.measurement == "m x" and parsed.tags == (("t,k", "v=1 2"),)
    assert parsed.fields == (("a b", "s", 'q"\\'), ("i", "i", 5), ("f", "f", 2.0))
    assert parsed.time == 7
    for bad in ["m", "m f=", "m,t= f=1", "m f=1 x", 'm f="open', "m f=nan 1", "m f=abc 1"]:
        with pytest.raises(LineProtocolError):
            parse_line(bad)


def test_bad_lines_and_type_conflicts_are_rejected_and_the_rest_stored(tmp_path: Path) -> None:
    db = tmp_path / "local.db"
    write(db, [point(T0, {"pv_power_w": 1.0})])
    report = write(
        db,
        [
            point(T0 + 300, {"pv_power_w": 2.0}),
            point(T0 + 600, {"pv_power_w": "high"}),  # float field written as string
            "inverter,device=INV1 pv_power_w= 1",
            point(T0 + 900, {"pv_power_w": 4.0}),
        ],
    )
    assert (report.written, report.rejected) == (2, 2)
    assert any("field type conflict" in m for m in report.messages)
    assert any("unable to parse" in m for m in report.messages)
    with LocalStore(db) as store:
        assert [parse_line(x).time for x in store.export()] == [T0, T0 + 300, T0 + 900]


def test_forwarder_drains_the_spool_into_the_local_sink(tmp_path: Path) -> None:
    async def main() -> None:
        spool = Spool(tmp_path / "spool", 1_000_000)
        spool.append([point(T0 + 300 * i, {"pv_power_w": float(i)}) for i in range(20)])
        sink = LocalSink(tmp_path / "local.db")
        await sink.open(None)
        fwd = Forwarder(spool, sink, batch_lines=6)
        assert await fwd.flush(10)
        assert fwd.written == 20
        await sink.close()

    run(main())
    with LocalStore(tmp_path / "local.db") as store:
        assert len(list(store.export())) == 20


def test_stdout_sink_prints_each_line_and_nothing_else(tmp_path: Path) -> None:
    out = io.StringIO()
    lines = [point(T0, {"p": 1.0}), point(T0 + 300, {"p": 2.0})]

    async def main() -> WriteReport:
        sink = StdoutSink(out)
        assert isinstance(sink, Sink)
        await sink.open(None)
        report = await sink.write(lines)
        await sink.close()
        return report

    assert run(main()) == WriteReport(2, 0, [])
    assert out.getvalue() == lines[0] + "\n" + lines[1] + "\n"
    assert list(tmp_path.iterdir()) == []
