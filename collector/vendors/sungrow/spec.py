"""What the pipeline knows about iSolarCloud before any call: limits, credentials, streams.

Call budget per appkey (the Basic package allows 2000 calls an hour; `getOpenApiCallInfo`
says what this appkey really has, and the budget takes it, within the config's limits):

| stream | interval | calls per run | runs/hour (+1) | calls/hour |
| --- | --- | --- | --- | --- |
| `live` | 5 min | 3: the plant list, realtime per device type | 13 | 39 |
| `energy` | 1 h | 6: day, month, year data per device type | 2 | 12 |
| `faults` | 15 min | 1: `getFaultAlarmInfo`, every plant, paged | 5 | 5 |
| **scheduled** | | | | **56 = 2.8 %** |

(One call per device type covers up to 50 devices; a home with a hybrid and its meter
has two device types, a PV-only plant one.)

Everything else is left for backfill (`getDevicePointMinuteDataList`: one call per
3-hour window for up to 50 devices of one type), discovery and the hourly
`getOpenApiCallInfo`. The gateway's own throttle (a bucket of 15 refilled at 10 a
second, research/sungrow.md §4.3) is kept well clear of by spacing calls 5 a second.
"""

from __future__ import annotations

from collector.vendors.base import Limits, StreamSpec, VendorSpec
from collector.vendors.sungrow.transport import DEFAULT_REGION, REGIONS

LIVE_INTERVAL = 300.0
ENERGY_INTERVAL = 3600.0
FAULTS_INTERVAL = 900.0
#: The minute endpoint answers at most 3 hours per call (research/sungrow.md §7.1).
MINUTE_WINDOW = 3 * 3600.0
#: Devices per realtime / history call (≤ 50 ps_keys of one type, research/sungrow.md §7.1).
BATCH = 50

SUNGROW_SPEC = VendorSpec(
    slug="sungrow",
    title="Sungrow iSolarCloud",
    default_base_url=REGIONS[DEFAULT_REGION],
    credentials=("appkey", "access_key", "username", "password"),
    optional_credentials=("rsa_public_key",),
    # 2000 calls/hour per appkey (Basic package; E999 past it); a day of 24 × that, as
    # the CN-doc's getOpenApiCallInfo sample (research/sungrow.md §4.3). 5 a second keeps
    # clear of the gateway's bucket (15, refilled at 10/s).
    default_limits=Limits(per_second=5, per_hour=2000, per_day=48000),
    budget_scope="account",
    streams=(
        StreamSpec("live", default_interval=LIVE_INTERVAL, calls_per_run=3, batch=BATCH),
        StreamSpec("energy", default_interval=ENERGY_INTERVAL, calls_per_run=6, batch=BATCH),
        StreamSpec("faults", default_interval=FAULTS_INTERVAL, calls_per_run=1, batch=1000),
    ),
    data_resolution=300.0,
    device_hint="device serial numbers or ps_keys",
    regions=REGIONS,
)
