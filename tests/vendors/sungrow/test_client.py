"""SungrowClient in the real app against the iSolarCloud simulator, on one virtual clock:
devices named by ps_key, a device list that changed, faults not granted, the vendor's grant."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from collector.app import App
from collector.config import load_config
from collector.simulators.plant import Plant, Site, local_time
from collector.simulators.sungrow import (
    DEMO_ACCESS_KEY,
    DEMO_APPKEY,
    DEMO_PASSWORD,
    DEMO_USER,
    SungrowApp,
    SungrowSim,
)
from collector.vendors.base import Limits
from tests.contract.conftest import SharedClock, hybrid, pv_only, write_config

ZONE = "Europe/Berlin"
HYB, PVO = "A23CL0000001", "A23CL0000002"
DAY = date(2026, 6, 16)
FAULTS = "/openapi/getFaultAlarmInfo"


def make_plant() -> Plant:
    inverters = (hybrid(HYB), pv_only(PVO))
    site = Site("sg-client", "Client Site", ZONE, 52.5, 13.4, inverters, DAY - timedelta(days=5))
    return Plant([site], cache_days=16)


def run(
    tmp_path: Path,
    body: Callable[[App, SungrowSim, SharedClock], Awaitable[None]],
    *,
    app_kw: dict[str, Any] | None = None,
    extra: str = "",
) -> None:
    clock = SharedClock(local_time(ZONE, DAY, 12, 0))
    app_def = SungrowApp(DEMO_APPKEY, DEMO_ACCESS_KEY, **(app_kw or {}))
    sim = SungrowSim(make_plant(), apps=[app_def], clock=clock)

    async def main() -> None:
        url = await sim.start()
        cfg = write_config(
            tmp_path / "cfg.yaml",
            f"state_dir: {tmp_path / 'state'}\nsources:\n  - name: sg\n    vendor: sungrow\n"
            f"    base_url: {url}\n    timezone: {ZONE}\n    appkey: {DEMO_APPKEY}\n"
            f"    access_key: {DEMO_ACCESS_KEY}\n    username: {DEMO_USER}\n"
            f'    password: "{DEMO_PASSWORD}"\n{extra}',
        )
        app = App(load_config(cfg), clock=clock)
        try:
            await app.start()
            await body(app, sim, clock)
        finally:
            await app.close()
            await sim.stop()

    asyncio.run(main())


def test_a_device_named_by_its_ps_key_is_polled(tmp_path: Path) -> None:
    async def body(app: App, sim: SungrowSim, clock: SharedClock) -> None:
        key = next(d.ps_key for d in sim.devices if d.sn == PVO)
        rt = app.sources[0]
        assert await app.poll(rt, "live")
        assert [d.sn for d in rt.devices] == [PVO]
        assert rt.devices[0].aliases == (key,)

    key = {d.sn: d.ps_key for d in SungrowSim(make_plant()).devices}[PVO]
    # quoted: YAML reads 1129147_1_2_1 as a number (underscores are digit separators)
    run(tmp_path, body, extra=f'    devices: ["{key}"]\n')


def test_a_device_the_gateway_no_longer_answers_for_is_logged_and_counted(tmp_path: Path) -> None:
    async def body(app: App, sim: SungrowSim, clock: SharedClock) -> None:
        rt = app.sources[0]
        assert await app.poll(rt, "live")
        before = rt.stats.records_dropped
        sim.hidden.add(next(d.ps_key for d in sim.devices if d.sn == PVO))  # gone from the account
        clock.set(clock.t + 300)
        assert await app.poll(rt, "live")  # the others keep their data
        assert rt.stats.records_dropped == before + 1
        assert app.state is not None and app.state.get("sungrow:sg:devices") is None  # read again next start

    with capture_logs() as logs:
        run(tmp_path, body)
    events = [e for e in logs if e.get("event") == "sungrow.devices_refused"]
    assert len(events) == 1 and events[0]["count"] == 1


def test_faults_not_granted_warn_once_and_stop_asking_for_a_day(tmp_path: Path) -> None:
    async def body(app: App, sim: SungrowSim, clock: SharedClock) -> None:
        rt = app.sources[0]
        for _ in range(3):
            await app.poll(rt, "faults")
            clock.set(clock.t + 900)
        assert await app.poll(rt, "live")  # live data goes on
        assert sum(c.path == FAULTS for c in sim.calls) == 1

    with capture_logs() as logs:
        run(tmp_path, body, app_kw={"denied": frozenset({FAULTS})})
    assert sum(e.get("event") == "sungrow.faults_not_granted" for e in logs) == 1


def test_the_gateways_grant_becomes_the_budget(tmp_path: Path) -> None:
    async def body(app: App, sim: SungrowSim, clock: SharedClock) -> None:
        rt = app.sources[0]
        assert await app.poll(rt, "live")  # getOpenApiCallInfo after the first live run
        assert rt.budget.account.limits == Limits(per_second=5, per_hour=300, per_day=1200)

    run(tmp_path, body, app_kw={"per_hour": 300, "per_day": 1200})
