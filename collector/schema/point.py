"""The point type and its InfluxDB line-protocol form (second precision)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

FieldValue = float | int | str

# Line protocol escaping (InfluxDB docs, "Line protocol" special characters):
# measurement: comma, space; tag keys/values and field keys: comma, '=', space;
# string field values: '"' and '\'. Newlines cannot be written at all, so they
# become spaces rather than breaking the line.
_MEAS = str.maketrans({",": r"\,", " ": r"\ ", "\n": " ", "\r": " "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " ", "\r": " "})
_STR = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": " ", "\r": " "})


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return text.translate(_KEY)


def format_field(value: FieldValue) -> str:
    """One field value in line protocol: float, `Ni` integer or quoted string."""
    if isinstance(value, bool):  # bool is an int subclass; we never write booleans
        return "1i" if value else "0i"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.translate(_STR) + '"'


@dataclass(frozen=True, slots=True)
class Point:
    """One InfluxDB point: measurement, tags, fields and the data time.

    `time` is whole Unix seconds, UTC (the vendor's data time, never poll time).
    Field values are float (measurements), int (codes, counts) or str (text).
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time: int

    def to_line(self) -> str:
        """Line protocol, tags sorted by key; empty tag values are left out.

        Raises ValueError for a point without fields or with a NaN/inf field:
        such a point must never reach the sink (schema rule: unknown is omitted).
        """
        parts = [self.measurement.translate(_MEAS)]
        for key in sorted(self.tags):
            val = self.tags[key]
            if val:
                parts.append(f",{key.translate(_KEY)}={val.translate(_KEY)}")
        fields = []
        for key, value in self.fields.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"field {key} of {self.measurement} is not finite")
            fields.append(f"{key.translate(_KEY)}={format_field(value)}")
        if not fields:
            raise ValueError(f"point of {self.measurement} has no fields")
        parts.append(" ")
        parts.append(",".join(fields))
        parts.append(f" {int(self.time)}")
        return "".join(parts)
