"""The SolaX code tables: schema words only, the notes' codes, and agreement with the simulators."""

from __future__ import annotations

import pytest

from collector.schema.fields import field_spec
from collector.simulators import ev as sim_ev
from collector.simulators import solax as sim
from collector.vendors.solax.tables import (
    BATTERY_STATUS,
    CHARGER_STATUS,
    CHARGING_MODES,
    INVERTER_STATUS,
    INVERTER_TYPES,
    InverterModel,
    charger_state,
    has_battery,
    inverter_model,
    inverter_state,
)

# research/solax.md §3.3, the newer table (48/49, 50…70, 108/109 from the Developer API).
NOTES_TYPE_CODES = {
    *range(1, 30),
    *range(31, 42),
    43,
    44,
    46,
    47,
    48,
    49,
    50,
    64,
    66,
    67,
    69,
    70,
    100,
    101,
    102,
    103,
    104,
    105,
    108,
    109,
}

DOC_STATUS_CODES = {*range(100, 115), *range(130, 134)}  # vendor doc §8.1


def _state_choices(measurement: str) -> tuple[str, ...]:
    spec = field_spec(measurement, "state")
    assert spec is not None and spec.choices
    return spec.choices


def test_inverter_state_words_are_schema_words() -> None:
    allowed = _state_choices("inverter")
    assert {word for _, word in INVERTER_STATUS.values()} <= set(allowed)
    assert inverter_state(None) in allowed


def test_charger_state_words_are_schema_words() -> None:
    allowed = _state_choices("ev_charger")
    assert {word for _, word in CHARGER_STATUS.values()} <= set(allowed)
    assert charger_state(None) in allowed


def test_type_table_has_the_notes_codes() -> None:
    assert set(INVERTER_TYPES) == NOTES_TYPE_CODES
    for model in INVERTER_TYPES.values():
        assert isinstance(model, InverterModel) and model.name
        assert model.phases in (None, 1, 3)
        assert model.mppts is None or model.mppts >= 0


def test_battery_flags() -> None:
    assert has_battery(4) is False  # X1-Boost/Air/Mini, PV-only (notes §3.3)
    assert has_battery(14) is True and has_battery(15) is True
    assert INVERTER_TYPES[22].name == "X1-Mini-G4" and INVERTER_TYPES[100].name == "X3-FTH"


@pytest.mark.parametrize("code", [None, 0, 30, 42, 999])
def test_unknown_type(code: int | None) -> None:
    assert inverter_model(code) is None
    assert has_battery(code) is None


def test_status_table_has_the_doc_codes() -> None:
    assert set(INVERTER_STATUS) >= DOC_STATUS_CODES
    assert {*range(1301, 1310), 134, 177} <= set(INVERTER_STATUS)
    assert inverter_state(102) == "normal"
    assert inverter_state(103) == "fault"
    assert inverter_state(104) == "permanent_fault"
    assert inverter_state(105) == "updating"
    assert inverter_state(107) == "off_grid"
    assert inverter_state(109) == "standby" and inverter_state(110) == "standby"
    assert inverter_state(100) == "starting"


@pytest.mark.parametrize("code", [None, 0, 115, 400, 9999])
def test_unknown_status(code: int | None) -> None:
    assert inverter_state(code) == "unknown"


@pytest.mark.parametrize("code", [None, -1, 14, 99])
def test_unknown_charger_status(code: int | None) -> None:
    assert charger_state(code) == "unknown"


def test_simulator_models_agree() -> None:
    for name, (code, mppts) in sim.INVERTER_MODELS.items():
        model = INVERTER_TYPES[int(code)]
        assert model.mppts == mppts, name
    # the fallback codes the simulator serves for models it does not know (4/16 PV-only, 14/15 hybrid)
    for plant in (sim.demo_plant(), sim.demo_sunvec_plant()):
        for inv in plant.inverters:
            code, _ = sim.inverter_type(inv)
            model = INVERTER_TYPES[int(code)]
            assert model.battery is (inv.battery is not None), inv.model
            assert model.phases in (None, inv.phases), inv.model


def test_simulator_statuses_agree() -> None:
    for state, code in sim.INVERTER_STATUS.items():
        assert inverter_state(int(code)) == state
    assert inverter_state(int(sim.SolaxQuirks().standby_status)) == "standby"


def test_simulator_ev_tables_agree() -> None:
    for code, name in sim_ev.CHARGER_STATUS.items():
        assert CHARGER_STATUS[code][0] == name
    assert dict(CHARGING_MODES) == sim_ev.CHARGING_MODES
    assert charger_state(sim_ev.CHARGING) == "charging"
    assert charger_state(sim_ev.AVAILABLE) == "idle"


def test_battery_status() -> None:
    assert dict(BATTERY_STATUS) == {0: "normal", 1: "fault", 2: "disconnected"}


def test_tables_are_frozen() -> None:
    with pytest.raises(TypeError):
        INVERTER_TYPES[999] = InverterModel("x", False)  # type: ignore[index]
    with pytest.raises(AttributeError):
        INVERTER_TYPES[4].battery = True  # type: ignore[misc]
