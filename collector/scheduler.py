"""APScheduler 3.x, the way the field notes say to use it (stack.md §4.2).

One job per (source, stream), in UTC, with an interval aligned to the clock
(runs at multiples of the interval since the epoch, plus an offset), a jitter
of 10 % of the interval (at most 30 s), `max_instances=1`, `coalesce=True` and
a misfire grace of max(30 s, interval / 2). Every job is its own asyncio task,
so one slow or failing source never delays another.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collector.log import get_logger

log = get_logger(__name__)

MAX_JITTER = 30.0


def jitter_for(interval: float) -> float:
    return min(MAX_JITTER, interval * 0.1)


def aligned_start(interval: float, offset: float, now: float) -> dt.datetime:
    """The first clock-aligned run time at or after `now` (multiples of interval + offset)."""
    base = (now - offset) // interval * interval + offset
    if base < now:
        base += interval
    return dt.datetime.fromtimestamp(base, tz=dt.UTC)


class Scheduler:
    """A thin wrapper: add jobs, count what APScheduler reports, stop cleanly."""

    def __init__(self) -> None:
        self._sched = AsyncIOScheduler(timezone=dt.UTC)
        self.missed = 0
        self.skipped_overlap = 0
        self._sched.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            self.missed += 1
            log.warning("job.missed", job=event.job_id)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.skipped_overlap += 1
            log.warning("job.still_running", job=event.job_id, note="previous run not finished; skipped")
        else:  # EVENT_JOB_ERROR: our jobs catch everything, so this is a bug
            log.error("job.crashed", job=event.job_id, error=repr(getattr(event, "exception", None)))

    def add(
        self,
        job_id: str,
        func: Callable[[], Awaitable[Any]],
        interval: float,
        *,
        now: float,
        offset: float = 0.0,
        first_run: dt.datetime | None = None,
    ) -> None:
        """Add (or replace) a job running every `interval` s on the clock, plus `offset`.

        `first_run` moves the first run earlier (e.g. at once on start). APScheduler 3
        reads `next_run_time=None` as "add the job paused", so it is passed only when
        given; without it the trigger sets the first run.
        """
        trigger = IntervalTrigger(
            seconds=interval,
            start_date=aligned_start(interval, offset, now),
            timezone=dt.UTC,
            jitter=jitter_for(interval) or None,
        )
        extra: dict[str, Any] = {} if first_run is None else {"next_run_time": first_run}
        self._sched.add_job(
            func,
            trigger,
            id=job_id,
            name=job_id,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(max(30.0, interval / 2)),
            **extra,
        )

    def next_run(self, job_id: str) -> dt.datetime | None:
        """When the job runs next (None: no such job, or paused)."""
        job = self._sched.get_job(job_id)
        return None if job is None else job.next_run_time

    def start(self) -> None:
        self._sched.start()

    def pause(self) -> None:
        if self._sched.running:
            self._sched.pause()

    def shutdown(self) -> None:
        if self._sched.running:
            # AsyncIOExecutor cannot wait for running jobs; the app waits for its own.
            self._sched.shutdown(wait=False)
