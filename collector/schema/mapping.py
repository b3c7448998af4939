"""Layer 3, mapping: declarative vendor tables and the one function that applies them.

A vendor declares a `MappingTable` of rows — `FieldMap` (one vendor key → one
schema field) and `SplitMap` (one signed vendor value → two non-negative
fields) — and calls `apply` with the raw payload. `apply`:

* skips, and counts in `MappingStats` by reason and vendor key, every value
  that is missing (`missing`), null (`null`), an empty or blank string
  (`empty`), not a number (`non_numeric`: `"--"`, `"N/A"`, `"1,5"`, a list…),
  NaN or infinite (`not_finite`, also for `"NaN"`/`"inf"` strings and overflow
  after conversion), a non-integral code (`bad_code`), a text value that is not
  a string or not an allowed word (`bad_value`), a per-value unit that is
  unknown or of the wrong dimension (`unit`), or a row transform that raised
  ValueError/TypeError/ArithmeticError (`transform`), or a value the physics
  rules out (`implausible`: the shared checks of `plausible.py`, run on the
  converted point — ranges, counters going backwards, residual energy against
  the state of charge). It never writes 0 for unknown;
* coerces gauges and counters to float (ints and numeric strings such as
  `"12.5"`, `" 3 "`, `"1e3"`; a decimal comma is **not** accepted — vendors
  use JSON numbers or dot decimals, and `"1,500"` would be ambiguous), codes to
  int (`3`, `"3"`, `3.0`, `"3.0"`, and JSON booleans as 1/0), text to a stripped
  str (ints are written as their decimal string);
* converts the value from the row's vendor unit (or the per-value unit given
  by `unit_of`) into the catalogue unit of the target field (`units.convert`),
  then rounds it to the row's `quantum` (the vendor's resolution, in the row's
  unit) where the row gives one, else keeps 12 significant digits;
* returns a `Point`, or None when no field survived.

Gauge vs counter is documentation (for the vendor pages and reviewers); both
are written as floats and treated alike.

Tables are validated against the catalogue (`fields.py`) when built: an
unknown target, a kind that does not fit the field's type, a unit of the wrong
dimension or a target written twice raises `SchemaError` at import time of the
vendor module, not at poll time.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from collector.log import get_logger
from collector.schema import plausible
from collector.schema.fields import FieldSpec, FieldType, SchemaError, check_tags, measurement_spec
from collector.schema.point import FieldValue, Point
from collector.schema.timeparse import TimeParseError, parse_zone, to_utc_seconds
from collector.schema.units import (
    Unit,
    UnitError,
    convert_rounded,
    parse_unit,
    quantize,
    quantum_in,
    tidy,
)

__all__ = [
    "ABSENT_REASONS",
    "KINDS",
    "SKIP_REASONS",
    "FieldMap",
    "Kind",
    "MappingStats",
    "MappingTable",
    "Row",
    "SplitMap",
    "TimeParseError",
    "apply",
    "as_number",
    "parse_zone",
    "to_utc_seconds",
]

_log = get_logger("collector.mapping")

Kind = Literal["gauge", "counter", "code", "text"]
KINDS: tuple[Kind, ...] = ("gauge", "counter", "code", "text")

SKIP_REASONS: tuple[str, ...] = (
    "missing",
    "null",
    "empty",
    "non_numeric",
    "not_finite",
    "bad_code",
    "bad_value",
    "unit",
    "transform",
    "implausible",
)
"""Why a value was left out, in the order `MappingStats.summary` lists them."""

ABSENT_REASONS = frozenset({"missing", "null", "empty"})
"""Reasons that mean "the vendor has no value"; the others mean "it sent one we cannot use"."""

_KIND_TYPES: Mapping[str, frozenset[FieldType]] = {
    "gauge": frozenset({FieldType.FLOAT}),
    "counter": frozenset({FieldType.FLOAT}),
    "code": frozenset({FieldType.INT}),
    "text": frozenset({FieldType.STR}),
}


@dataclass(frozen=True)
class FieldMap:
    """One table row: vendor key `source` → schema field `target`.

    `unit` is the vendor's unit (None: already the schema unit, or unitless);
    `kind` is gauge / counter (float), code (int) or text (str). `transform`,
    for odd cases, receives the raw value (never None or blank) and returns a
    new raw value that then goes through the usual coercion and conversion;
    returning None leaves the field out (counted as `null`).

    `quantum` is the vendor's resolution in the row's unit (`"0.1"` for a 0.1-kWh
    register, `"0.001"` for kW with three decimals): the converted value is rounded
    to it (0.09999999999990905 kWh → 100 Wh). None: unknown, 12 significant digits.

    `alternative=True` makes the row a lower preference for a target that an earlier
    row of the table writes: it fills the target only when no earlier row gave it a
    value (issue #7 §1). The table's row order is the order of preference.
    """

    source: str
    target: str
    unit: str | None = None
    kind: Kind = "gauge"
    transform: Callable[[Any], Any] | None = None
    quantum: str | None = None
    alternative: bool = False

    def __post_init__(self) -> None:
        if not self.source or not self.target:
            raise SchemaError(f"a FieldMap needs a source and a target: {self!r}")
        if self.kind not in KINDS:
            raise SchemaError(f"{self.source}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.transform is not None and not callable(self.transform):
            raise SchemaError(f"{self.source}: transform must be callable")


@dataclass(frozen=True)
class SplitMap:
    """A signed vendor value split into two non-negative fields by its sign.

    A positive value goes to `positive` (and 0 to `negative`), a negative one's
    magnitude to `negative` (and 0 to `positive`); 0 writes 0 to both.
    `invert=True` flips the vendor's sign first (for a vendor whose positive
    means the `negative` field). Example, FoxESS `meterPower` (positive =
    import): `SplitMap("meterPower", "grid_import_power_w", "grid_export_power_w", "kW")`.
    With `alternative=True` (see FieldMap) each of the two targets is filled only where no
    earlier row gave it a value: the split derives only what direct variables did not give.
    """

    source: str
    positive: str
    negative: str
    unit: str | None = None
    invert: bool = False
    quantum: str | None = None
    alternative: bool = False

    def __post_init__(self) -> None:
        if not self.source or not self.positive or not self.negative:
            raise SchemaError(f"a SplitMap needs a source and two targets: {self!r}")
        if self.positive == self.negative:
            raise SchemaError(f"{self.source}: positive and negative targets must differ")


Row = FieldMap | SplitMap


def _row_targets(row: Row) -> tuple[str, ...]:
    return (row.positive, row.negative) if isinstance(row, SplitMap) else (row.target,)


@dataclass(frozen=True, slots=True)
class _Step:
    """One row as `apply` runs it: everything the table knows about it, looked up once.

    `shared`: another row of the table writes one of its targets, so whether the row is
    read, and whether a value it leaves out is counted, depends on what the others gave.
    """

    row: Row
    source: str
    targets: tuple[str, ...]
    split: bool
    invert: bool
    kind: Kind
    transform: Callable[[Any], Any] | None
    spec: FieldSpec
    vendor: Unit | None
    schema: Unit | None
    step: Decimal | None
    shared: bool
    residual: bool


@dataclass(frozen=True)
class MappingTable:
    """A vendor's validated mapping table for one measurement.

    Raises SchemaError when built if a row's target is not a field of the
    measurement in the catalogue, its kind does not fit the field's type, its
    unit is unknown or of another dimension than the field's, a unit is given
    for a code/text or unitless field, or two rows write the same field.
    """

    measurement: str
    rows: Sequence[Row]
    _specs: Mapping[str, FieldSpec] = field(default_factory=dict, init=False, repr=False, compare=False)
    _units: Mapping[tuple[str, str], Unit] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _quanta: Mapping[tuple[str, str], Decimal] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _plan: tuple[_Step, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(self.rows))
        mspec = measurement_spec(self.measurement)
        specs: dict[str, FieldSpec] = {}
        units: dict[tuple[str, str], Unit] = {}
        quanta: dict[tuple[str, str], Decimal] = {}
        for row in self.rows:
            if not isinstance(row, (FieldMap, SplitMap)):
                raise SchemaError(f"{self.measurement}: a row must be a FieldMap or SplitMap, got {row!r}")
            kind: str = row.kind if isinstance(row, FieldMap) else "gauge"
            if isinstance(row, SplitMap):
                pos, neg = mspec.find(row.positive), mspec.find(row.negative)
                if pos is not None and neg is not None and pos.unit != neg.unit:
                    raise SchemaError(
                        f"row {row.source!r}: {row.positive} ({pos.unit}) and {row.negative} ({neg.unit}) "
                        "must share a unit"
                    )
            for target in _row_targets(row):
                spec = mspec.find(target)
                if spec is None:
                    raise SchemaError(f"{self.measurement} has no field {target!r} (row {row.source!r})")
                if row.alternative and target not in specs:
                    raise SchemaError(
                        f"row {row.source!r} is an alternative for {self.measurement}.{target}, "
                        "but no earlier row writes it"
                    )
                if target in specs and not row.alternative:
                    raise SchemaError(
                        f"{self.measurement}.{target} is written by two rows "
                        f"(mark the later one `alternative=True` if it is a fallback)"
                    )
                if spec.type not in _KIND_TYPES[kind]:
                    raise SchemaError(
                        f"{self.measurement}.{target} is {spec.type.label}; "
                        f"kind {kind!r} does not fit (row {row.source!r})"
                    )
                if row.unit is not None:
                    if spec.unit is None or kind in ("code", "text"):
                        raise SchemaError(
                            f"{self.measurement}.{target} has no unit; row {row.source!r} gives {row.unit!r}"
                        )
                    try:
                        unit = parse_unit(row.unit)
                    except UnitError as err:
                        raise SchemaError(f"row {row.source!r}: {err}") from err
                    if unit.dimension is not parse_unit(spec.unit).dimension:
                        raise SchemaError(
                            f"row {row.source!r}: unit {row.unit!r} cannot become "
                            f"{spec.unit} ({self.measurement}.{target})"
                        )
                    units[(row.source, target)] = unit
                if row.quantum is not None:
                    if spec.unit is None and row.unit is None and kind in ("gauge", "counter"):
                        quanta[(row.source, target)] = _unitless_quantum(row)  # power factor
                    elif spec.unit is None or kind in ("code", "text"):
                        raise SchemaError(f"row {row.source!r}: a quantum needs a numeric field with a unit")
                    else:
                        quanta[(row.source, target)] = _quantum(row, row.unit or spec.unit, spec.unit)
                specs[target] = spec
        object.__setattr__(self, "_specs", specs)
        object.__setattr__(self, "_units", units)
        object.__setattr__(self, "_quanta", quanta)
        object.__setattr__(self, "_plan", self._make_plan())

    def _make_plan(self) -> tuple[_Step, ...]:
        writers = Counter(t for row in self.rows for t in _row_targets(row))
        steps = []
        for row in self.rows:
            targets = _row_targets(row)
            first = targets[0]
            spec = self._specs[first]
            split = isinstance(row, SplitMap)
            steps.append(
                _Step(
                    row=row,
                    source=row.source,
                    targets=targets,
                    split=split,
                    invert=row.invert if isinstance(row, SplitMap) else False,
                    kind="gauge" if isinstance(row, SplitMap) else row.kind,
                    transform=None if isinstance(row, SplitMap) else row.transform,
                    spec=spec,
                    vendor=self._units.get((row.source, first)),
                    schema=None if spec.unit is None else parse_unit(spec.unit),
                    step=self._quanta.get((row.source, first)),
                    shared=any(writers[t] > 1 for t in targets),
                    residual=not split and first == plausible.RESIDUAL_FIELD,
                )
            )
        return tuple(steps)

    @property
    def targets(self) -> tuple[str, ...]:
        """Every schema field this table can write, in row order, without repeats."""
        return tuple(dict.fromkeys(t for row in self.rows for t in _row_targets(row)))

    def preference(self, target: str) -> tuple[str, ...]:
        """The vendor keys that can yield a target, most preferred first."""
        return tuple(row.source for row in self.rows if target in _row_targets(row))

    @property
    def sources(self) -> tuple[str, ...]:
        """Every vendor key this table reads, in row order, without repeats."""
        return tuple(dict.fromkeys(row.source for row in self.rows))

    def spec(self, target: str) -> FieldSpec:
        """The catalogue entry of one of this table's targets."""
        return self._specs[target]

    def unit(self, target: str, source: str | None = None) -> Unit | None:
        """The parsed vendor unit the table declares for a target (None: no conversion).

        `source`: of that row (a target may have several); default the most preferred.
        """
        return self._units.get((source or self.preference(target)[0], target))

    def quantum(self, target: str, source: str | None = None) -> Decimal | None:
        """The step a target's values are rounded to, in the schema unit (None: 12 digits).

        `source`: of that row (a target may have several); default the most preferred.
        """
        return self._quanta.get((source or self.preference(target)[0], target))

    def quantum_text(self, target: str, source: str | None = None) -> str:
        """The step as the docs write it (`100 Wh`; `—`: no step known, 12 digits)."""
        step = self.quantum(target, source)
        if step is None:
            return "—"
        text = f"{step:f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text
        unit = self.spec(target).unit
        return f"{text} {unit}" if unit else text


def _unitless_quantum(row: Row) -> Decimal:
    """The step of a field without a unit (a power factor): the number as it is."""
    try:
        step = Decimal(str(row.quantum))
    except InvalidOperation:
        raise SchemaError(f"row {row.source!r}: a quantum must be a number, not {row.quantum!r}") from None
    if not step.is_finite() or step <= 0:
        raise SchemaError(f"row {row.source!r}: a quantum must be positive, not {row.quantum!r}")
    return step.normalize()


def _quantum(row: Row, from_unit: str, to_unit: str) -> Decimal:
    assert row.quantum is not None
    try:
        return quantum_in(row.quantum, from_unit, to_unit)
    except UnitError as err:
        raise SchemaError(f"row {row.source!r}: {err}") from err


@dataclass
class MappingStats:
    """What `apply` wrote and left out; add one run's stats to a total with `+=`.

    `skipped` counts by reason (see SKIP_REASONS); `detail` by (reason, vendor
    key); `mapped` counts field values written, `points` points returned and
    `empty_points` the calls that returned None.

    `drops` lists the whole records refused before any value was read (no data
    time, an unreadable one, a device that was not asked for), as (device,
    reason, detail); see `drop_record`.
    """

    mapped: int = 0
    points: int = 0
    empty_points: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    detail: Counter[tuple[str, str]] = field(default_factory=Counter)
    drops: list[tuple[str, str, str]] = field(default_factory=list)

    def skip(self, reason: str, source: str) -> None:
        """Count one value left out."""
        self.skipped[reason] += 1
        self.detail[(reason, source)] += 1

    def drop_record(self, device: str, reason: str, detail: str) -> None:
        """Refuse a whole record: one log line naming the device and the reason, and counted.

        `reason` is a short key (`no_time`, `bad_time`, `not_requested`); `detail` says it
        in words. The record is counted in `skipped` (by reason and device, for the
        summary line) and in `records_dropped`; a vendor's `skipped_values` count leaves
        it out, so a record is counted once, as a record (issue #7 §4).
        """
        self.skip(reason, device)
        self.drops.append((device, reason, detail))
        _log.warning("mapping.record_dropped", device=device, reason=reason, detail=detail)

    @property
    def records_dropped(self) -> int:
        """Whole records refused (see `drop_record`)."""
        return len(self.drops)

    @property
    def total_skipped(self) -> int:
        """All values left out, for every reason."""
        return sum(self.skipped.values())

    @property
    def rejected(self) -> int:
        """Values the vendor did send but we could not use (not missing / null / empty)."""
        return sum(n for reason, n in self.skipped.items() if reason not in ABSENT_REASONS)

    def __iadd__(self, other: MappingStats) -> MappingStats:
        self.mapped += other.mapped
        self.points += other.points
        self.empty_points += other.empty_points
        self.skipped.update(other.skipped)
        self.detail.update(other.detail)
        self.drops.extend(other.drops)
        return self

    def __add__(self, other: MappingStats) -> MappingStats:
        total = MappingStats()
        total += self
        total += other
        return total

    def summary(self, max_keys: int = 5) -> str:
        """One log line, e.g.

        `mapped 12 fields in 1 point; skipped 3: null 2 (pv3Power, pv4Power), non_numeric 1 (feedin)`
        """
        head = f"mapped {self.mapped} fields in {self.points} point{'s' if self.points != 1 else ''}"
        if self.empty_points:
            head += f" ({self.empty_points} empty)"
        if not self.skipped:
            return head + "; skipped 0"
        parts = []
        order = list(SKIP_REASONS) + sorted(set(self.skipped) - set(SKIP_REASONS))
        for reason in order:
            count = self.skipped.get(reason, 0)
            if not count:
                continue
            keys = sorted(
                ((src, n) for (r, src), n in self.detail.items() if r == reason),
                key=lambda kv: (-kv[1], kv[0]),
            )
            shown = [src if n == 1 else f"{src}×{n}" for src, n in keys[:max_keys]]
            if len(keys) > max_keys:
                shown.append(f"+{len(keys) - max_keys} more")
            parts.append(f"{reason} {count} ({', '.join(shown)})")
        return f"{head}; skipped {self.total_skipped}: " + ", ".join(parts)


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_NOT_FINITE_WORDS = frozenset({"nan", "inf", "infinity"})


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Skip("non_numeric")
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise _Skip("not_finite") from None
    if isinstance(value, (float, Decimal)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            number = float(text)
        elif text.lower().lstrip("+-") in _NOT_FINITE_WORDS:
            raise _Skip("not_finite")
        else:
            raise _Skip("non_numeric")
    else:
        raise _Skip("non_numeric")
    if not math.isfinite(number):
        raise _Skip("not_finite")
    return number


def _int(value: Any) -> int:
    number = _int_value(value)
    # InfluxDB integers are int64: a larger one would have the whole point refused.
    if not -(2**63) <= number < 2**63:
        raise _Skip("bad_code")
    return number


def _int_value(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value.strip())  # exact, even for codes beyond float precision
    number = _float(value)
    if not number.is_integer():
        raise _Skip("bad_code")
    return int(number)


def _text(value: Any, spec: FieldSpec) -> str:
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise _Skip("bad_value")
    if not text:
        raise _Skip("empty")
    if spec.choices and text not in spec.choices:
        raise _Skip("bad_value")
    return text


def _present(value: Any) -> Any:
    if value is None:
        raise _Skip("null")
    if isinstance(value, str) and not value.strip():
        raise _Skip("empty")
    return value


def _number_in(value: Any, step: _Step, unit_of: Callable[[str], str | None] | None) -> float:
    """Coerce to float, convert from the vendor unit to the target's schema unit and round it
    to the row's quantum (else to 12 significant digits: no binary float noise either way)."""
    number = _float(value)
    vendor = step.vendor
    given = unit_of(step.source) if unit_of is not None else None
    if given is not None and given.strip():
        try:
            vendor = parse_unit(given)
        except UnitError:
            raise _Skip("unit") from None
        if step.schema is None:
            raise _Skip("unit")
    try:
        # Round to what the vendor measures, not to 12 digits (issue #7 §3).
        number = convert_rounded(number, vendor, step.schema, step.step)
    except UnitError:
        raise _Skip("unit") from None
    if not math.isfinite(number):
        raise _Skip("not_finite")
    return number


def _check(
    table: MappingTable,
    fields: dict[str, FieldValue],
    origin: Mapping[str, str],
    residual_raw: float | None,
    tags: Mapping[str, str],
    time: int,
    stats: MappingStats,
    memory: plausible.Memory | None,
) -> None:
    """Drop (count, log) the values the physics rules out; reinterpret a residual that fits."""
    device = tags.get("device", "")

    def refuse(target: str, verdict: plausible.Verdict) -> None:
        value = fields.pop(target)
        stats.mapped -= 1
        stats.skip("implausible", origin[target])
        _log.warning(
            "mapping.implausible",
            device=device,
            field=target,
            variable=origin[target],
            rule=verdict.rule,
            value=value,
            detail=verdict.detail,
        )

    for target in list(fields):
        value = fields[target]
        if not isinstance(value, float):
            continue
        verdict = plausible.in_range(target, value) or plausible.counter(memory, device, target, time, value)
        if verdict is not None:
            refuse(target, verdict)
    labelled = fields.get(plausible.RESIDUAL_FIELD)
    if isinstance(labelled, float) and residual_raw is not None:
        soc = fields.get(plausible.SOC_FIELD)
        written, reading, verdict = plausible.residual(
            memory, device, labelled, residual_raw, soc if isinstance(soc, float) else None
        )
        if verdict is not None:
            refuse(plausible.RESIDUAL_FIELD, verdict)
        elif written is not None and reading != "labelled":
            source = origin[plausible.RESIDUAL_FIELD]
            step = table.quantum(plausible.RESIDUAL_FIELD, source)
            fields[plausible.RESIDUAL_FIELD] = tidy(written) if step is None else quantize(written, step)
            _log.info(
                "mapping.reinterpreted",
                device=device,
                field=plausible.RESIDUAL_FIELD,
                variable=source,
                rule="residual_vs_soc",
                reading=reading,
                value=fields[plausible.RESIDUAL_FIELD],
            )


def as_number(value: Any) -> float | None:
    """A vendor value as a float, or None where `apply` would skip it (null, `"--"`, NaN…).

    For mapper code that computes from several values (e.g. a total of strings).
    """
    try:
        return _float(_present(value))
    except _Skip:
        return None


def apply(
    table: MappingTable,
    raw: Mapping[str, Any],
    *,
    tags: Mapping[str, str],
    time: int,
    stats: MappingStats,
    unit_of: Callable[[str], str | None] | None = None,
    memory: plausible.Memory | None = None,
) -> Point | None:
    """Apply a mapping table to one raw vendor record; the point, or None if no field survived.

    The point's values then go through the plausibility checks (`plausible`): a value
    the physics rules out is left out, counted as `implausible` and logged. `memory`
    (one per source, kept by the caller) holds what earlier records of each device said,
    for the checks that need it (counters going backwards, the battery's capacity).

    `tags` must be exactly the measurement's tags (SchemaError otherwise);
    `time` is the data time in whole UTC seconds (see `to_utc_seconds`).
    `unit_of(source)` may give the unit a vendor sent with the value (FoxESS
    `{"variable": "pvPower", "unit": "kW", "value": 1.2}`); a non-empty answer
    overrides the row's unit, None or "" keeps it. It is not consulted for
    code / text rows.
    """
    check_tags(table.measurement, tags)
    fields: dict[str, FieldValue] = {}
    # A value left out is counted only if its field stays empty: another row of the
    # table (an alternative, or the preferred row) may give it (issue #7 §1).
    left_out: list[tuple[str, _Step]] = []
    origin: dict[str, str] = {}  # target → the vendor key that gave it
    residual_raw: float | None = None
    for step in table._plan:
        source = step.source
        if step.shared and all(t in fields for t in step.targets):
            continue  # a preferred row gave every field this one could: not even read
        if source not in raw:
            left_out.append(("missing", step))
            continue
        try:
            value = _present(raw[source])
            if step.split:
                number = _number_in(value, step, unit_of)
                if step.invert:
                    number = -number
                # Only what no earlier row gave: a direct variable wins over a derived one.
                positive, negative = step.targets
                for target, part in ((positive, number), (negative, -number)):
                    if target not in fields:
                        fields[target] = part if part > 0 else 0.0
                        origin[target] = source
                        stats.mapped += 1
                continue
            if step.transform is not None:
                try:
                    value = step.transform(value)
                except (ValueError, TypeError, ArithmeticError):
                    raise _Skip("transform") from None
                value = _present(value)
            out: FieldValue
            kind = step.kind
            if kind == "code":
                out = _int(value)
            elif kind == "text":
                out = _text(value, step.spec)
            else:
                out = _number_in(value, step, unit_of)
                if step.residual:
                    residual_raw = _float(value)
            target = step.targets[0]
            fields[target] = out
            origin[target] = source
            stats.mapped += 1
        except _Skip as skip:
            left_out.append((skip.reason, step))
    if left_out:
        counted = [
            (reason, step.source)
            for reason, step in left_out
            if not step.shared or not all(t in fields for t in step.targets)
        ]
        # Counted in bulk (Counter.update on an iterable counts in C): a backfill answer has
        # a few thousand records, each with dozens of points the table reads but the answer
        # does not carry.
        stats.skipped.update(reason for reason, _ in counted)
        stats.detail.update(counted)
    _check(table, fields, origin, residual_raw, tags, int(time), stats, memory)
    if not fields:
        stats.empty_points += 1
        return None
    stats.points += 1
    return Point(table.measurement, dict(tags), fields, int(time))
