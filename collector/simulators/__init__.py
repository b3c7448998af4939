"""Vendor-cloud simulators over one deterministic plant model (for tests and ``solar-collector demo``).

* :mod:`collector.simulators.plant` — the plant model and its truth in base SI units;
* :mod:`collector.simulators.ev` — the EV-charger model (charge sessions) in base SI units;
* :mod:`collector.simulators.base` — the framework: HTTP runner, limits, call log, fault injection;
* :mod:`collector.simulators.foxess` — the FoxESS Cloud Open API;
* :mod:`collector.simulators.sungrow` — the Sungrow iSolarCloud Open API V1 gateway;
* :mod:`collector.simulators.solax` — the SolaX Cloud token APIs (realtime v2 and the EV-charger
  pile API on one server), also Sunvec Connect (``brand="sunvec"``).

Run one standalone with ``python -m collector.simulators foxess|sungrow|solax|sunvec [--port N]``.
"""

from typing import Protocol

from collector.simulators.base import Injection, ManualClock, Simulator
from collector.simulators.foxess import DEMO_API_KEY, FoxessLimits, FoxessQuirks, FoxessSim, demo_plant
from collector.simulators.plant import Plant, Truth
from collector.simulators.solax import BrandDemo, SolaxSim
from collector.simulators.sungrow import SungrowSim


class DemoFactory(Protocol):
    """A simulator class with a ``demo()`` constructor (its demo plant and credentials)."""

    def demo(self) -> Simulator: ...


SIMULATORS: dict[str, DemoFactory] = {
    "foxess": FoxessSim,
    "sungrow": SungrowSim,
    "solax": SolaxSim,
    "sunvec": BrandDemo("sunvec"),
}
"""Vendor slug → simulator class (explicit, no plugin discovery)."""

SERVED_BY: dict[str, str] = {"solax_ev": "solax"}
"""Vendor slugs without a simulator of their own → the slug whose simulator serves them. The SolaX
EV-charger (pile) API is served by the ``solax`` simulator: a ``solax_ev`` source uses that
simulator's base URL and the same token (one account, one limit budget)."""

__all__ = [
    "DEMO_API_KEY",
    "SERVED_BY",
    "SIMULATORS",
    "FoxessLimits",
    "FoxessQuirks",
    "FoxessSim",
    "Injection",
    "ManualClock",
    "Plant",
    "Simulator",
    "SolaxSim",
    "SungrowSim",
    "Truth",
    "demo_plant",
]
