"""The daemon on the real clock (issue #6 §5): every job it schedules runs, not only the first.

One `python -m collector run` against a FoxESS simulator, both subprocesses, embedded store
(tests/daemon.py). The daemon is started by a session fixture with the session's first test
and this test is moved to the end of the run (marker `realclock`, tests/conftest.py), so its
~2 minutes pass while the other tests run; run alone, it waits for them (a deadline poll).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from collector.scheduler import jitter_for
from collector.sinks.local import LocalStore
from tests.daemon import ORPHAN_DEVICE, SOURCE, RealDaemon, event_time, wait_until

#: The longest the whole check may take after the daemon started: two minute boundaries
#: (≤ 120 s + jitter) and the shifted live run (≤ ~105 s), with slack for a loaded machine.
DEADLINE = 240.0
SELF_INTERVAL = 60.0


def stored(daemon: RealDaemon, measurement: str) -> list[str]:
    path = daemon.state_dir / "local.db"
    if not path.exists():
        return []
    store = LocalStore(path)
    try:
        return list(store.export(measurement=measurement))
    finally:
        store.close()


def collector_times(daemon: RealDaemon) -> set[int]:
    """The minutes with a `collector` point of our source."""
    return {int(line.rsplit(" ", 1)[1]) for line in stored(daemon, "collector") if f"source={SOURCE}" in line}


def polls(events: list[dict[str, Any]], stream: str) -> list[int]:
    """Indexes of the log lines of finished runs of one stream of our source."""
    return [
        i
        for i, e in enumerate(events)
        if e.get("event") == "poll.done" and e.get("source") == SOURCE and e.get("stream") == stream
    ]


def live_ran_after_reschedule(events: list[dict[str, Any]]) -> bool:
    moved = [
        i
        for i, e in enumerate(events)
        if e.get("event") == "poll.rescheduled" and e.get("source") == SOURCE and e.get("stream") == "live"
    ]
    return bool(moved) and any(i > moved[0] for i in polls(events, "live"))


def orphan_delivered(daemon: RealDaemon) -> bool:
    return any(f"device={ORPHAN_DEVICE}" in line for line in stored(daemon, "inverter"))


@pytest.mark.realclock
def test_every_scheduled_job_runs_on_the_real_clock(real_daemon: RealDaemon) -> None:
    d = real_daemon
    remaining = max(1.0, d.started_at + DEADLINE - time.time())

    def done() -> bool:
        events = d.events()
        return (
            len(collector_times(d)) >= 2
            and orphan_delivered(d)
            and bool(polls(events, "live"))
            and bool(polls(events, "energy"))
            and live_ran_after_reschedule(events)
        )

    try:
        wait_until(done, remaining, "every job to run", d)
    except AssertionError as err:
        events = d.events()
        summary = [
            (e.get("event"), e.get("stream"), e.get("timestamp"))
            for e in events
            if str(e.get("event", "")).startswith(("poll.", "spool.", "job.", "collector."))
        ]
        raise AssertionError(
            f"{err}; collector minutes {sorted(collector_times(d))}, orphan delivered "
            f"{orphan_delivered(d)}, events {summary}"
        ) from None
    events = d.events()
    # The once-a-minute job ran while the daemon ran (not only the shutdown's point).
    assert d.alive()
    assert [e.get("event") for e in events].count("collector.started") == 1  # no restart
    # The orphan spool was adopted by the scheduled job, within about a minute.
    adopted = [e for e in events if e.get("event") == "spool.adopted"]
    assert adopted and adopted[0]["lines"] == 1
    late = event_time(adopted[0]) - d.orphan_at
    assert late <= SELF_INTERVAL + jitter_for(SELF_INTERVAL) + 10, f"adopted {late:.0f} s after it was left"
    assert not (d.state_dir / adopted[0]["path"].rsplit("/", 1)[1]).exists()
    # Every stream's runs succeeded, the shifted live one too.
    for stream in ("live", "energy"):
        assert all(events[i]["ok"] for i in polls(events, stream)), stream
    assert not [e for e in events if str(e.get("event", "")).startswith("job.")]  # missed, crashed
    # A graceful stop still works and writes the final point.
    assert d.stop() == 0
    assert any(e.get("event") == "collector.stopped" for e in d.events())
