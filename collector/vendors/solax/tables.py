"""SolaX code tables (token API v1/v2, Sunvec Connect, EV-charger pile API), as frozen data.

The tables grow: a new code is a new row, never new logic. Every lookup keeps the raw code
beside the result (the mapper writes both), and an unknown code is not an error: it gives
``"unknown"`` (states) or ``None`` (battery capability), so the mapper falls back to the raw value.

* :data:`INVERTER_TYPES` — ``inverterType`` → :class:`InverterModel` (research/solax.md §3.3, the
  newer table; the V6.1 names of the codes that changed are kept in comments).
* :data:`INVERTER_STATUS` — ``inverterStatus`` → (doc name, ``inverter.state`` word) (vendor doc
  solaxcloud-user-api-v2 §8.1 for 100–114 / 130–133; research/solax.md §3.4 for the rest).
* :data:`BATTERY_STATUS` — token-API ``batStatus`` (research/solax.md §3.4; the Developer API has a
  different table, which does not belong here).
* :data:`CHARGER_STATUS`, :data:`CHARGING_MODES` — pile API ``chargerStatus`` / ``chargingMode``
  (research/solax.md §5.3).

Sunvec Connect is the SolaX backend rebranded (research/solax.md §6) and uses the same tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class InverterModel:
    """What an ``inverterType`` code says about the hardware.

    ``battery``: the model can have a battery (hybrid, AC-coupled or storage unit); a PV-only model
    sends ``0`` placeholders for the battery fields, which the mapper must drop. ``phases`` and
    ``mppts``: the model's AC phases and MPPT inputs, ``None`` where the family varies or the notes
    do not say (``0`` MPPTs: an AC-coupled unit without PV inputs).
    """

    name: str
    battery: bool
    phases: int | None = None
    mppts: int | None = None


def _m(name: str, battery: bool, phases: int | None = None, mppts: int | None = None) -> InverterModel:
    return InverterModel(name, battery, phases, mppts)


# Source: research/solax.md §3.3 (the newer table: notes A2, Developer API portal v34 in A11; local-API
# evidence agrees). Phases follow the family prefix (X1/A1/J1 one phase, X3/J3/C3 three). MPPT counts
# are given only where the model fixes them (and as collector/simulators/solax.py INVERTER_MODELS
# serves them). "Decision" marks a battery flag the notes do not settle.
INVERTER_TYPES: Mapping[int, InverterModel] = MappingProxyType(
    {
        1: _m("X1-LX", False, 1),
        2: _m("X-Hybrid", True),
        3: _m("X1-Hybrid/Fit", True, 1),  # Dev API: X1-Hybrid-G3
        4: _m("X1-Boost/Air/Mini", False, 1, 2),  # not X1-Hybrid (notes §3.3; doc sample: powerdc1/2 only)
        5: _m("X3-Hybrid/Fit", True, 3),  # new name X3-Hybrid-G1/G2
        6: _m("X3-20K/30K", False, 3),
        7: _m("X3-MIC/PRO", False, 3),
        8: _m("X1-Smart", False, 1),
        9: _m("X1-AC", True, 1, 0),  # AC-coupled retrofit storage: no PV inputs
        10: _m("A1-Hybrid", True, 1),
        11: _m("A1-Fit", True, 1),  # Decision: "Fit" is SolaX's AC-coupled retrofit (as X1-Fit)
        12: _m("A1-Grid", False, 1),  # the notes write "A1(-Grid)"
        13: _m("J1-ESS", True, 1),
        14: _m("X3-Hybrid-G4", True, 3, 2),
        15: _m("X1-Hybrid-G4", True, 1, 2),
        16: _m("X3-MIC/PRO-G2", False, 3, 2),
        17: _m("X1-SPT", False, 1),
        18: _m("X1-Boost-G4", False, 1, 2),  # the notes write "X1-Boost(/Mini)-G4"
        19: _m("A1-HYB-G2", True, 1),
        20: _m("A1-AC-G2", True, 1, 0),
        21: _m("A1-SMT-G2", False, 1),
        22: _m("X1-Mini-G4", False, 1, 1),  # V6.1: X3-FTH (now 100)
        23: _m("X1-IES", True, 1),  # V6.1: X3-MGA-G2 (now 101)
        24: _m("X3-IES", True, 3),
        25: _m("X3-ULT", True, 3, 3),  # the simulator's "X3-Ultra"
        26: _m("X1-SMART-G2", False, 1),
        27: _m("A1-Micro 1 in 1", False, 1, 1),
        28: _m("X1-Micro 2 in 1", False, 1, 2),
        29: _m("X1-Micro 4 in 1", False, 1, 4),
        31: _m("X3-AELIO", True, 3),
        32: _m("X3-HYB-G4 PRO", True, 3),
        33: _m("X3-NEO-LV", True, 3),  # Decision: NEO-LV is a low-voltage-battery hybrid
        34: _m("X1-VAST", True, 1),  # Decision: X1-VAST is sold as a hybrid
        35: _m("X3-IES-P", True, 3),
        36: _m("J3-ULT-LV-16.5K", True, 3),
        37: _m("J3-ULT-30K", True, 3),
        38: _m("J1-ESS-HB-2", True, 1),
        39: _m("C3-IES", True, 3),
        40: _m("X3-IES-A", True, 3),
        41: _m("X1-IES-A", True, 1),
        43: _m("X3-ULT-GLV", True, 3),
        44: _m("X1-MINI-G4 PLUS", False, 1),
        46: _m("X1-Reno-LV", True, 1),  # Decision: a low-voltage-battery hybrid
        47: _m("A1-HYB-G3", True, 1),
        48: _m("X1-Micro 4in1 G2", False, 1, 4),  # Dev API
        49: _m("X1-Micro 2in1 G2", False, 1, 2),  # Dev API
        50: _m("X-MS 2700", True),  # Dev API; Decision: taken for a micro-storage unit (unverified)
        64: _m("OG", True),  # Dev API; Decision: an off-grid inverter runs on a battery
        66: _m("X1-SPT-10K/12K", False, 1),  # Dev API; as X1-SPT
        67: _m("LVE", True),  # Dev API; Decision: taken for a low-voltage ESS (unverified)
        69: _m("AEGIS", True),  # Dev API; Decision: unverified — battery fields are kept (the safer error)
        70: _m("X3-AELIO(LA)", True, 3),  # Dev API
        100: _m("X3-FTH", False, 3),  # V6.1 code 22
        101: _m("X3-MGA-G2", False, 3),  # V6.1 code 23; local API reports type 101 too
        102: _m("X1-Hybrid-LV", True, 1),
        103: _m("X1-Lite-LV", True, 1),  # Decision: an LV-battery hybrid like 102
        104: _m("X3-GRAND-HV", False, 3),  # Decision: large on-grid string inverter
        105: _m("X3-FORTH-PLUS", False, 3),  # Decision: commercial on-grid string inverter
        108: _m("X3-MIC-G3", False, 3),  # Dev API
        109: _m("X3-PRO-G3", False, 3),  # Dev API
    }
)


def inverter_model(type_code: int | None) -> InverterModel | None:
    """The model of an ``inverterType`` code; ``None`` for no code or one not in the table."""
    if type_code is None:
        return None
    return INVERTER_TYPES.get(type_code)


def has_battery(type_code: int | None) -> bool | None:
    """Whether the model can have a battery; ``None`` for an unknown type (trust non-null values)."""
    model = inverter_model(type_code)
    return None if model is None else model.battery


# Source: vendor doc solaxcloud-user-api-v2 §8.1 (100–114, 130–133; its "400 TOLL D: 1" is an OCR
# artifact, research/solax.md §3.4) and research/solax.md §3.4 for the extended codes (A1 / A11;
# where they name a code differently the A1 name is kept, the A11 one after a slash). Every
# operating mode (TOU, VPP, work modes, generator) is "normal": the inverter runs on grid.
INVERTER_STATUS: Mapping[int, tuple[str, str]] = MappingProxyType(
    {
        100: ("Waiting for operation", "starting"),
        101: ("Self-test", "starting"),
        102: ("Normal", "normal"),
        103: ("Recoverable fault", "fault"),
        104: ("Permanent fault", "permanent_fault"),
        105: ("Firmware upgrade", "updating"),
        106: ("EPS detection", "off_grid"),
        107: ("Off-grid", "off_grid"),
        108: ("Self-test mode (Italian safety regulations)", "starting"),
        109: ("Sleep mode", "standby"),
        110: ("Standby mode", "standby"),
        111: ("Photovoltaic wake-up battery mode", "starting"),
        112: ("Generator detection mode", "starting"),  # Decision: checking before generator mode
        113: ("Generator mode", "normal"),  # Decision: feeds the house (from the generator)
        114: ("Fast shutdown standby mode", "standby"),  # RSD
        130: ("VPP mode", "normal"),
        131: ("TOU-Self use", "normal"),
        132: ("TOU-Charging", "normal"),
        133: ("TOU-Discharging", "normal"),
        134: ("TOU battery off", "normal"),
        135: ("TOU peak shaving", "normal"),
        136: ("Generator normal operation / Normal (GEN)", "normal"),
        137: ("Battery expansion / Normal (BAT-E)", "normal"),
        138: ("On-grid battery heating / Normal (BAT-H)", "normal"),
        139: ("EPS battery heating / EPS (BAT-H)", "off_grid"),
        140: ("Start mode", "starting"),  # A11
        141: ("Normal (R-1)", "normal"),
        142: ("Normal (R-2)", "normal"),
        143: ("Normal (R-3)", "normal"),
        144: ("Normal (R-4)", "normal"),
        145: ("Normal (R-5)", "normal"),
        146: ("Normal (R-6)", "normal"),
        147: ("Normal (R-7)", "normal"),
        148: ("Normal (SS)", "normal"),  # A1
        150: ("Self use", "normal"),
        151: ("Force time use", "normal"),
        152: ("Back up", "normal"),
        153: ("Feed-in priority", "normal"),
        154: ("Demand", "normal"),
        155: ("Const power", "normal"),
        160: ("OpenADR", "normal"),
        170: ("Stop", "standby"),  # A11; Decision: stopped on command, not a fault
        171: ("Debug", "unknown"),  # A11; Decision: a service mode says nothing about operation
        174: ("Normal (Smart self-use)", "normal"),  # A11
        175: ("Normal (Smart feed-in)", "normal"),  # A11
        176: ("Normal (Smart battery not discharge)", "normal"),  # A11
        177: ("Normal (WLV 0 %)", "normal"),  # A11
        **{code: (f"VPP sub-mode {code - 1300}", "normal") for code in range(1301, 1310)},  # A11
    }
)


def inverter_state(code: int | None) -> str:
    """An ``inverterStatus`` code → the ``inverter.state`` word; ``"unknown"`` for none or a new code."""
    if code is None:
        return "unknown"
    row = INVERTER_STATUS.get(code)
    return "unknown" if row is None else row[1]


# Source: research/solax.md §3.4 (token API ``batStatus``; not the Developer API's table).
BATTERY_STATUS: Mapping[int, str] = MappingProxyType({0: "normal", 1: "fault", 2: "disconnected"})


# Source: research/solax.md §5.3, the OCPP-aligned table (Developer API EV_STATUS_MAP in A11 and the
# squishykid local decoder agree on 0–8; 9–13 are the Developer API's), the notes' default. The pile
# doc leaves ``chargerStatus`` undocumented, so the raw code is always kept beside the word.
CHARGER_STATUS: Mapping[int, tuple[str, str]] = MappingProxyType(
    {
        0: ("Available", "idle"),
        1: ("Preparing", "connected"),
        2: ("Charging", "charging"),
        3: ("Finishing", "finished"),
        4: ("Faulted", "fault"),
        5: ("Unavailable", "offline"),
        6: ("Reserved", "idle"),
        7: ("SuspendedEV", "connected"),
        8: ("SuspendedEVSE", "connected"),
        9: ("Update", "offline"),  # Decision: firmware update, the charger cannot charge
        10: ("Card activation", "connected"),  # Decision: waiting for the RFID card, car plugged in
        11: ("Start delay", "connected"),  # a delayed start: plugged in, not yet charging
        12: ("Charge pause", "connected"),  # as SuspendedEVSE
        13: ("Stopping", "finished"),  # Decision: the session is ending, as Finishing
    }
)


def charger_state(code: int | None) -> str:
    """A ``chargerStatus`` code → the ``ev_charger.state`` word; ``"unknown"`` for none or a new code."""
    if code is None:
        return "unknown"
    row = CHARGER_STATUS.get(code)
    return "unknown" if row is None else row[1]


# Source: research/solax.md §5.3 (pile doc, local X3-EVC API, Developer API ``workMode`` agree).
CHARGING_MODES: Mapping[int, str] = MappingProxyType({0: "STOP", 1: "FAST", 2: "ECO", 3: "GREEN"})


__all__ = [
    "BATTERY_STATUS",
    "CHARGER_STATUS",
    "CHARGING_MODES",
    "INVERTER_STATUS",
    "INVERTER_TYPES",
    "InverterModel",
    "charger_state",
    "has_battery",
    "inverter_model",
    "inverter_state",
]
