"""What the distribution declares against what the runtime imports (issue #6 §4)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

from packaging.requirements import Requirement

from tests.conftest import ROOT

DIST = "solar-collector"
BENCH_ONLY = {"influxdb-client": "influxdb_client"}  # distribution → import name

#: Import every module of the package (not the `__main__` scripts, which run the CLI on
#: import; what they import is imported here anyway) and report the top-level names loaded.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
import collector
names = [m.name for m in pkgutil.walk_packages(collector.__path__, "collector.")
         if not m.name.endswith(".__main__")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted({k.split(".")[0] for k in sys.modules})}))
"""


def _extras_of(dist_name: str) -> dict[str, set[str | None]]:
    """Each requirement's name → the extras it is declared under (None: always)."""
    out: dict[str, set[str | None]] = {}
    extras = importlib.metadata.metadata(DIST).get_all("Provides-Extra") or []
    for text in importlib.metadata.requires(dist_name) or []:
        req = Requirement(text)
        name = req.name.lower()
        if req.marker is None:
            out.setdefault(name, set()).add(None)
            continue
        for extra in extras:
            if req.marker.evaluate({"extra": extra}):
                out.setdefault(name, set()).add(extra)
    return out


def test_influxdb_client_is_required_only_by_the_bench_extra() -> None:
    declared = _extras_of(DIST)
    for dist in BENCH_ONLY:
        assert declared.get(dist) == {"bench"}, f"{dist} declared under {declared.get(dist)}"


def test_importing_every_collector_module_never_imports_influxdb_client() -> None:
    res = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.splitlines()[-1])
    assert "collector.sinks.influxdb" in report["modules"]  # the walk really went through
    assert "collector.vendors.foxess.client" in report["modules"]
    loaded = set(report["loaded"])
    assert "aiohttp" in loaded
    for module in BENCH_ONLY.values():
        assert module not in loaded
