"""Vendor-cloud simulators over one deterministic plant model (for tests and ``solar-collector demo``).

* :mod:`collector.simulators.plant` — the plant model and its truth in base SI units;
* :mod:`collector.simulators.base` — the framework: HTTP runner, limits, call log, fault injection;
* :mod:`collector.simulators.foxess` — the FoxESS Cloud Open API.

Run one standalone with ``python -m collector.simulators foxess [--port N] [--key K]``.
"""

from collector.simulators.base import Injection, ManualClock, Simulator
from collector.simulators.foxess import DEMO_API_KEY, FoxessLimits, FoxessQuirks, FoxessSim, demo_plant
from collector.simulators.plant import Plant, Truth

SIMULATORS = {"foxess": FoxessSim}
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
    "Truth",
    "demo_plant",
]
