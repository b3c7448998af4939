"""`solar-collector demo`, as a new user runs it: no account, no database, data at once."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import ROOT


def test_demo_shows_each_simulated_inverter_within_seconds() -> None:
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "collector", "demo", "--seconds", "6"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    out = res.stdout
    # both inverters of the demo plant, with live fields in SI units
    assert "inverter 60H3102E2400001" in out and "inverter 60F3602G2400002" in out
    assert "pv_power_w" in out and " W\n" in out
    assert "battery_soc_pct" in out
    assert "energy 60H3102E2400001 period=hour" in out
    # the iSolarCloud gateway's plant: its hybrid, meter and PV inverter, the plant, the energy
    for device in ("A2350000001", "A2350000001M", "A2350000002"):
        assert f"inverter {device} " in out, device
    assert "site demo-sungrow" in out and "energy A2350000002 period=day" in out
    assert "collector demo-sungrow" in out
    assert "rate_limited                                      1" not in out
    assert "errors                                            0" in out
    assert took < 60  # "a new user sees data within a minute"
