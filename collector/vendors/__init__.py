"""The explicit vendor registry: specs for every vendor slug, clients where implemented.

`VENDOR_SPECS` holds each vendor's documented defaults (limits, credentials,
base URL), so `check` can plan a config for any of them. `VENDORS` maps a slug
to its client class; a vendor package adds itself here, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from collector.schema.mapping import MappingTable
from collector.schema.point import Point
from collector.vendors.base import Limits, StreamSpec, VendorClient, VendorSpec
from collector.vendors.foxess import FOXESS_SPEC, FoxessClient
from collector.vendors.foxess import PARSERS as FOXESS_PARSERS
from collector.vendors.foxess import TABLES as FOXESS_TABLES
from collector.vendors.sungrow import PARSERS as SUNGROW_PARSERS
from collector.vendors.sungrow import SUNGROW_SPEC, SungrowClient
from collector.vendors.sungrow import TABLES as SUNGROW_TABLES

#: `parse --vendor V --endpoint E`: (raw response text, tz=IANA name, request=raw
#: request text or None) -> points. A vendor package registers its mappers here.
Parser = Callable[..., Iterable[Point]]

VENDOR_SPECS: dict[str, VendorSpec] = {
    # FoxESS Open API: the spec lives with its client (collector/vendors/foxess).
    "foxess": FOXESS_SPEC,
    # iSolarCloud: the spec lives with its client (collector/vendors/sungrow/spec.py).
    "sungrow": SUNGROW_SPEC,
    # SolaX Cloud API v2: < 10 calls/minute and < 10,000/day per token
    # (research/solax.md "Documented limits"); "<10" read as at most 9.
    "solax": VendorSpec(
        slug="solax",
        title="SolaX Cloud",
        default_base_url="https://global.solaxcloud.com",
        credentials=("token_id",),
        default_limits=Limits(per_minute=9, per_day=9999),
        needs_devices=True,
        streams=(StreamSpec("live", default_interval=300.0, calls_per_run=1, batch=1),),
        device_hint="Wi-Fi dongle serial numbers (registration numbers)",
    ),
    "sunvec": VendorSpec(
        slug="sunvec",
        title="Sunvec Connect",
        default_base_url="https://www.sunveccloud.com",
        credentials=("token_id",),
        default_limits=Limits(per_minute=9, per_day=9999),
        needs_devices=True,
        streams=(StreamSpec("live", default_interval=300.0, calls_per_run=1, batch=1),),
        device_hint="Wi-Fi dongle serial numbers (registration numbers)",
    ),
    "solax_ev": VendorSpec(
        slug="solax_ev",
        title="SolaX EV charger",
        default_base_url="https://global.solaxcloud.com",
        credentials=("token_id",),
        default_limits=Limits(per_minute=9, per_day=9999),
        needs_devices=True,
        streams=(StreamSpec("live", default_interval=300.0, calls_per_run=1, batch=1),),
        device_hint="charger serial numbers",
    ),
}

# Implemented clients. A vendor package adds one line here.
VENDORS: dict[str, type[VendorClient]] = {
    "foxess": FoxessClient,
    "sungrow": SungrowClient,
}

# The mapping tables of each vendor (for the docs: units and quanta per field).
MAPPING_TABLES: dict[str, tuple[MappingTable, ...]] = {
    "foxess": FOXESS_TABLES,
    "sungrow": SUNGROW_TABLES,
}


def quanta() -> dict[tuple[str, str], str]:
    """(measurement, catalogue field name) → the steps the vendors round it to, e.g.
    `foxess 100 Wh` (fields of a pattern, `pv{N}_power_w`, under the pattern)."""
    steps: dict[tuple[str, str], dict[str, set[str]]] = {}
    for vendor, tables in MAPPING_TABLES.items():
        for table in tables:
            for target in table.targets:
                for source in table.preference(target):
                    text = table.quantum_text(target, source)
                    if text != "—":
                        key = (table.measurement, table.spec(target).name)
                        steps.setdefault(key, {}).setdefault(vendor, set()).add(text)
    return {
        key: "; ".join(f"{v} {' / '.join(sorted(t))}" for v, t in sorted(per.items()))
        for key, per in steps.items()
    }


# Saved-response parsers, keyed (vendor, endpoint). A vendor package adds its lines here.
PARSERS: dict[tuple[str, str], Parser] = {
    **FOXESS_PARSERS,
    **SUNGROW_PARSERS,
}

__all__ = ["VENDORS", "VENDOR_SPECS", "Limits", "StreamSpec", "VendorSpec"]
