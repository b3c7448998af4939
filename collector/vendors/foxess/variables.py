"""The FoxESS real-time / history variable catalogue, as the vendor documents it.

`DOC_VARIABLES` is the doc's "Variable table" (`vendor-docs/foxess-open-api.txt`,
Public information → Variable table): every variable name with the unit the
doc gives (None where the doc gives none). It is the vendor's word, not ours:
two of those units are wrong (`todayYield` "kW", `energyThroughput` "Wh"), and
`mapping.py` says which unit it really uses for each variable and why.

`EXTRA_VARIABLES` are variables real responses carry that the doc's table
lacks (research/foxess.md §4.1 "Newer variables seen").

`RUNNING_STATES` is the doc's `runningState` enum.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


def _pv_strings() -> dict[str, str]:
    out: dict[str, str] = {}
    for n in range(1, 19):  # the doc lists PV1 … PV18
        out[f"pv{n}Volt"] = "V"
        out[f"pv{n}Current"] = "A"
        out[f"pv{n}Power"] = "kW"
    return out


_DOC: dict[str, str | None] = {
    "todayYield": "kW",
    "pvPower": "kW",
    **_pv_strings(),
    "epsPower": "kW",
    "epsCurrentR": "A",
    "epsVoltR": "V",
    "epsPowerR": "kW",
    "epsCurrentS": "A",
    "epsVoltS": "V",
    "epsPowerS": "kW",
    "epsCurrentT": "A",
    "epsVoltT": "V",
    "epsPowerT": "kW",
    "RCurrent": "A",
    "RVolt": "V",
    "RFreq": "Hz",
    "RPower": "kW",
    "SCurrent": "A",
    "SVolt": "V",
    "SFreq": "Hz",
    "SPower": "kW",
    "TCurrent": "A",
    "TVolt": "V",
    "TFreq": "Hz",
    "TPower": "kW",
    "ambientTemperation": "℃",
    "boostTemperation": "℃",
    "invTemperation": "℃",
    "chargeTemperature": "℃",
    "batTemperature": "℃",
    "dspTemperature": "℃",
    "loadsPower": "kW",
    "loadsPowerR": "kW",
    "loadsPowerS": "kW",
    "loadsPowerT": "kW",
    "generationPower": "kW",
    "feedinPower": "kW",
    "gridConsumptionPower": "kW",
    "invBatVolt": "V",
    "invBatCurrent": "A",
    "invBatPower": "kW",
    "batChargePower": "kW",
    "batDischargePower": "kW",
    "batVolt": "V",
    "batCurrent": "A",
    "meterPower": "kW",
    "meterPower2": "kW",
    "meterPowerR": "kW",
    "meterPowerS": "kW",
    "meterPowerT": "kW",
    "SoC": "%",
    "ReactivePower": "kVar",
    "PowerFactor": None,
    "generation": "kWh",
    "ResidualEnergy": "kWh",
    "runningState": None,
    "batStatus": None,
    "batStatusV2": None,
    "currentFault": None,
    "currentFaultCount": None,
    "energyThroughput": "Wh",
    "SOH": "%",
    "gridConsumption": "kWh",
    "loads": "kWh",
    "feedin": "kWh",
    "chargeEnergyToTal": "kWh",
    "dischargeEnergyToTal": "kWh",
}

DOC_VARIABLES: Mapping[str, str | None] = MappingProxyType(_DOC)
"""Every variable of the doc's table → the unit the doc gives (None: none given)."""

EXTRA_VARIABLES: Mapping[str, str | None] = MappingProxyType(
    {
        # "Photovoltaic power generation", kWh (research/foxess.md §4.1; doc V1.0.9 adds
        # "PV power generation data in the report" but not to the variable table).
        "PVEnergyTotal": "kWh",
    }
)
"""Variables seen in real responses but missing from the doc's table."""

KNOWN_VARIABLES: Mapping[str, str | None] = MappingProxyType({**_DOC, **EXTRA_VARIABLES})

RUNNING_STATES: Mapping[int, str] = MappingProxyType(
    {
        160: "self-test",
        161: "waiting",
        162: "checking",
        163: "on-grid",
        164: "off-grid",
        165: "fault",
        166: "permanent-fault",
        167: "standby",
        168: "upgrading",
        169: "fct",
        170: "illegal",
    }
)
"""The doc's `runningState` enum (code → the vendor's word)."""

REPORT_VARIABLES: tuple[str, ...] = (
    "generation",
    "feedin",
    "gridConsumption",
    "chargeEnergyToTal",
    "dischargeEnergyToTal",
    "loads",
    "PVEnergyTotal",
)
"""What we ask `/op/v0/device/report/query` for (doc request example plus `loads` and
`PVEnergyTotal`, research/foxess.md §4.3; the misspelt `ToTal` is the API's)."""

BATTERY_REPORT_VARIABLES = frozenset({"chargeEnergyToTal", "dischargeEnergyToTal"})
"""Report variables left out of the request for a device the device list says has no battery."""
