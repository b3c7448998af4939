"""Vendor-cloud simulators over one deterministic plant model (for tests and ``solar-collector demo``).

* :mod:`collector.simulators.plant` — the plant model and its truth in base SI units;
* :mod:`collector.simulators.base` — the framework: HTTP runner, limits, call log, fault injection;
* :mod:`collector.simulators.foxess` — the FoxESS Cloud Open API;
* :mod:`collector.simulators.sungrow` — the Sungrow iSolarCloud Open API V1 gateway.

Run one standalone with ``python -m collector.simulators foxess|sungrow [--port N] [--key K]``.
"""

from typing import Protocol

from collector.simulators.base import Injection, ManualClock, Simulator
from collector.simulators.foxess import DEMO_API_KEY, FoxessLimits, FoxessQuirks, FoxessSim, demo_plant
from collector.simulators.plant import Plant, Truth
from collector.simulators.sungrow import SungrowSim


class DemoFactory(Protocol):
    """A simulator class with a ``demo()`` constructor (its demo plant and credentials)."""

    def demo(self) -> Simulator: ...


SIMULATORS: dict[str, DemoFactory] = {"foxess": FoxessSim, "sungrow": SungrowSim}
"""Vendor slug → simulator class (explicit, no plugin discovery)."""

__all__ = [
    "DEMO_API_KEY",
    "SIMULATORS",
    "FoxessLimits",
    "FoxessQuirks",
    "FoxessSim",
    "Injection",
    "ManualClock",
    "Plant",
    "Simulator",
    "SungrowSim",
    "Truth",
    "demo_plant",
]
