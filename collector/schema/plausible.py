"""Plausibility: values the physics rules out are dropped and counted, never written (issue #7 §2).

One place for every vendor's checks; `mapping.apply` runs them on each point after the
unit conversion and rounding, so they hold for FoxESS, Sungrow and SolaX alike:

* **Ranges** by schema field (`RANGES`): a state of charge or health outside 0–100 %, a
  voltage outside 0–1500 V (residential PV strings, HV batteries and AC phases stay well
  inside it), a grid frequency outside 40–70 Hz (0 Hz: no grid measured, i.e. unknown).
* **Counters never go backwards** (`*_total_wh`), where the previous value of the same
  device is known (`Memory`: earlier records of this process, in data-time order): a
  lifetime total below an earlier one (or above a later one) is dropped. After
  `COUNTER_RESET_AFTER` refusals in a row the new level is accepted (a replaced meter or
  inverter, or an earlier glitch that got through), with a log line.
* **Residual energy against the state of charge** (`residual`): residual / SoC implies
  a pack capacity. Readings, in order: the value as labelled; the value as the pack
  capacity in kWh (some BMS firmware sends the capacity under the residual's name and
  label, research/foxess.md §5: `ResidualEnergy 10.34` "0.01kWh" at SoC 26 % on a 10.36
  kWh pack). Where the device's capacity is known (`Memory`, learned from earlier
  records that fit as labelled) a reading must imply it (±25 %); else it must imply a
  home battery of 1–1000 kWh. The first reading that fits is written (the capacity
  reading as capacity × SoC); none: left out and counted. Without a SoC (or below 1 %)
  nothing can be inferred and the value is written as labelled.
* **Corrupt registers** (`CORRUPT_ABOVE`, `refuse_corrupt`): a raw value at or above
  200,000,000 in the vendor's unit is a register whose high 16 bits are garbage
  (research/foxess.md §4.3 (c), §5), refused before conversion as a row transform.

Each value left out is counted by `MappingStats` as `implausible` (by vendor key) and
logged once (`mapping.implausible`, with the device, the field, the rule and the value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = [
    "CORRUPT_ABOVE",
    "COUNTER_RESET_AFTER",
    "HOME_BATTERY_WH",
    "RANGES",
    "Memory",
    "Verdict",
    "counter",
    "in_range",
    "refuse_corrupt",
    "residual",
    "rules_for",
]

#: A raw value at or above this (in the vendor's unit) is a corrupted register, not a
#: reading: the high 16 bits of a 32-bit total are garbage after firmware updates
#: (research/foxess.md §4.3 (c) and §5: TonyM masks values > 200,000,000; EnergyStats
#: "data ceiling", e.g. 201,539,769 that should read 3461.8).
CORRUPT_ABOVE = 200_000_000.0

#: (lowest, highest) allowed, by schema-field suffix or name, with the rule's name.
RANGES: Mapping[str, tuple[float, float, str]] = {
    "battery_soc_pct": (0.0, 100.0, "soc_0_100_pct"),
    "battery_soh_pct": (0.0, 100.0, "soh_0_100_pct"),
    "_voltage_v": (0.0, 1500.0, "voltage_0_1500_v"),
    "grid_frequency_hz": (40.0, 70.0, "grid_frequency_40_70_hz"),
}

#: A battery a home can have: 1 kWh … 1000 kWh, in Wh.
HOME_BATTERY_WH = (1_000.0, 1_000_000.0)
#: A reading fits a known capacity when it implies 0.8 … 1.25 × that capacity.
CAPACITY_TOLERANCE = 1.25
#: Counter refusals in a row after which the new level is taken as the truth.
COUNTER_RESET_AFTER = 3

RESIDUAL_FIELD = "battery_residual_energy_wh"
SOC_FIELD = "battery_soc_pct"


def refuse_corrupt(value: Any) -> Any:
    """Row transform: refuse a corrupted register value (counted as `transform`), pass the rest."""
    number = _number(value)
    if number is not None and abs(number) >= CORRUPT_ABOVE:
        raise ValueError(f"corrupt register value {number!r} (>= {CORRUPT_ABOVE:.0f})")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Verdict:
    """Why a value was refused: the rule's name and a short explanation."""

    rule: str
    detail: str


def rules_for(target: str) -> tuple[str, ...]:
    """The names of the rules that judge a schema field (for the vendor pages and their tests)."""
    out = [
        rule
        for key, (_, _, rule) in RANGES.items()
        if target == key or (key.startswith("_") and target.endswith(key))
    ]
    if target.endswith("_total_wh"):
        out.append("counter_backwards")
    if target == RESIDUAL_FIELD:
        out.append("residual_vs_soc")
    return tuple(out)


@lru_cache(maxsize=1024)
def _range(target: str) -> tuple[float, float, str] | None:
    """The first `RANGES` entry that judges a field (looked up once per field, not per value)."""
    for key, entry in RANGES.items():
        if target == key or (key.startswith("_") and target.endswith(key)):
            return entry
    return None


def in_range(target: str, value: float) -> Verdict | None:
    """The range rule a field's value breaks, if any (`RANGES`)."""
    entry = _range(target)
    if entry is None:
        return None
    lo, hi, rule = entry
    if not lo <= value <= hi:
        return Verdict(rule, f"{value!r} is outside {lo:g} … {hi:g}")
    return None


@dataclass
class _Track:
    time: int
    value: float
    refused: int = 0


@dataclass
class Memory:
    """What earlier records of a device said: lifetime counters and the battery's capacity.

    In memory only (one per vendor client, or per `parse`): a restart forgets it, and
    the first record after it is checked by its own record alone.
    """

    counters: dict[tuple[str, str], _Track] = field(default_factory=dict)
    capacity_wh: dict[str, float] = field(default_factory=dict)
    #: Residual refusals in a row against a known capacity: after COUNTER_RESET_AFTER the
    #: capacity is forgotten (it may have been learned wrong, or the pack was changed).
    capacity_refused: dict[str, int] = field(default_factory=dict)


def counter(memory: Memory | None, device: str, target: str, time: int, value: float) -> Verdict | None:
    """Check a lifetime counter against the same device's earlier and later values; remember it."""
    if memory is None or not target.endswith("_total_wh"):
        return None
    key = (device, target)
    seen = memory.counters.get(key)
    if seen is None:
        memory.counters[key] = _Track(time, value)
        return None
    if time == seen.time:
        return None
    backwards = value < seen.value if time > seen.time else value > seen.value
    if not backwards:
        if time > seen.time:
            memory.counters[key] = _Track(time, value)
        return None
    seen.refused += 1
    if seen.refused >= COUNTER_RESET_AFTER and time > seen.time:
        memory.counters[key] = _Track(time, value)  # a new level, seen again and again
        return None
    return Verdict("counter_backwards", f"{value!r} after {seen.value!r}")


def residual(
    memory: Memory | None,
    device: str,
    labelled_wh: float,
    raw: float,
    soc_pct: float | None,
) -> tuple[float | None, str, Verdict | None]:
    """The residual energy to write (Wh; None: none), which reading it is, and why if refused.

    `labelled_wh` is the value converted as its unit label says; `raw` the number as sent.
    """
    if soc_pct is None or soc_pct < 1 or not math.isfinite(labelled_wh):
        return labelled_wh, "labelled", None
    share = soc_pct / 100
    known = memory.capacity_wh.get(device) if memory is not None else None
    readings = (
        ("labelled", labelled_wh, labelled_wh / share),
        ("capacity_kwh", raw * 1000 * share, raw * 1000),
    )
    for name, value, capacity in readings:
        if known is not None:
            fits = known / CAPACITY_TOLERANCE <= capacity <= known * CAPACITY_TOLERANCE
        else:
            fits = HOME_BATTERY_WH[0] <= capacity <= HOME_BATTERY_WH[1]
        if fits:
            if memory is not None:
                memory.capacity_refused.pop(device, None)
                if known is None and (name == "capacity_kwh" or soc_pct >= 20):
                    memory.capacity_wh[device] = capacity  # precise enough to judge later records
            return value, name, None
    if memory is not None and known is not None:
        memory.capacity_refused[device] = memory.capacity_refused.get(device, 0) + 1
        if memory.capacity_refused[device] >= COUNTER_RESET_AFTER:
            del memory.capacity_wh[device], memory.capacity_refused[device]
    implied = labelled_wh / share / 1000
    against = f"the known {known / 1000:.2f} kWh" if known is not None else "a 1–1000 kWh home battery"
    return (
        None,
        "",
        Verdict(
            "residual_vs_soc",
            f"{labelled_wh:g} Wh at {soc_pct:g} % implies a {implied:.3g} kWh pack, and as the capacity "
            f"{raw:g} kWh does not fit {against} either",
        ),
    )
