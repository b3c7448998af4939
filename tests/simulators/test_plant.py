"""The plant model: determinism, energy consistency, balances, states, uploads, DST days."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from collector.simulators.plant import (
    STEP_S,
    Battery,
    Fault,
    GridCharge,
    Inverter,
    Outage,
    Plant,
    PvString,
    Site,
    local_midnight,
    local_time,
)

ZONE = "Europe/Berlin"
HYB = "PLANTHYB0000001"
PVO = "PLANTPVO0000002"


def make_plant(commissioned: date = date(2025, 6, 18), **kwargs: object) -> Plant:
    hybrid = Inverter(
        HYB,
        "H3-8.0-E",
        8000,
        (PvString(5.0, 0.3), PvString(3.0, -0.3)),
        battery=Battery(10360, packs=2, grid_charge=GridCharge(2, 5, 80, 2500)),
        phases=3,
        load_kwh_per_day=25.0,
    )
    pv = Inverter(PVO, "F3000", 3000, (PvString(3.3),))
    site = Site("site-1", "Test", ZONE, 52.5, 13.4, (hybrid, pv), commissioned)
    return Plant([site], **kwargs)  # type: ignore[arg-type]


def test_truth_is_deterministic_and_cache_independent() -> None:
    t = local_time(ZONE, date(2025, 6, 21), 13, 7) + 17
    a = make_plant().truth(HYB, t)
    fresh = make_plant(cache_days=1)
    fresh.truth(HYB, t + 5 * 86400)  # evicts the day of t from the tiny cache
    assert fresh.truth(HYB, t) == a
    assert make_plant(seed=7).truth(HYB, t) != a


@pytest.mark.parametrize("sn", [HYB, PVO])
def test_counters_are_the_integral_of_the_power_curves(sn: str) -> None:
    plant = make_plant()
    day = date(2025, 6, 21)
    start, end = local_midnight(ZONE, day), local_midnight(ZONE, day + timedelta(days=1))
    minutes = [plant.truth(sn, t) for t in range(start, end, STEP_S)]
    pv_wh = sum(tr.pv_power_w for tr in minutes) * STEP_S / 3600
    yield_wh = sum(max(tr.ac_power_w, 0) for tr in minutes) * STEP_S / 3600
    load_wh = sum(tr.load_power_w for tr in minutes) * STEP_S / 3600
    import_wh = sum(tr.grid_import_power_w for tr in minutes) * STEP_S / 3600
    at_end = plant.truth(sn, end - 1)
    last = minutes[-1]
    # the truth at the last second of the day lacks one second of the last step
    assert at_end.today.pv_wh + last.pv_power_w / 3600 == pytest.approx(pv_wh, rel=1e-9, abs=1e-6)
    assert at_end.today.yield_wh + max(last.ac_power_w, 0) / 3600 == pytest.approx(yield_wh, rel=1e-9)
    assert at_end.today.load_wh + last.load_power_w / 3600 == pytest.approx(load_wh, rel=1e-9)
    assert at_end.today.grid_import_wh + last.grid_import_power_w / 3600 == pytest.approx(
        import_wh, rel=1e-9, abs=1e-6
    )
    assert plant.energy(sn, start, end).pv_wh == pytest.approx(pv_wh, rel=1e-9)
    assert pv_wh > 10_000 if sn == HYB else pv_wh > 5_000  # a June day produces

    # sampled every 5 minutes (what a cloud's history gives) the integral is still within 1 %
    samples = [plant.truth(sn, t).pv_power_w for t in range(start + 137, end, 300)]
    assert sum(samples) * 300 / 3600 == pytest.approx(pv_wh, rel=0.01)
    # today's counters reset at local midnight; lifetime counters carry on
    after = plant.truth(sn, end + 30)
    assert after.today.pv_wh == pytest.approx(0.0, abs=1e-9)
    assert after.total.yield_wh >= at_end.total.yield_wh


def test_flows_balance_and_stay_in_range() -> None:
    plant = make_plant()
    start = local_midnight(ZONE, date(2025, 6, 20))
    saw_grid_charge = saw_export = saw_discharge = False
    for t in range(start, start + 2 * 86400, 420):
        tr = plant.truth(HYB, t)
        bat = tr.battery
        assert bat is not None
        assert tr.grid_import_power_w >= 0 and tr.grid_export_power_w >= 0
        assert tr.grid_import_power_w * tr.grid_export_power_w == 0
        assert bat.charge_power_w >= 0 and bat.discharge_power_w >= 0
        assert bat.charge_power_w * bat.discharge_power_w == 0
        # the inverter's grid meter sees load - ac output
        net = tr.grid_import_power_w - tr.grid_export_power_w
        assert tr.load_power_w == pytest.approx(tr.ac_power_w + net, abs=1e-6)
        assert 10 - 1e-6 <= bat.soc_pct <= 100 + 1e-6
        assert sum(p.soc_pct for p in bat.packs) / 2 == pytest.approx(bat.soc_pct, abs=1e-6)
        assert tr.pv_power_w == pytest.approx(sum(s.power_w for s in tr.strings))
        for s in tr.strings:
            if s.power_w:
                assert s.voltage_v * s.current_a == pytest.approx(s.power_w)
        saw_grid_charge |= tr.ac_power_w < 0
        saw_export |= tr.grid_export_power_w > 0
        saw_discharge |= bat.discharge_power_w > 0
    assert saw_grid_charge and saw_export and saw_discharge


def test_running_state_timeline_and_fault_schedule() -> None:
    day = date(2025, 6, 21)
    fault = Fault(PVO, 8, local_time(ZONE, day, 12), local_time(ZONE, day, 13), "PV Voltage Fault")
    plant = make_plant(faults=[fault])
    night, noon = local_time(ZONE, day, 1), local_time(ZONE, day, 11)
    assert plant.truth(PVO, night).state == "standby"
    assert plant.truth(PVO, noon).state == "normal"
    during = plant.truth(PVO, fault.start + 60)
    assert during.state == "fault" and during.fault_codes == (8,)
    assert during.pv_power_w == 0 and during.strings[0].voltage_v > 0  # open circuit
    assert plant.truth(PVO, fault.end).state == "normal"
    # the first minutes after sunrise: checking, no feed-in
    sunrise = next(t for t in range(night, noon, 60) if plant.truth(PVO, t).state != "standby")
    assert plant.truth(PVO, sunrise).state == "starting"
    assert plant.truth(PVO, sunrise).pv_power_w == 0
    with pytest.raises(ValueError):
        make_plant(faults=[Fault(PVO, 8, fault.start + 1, fault.end)])  # not step-aligned


def test_uploads_have_a_device_phase_and_skip_outages() -> None:
    day = date(2025, 6, 21)
    outage = Outage(HYB, local_time(ZONE, day, 9), local_time(ZONE, day, 10))
    plant = make_plant(outages=[outage])
    t = local_time(ZONE, day, 8)
    u_h, u_p = plant.upload_time(HYB, t), plant.upload_time(PVO, t)
    assert u_h is not None and u_p is not None
    assert t - 300 < u_h <= t and t - 300 < u_p <= t
    assert u_h % 300 != u_p % 300  # per-device phase
    assert plant.upload_time(HYB, u_h + 299) == u_h
    inside = plant.upload_time(HYB, outage.start + 1800)
    assert inside is not None and inside < outage.start
    uploads = plant.upload_times(HYB, outage.start - 3600, outage.end + 3600)
    assert not any(outage.start <= u < outage.end for u in uploads)
    assert len(uploads) == 24  # 3 h of 300-s uploads minus the 12 of the outage hour
    snap = plant.snapshot(HYB, outage.start + 1800)
    assert snap is not None and snap.t == inside
    assert plant.upload_time(HYB, local_midnight(ZONE, date(2025, 6, 17))) is None  # before commissioning


@pytest.mark.parametrize(("day", "hours"), [(date(2025, 3, 30), 23), (date(2025, 10, 26), 25)])
def test_dst_days_are_local_days(day: date, hours: int) -> None:
    plant = make_plant(commissioned=day - timedelta(days=1))
    start, end = local_midnight(ZONE, day), local_midnight(ZONE, day + timedelta(days=1))
    assert end - start == hours * 3600
    assert plant.truth(PVO, end - 1).today.pv_wh > 0
    assert plant.truth(PVO, end).today.pv_wh == 0
    # the load's evening peak follows the local clock, not UTC
    evening = plant.truth(HYB, local_time(ZONE, day, 19)).load_power_w
    afternoon = plant.truth(HYB, local_time(ZONE, day, 15)).load_power_w
    assert evening > afternoon
