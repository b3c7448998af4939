"""Unit parsing and conversion: every dimension, vendor spellings, float noise."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest

from collector.schema.units import (
    BASE_UNITS,
    Dimension,
    UnitError,
    compatible,
    convert,
    convert_rounded,
    parse_unit,
    quantize,
    quantum_in,
    tidy,
    to_base,
)


@pytest.mark.parametrize(
    ("value", "src", "dst", "expected"),
    [
        (1.234, "kW", "W", 1234.0),
        (2.5, "MW", "W", 2_500_000.0),
        (0.001, "GW", "W", 1_000_000.0),
        (1500, "W", "kW", 1.5),
        (12.3, "kWh", "Wh", 12300.0),
        (48.364, "MWh", "Wh", 48_364_000.0),
        (0.5, "GWh", "Wh", 500_000_000.0),
        (230500, "mV", "V", 230.5),
        (0.4, "kV", "V", 400.0),
        (1250, "mA", "A", 1.25),
        (49.99, "Hz", "Hz", 49.99),
        (499.9, "0.1Hz", "Hz", 49.99),
        (21.5, "°C", "°C", 21.5),
        (300, "K", "°C", 26.85),
        (0.791, "fraction", "%", 79.1),
        (0.021, "fraction", "%", 2.1),
        (55, "%", "fraction", 0.55),
        (1.2, "kvar", "var", 1200.0),
        (3, "Mvar", "var", 3_000_000.0),
        (2.2, "kVA", "VA", 2200.0),
        (1500, "ms", "s", 1.5),
        (2, "min", "s", 120.0),
        (1, "h", "s", 3600.0),
    ],
)
def test_conversions(value: float, src: str, dst: str, expected: float) -> None:
    assert convert(value, src, dst) == expected


@pytest.mark.parametrize(
    ("spelling", "symbol"),
    [
        ("kW", "kW"),
        ("KW", "kW"),
        ("kw", "kW"),
        (" k W ", "kW"),
        ("kilowatt", "kW"),
        ("W", "W"),
        ("w", "W"),
        ("MW", "MW"),
        ("mw", "MW"),
        ("kWh", "kWh"),
        ("KWH", "kWh"),
        ("kwh", "kWh"),
        ("kW·h", "kWh"),
        ("Wh", "Wh"),
        ("MWh", "MWh"),
        ("度", "kWh"),
        ("V", "V"),
        ("v", "V"),
        ("mV", "mV"),
        ("MV", "mV"),
        ("A", "A"),
        ("mA", "mA"),
        ("Hz", "Hz"),
        ("HZ", "Hz"),
        ("hz", "Hz"),
        ("°C", "°C"),
        ("℃", "°C"),
        ("ºC", "°C"),
        ("˚C", "°C"),
        ("C", "°C"),
        ("degC", "°C"),
        ("° C", "°C"),
        ("K", "K"),
        ("%", "%"),
        ("pct", "%"),
        ("percent", "%"),
        ("fraction", "fraction"),
        ("var", "var"),
        ("VAr", "var"),
        ("VAR", "var"),
        ("kvar", "kvar"),
        ("kVAr", "kvar"),
        ("KVAR", "kvar"),
        ("VA", "VA"),
        ("kVA", "kVA"),
        ("s", "s"),
        ("sec", "s"),
        ("ms", "ms"),
    ],
)
def test_spellings(spelling: str, symbol: str) -> None:
    assert parse_unit(spelling).symbol == symbol


def test_scaled_units() -> None:
    # FoxESS ResidualEnergy comes as 0.01kWh / 0.1kWh / kWh (research/foxess.md).
    assert convert(236.0, "0.01kWh", "Wh") == 2360.0
    assert convert(23.6, "0.1kWh", "Wh") == 2360.0
    assert convert(2.36, "kWh", "Wh") == 2360.0
    assert parse_unit("0.01kWh").dimension is Dimension.ENERGY
    # Sungrow Chinese plant lists: 万度 = 10 000 kWh.
    assert convert(1.814, "万度", "Wh") == 18_140_000.0
    assert convert(381.6, "度", "Wh") == 381_600.0


def test_float_noise_is_rounded_away() -> None:
    assert convert(1.234, "kW", "W") == 1234.0  # 1.234 * 1000 == 1233.9999999999998 in floats
    assert convert(1.8559999999999999, "kW", "W") == 1856.0
    assert convert(7.199999999999818, "kWh", "Wh") == 7200.0
    assert convert(0.21100000000000002, "kW", "W") == 211.0
    assert convert(0.1 + 0.2, "kWh", "Wh") == 300.0
    # Precision that matters survives: lifetime counters keep their 0.1 Wh.
    assert convert(2096349.9501, "kWh", "Wh") == 2096349950.1


def test_same_unit_drops_only_binary_float_noise() -> None:
    # 12 significant digits, like every conversion: vendors' JSON floats carry noise
    assert convert(0.30000000000000004, "W", "w") == 0.3
    assert convert(28.700000000000003, "°C", "℃") == 28.7
    assert convert(1234.56789, "W", "W") == 1234.56789
    assert convert(3, "W", "W") == 3.0
    assert isinstance(convert(3, "W", "W"), float)


def test_ints_and_negative_values() -> None:
    assert convert(-2, "kW", "W") == -2000.0
    assert convert(10**15, "Wh", "kWh") == 1e12


def test_non_finite_passes_through() -> None:
    assert math.isnan(convert(math.nan, "kW", "W"))
    assert convert(math.inf, "kW", "W") == math.inf


@pytest.mark.parametrize("bad", ["", "  ", "furlong", "kWW", "W/m2", "kw/h", "0kWh", "-1kW"])
def test_unknown_units(bad: str) -> None:
    with pytest.raises(UnitError):
        parse_unit(bad)
    assert issubclass(UnitError, ValueError)


@pytest.mark.parametrize(("src", "dst"), [("kW", "kWh"), ("V", "A"), ("%", "W"), ("var", "W"), ("VA", "var")])
def test_incompatible_dimensions(src: str, dst: str) -> None:
    with pytest.raises(UnitError, match="cannot convert"):
        convert(1.0, src, dst)
    assert not compatible(src, dst)


def test_compatible_and_to_base() -> None:
    assert compatible("kWh", "Wh")
    assert compatible("fraction", "%")
    assert not compatible("nonsense", "W")
    assert to_base(2, "kWh") == 2000.0
    assert to_base(0.5, "fraction") == 50.0
    for dim, base in BASE_UNITS.items():
        assert parse_unit(base).dimension is dim
        assert parse_unit(base).factor == 1


def test_convert_rejects_non_numbers() -> None:
    with pytest.raises(TypeError):
        convert("1", "kW", "W")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        convert(True, "kW", "W")


def test_quantum_in_converts_a_step_without_offset() -> None:
    assert quantum_in("0.1", "kWh", "Wh") == Decimal(100)
    assert quantum_in("0.001", "kW", "W") == Decimal(1)
    assert quantum_in("0.01", "0.01kWh", "Wh") == Decimal("0.1")
    assert quantum_in("0.1", "K", "°C") == Decimal("0.1")  # a difference: no offset
    for bad in ("0", "-1", "x", "NaN"):
        with pytest.raises(UnitError):
            quantum_in(bad, "kWh", "Wh")
    with pytest.raises(UnitError):
        quantum_in("1", "kWh", "V")


def test_quantize_rounds_to_whole_steps_half_to_even() -> None:
    hundred = Decimal(100)
    assert quantize(99.9999999999, hundred) == 100.0
    assert quantize(700.000000001, hundred) == 700.0
    assert quantize(150.0, hundred) == 200.0 and quantize(250.0, hundred) == 200.0
    assert quantize(1233.9999999999998, Decimal(1)) == 1234.0
    assert quantize(-0.4, Decimal(1)) == 0.0 and math.copysign(1, quantize(-0.4, Decimal(1))) == 1
    assert quantize(-2425.6, Decimal(1)) == -2426.0
    assert quantize(0.1 + 0.2, Decimal("0.1")) == 0.3
    assert math.isnan(quantize(math.nan, hundred))


def test_convert_rounded_is_convert_then_quantize() -> None:
    """`mapping.apply`'s one-pass conversion gives exactly what the two steps give, for
    ties, float noise, negative values, offsets and overflow (deterministic sample)."""


    rng = random.Random(7)
    cases = [("kW", "W", "0.001"), ("kWh", "Wh", "0.1"), ("W", "W", "1"), ("K", "°C", "0.1"),
             ("kW", "W", None), ("0.1Hz", "Hz", "0.1"), ("MW", "W", "0.01"), ("W", "W", None)]  # fmt: skip
    values = [0.0, -0.0, 0.5, 2.5, -2.5, 1.2345, 7.199999999999818, 0.09999999999990905, 1e300, -1e-9]
    values += [rng.uniform(-1e4, 1e4) for _ in range(300)]
    values += [round(rng.uniform(0, 100), 3) for _ in range(300)]
    for src, dst, q in cases:
        s, d = parse_unit(src), parse_unit(dst)
        step = None if q is None else quantum_in(q, src, dst)
        for v in values:
            two = convert(v, s, d)
            if step is not None and math.isfinite(two):
                two = quantize(two, step)
            one = convert_rounded(v, s, d, step)
            assert one == two, (src, v)
        for v in values[:50]:
            two = tidy(v) if step is None else quantize(tidy(v), step)
            assert convert_rounded(v, None, None, step) == two
    with pytest.raises(UnitError):
        convert_rounded(1.0, parse_unit("%"), parse_unit("W"), None)
