"""FoxESS end to end, the way a user runs it: `solar-collector run --once` / `parse` / `devices`
as subprocesses against the simulator, into a real InfluxDB 1.x, compared with the plant's truth."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.simulators.base import SimThread
from collector.simulators.plant import Plant, Site
from collector.vendors.foxess.auth import signed_headers
from tests.contract.conftest import (
    DEVICE_LIST,
    KEY,
    REAL,
    REPORT,
    RecordingSim,
    check_inverter_rows,
    check_reports,
    collector_cli,
    config_text,
    hybrid,
    log_events,
    one_site,
    pv_only,
    rows,
    rows_by_device,
    write_config,
)
from tests.servers import InfluxServer

HYB = "60H3CT0000000001"
PVO = "60F3CT0000000002"


def test_run_once_lands_live_and_report_data_equal_to_the_truth(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    make = one_site([hybrid(HYB), pv_only(PVO)], datetime.now(UTC).date() - timedelta(days=40))
    sim, truth = RecordingSim(make(), api_keys={KEY: None}), make()
    with SimThread(sim) as served:
        cfg = write_config(
            tmp_path / "cfg.yaml",
            config_text(tmp_path / "state", served.url, influx=(influxd.url, influx_db), timezone="UTC"),
        )
        res = collector_cli(["run", "--once", "-c", str(cfg)])
    assert res.returncode == 0, res.stderr
    assert sim.violations == 0
    events = log_events(res.stderr)
    assert not [e for e in events if e.get("level") in ("error", "critical")], res.stderr

    # live: one point per inverter, at the cloud's data time, equal to the truth in SI units
    stored = rows_by_device(influxd, influx_db, "inverter")
    assert set(stored) == {HYB, PVO}
    for sn, device_rows in stored.items():
        assert len(device_rows) == 1
        assert device_rows[0]["time"] == truth.upload_time(sn, sim.requests_to(REAL)[0].t)
        assert device_rows[0]["site"] == "site-berlin-1" and device_rows[0]["source"] == "fox"
        check_inverter_rows(truth, sn, device_rows)
    assert len(sim.calls_to(REAL)) == 1 and set(sim.calls_to(REAL)[0].devices) == {HYB, PVO}

    # reports: day (hours), month (days) and year (months) of both inverters, each slot stamped
    # at its start in the plant's zone (Europe/Berlin, from the plant list; the config says UTC)
    assert len(sim.requests_to(REPORT)) == 6
    assert check_reports(truth, sim, influxd, influx_db, [HYB, PVO]) >= 2  # how many: time of day
    pv_energy = [r for r in rows(influxd, influx_db, 'SELECT * FROM "energy"') if r["device"] == PVO]
    assert pv_energy and not any("battery_charge_wh" in r for r in pv_energy)  # not asked for PV-only

    # self-metrics: the run's requests counted, nothing failed
    collector = rows(influxd, influx_db, 'SELECT * FROM "collector"')
    assert collector and collector[-1]["errors"] == 0 and collector[-1]["requests"] >= 9


def fetch(base_url: str, path: str, body: dict[str, object]) -> str:
    """One signed call to the simulator (the saved response a user would pass to `parse`)."""
    headers = signed_headers(path, KEY, int(time.time() * 1000))
    headers["Content-Type"] = "application/json"
    req = urllib.request.Request(
        base_url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        text: str = resp.read().decode()
    return text


def without_source_and_site(line: str) -> str:
    """A saved response has neither the config's source name nor the plant id: drop both tags."""
    head, rest = line.split(" ", 1)
    parts = [p for p in head.split(",") if not p.startswith(("source=", "site="))]
    return ",".join(parts) + " " + rest


def test_parse_prints_the_line_protocol_the_pipeline_writes(tmp_path: Path) -> None:
    make = one_site([hybrid(HYB, packs=1, model="H1-5.0-E")], datetime.now(UTC).date() - timedelta(days=3))
    sim = RecordingSim(make(), api_keys={KEY: None})
    with SimThread(sim) as served:
        cfg = write_config(tmp_path / "cfg.yaml", config_text(tmp_path / "state", served.url, influx=None))
        for _attempt in range(3):  # an upload between the two reads changes the data: read again
            dry = collector_cli(["run", "--once", "--dry-run", "-c", str(cfg)])
            assert dry.returncode == 0, dry.stderr
            saved = tmp_path / "real.json"
            saved.write_text(fetch(served.url, REAL, {"sns": [HYB]}))
            parsed = collector_cli(
                ["parse", "--vendor", "foxess", "--endpoint", "real", "--tz", "UTC", str(saved)]
            )
            assert parsed.returncode == 0, parsed.stderr
            pipeline = [ln for ln in dry.stdout.splitlines() if ln.startswith("inverter,")]
            if pipeline and pipeline[-1].rsplit(" ", 1)[1] == parsed.stdout.strip().rsplit(" ", 1)[1]:
                break
    assert len(pipeline) == 1
    assert parsed.stdout.splitlines() == [without_source_and_site(pipeline[0])]
    assert "source=fox" in pipeline[0] and "site=site-berlin-1" in pipeline[0]


def test_devices_pages_through_every_inverter_and_shows_site_and_zone(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    berlin = [pv_only(f"60F3BE{i:010d}") for i in range(70)]
    york = [pv_only(f"60F3NY{i:010d}") for i in range(50)]
    plant = Plant(
        [
            Site("site-berlin", "Berlin roof", "Europe/Berlin", 52.5, 13.4, tuple(berlin), today),
            Site("site-york", "New York roof", "America/New_York", 40.7, -74.0, tuple(york), today),
        ]
    )
    sim = RecordingSim(plant, api_keys={KEY: None})
    with SimThread(sim) as served:
        cfg = write_config(tmp_path / "cfg.yaml", config_text(tmp_path / "state", served.url, influx=None))
        res = collector_cli(["devices", "-c", str(cfg)])
    assert res.returncode == 0, res.stderr
    listed = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "site":
            # "site <id>  inverter <sn>  (<zone>)  <name>"
            listed[parts[3]] = (parts[1], parts[4].strip("()"))
    assert len(listed) == 120  # more than one page of 100
    assert all(listed[inv.sn] == ("site-berlin", "Europe/Berlin") for inv in berlin)
    assert all(listed[inv.sn] == ("site-york", "America/New_York") for inv in york)
    pages = [r.body["currentPage"] for r in sim.requests_to(DEVICE_LIST)]
    assert pages == [1, 2]
    assert sim.violations == 0
