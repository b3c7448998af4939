"""Vendor units and their conversion to the schema's base units: the only place that converts.

`parse_unit` reads a vendor's unit spelling into a `Unit`; `convert` moves a
value between two units of the same dimension.

Spelling rules (`parse_unit`):

* Case and spaces do not matter: `kW`, `KW`, `kw`, `k W`; `kWh`, `KWH`, `kW·h`.
  Because case is ignored, `mw`/`mwh`/`mvar`/`mva` mean mega (no vendor reports
  milliwatts) and `mv`/`ma` mean milli (no vendor reports megavolts).
* Temperature: `°C`, `℃`, `ºC`, `C`, `degC`, `celsius`; `K` (kelvin).
* Ratios: `%`, `pct`, `percent`; `fraction` is 0–1 and becomes % (× 100).
* A leading number scales the unit: FoxESS's `0.01kWh` and `0.1kWh`
  (ResidualEnergy), Sungrow's `0.1Hz`. Chinese `度` is kWh and a `万` prefix is
  × 10 000 (`万度`, Sungrow plant lists).
* Anything else is a `UnitError` (a ValueError).

Conversion uses decimal arithmetic on the value's shortest repr and rounds the
result to 12 significant digits (and, where a mapping row gives the vendor's
resolution, `quantize` rounds it to that step: issue #7 §3), so 1.234 kW is 1234.0 W (not
1233.9999999999998) and vendor noise such as 7.199999999999818 kWh becomes
7200.0 Wh. A conversion between two spellings of one unit returns the value
unchanged (no rounding).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from enum import StrEnum
from functools import lru_cache


class UnitError(ValueError):
    """An unknown unit spelling, or a conversion between different dimensions."""


class Dimension(StrEnum):
    """What a unit measures."""

    POWER = "power"
    ENERGY = "energy"
    VOLTAGE = "voltage"
    CURRENT = "current"
    FREQUENCY = "frequency"
    TEMPERATURE = "temperature"
    RATIO = "ratio"
    REACTIVE_POWER = "reactive_power"
    APPARENT_POWER = "apparent_power"
    DURATION = "duration"


BASE_UNITS: dict[Dimension, str] = {
    Dimension.POWER: "W",
    Dimension.ENERGY: "Wh",
    Dimension.VOLTAGE: "V",
    Dimension.CURRENT: "A",
    Dimension.FREQUENCY: "Hz",
    Dimension.TEMPERATURE: "°C",
    Dimension.RATIO: "%",
    Dimension.REACTIVE_POWER: "var",
    Dimension.APPARENT_POWER: "VA",
    Dimension.DURATION: "s",
}
"""The schema's base unit of each dimension (schema.md "Base SI units, always")."""


@dataclass(frozen=True)
class Unit:
    """A unit: canonical symbol, dimension, and how to reach the base unit.

    A value `v` in this unit is `v * factor + offset` in the dimension's base unit.
    """

    symbol: str
    dimension: Dimension
    factor: Decimal = Decimal(1)
    offset: Decimal = Decimal(0)

    @property
    def base(self) -> str:
        """The symbol of this dimension's base unit."""
        return BASE_UNITS[self.dimension]


def _u(
    symbol: str, dim: Dimension, factor: str = "1", offset: str = "0", *aliases: str
) -> list[tuple[str, Unit]]:
    unit = Unit(symbol, dim, Decimal(factor), Decimal(offset))
    return [(key, unit) for key in (symbol.lower(), *aliases)]


_D = Dimension
_TABLE: dict[str, Unit] = dict(
    [
        *_u("W", _D.POWER, "1", "0", "watt", "watts"),
        *_u("kW", _D.POWER, "1000", "0", "kilowatt", "kilowatts"),
        *_u("MW", _D.POWER, "1000000", "0", "megawatt", "megawatts"),
        *_u("GW", _D.POWER, "1000000000", "0"),
        *_u("Wh", _D.ENERGY, "1", "0"),
        *_u("kWh", _D.ENERGY, "1000", "0", "度"),  # 度 ("degree") is the Chinese kWh
        *_u("MWh", _D.ENERGY, "1000000", "0"),
        *_u("GWh", _D.ENERGY, "1000000000", "0"),
        *_u("V", _D.VOLTAGE, "1", "0", "volt", "volts"),
        *_u("mV", _D.VOLTAGE, "0.001", "0"),
        *_u("kV", _D.VOLTAGE, "1000", "0"),
        *_u("A", _D.CURRENT, "1", "0", "amp", "amps", "ampere"),
        *_u("mA", _D.CURRENT, "0.001", "0"),
        *_u("Hz", _D.FREQUENCY, "1", "0"),
        *_u("°C", _D.TEMPERATURE, "1", "0", "℃", "c", "degc", "celsius"),
        *_u("K", _D.TEMPERATURE, "1", "-273.15", "kelvin"),
        *_u("%", _D.RATIO, "1", "0", "pct", "percent"),
        *_u("fraction", _D.RATIO, "100", "0"),
        *_u("var", _D.REACTIVE_POWER, "1", "0"),
        *_u("kvar", _D.REACTIVE_POWER, "1000", "0"),
        *_u("Mvar", _D.REACTIVE_POWER, "1000000", "0"),
        *_u("VA", _D.APPARENT_POWER, "1", "0"),
        *_u("kVA", _D.APPARENT_POWER, "1000", "0"),
        *_u("MVA", _D.APPARENT_POWER, "1000000", "0"),
        *_u("s", _D.DURATION, "1", "0", "sec", "secs", "second", "seconds"),
        *_u("ms", _D.DURATION, "0.001", "0"),
        *_u("min", _D.DURATION, "60", "0", "minute", "minutes"),
        *_u("h", _D.DURATION, "3600", "0", "hour", "hours"),
    ]
)

_SCALE = re.compile(r"^(?P<num>(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)(?P<rest>\D.*)$")
_CJK_SCALE = {"万": Decimal(10_000), "亿": Decimal(100_000_000)}
_ROUND = Context(prec=12, rounding=ROUND_HALF_EVEN)


@lru_cache(maxsize=256)
def parse_unit(text: str) -> Unit:
    """Read a vendor unit spelling (`"KWH"`, `"℃"`, `"0.01kWh"`, `"fraction"`) into a Unit.

    Raises UnitError for an empty or unknown spelling.
    """
    if not isinstance(text, str):
        raise UnitError(f"a unit must be a string, got {type(text).__name__}")
    key = text.strip().lower()
    for junk in (" ", "\t", "·", "⋅", "*"):
        key = key.replace(junk, "")
    key = key.replace("º", "°").replace("˚", "°")
    if not key:
        raise UnitError("empty unit")
    scale = Decimal(1)
    m = _SCALE.match(key)
    if m:
        try:
            scale = Decimal(m.group("num"))
        except InvalidOperation:  # pragma: no cover - the regex only admits numbers
            raise UnitError(f"bad unit scale in {text!r}") from None
        key = m.group("rest")
        if scale <= 0:
            raise UnitError(f"unit scale must be positive in {text!r}")
    if key[:1] in _CJK_SCALE:
        scale *= _CJK_SCALE[key[0]]
        key = key[1:]
    unit = _TABLE.get(key)
    if unit is None:
        raise UnitError(f"unknown unit {text!r}")
    if scale == 1:
        return unit
    if unit.offset:
        raise UnitError(f"a scaled unit must not have an offset: {text!r}")
    return Unit(f"{text.strip()}", unit.dimension, unit.factor * scale, unit.offset)


def _as_unit(unit: str | Unit) -> Unit:
    return unit if isinstance(unit, Unit) else parse_unit(unit)


def compatible(a: str | Unit, b: str | Unit) -> bool:
    """True if both spellings parse and measure the same dimension."""
    try:
        return _as_unit(a).dimension is _as_unit(b).dimension
    except UnitError:
        return False


def convert(value: float, from_unit: str | Unit, to_unit: str | Unit) -> float:
    """Convert a value between units of one dimension (`convert(1.234, "kW", "W")` → 1234.0).

    Raises UnitError for an unknown unit or different dimensions. A non-finite
    value converts with plain float arithmetic (the caller decides to skip it).
    """
    src, dst = _as_unit(from_unit), _as_unit(to_unit)
    if src.dimension is not dst.dimension:
        raise UnitError(f"cannot convert {src.symbol} ({src.dimension}) to {dst.symbol} ({dst.dimension})")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"convert needs a number, got {type(value).__name__}")
    if src.factor == dst.factor and src.offset == dst.offset:
        return tidy(value)
    if not math.isfinite(value):
        return (float(value) * float(src.factor) + float(src.offset) - float(dst.offset)) / float(dst.factor)
    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    out = (exact * src.factor + src.offset - dst.offset) / dst.factor
    return float(_ROUND.plus(out))


def quantum_in(quantum: str | Decimal, from_unit: str | Unit, to_unit: str | Unit) -> Decimal:
    """A step (a difference, so without offset) from one unit into another: `0.1` kWh → `100` Wh.

    Raises UnitError for a step that is not a positive number, or different dimensions.
    """
    src, dst = _as_unit(from_unit), _as_unit(to_unit)
    if src.dimension is not dst.dimension:
        raise UnitError(f"cannot convert {src.symbol} ({src.dimension}) to {dst.symbol} ({dst.dimension})")
    try:
        step = Decimal(quantum)
    except InvalidOperation:
        raise UnitError(f"a quantum must be a number, not {quantum!r}") from None
    if not step.is_finite() or step <= 0:
        raise UnitError(f"a quantum must be positive, not {quantum!r}")
    return (step * src.factor / dst.factor).normalize()


def quantize(value: float, step: Decimal) -> float:
    """Round a value to a whole multiple of `step` (half to even), in decimal arithmetic.

    `quantize(99.9999999999, Decimal(100))` → 100.0; `quantize(1233.9999999, Decimal(1))` → 1234.0.
    A non-finite value is returned as it is.
    """
    if isinstance(value, bool) or not math.isfinite(value):
        return float(value)
    exact = Decimal(repr(float(value)))
    steps = (exact / step).to_integral_value(rounding=ROUND_HALF_EVEN)
    return float(_ROUND.plus(steps * step)) + 0.0  # + 0.0: no -0.0


def convert_rounded(value: float, src: Unit | None, dst: Unit | None, step: Decimal | None) -> float:
    """`convert` then `quantize` (or `tidy` without a step) in one decimal pass, for `mapping.apply`.

    The same result as `quantize(convert(value, src, dst), step)` — or `tidy(value)` /
    `quantize(tidy(value), step)` when either unit is None (no conversion) — without the
    float round trip between them: the converted decimal has at most 12 significant digits,
    so it is exactly what `quantize` would read back from its float's repr. `value` must be a
    finite float; the result may be infinite (an overflow), which the caller refuses.
    """
    exact = Decimal(repr(value))
    if src is None or dst is None:
        out = _ROUND.plus(exact)
    elif src.dimension is not dst.dimension:
        raise UnitError(f"cannot convert {src.symbol} ({src.dimension}) to {dst.symbol} ({dst.dimension})")
    elif src.factor == dst.factor and src.offset == dst.offset:
        out = _ROUND.plus(exact)
    else:
        out = _ROUND.plus((exact * src.factor + src.offset - dst.offset) / dst.factor)
    if step is None or not out.is_finite():
        return float(out)
    number = float(out)
    if not math.isfinite(number):
        return number
    steps = (out / step).to_integral_value(rounding=ROUND_HALF_EVEN)
    return float(_ROUND.plus(steps * step)) + 0.0  # + 0.0: no -0.0


def tidy(value: float) -> float:
    """A float without binary noise: 12 significant digits, as conversions keep."""
    if isinstance(value, bool) or not math.isfinite(value):
        return float(value)
    return float(_ROUND.plus(Decimal(repr(float(value)))))


def to_base(value: float, unit: str | Unit) -> float:
    """Convert a value to its dimension's base unit (`to_base(2, "kWh")` → 2000.0)."""
    u = _as_unit(unit)
    return convert(value, u, u.base)
