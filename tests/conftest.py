"""Shared fixtures: config files for the pipeline tests and a subprocess runner."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon import RealDaemon, started

ROOT = Path(__file__).resolve().parent.parent

REAL_CLOCK = "realclock"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `realclock` go last: their daemon runs while the rest of the suite runs."""
    last = [item for item in items if item.get_closest_marker(REAL_CLOCK)]
    if last:
        items[:] = [item for item in items if not item.get_closest_marker(REAL_CLOCK)] + last


@pytest.fixture(scope="session")
def real_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealDaemon]:
    """The daemon on the real clock against a FoxESS simulator (tests/daemon.py)."""
    yield from started(tmp_path_factory.mktemp("real-daemon"))


@pytest.fixture(scope="session", autouse=True)
def _start_real_daemon_early(request: pytest.FixtureRequest) -> None:
    """Start `real_daemon` with the session's first test when a `realclock` test is selected."""
    if any(item.get_closest_marker(REAL_CLOCK) for item in request.session.items):
        # A daemon that fails to start fails the `realclock` tests (they ask for it again
        # and get the same error), not every test of the session.
        with contextlib.suppress(Exception):
            request.getfixturevalue("real_daemon")


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a YAML config (dedented) with `state_dir` in the test's tmp dir."""

    def write(body: str) -> Path:
        path = tmp_path / "config.yaml"
        text = f"state_dir: {tmp_path / 'state'}\n" + textwrap.dedent(body)
        path.write_text(text)
        path.chmod(0o600)
        return path

    return write


#: The CLI with the pipeline test vendor installed for the `foxess` slug.
_CLI_WITH_TEST_VENDOR = (
    "import sys; import tests.pipeline_vendor as v; v.install(); "
    "from collector.cli import main; sys.exit(main(sys.argv[1:]))"
)


def spawn_cli(args: list[str]) -> subprocess.Popen[str]:
    """Start the CLI (e.g. the daemon) in the background, test vendor installed."""
    return subprocess.Popen(
        [sys.executable, "-c", _CLI_WITH_TEST_VENDOR, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def run_cli(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess with the pipeline test vendor installed."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", _CLI_WITH_TEST_VENDOR, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )
