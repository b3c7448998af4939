"""FoxESS Cloud Open API (https://www.foxesscloud.com/op/…), API-key authentication.

Layers: `auth` (signature) and `transport` + `codes` (HTTP, budget, errno) →
`responses` (the vendor's shapes, no conversion) → `mapping` (declarative tables,
pure mappers) → `client` (discovery, streams, faults, history). docs/vendors/foxess.md
is the user-facing page.

Call budget per inverter and day (the vendor allows 1440, counted per inverter; the
budget counts a 50-SN batch once against each inverter):

| stream | interval | calls per run | runs/day (sliding window, +1) | calls/day |
| --- | --- | --- | --- | --- |
| `live` | 5 min (the cloud's resolution) | 1 (`/op/v1/device/real/query`, ≤ 50 SNs) | 289 | 289 |
| `energy` | 30 min | 4 (day, month, year report; generation) | 49 | 196 |
| **scheduled** | | | | **485 = 33.7 %** (≤ 60 %) |

The other ~955 calls/day/inverter are left for backfill (`/op/v0/device/history/query`,
one call per inverter-day) and retries. Account-level calls (plant and device lists,
the fault table once a day, `getAccessCount` hourly) go to the account's own counter.
"""

from __future__ import annotations

from collector.vendors.base import Limits, StreamSpec, VendorSpec
from collector.vendors.foxess.client import FoxessClient
from collector.vendors.foxess.mapping import (
    FAULT_TABLE,
    GENERATION_TABLE,
    INVERTER_TABLE,
    REPORT_TABLE,
    parse_history,
    parse_real,
    parse_report,
)

LIVE_INTERVAL = 300.0
ENERGY_INTERVAL = 1800.0

FOXESS_SPEC = VendorSpec(
    slug="foxess",
    title="FoxESS Cloud",
    default_base_url="https://www.foxesscloud.com",
    credentials=("api_key",),
    # 1440 calls/day per inverter; queries 1/s per endpoint (doc "Access frequency limit").
    default_limits=Limits(per_second=1, per_day=1440),
    budget_scope="device",
    per_second_scope="endpoint",
    streams=(
        StreamSpec("live", default_interval=LIVE_INTERVAL, calls_per_run=1, batch=50),
        StreamSpec("energy", default_interval=ENERGY_INTERVAL, calls_per_run=4, batch=1),
    ),
    data_resolution=300.0,
    device_hint="inverter serial numbers",
)

#: Every mapping table (the docs read units and quanta from them).
TABLES = (INVERTER_TABLE, GENERATION_TABLE, REPORT_TABLE, FAULT_TABLE)

PARSERS = {
    ("foxess", "real"): parse_real,
    ("foxess", "history"): parse_history,
    ("foxess", "report"): parse_report,
}

__all__ = ["FOXESS_SPEC", "PARSERS", "TABLES", "FoxessClient", "parse_history", "parse_real", "parse_report"]
