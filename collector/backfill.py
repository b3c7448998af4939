"""History backfill: windows, checkpoints, pacing by the budget, progress.

Any vendor client that implements `HistoryCapable` gets this for free:

* The range is cut into **windows aligned to the site's local midnights**, no
  longer than the vendor allows per call (a 25-hour DST day is split), so a
  window means the same thing on every run.
* Each window is fetched with **backfill priority** (the budget gives live
  polling first claim on every limit), its points are made durable in the
  spool, and only then is the window checkpointed in `state.db`. A window that
  ends less than `SETTLE` ago is not checkpointed: the vendor may still be
  receiving that data.
* Re-running a finished range makes no vendor call. A SIGKILL loses at most
  the window in flight, which is fetched again.
* No call for data the sink would drop: where the sink can say its retention,
  a range starts no earlier than the site's local midnight of the day holding
  now − retention (`Backfiller.start_for`), with one warning per source.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from collector import budget as budget_mod
from collector.errors import (
    BudgetExhaustedError,
    VendorAuthError,
    VendorDataQualityError,
    VendorRateLimitError,
    VendorResponseError,
    VendorTransientError,
)
from collector.log import get_logger
from collector.sinks.base import retention_of
from collector.vendors.base import (
    BatchHistoryCapable,
    Device,
    HistoryCapable,
    PeriodHistoryCapable,
    PollResult,
)

if TYPE_CHECKING:
    from collector.app import App, SourceRuntime

log = get_logger(__name__)

STREAM = "history"
#: A window that ended less than this long ago is fetched but not checkpointed.
SETTLE = 3600
#: Transient failures of one window before it is left for a later run.
WINDOW_TRIES = 3


def day_windows(start: int, end: int, tz: ZoneInfo, max_len: float) -> list[tuple[int, int]]:
    """[start, end) cut at local midnights and, within a day, on a grid of `max_len`
    seconds from its midnight (so every range cuts a day the same way, and windows of
    devices with different ranges line up for a batched call)."""
    out: list[tuple[int, int]] = []
    cursor = start
    step = max(1, int(max_len))
    while cursor < end:
        cell = grid_cell(cursor, tz, step)
        local = dt.datetime.fromtimestamp(cursor, tz)
        next_day = (local + dt.timedelta(days=1)).date()
        midnight = int(dt.datetime(next_day.year, next_day.month, next_day.day, tzinfo=tz).timestamp())
        stop = min(end, midnight, cell + step)
        out.append((cursor, stop))
        cursor = stop
    return out


def grid_cell(ts: int, tz: ZoneInfo, step: int) -> int:
    """The start of the `step`-second cell of `ts`'s local day (cells run from midnight)."""
    midnight = local_midnight(ts, tz)
    return midnight + (ts - midnight) // step * step


PERIODS = ("day", "month", "year")


def period_index(d: dt.date, period: str) -> int:
    """The period holding `d` as a running number (days, months or years since year 0)."""
    if period == "day":
        return d.toordinal()
    if period == "month":
        return d.year * 12 + d.month - 1
    return d.year


def period_first_day(index: int, period: str) -> dt.date:
    """The first local date of period number `index` (`period_index`'s inverse)."""
    if period == "day":
        return dt.date.fromordinal(index)
    if period == "month":
        return dt.date(index // 12, index % 12 + 1, 1)
    return dt.date(index, 1, 1)


def _midnight_of(d: dt.date, tz: ZoneInfo) -> int:
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())


def local_midnight(ts: float, tz: ZoneInfo) -> int:
    d = dt.datetime.fromtimestamp(ts, tz).date()
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())


def site_time(when: dt.datetime, tz: ZoneInfo) -> int:
    """A naive date-time is the site's local time; an aware one is what it says.

    The one rule for a backfill date (`backfill.since`, `--since`, `--until`):
    read in the site's zone, the device's where the vendor gives one, else the
    source's (`Backfiller.zone`).
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return int(when.timestamp())


@dataclass(frozen=True)
class Job:
    """One history call: the devices it covers (one, or a batch of one group), the
    span it asks for, and each device's own window in it (checkpointed on success)."""

    devices: tuple[Device, ...]
    start: int
    end: int
    windows: tuple[tuple[int, int], ...]


@dataclass
class BackfillReport:
    windows_total: int = 0
    windows_done_before: int = 0
    windows_fetched: int = 0
    windows_failed: int = 0
    points: int = 0
    stopped: str = ""  # why it stopped early ("" = it finished)
    per_device: dict[str, int] = field(default_factory=dict)
    #: Devices with a window that failed (or was refused) in this run.
    failed_devices: set[str] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return not self.stopped and self.windows_failed == 0

    def merge(self, other: BackfillReport) -> None:
        self.windows_total += other.windows_total
        self.windows_done_before += other.windows_done_before
        self.windows_fetched += other.windows_fetched
        self.windows_failed += other.windows_failed
        self.points += other.points
        self.stopped = self.stopped or other.stopped
        for sn, n in other.per_device.items():
            self.per_device[sn] = self.per_device.get(sn, 0) + n
        self.failed_devices |= other.failed_devices


class Progress:
    """A one-line progress bar on a terminal, a log line every few windows elsewhere."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.monotonic()

    def step(self, label: str) -> None:
        self.done += 1
        frac = self.done / self.total
        elapsed = time.monotonic() - self.t0
        eta = elapsed / frac - elapsed if frac else 0.0
        if self.tty:
            bar = "#" * int(frac * 30)
            self.stream.write(f"\r[{bar:<30}] {self.done}/{self.total} windows  {label}  eta {eta:4.0f}s ")
            self.stream.flush()
        elif self.done == self.total or self.done % 10 == 0:
            log.info("backfill.progress", done=self.done, total=self.total, last=label, eta_s=round(eta))

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Backfiller:
    """Fetches history windows for one source through its `HistoryCapable` client."""

    def __init__(self, app: App, rt: SourceRuntime, *, max_wait: float = 600.0) -> None:
        self.app = app
        self.rt = rt
        self.max_wait = max_wait
        if not isinstance(rt.client, HistoryCapable):
            raise TypeError(f"{rt.spec.title} has no history endpoint")
        self.client: HistoryCapable = rt.client

    def zone(self, dev: Device) -> ZoneInfo:
        """The site's zone: the device's (its plant's) where the vendor gives one, else the source's."""
        return ZoneInfo(dev.timezone or self.rt.cfg.timezone)

    def since_ranges(
        self,
        devices: Sequence[Device],
        since: dt.datetime,
        until: dt.datetime | None = None,
        *,
        whole_days: bool = False,
    ) -> list[tuple[list[Device], int, int]]:
        """[since, until) per site zone, with the devices it applies to.

        Dates are local to each device's site (see `site_time`), so every
        inverter's day starts at its own midnight; `until` None is now, or the
        site's last midnight with `whole_days` (the daemon's "up to today").
        """
        groups: dict[tuple[int, int], list[Device]] = {}
        for dev in devices:
            tz = self.zone(dev)
            start = site_time(since, tz)
            end = site_time(until, tz) if until is not None else int(self.app.clock.time())
            if whole_days:
                end = local_midnight(end, tz)
            groups.setdefault((start, end), []).append(dev)
        return [(devs, start, end) for (start, end), devs in groups.items()]

    async def start_for(self, dev: Device, start: int) -> int:
        """`start`, or later where the sink keeps points for less time than that.

        Clamped to the local midnight (site zone) of the day holding now − the
        sink's retention, so windows stay on local midnights: whole days the
        sink would drop are skipped, the partial day is still fetched. The first
        clamp of the source in this process logs one warning; a sink that cannot
        say (local store, stdout, VictoriaMetrics, no permission) leaves it as is.
        """
        retention = await retention_of(self.app.sink)
        if retention is None:
            return start
        tz = self.zone(dev)
        floor = local_midnight(self.app.clock.time() - retention, tz)
        if start >= floor:
            return start
        fields = {
            "source": self.rt.cfg.name,
            "requested": _label(start, tz),
            "used": _label(floor, tz),
            "retention_s": round(retention),
        }
        if not self.rt.retention_warned:
            self.rt.retention_warned = True
            log.warning(
                "backfill.clamped_to_retention",
                **fields,
                note="the database would drop older points; no vendor call is spent on them",
            )
        else:
            log.debug("backfill.clamped_to_retention", device=dev.sn, **fields)
        return floor

    def jobs(self, windows: Sequence[tuple[Device, int, int]]) -> list[Job]:
        """The calls that fetch `windows`: one per window, or, where the client takes a
        batch (`BatchHistoryCapable`), the windows of one grid cell, one device group
        and one zone together, at most `history_batch` devices per call."""
        client = self.client
        if not isinstance(client, BatchHistoryCapable) or client.history_batch <= 1:
            return [Job((dev,), s, e, ((s, e),)) for dev, s, e in windows]
        step = max(1, int(client.history_window))
        cells: dict[tuple[str, str, int], list[tuple[Device, int, int]]] = {}
        for dev, s, e in windows:
            tz = self.zone(dev)
            key = (client.history_group(dev), tz.key, grid_cell(s, tz, step))
            cells.setdefault(key, []).append((dev, s, e))
        out: list[Job] = []
        for members in cells.values():
            for i in range(0, len(members), client.history_batch):
                part = members[i : i + client.history_batch]
                out.append(
                    Job(
                        tuple(d for d, _, _ in part),
                        min(s for _, s, _ in part),
                        max(e for _, _, e in part),
                        tuple((s, e) for _, s, e in part),
                    )
                )
        out.sort(key=lambda j: j.start)
        return out

    def plan(self, devices: Sequence[Device], start: int, end: int) -> list[tuple[Device, int, int]]:
        """Every window of the range not yet checkpointed, device by device."""
        state = self.app.state
        assert state is not None
        todo: list[tuple[Device, int, int]] = []
        for dev in devices:
            tz = self.zone(dev)
            done = state.windows_done(self.rt.cfg.name, dev.sn, STREAM)
            done_ends = {s: e for s, e in done}
            for s, e in day_windows(start, end, tz, self.client.history_window):
                if done_ends.get(s, -1) >= e:
                    continue
                todo.append((dev, s, e))
        return todo

    async def run(
        self,
        devices: Sequence[Device],
        start: int,
        end: int,
        *,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> BackfillReport:
        """Fetch every window of [start, end) not yet checkpointed, for each device."""
        return await self.run_ranges([(devices, start, end)], progress=progress, should_stop=should_stop)

    async def todo(
        self, ranges: Sequence[tuple[Sequence[Device], int, int]]
    ) -> tuple[list[tuple[Device, int, int]], int]:
        """(the windows of `ranges` not yet checkpointed, after the retention clamp;
        how many windows the ranges hold in all)."""
        todo: list[tuple[Device, int, int]] = []
        total = 0
        for devices, start, end in ranges:
            for dev in devices:
                first = await self.start_for(dev, start)
                todo += self.plan([dev], first, end)
                total += len(day_windows(first, end, self.zone(dev), self.client.history_window))
        return todo, total

    async def calls_needed(self, ranges: Sequence[tuple[Sequence[Device], int, int]]) -> int:
        """The history calls `run_ranges` would make (for a progress bar)."""
        todo, _ = await self.todo(ranges)
        return len(self.jobs(todo)) + len(self.period_jobs(ranges))

    async def run_ranges(
        self,
        ranges: Sequence[tuple[Sequence[Device], int, int]],
        *,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> BackfillReport:
        """`run` over several ranges at once, so windows of different devices that the
        vendor can answer in one call (`jobs`) are fetched together."""
        state = self.app.state
        assert state is not None
        report = BackfillReport()
        todo, report.windows_total = await self.todo(ranges)
        report.windows_done_before = report.windows_total - len(todo)
        periods = self.period_jobs(ranges)
        report.windows_total += sum(len(windows) for *_, windows in periods)
        token = budget_mod.priority.set(budget_mod.BACKFILL)
        try:
            # Totals first: a handful of calls give the dashboards' day / month / year bars.
            await self._run_periods(periods, report, progress, should_stop)
            if not report.stopped:
                await self._run_jobs(self.jobs(todo), report, progress, should_stop)
        finally:
            budget_mod.priority.reset(token)
        return report

    # -- energy totals of past periods (PeriodHistoryCapable) -----------------------------
    def period_jobs(
        self, ranges: Sequence[tuple[Sequence[Device], int, int]]
    ) -> list[tuple[str, tuple[Device, ...], int, int, tuple[tuple[int, int], ...]]]:
        """(period, devices, first, last period number, each device's checkpoint window)
        of every cell of `period_span` periods that the ranges touch and that is not
        checkpointed yet, batched by group and zone as the client allows. Only periods
        that are over: today, this month and this year are the `energy` stream's."""
        client = self.client
        if not isinstance(client, PeriodHistoryCapable):
            return []
        state = self.app.state
        assert state is not None
        cells: dict[tuple[str, str, str, int], list[tuple[Device, int, int, int, int]]] = {}
        for devices, start, end in ranges:
            if end <= start:
                continue
            for dev in devices:
                tz = self.zone(dev)
                first_day = dt.datetime.fromtimestamp(start, tz).date()
                last_day = dt.datetime.fromtimestamp(end - 1, tz).date()
                for period in PERIODS:
                    span = client.period_span.get(period)
                    if not span:
                        continue
                    stream = f"{STREAM}:{period}"
                    done = dict(state.windows_done(self.rt.cfg.name, dev.sn, stream))
                    # Periods that are over only: the one running now is the live `energy`
                    # stream's (it asks for it every run), not asked for twice.
                    current = period_index(
                        dt.datetime.fromtimestamp(self.app.clock.time(), tz).date(), period
                    )
                    lo = period_index(first_day, period)
                    hi = min(period_index(last_day, period), current - 1)
                    if hi < lo:
                        continue
                    for cell in range(lo // span, hi // span + 1):
                        a = max(lo, cell * span)
                        b = min(hi, cell * span + span - 1)
                        ws = _midnight_of(period_first_day(a, period), tz)
                        we = _midnight_of(period_first_day(b + 1, period), tz)
                        if done.get(ws, -1) >= we:
                            continue
                        key = (period, client.history_group(dev), tz.key, cell)
                        cells.setdefault(key, []).append((dev, a, b, ws, we))
        out = []
        for (period, _, _, _), members in cells.items():
            for i in range(0, len(members), max(1, client.period_batch)):
                part = members[i : i + max(1, client.period_batch)]
                out.append(
                    (
                        period,
                        tuple(m[0] for m in part),
                        min(m[1] for m in part),
                        max(m[2] for m in part),
                        tuple((m[3], m[4]) for m in part),
                    )
                )
        return out

    async def _run_periods(
        self,
        jobs: Sequence[tuple[str, tuple[Device, ...], int, int, tuple[tuple[int, int], ...]]],
        report: BackfillReport,
        progress: Progress | None,
        should_stop: Callable[[], bool],
    ) -> None:
        client = self.client
        if not jobs or not isinstance(client, PeriodHistoryCapable):
            return
        for period, devices, a, b, windows in jobs:
            if should_stop():
                report.stopped = "stopping"
                return
            first, last = period_first_day(a, period), period_first_day(b, period)

            async def fetch(
                devs: tuple[Device, ...] = devices, p: str = period, f: dt.date = first, la: dt.date = last
            ) -> PollResult:
                return await client.period_history(devs, p, f, la)

            job = Job(devices, windows[0][0], max(e for _, e in windows), windows)
            ok = await self._window(job, report, fetch=fetch, stream=f"{STREAM}:{period}")
            if progress is not None:
                progress.step(f"{devices[0].sn} {period} {first.isoformat()}")
            if not ok and report.stopped:
                return

    async def _run_jobs(
        self,
        jobs: Sequence[Job],
        report: BackfillReport,
        progress: Progress | None,
        should_stop: Callable[[], bool],
    ) -> None:
        """The minute-history calls, up to the client's `history_parallel` at a time (default
        one): while one answer is read and mapped, the next request is already out, so the
        budget's spacing binds, not the vendor's response time. The budget still grants
        every call (spacing, windows) and each job is checkpointed on its own."""
        limit = max(1, int(getattr(self.client, "history_parallel", 1)))
        pending = iter(jobs)
        running: set[asyncio.Task[bool]] = set()

        async def one(job: Job) -> bool:
            ok = await self._window(job, report)
            if progress is not None:
                first = job.devices[0]
                more = f" +{len(job.devices) - 1}" if len(job.devices) > 1 else ""
                day = dt.datetime.fromtimestamp(job.start, self.zone(first))
                progress.step(f"{first.sn}{more} {day:%Y-%m-%d}")
            return ok

        try:
            while True:
                while len(running) < limit and not report.stopped:
                    if should_stop():
                        report.stopped = "stopping"
                        break
                    job = next(pending, None)
                    if job is None:
                        break
                    running.add(asyncio.create_task(one(job)))
                if not running:
                    return
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a bug in a job ends the run, as it did one at a time
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _fetch(self, job: Job) -> PollResult:
        if len(job.devices) == 1 and not isinstance(self.client, BatchHistoryCapable):
            return await self.client.history(job.devices[0], job.start, job.end)
        assert isinstance(self.client, BatchHistoryCapable)
        return await self.client.history_many(job.devices, job.start, job.end)

    async def _window(
        self,
        job: Job,
        report: BackfillReport,
        *,
        fetch: Callable[[], Awaitable[PollResult]] | None = None,
        stream: str = STREAM,
    ) -> bool:
        """Fetch one job's window(s) (`fetch`: another history call than the minute one,
        checkpointed under `stream`). Retries only what can succeed on retry (transient
        errors, unusable answers); waiting for budget is not an attempt."""
        state = self.app.state
        assert state is not None
        s = job.start
        dev_label = ",".join(d.sn for d in job.devices[:5]) + ("…" if len(job.devices) > 5 else "")
        attempt = 0
        while attempt < WINDOW_TRIES:
            try:
                result = await (fetch() if fetch is not None else self._fetch(job))
            except BudgetExhaustedError as err:
                wait = (err.retry_at - self.app.clock.time()) if err.retry_at else None
                if wait is not None and 0 < wait <= self.max_wait:
                    log.info("backfill.waiting_for_budget", seconds=round(wait))
                    await self.app.clock.sleep(wait)
                    continue
                report.stopped = f"no budget left for backfill ({err})"
                return False
            except VendorRateLimitError as err:
                until = err.retry_at or (self.app.clock.time() + 600)
                self.rt.budget.pause(until, f"{type(err).__name__}: code {err.code}")
                report.stopped = f"the vendor asked us to slow down (code {err.code})"
                return False
            except VendorAuthError as err:
                self.rt.opened = False
                self.rt.ready.clear()
                report.stopped = f"the vendor refused our credentials (code {err.code})"
                return False
            except VendorResponseError as err:
                # The same request would be refused again (e.g. a model without
                # history): checkpoint it so no later pass spends budget on it.
                log.warning(
                    "backfill.window_refused",
                    device=dev_label,
                    start=s,
                    code=err.code,
                    error=str(err),
                    note="not asked again",
                )
                self._mark_done(job, stream=stream)
                break
            except (VendorTransientError, VendorDataQualityError) as err:
                attempt += 1
                log.warning(
                    "backfill.window_failed", device=dev_label, start=s, attempt=attempt, error=str(err)
                )
                if attempt < WINDOW_TRIES:
                    await self.app.clock.sleep(min(60.0, 2.0**attempt))
                continue
            self.rt.stats.records_dropped += result.records_dropped
            n = await self.app.deliver(self.rt, result.points)
            report.points += n
            counts: dict[str, int] = {}
            for p in result.points:
                sn = p.tags.get("device")
                if sn is not None:
                    counts[sn] = counts.get(sn, 0) + 1
            for sn, k in counts.items():
                report.per_device[sn] = report.per_device.get(sn, 0) + k
            if result.error is not None:  # partial: what came is kept, the window stays open
                log.warning("backfill.window_partial", device=dev_label, start=s, error=str(result.error))
                report.windows_failed += len(job.windows)
                report.failed_devices.update(d.sn for d in job.devices)
                self._stop_for(result.error, report)
                return False
            # The window's points are durable: only now may its checkpoint advance.
            self._mark_done(job, settled_only=True, stream=stream)
            report.windows_fetched += len(job.windows)
            return True
        report.windows_failed += len(job.windows)
        report.failed_devices.update(d.sn for d in job.devices)
        return False

    def _mark_done(self, job: Job, *, settled_only: bool = False, stream: str = STREAM) -> None:
        """Checkpoint each device's window of the job (with `settled_only`, those that
        ended at least `SETTLE` ago), in one transaction."""
        state = self.app.state
        assert state is not None
        horizon = self.app.clock.time() - SETTLE
        with state.transaction():
            for dev, (s, e) in zip(job.devices, job.windows, strict=True):
                if not settled_only or e <= horizon:
                    state.mark_window_done(self.rt.cfg.name, dev.sn, stream, s, e)

    def _stop_for(self, err: Exception, report: BackfillReport) -> None:
        """A partial result's error: stop the run as if it had been raised."""
        if isinstance(err, VendorRateLimitError):
            until = err.retry_at or (self.app.clock.time() + 600)
            self.rt.budget.pause(until, f"{type(err).__name__}: code {err.code}")
            report.stopped = f"the vendor asked us to slow down (code {err.code})"
        elif isinstance(err, VendorAuthError):
            self.rt.opened = False
            self.rt.ready.clear()
            report.stopped = f"the vendor refused our credentials (code {err.code})"
        elif isinstance(err, BudgetExhaustedError):
            report.stopped = f"no budget left for backfill ({err})"


def _label(ts: int, tz: ZoneInfo) -> str:
    """A backfill bound for a log line: the local date at a midnight, else the local date-time."""
    local = dt.datetime.fromtimestamp(ts, tz)
    return local.date().isoformat() if local.time() == dt.time() else local.isoformat()


async def sleep_until(app: App, when: float, stop: asyncio.Event) -> None:
    """Sleep on the app's clock until `when`, or until `stop` is set."""
    delay = max(0.0, when - app.clock.time())
    sleeper = asyncio.ensure_future(app.clock.sleep(delay))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        stopper.cancel()
