"""SolaX-family answers as the vendor sends them (layer 2): its names, its units, no conversion.

The readers take a `result` object already checked by `codes.unwrap` and return frozen
records. Values stay raw (numbers, numeric strings such as `"102"`, `null`); times stay the
vendor's text. Field names are the doc's (SolaX v2 doc §7.1, the EV-charger doc §3.2.6),
looked up without regard to case: the notes saw `inverterSN` and `inverterSn`, and the
charger doc's table says `ChargingPower` where its sample says `chargingPower`
(research/solax.md §3.1, §5.3). Unknown keys are kept in `values` and ignored by the mapping
(older accounts sent `idc1`, `temperature`…: notes §2.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collector.errors import VendorDataQualityError
from collector.vendors.base import text_value

REALTIME_FIELDS = (
    "inverterSN", "sn", "acpower", "yieldtoday", "yieldtotal", "feedinpower", "feedinenergy",
    "consumeenergy", "feedinpowerM2", "soc", "peps1", "peps2", "peps3", "inverterType",
    "inverterStatus", "uploadTime", "batPower", "powerdc1", "powerdc2", "powerdc3", "powerdc4",
    "batStatus", "utcDateTime",
)  # fmt: skip
"""The realtime result's fields (doc §7.1, plus the undocumented `utcDateTime`: notes §2.2)."""

PILE_FIELDS = ("chargerStatus", "chargingMode", "chargeEnergy", "chargingPower")
"""The charger's `getPileInfo` result (EV doc §3.2.6)."""


def _canonical(obj: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The object with each known key under the doc's spelling (case-insensitive match)."""
    by_lower = {n.lower(): n for n in names}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            continue
        name = by_lower.get(key.lower(), key)
        if name in out and key != name:
            continue  # the doc's own spelling wins over another casing of it
        out[name] = value
    return out


@dataclass(frozen=True)
class Realtime:
    """One dongle's latest upload (`realtimeInfo/get`), raw.

    `wifi_sn` is the dongle asked for; `inverter_sn` and `dongle_sn` what the answer says
    (`inverterSN`, `sn`), None where absent. `values` holds every field, doc spelling.
    """

    wifi_sn: str
    inverter_sn: str | None
    dongle_sn: str | None
    upload_time: Any
    utc_time: Any
    values: Mapping[str, Any]


@dataclass(frozen=True)
class PileInfo:
    """One charger's state (`getPileInfo`), raw; the API gives no time (EV doc §3.2.7)."""

    pile_sn: str
    values: Mapping[str, Any]


def read_realtime(result: Any, wifi_sn: str, *, vendor: str = "solax") -> Realtime:
    """A realtime `result` object → `Realtime` (VendorDataQualityError if it is not an object)."""
    if not isinstance(result, Mapping):
        raise VendorDataQualityError(
            f"{vendor} realtimeInfo/get: result is {type(result).__name__}, not an object",
            vendor=vendor, endpoint="realtimeInfo/get",
        )  # fmt: skip
    values = _canonical(result, REALTIME_FIELDS)
    return Realtime(
        wifi_sn=wifi_sn,
        inverter_sn=text_value(values.get("inverterSN")),
        dongle_sn=text_value(values.get("sn")),
        upload_time=values.get("uploadTime"),
        utc_time=values.get("utcDateTime"),
        values=values,
    )


def read_pile(result: Any, pile_sn: str, *, vendor: str = "solax_ev") -> PileInfo:
    """A `getPileInfo` `result` object → `PileInfo`."""
    if not isinstance(result, Mapping):
        raise VendorDataQualityError(
            f"{vendor} getPileInfo: result is {type(result).__name__}, not an object",
            vendor=vendor, endpoint="getPileInfo",
        )  # fmt: skip
    return PileInfo(pile_sn=pile_sn, values=_canonical(result, PILE_FIELDS))
