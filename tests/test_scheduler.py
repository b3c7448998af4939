"""`Scheduler.add`: every job it adds is scheduled, never added paused (issue #6 §5).

APScheduler 3 reads `next_run_time=None` as "add the job paused"; the collector's
once-a-minute job and the live job that `_follow_uploads` re-adds were added that way.
The daemon on the real clock is tested in tests/test_daemon.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from collector.scheduler import Scheduler, aligned_start, jitter_for


async def _noop() -> None:
    return None


def test_a_job_added_without_first_run_is_scheduled_not_paused() -> None:
    async def main() -> None:
        sched = Scheduler()
        sched.start()
        try:
            now = time.time()
            sched.add("collector:self", _noop, 60.0, now=now)
            nxt = sched.next_run("collector:self")
            assert nxt is not None, "added paused"
            start = aligned_start(60.0, 0.0, now)
            assert start <= nxt <= start + dt.timedelta(seconds=jitter_for(60.0))
        finally:
            sched.shutdown()

    asyncio.run(main())


def test_a_job_added_before_start_is_scheduled_once_started() -> None:
    async def main() -> None:
        sched = Scheduler()
        sched.add("collector:self", _noop, 60.0, now=time.time())
        sched.start()
        try:
            assert sched.next_run("collector:self") is not None
        finally:
            sched.shutdown()

    asyncio.run(main())


def test_first_run_moves_the_first_run_and_a_re_add_without_it_keeps_the_job_running() -> None:
    """The `_follow_uploads` pattern: added with `first_run`, then replaced with an offset."""

    async def main() -> None:
        sched = Scheduler()
        sched.start()
        try:
            now = time.time()
            first = dt.datetime.fromtimestamp(now + 1, tz=dt.UTC)
            sched.add("roof:live", _noop, 300.0, now=now, first_run=first)
            assert sched.next_run("roof:live") == first
            sched.add("roof:live", _noop, 300.0, now=now, offset=121.0)
            nxt = sched.next_run("roof:live")
            assert nxt is not None, "the re-added live job is paused"
            start = aligned_start(300.0, 121.0, now)
            assert start <= nxt <= start + dt.timedelta(seconds=jitter_for(300.0))
        finally:
            sched.shutdown()

    asyncio.run(main())
