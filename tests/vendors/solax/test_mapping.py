"""SolaX-family mapping against the simulator's plant truth: SI units, signs, no battery fields for
a PV-only model, the data time from `utcDateTime` or `uploadTime` (DST), the charger's units."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from collector.schema.mapping import MappingStats
from collector.simulators.solax import (
    DEMO_HYBRID_WIFI_SN,
    DEMO_PILE_SN,
    DEMO_PV_WIFI_SN,
    DEMO_ZONE,
    SolaxSim,
)
from collector.vendors.solax.mapping import (
    BATTERY_KEYS,
    charger_point,
    data_time,
    inverter_point,
)
from collector.vendors.solax.responses import read_pile, read_realtime

TAGS = {"vendor": "solax", "source": "home", "site": "home", "device": "X"}
ZONE = ZoneInfo(DEMO_ZONE)


@pytest.fixture(scope="module")
def sim() -> SolaxSim:
    return SolaxSim.demo()


def _noon(days_ago: int) -> float:
    day = datetime.now(ZONE).date().toordinal() - days_ago
    return datetime.fromordinal(day).replace(hour=12, tzinfo=ZONE).timestamp()


def test_hybrid_values_equal_the_truth(sim: SolaxSim) -> None:
    for t in (_noon(3), _noon(3) + 9 * 3600, _noon(4) - 9 * 3600):  # noon, 21:00, 03:00
        rec = read_realtime(sim.record(DEMO_HYBRID_WIFI_SN, t), DEMO_HYBRID_WIFI_SN)
        truth = sim.truth(DEMO_HYBRID_WIFI_SN, t)
        assert truth is not None and truth.battery is not None
        stats = MappingStats()
        point = inverter_point(rec, TAGS, data_time(rec, ZONE), stats)
        assert point is not None and point.time == truth.t
        f = point.fields
        assert f["pv_power_w"] == pytest.approx(truth.pv_power_w, abs=len(truth.strings))
        assert f["ac_power_w"] == pytest.approx(truth.ac_power_w, abs=1)
        assert f["grid_import_power_w"] == pytest.approx(truth.grid_import_power_w, abs=1)
        assert f["grid_export_power_w"] == pytest.approx(truth.grid_export_power_w, abs=1)
        assert f["battery_charge_power_w"] == pytest.approx(truth.battery.charge_power_w, abs=1)
        assert f["battery_discharge_power_w"] == pytest.approx(truth.battery.discharge_power_w, abs=1)
        assert f["battery_soc_pct"] == pytest.approx(truth.battery.soc_pct, abs=0.5)
        assert f["yield_energy_total_wh"] == pytest.approx(truth.total.yield_wh, abs=50)
        assert f["yield_energy_today_wh"] == pytest.approx(truth.today.yield_wh, abs=50)
        assert f["grid_export_energy_total_wh"] == pytest.approx(truth.total.grid_export_wh, abs=5)
        assert f["grid_import_energy_total_wh"] == pytest.approx(truth.total.grid_import_wh, abs=5)
        assert f["status_code"] in (102, 109, 110, 100) and f["state"] in ("normal", "standby", "starting")
        assert f["battery_status_code"] == 0
        assert stats.rejected == 0


def test_a_pv_only_model_gets_no_battery_or_eps_field(sim: SolaxSim) -> None:
    raw = sim.record(DEMO_PV_WIFI_SN, _noon(3))
    assert raw is not None and raw["inverterType"] == "4" and raw["soc"] == 0  # the cloud's placeholder
    rec = read_realtime(raw, DEMO_PV_WIFI_SN)
    point = inverter_point(rec, TAGS, data_time(rec, ZONE), MappingStats())
    assert point is not None
    assert not {"battery_soc_pct", "battery_charge_power_w", "battery_status_code", "eps_power_w"} & set(
        point.fields
    )
    pv = point.fields["pv_power_w"]
    assert isinstance(pv, float) and pv > 0
    assert "soc" in BATTERY_KEYS


def test_data_time_prefers_utc_date_time() -> None:
    rec = read_realtime({"uploadTime": "2026-10-06 15:23:04", "utcDateTime": "2026-10-06T13:23:04Z"}, "SW1")
    assert data_time(rec, ZoneInfo("Asia/Tokyo")) == int(
        datetime(2026, 10, 6, 13, 23, 4, tzinfo=UTC).timestamp()
    )
    rec = read_realtime({"uploadTime": "2026-10-06 15:23:04", "utcDateTime": "garbage"}, "SW1")
    assert data_time(rec, ZONE) == int(datetime(2026, 10, 6, 13, 23, 4, tzinfo=UTC).timestamp())


def test_upload_time_across_both_2026_changes() -> None:
    def at(text: str, after: int | None = None) -> int:
        return data_time(read_realtime({"uploadTime": text}, "SW1"), ZONE, after=after)

    def utc(*a: int) -> int:
        y, mo, d, h, mi = a
        return int(datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp())

    # spring: 02:30 does not exist on 2026-03-29 in Berlin; read with the offset before the gap
    assert at("2026-03-29 01:55:00") == utc(2026, 3, 29, 0, 55)
    assert at("2026-03-29 02:30:00") == utc(2026, 3, 29, 1, 30)
    assert at("2026-03-29 03:05:00") == utc(2026, 3, 29, 1, 5)
    # autumn: 02:30 on 2026-10-25 comes twice; the second pass once the device is past the first
    first = at("2026-10-25 02:30:00")
    assert first == utc(2026, 10, 25, 0, 30)
    assert at("2026-10-25 02:30:00", after=first) == utc(2026, 10, 25, 1, 30)
    assert at("2026-10-25 02:35:00", after=at("2026-10-25 02:55:00", after=first)) == utc(2026, 10, 25, 1, 35)


def test_the_charger_in_w_and_in_kw(sim: SolaxSim) -> None:
    found = False
    for hour in range(0, 24 * 6):
        t = _noon(6) + hour * 3600
        truth = sim.charger_truth(DEMO_PILE_SN, t)
        if truth is None or truth.status != 2 or truth.power_w < 1000:
            continue
        raw = sim.pile_record(DEMO_PILE_SN, t)
        assert raw is not None
        point, kw = charger_point(
            read_pile(raw, DEMO_PILE_SN), {**TAGS, "vendor": "solax_ev"}, int(t), MappingStats()
        )
        assert point is not None and not kw
        assert point.fields["charge_power_w"] == pytest.approx(truth.power_w, abs=1)
        assert point.fields["charge_energy_wh"] == pytest.approx(truth.session_energy_wh, abs=50)
        assert point.fields["state"] == "charging" and point.fields["status_code"] == 2
        kw_raw = {**raw, "chargingPower": round(truth.power_w / 1000, 2)}
        point, kw = charger_point(
            read_pile(kw_raw, DEMO_PILE_SN), {**TAGS, "vendor": "solax_ev"}, int(t), MappingStats()
        )
        assert (
            point is not None and kw and point.fields["charge_power_w"] == pytest.approx(truth.power_w, abs=5)
        )
        found = True
        break
    assert found, "the demo charger charged on none of the last six days"
