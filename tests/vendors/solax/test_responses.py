"""SolaX-family layer 2: the records keep the vendor's names and values, whatever the key casing."""

from __future__ import annotations

import time

import pytest

from collector.errors import VendorDataQualityError
from collector.simulators.solax import DEMO_HYBRID_WIFI_SN, DEMO_PILE_SN, SolaxSim
from collector.vendors.solax.responses import PILE_FIELDS, REALTIME_FIELDS, read_pile, read_realtime


def test_the_doc_sample_is_read_raw() -> None:
    sample = {
        "inverterSN": "H34*****6008", "sn": "SR*****RM", "acpower": 152, "yieldtoday": 0.2,
        "yieldtotal": 2420.5, "feedinpower": 0, "soc": None, "inverterType": "4",
        "inverterStatus": "102", "uploadTime": "2024-08-20 09:21:43", "powerdc1": 162, "idc1": 0.4,
    }  # fmt: skip
    rec = read_realtime(sample, "SR*****RM")
    assert rec.inverter_sn == "H34*****6008" and rec.dongle_sn == "SR*****RM"
    assert rec.upload_time == "2024-08-20 09:21:43" and rec.utc_time is None
    assert rec.values["inverterStatus"] == "102" and rec.values["soc"] is None
    assert rec.values["idc1"] == 0.4  # unknown keys kept, the mapping ignores them


def test_key_casing_does_not_matter() -> None:
    rec = read_realtime({"inverterSn": "X1", "ACPOWER": 5, "utcdatetime": "2026-10-06T13:23:04Z"}, "SW1")
    assert rec.inverter_sn == "X1" and rec.values["acpower"] == 5
    assert rec.utc_time == "2026-10-06T13:23:04Z"
    # the doc's own spelling wins when both come
    assert read_realtime({"acpower": 1, "ACPower": 2}, "SW1").values["acpower"] == 1
    pile = read_pile({"ChargingPower": 7400, "chargerStatus": 2}, "C1")
    assert pile.values == {"chargingPower": 7400, "chargerStatus": 2}


@pytest.mark.parametrize("bad", [None, [], "no auth!", 3])
def test_a_result_that_is_not_an_object(bad: object) -> None:
    with pytest.raises(VendorDataQualityError):
        read_realtime(bad, "SW1")
    with pytest.raises(VendorDataQualityError):
        read_pile(bad, "C1")


def test_the_simulator_serves_every_documented_field() -> None:
    sim = SolaxSim.demo()
    now = time.time()
    rec = read_realtime(sim.record(DEMO_HYBRID_WIFI_SN, now), DEMO_HYBRID_WIFI_SN)
    assert set(REALTIME_FIELDS) <= set(rec.values)
    assert set(read_pile(sim.pile_record(DEMO_PILE_SN, now), DEMO_PILE_SN).values) == set(PILE_FIELDS)
