"""A test-only vendor client that exercises the pipeline (no vendor exists yet).

It behaves like a well-mannered client: takes a budget slot for every call,
returns points stamped with a data time, raises our exception classes. Its
behaviour is chosen by the source's `api_key` prefix:

* `ok…`     — one inverter point per device per poll;
* `crash…`  — poll raises RuntimeError with the key in its message (a bug);
* `auth…`   — login raises VendorAuthError quoting the key;
* `slow…`   — poll takes a while (for shutdown tests) and then succeeds;
* `limit…`  — poll raises VendorRateLimitError.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from collector.errors import VendorAuthError, VendorRateLimitError
from collector.schema.point import Point
from collector.vendors.base import Device, PollResult

SLOW_SECONDS = 1.5


class PipelineTestClient:
    def __init__(self, source: Any, http: Any, budget: Any, state: Any, *, clock: Any = None) -> None:
        self.source = source
        self.budget = budget
        self.key = source.credentials.get("api_key", "ok")
        self.polls = 0

    async def open(self) -> None:
        await self.budget.acquire(endpoint="/login")
        if self.key.startswith("auth"):
            raise VendorAuthError(f"login refused for key {self.key}", vendor="foxess", code=41807)

    async def discover(self) -> Sequence[Device]:
        sns = self.source.devices or ("STUB1",)
        return [Device(sn=sn, site=self.source.site) for sn in sns]

    async def poll(self, stream: str, devices: Sequence[Device]) -> PollResult:
        if stream != "live":
            return PollResult()  # this test vendor only has live data
        await self.budget.acquire(endpoint="/real", devices=[d.sn for d in devices])
        self.polls += 1
        if self.key.startswith("crash"):
            raise RuntimeError(f"unexpected answer while using {self.key}")
        if self.key.startswith("limit"):
            raise VendorRateLimitError(
                "too many calls", vendor="foxess", code=40400, retry_at=time.time() + 120
            )
        if self.key.startswith("slow"):
            print("pipeline-test: poll started", flush=True)
            await asyncio.sleep(SLOW_SECONDS)  # a slow vendor, not a wait for a condition
        stamp = int(time.time()) // 60 * 60
        result = PollResult()
        for i, dev in enumerate(devices):
            tags = {"vendor": "foxess", "source": self.source.name, "site": dev.site, "device": dev.sn}
            fields: dict[str, float | int | str] = {
                "pv_power_w": 1000.0 + i,
                "battery_soc_pct": 55.5,
                "status_code": 1,
                "state": "normal",
            }
            result.points.append(Point("inverter", tags, fields, stamp))
            result.latest[dev.sn] = stamp
        return result

    history_window = 86400.0
    history_calls = 0

    async def history(self, device: Device, start: int, end: int) -> PollResult:
        """A point every 5 minutes in [start, end), like a vendor's history endpoint."""
        await self.budget.acquire(endpoint="/history", devices=[device.sn])
        print(f"pipeline-test: history {device.sn} {start} {end}", flush=True)
        result = PollResult()
        tags = {"vendor": "foxess", "source": self.source.name, "site": device.site, "device": device.sn}
        first = -(-start // 300) * 300
        for t in range(first, end, 300):
            result.points.append(Point("inverter", tags, {"pv_power_w": float(t % 86400)}, t))
        return result

    async def close(self) -> None:
        return None


def install() -> None:
    """Register the client for the `foxess` slug (tests only)."""
    from collector.vendors import VENDORS

    VENDORS["foxess"] = PipelineTestClient  # type: ignore[assignment]
