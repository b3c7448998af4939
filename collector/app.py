"""The daemon: sources, jobs, the durable delivery path, self-metrics, lifecycle.

Start-up → main loop → shutdown, in the manner of uvicorn:

* start: open the state, the budgets, the sink path and every source's client;
  a source that cannot log in or discover is retried by its own job, it does
  not stop the others.
* main loop: APScheduler runs one job per (source, stream); each run takes a
  budget slot per call (inside the client), maps, and hands the points to
  `deliver`, which makes them durable in the spool *before* the source's
  cursor (`last_seen`) advances. One forwarder drains the spool to the sink.
* shutdown (SIGTERM/SIGINT, the handler only sets a flag): stop scheduling,
  let in-flight polls finish (bounded), flush the forwarder (bounded), close,
  exit 0. A second signal exits at once; the spool keeps what was not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import re
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from collector import __version__
from collector import budget as budget_mod
from collector.backfill import SETTLE, Backfiller, BackfillReport, Progress, sleep_until
from collector.budget import BudgetBook, SourceBudget
from collector.clock import Clock, SystemClock
from collector.config import Config, SourceConfig
from collector.errors import (
    BudgetExhaustedError,
    CollectorError,
    VendorAuthError,
    VendorError,
    VendorRateLimitError,
)
from collector.log import get_logger
from collector.plan import effective_interval, format_duration, live_need, plan
from collector.scheduler import Scheduler
from collector.schema.point import Point
from collector.sinks.base import Sink
from collector.sinks.forwarder import Forwarder
from collector.sinks.influxdb import InfluxSink
from collector.sinks.local import LocalSink
from collector.sinks.spool import Spool, SpoolLockedError
from collector.sinks.stdout import StdoutSink
from collector.state import State
from collector.vendors import VENDOR_SPECS, VENDORS
from collector.vendors.base import Device, HistoryCapable, PollResult, VendorClient, VendorSpec

log = get_logger(__name__)

USER_AGENT = f"solar-collector/{__version__} (+https://github.com/solar-collector/solar-collector)"
SELF_METRICS_INTERVAL = 60.0
#: Longest wait for in-flight polls at shutdown, then for the final flush.
SHUTDOWN_POLL_GRACE = 20.0
SHUTDOWN_FLUSH_GRACE = 30.0
#: Cap of the exponential back-off after failed runs.
MAX_BACKOFF = 3600.0


@dataclass
class SourceStats:
    """Counters for the `collector` measurement (reset each minute) and gauges."""

    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    points_written: int = 0
    skipped_values: int = 0
    last_success: float | None = None
    records_dropped: int = 0

    def take(self) -> SourceStats:
        snap = SourceStats(
            self.requests,
            self.errors,
            self.rate_limited,
            self.points_written,
            self.skipped_values,
            self.last_success,
            self.records_dropped,
        )
        self.requests = self.errors = self.rate_limited = self.points_written = self.skipped_values = 0
        self.records_dropped = 0
        return snap

    def plus(self, earlier: SourceStats) -> SourceStats:
        """These counts and those of an earlier snapshot of the same minute, added up."""
        return SourceStats(
            self.requests + earlier.requests,
            self.errors + earlier.errors,
            self.rate_limited + earlier.rate_limited,
            self.points_written + earlier.points_written,
            self.skipped_values + earlier.skipped_values,
            self.last_success,
            self.records_dropped + earlier.records_dropped,
        )


@dataclass
class SourceRuntime:
    """One configured source while the daemon runs."""

    cfg: SourceConfig
    spec: VendorSpec
    budget: SourceBudget
    client: VendorClient | None = None
    devices: list[Device] = field(default_factory=list)
    opened: bool = False
    stats: SourceStats = field(default_factory=SourceStats)
    failures: dict[str, int] = field(default_factory=dict)  # per stream
    not_before: dict[str, float] = field(default_factory=dict)  # per stream: back-off
    intervals: dict[str, float] = field(default_factory=dict)
    offsets: dict[str, float] = field(default_factory=dict)
    #: The newest live data time per device when the daemon started (gap refill).
    seen_at_start: dict[str, int] = field(default_factory=dict)
    #: Set once the source has logged in and discovered its devices.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: Its streams' first runs start together: one logs in, the others wait for it.
    open_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: The minute of the last `collector` point and its counts: a second point in the same
    #: minute (the one at shutdown) overwrites it in InfluxDB, so it carries both.
    metrics_minute: tuple[int, SourceStats] | None = None
    #: Whether the backfill has said (once per process) that it skips what the sink would drop.
    retention_warned: bool = False


class App:
    """The whole pipeline for one config. `run()` is the daemon, `run_once()` one round."""

    def __init__(
        self,
        config: Config,
        *,
        dry_run: bool = False,
        clock: Clock | None = None,
        vendors: dict[str, type[VendorClient]] | None = None,
    ) -> None:
        self.config = config
        self.dry_run = dry_run
        self.clock: Clock = clock or SystemClock()
        self.vendors = VENDORS if vendors is None else vendors
        self.state: State | None = None
        self.sink: Sink | None = None
        self.spool: Spool | None = None
        self.forwarder: Forwarder | None = None
        self.http: aiohttp.ClientSession | None = None
        self.sources: list[SourceRuntime] = []
        self.scheduler: Scheduler | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._forward_task: asyncio.Task[None] | None = None
        self._signals = 0
        self._background: set[asyncio.Task[Any]] = set()
        self.started_at = 0.0
        self.daemon = False  # set by run(): the daemon may not share its state_dir
        self._private_spool: Path | None = None

    # -- start-up ----------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        cfg = self.config
        self.state = State(cfg.state_dir, self.clock)
        book = BudgetBook(self.state, self.clock)
        self.http = aiohttp.ClientSession(
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=60, connect=15),
            # Per-second spacing runs from when each request really left.
            trace_configs=[budget_mod.send_trace()],
        )
        if self.dry_run:
            self.sink = StdoutSink()
        else:
            if cfg.influxdb is None:
                self.sink = LocalSink(cfg.state_dir / "local.db")
            else:
                ic = cfg.influxdb
                self.sink = InfluxSink(
                    ic.url,
                    ic.api,
                    org=ic.org,
                    bucket=ic.bucket,
                    token=ic.token,
                    database=ic.database,
                    retention_policy=ic.retention_policy,
                    username=ic.username,
                    password=ic.password,
                    timeout=ic.timeout,
                    gzip_level=ic.gzip_level,
                )
            batch = cfg.influxdb.batch_size if cfg.influxdb else 5000
            self.spool = self._open_spool(batch)
            self.forwarder = Forwarder(self.spool, self.sink, batch_lines=batch)
            if self.spool.pending:
                log.info(
                    "spool.replay", pending=self.spool.pending, note="points from before the restart go first"
                )
        await self.sink.open(self.http)
        if self.forwarder is not None:
            self._forward_task = asyncio.create_task(self.forwarder.run(), name="forwarder")

        plans = {p.source: p for p in plan(cfg)}
        for src in cfg.sources:
            spec = VENDOR_SPECS[src.vendor]
            acct = book.account(spec, src.credentials, src.limits, src.limits_overridden)
            rt = SourceRuntime(src, spec, SourceBudget(acct))
            rt.seen_at_start = self.state.last_seen(src.name, "live")
            self.started_at = self.clock.time()
            p = plans[src.name]
            if p.disabled:
                # Polls what fits and never trips the limit; `check` is the strict one.
                log.warning(
                    "streams.disabled",
                    source=src.name,
                    streams=list(p.disabled),
                    reason="the limits are smaller than one poll of these streams needs at any interval",
                    note="`solar-collector check` shows the plan",
                )
            for stream in spec.streams:
                if stream.name in p.disabled:
                    continue
                interval = effective_interval(src, stream)
                if (
                    stream.name == "live"
                    and not p.fits
                    and p.min_interval is not None
                    and p.min_interval > interval
                ):
                    # `run` is safe: never trip a limit; `check` is the strict one.
                    log.warning(
                        "interval.raised",
                        source=src.name,
                        stream=stream.name,
                        configured=format_duration(interval),
                        used=format_duration(p.min_interval),
                        reason="the configured interval would exceed the vendor's limits",
                    )
                    interval = p.min_interval
                rt.intervals[stream.name] = interval
            # Declare the live plan so backfill keeps clear of it.
            acct.add_live_plan(live_need(src, rt.intervals.get("live"), p.disabled))
            client_cls = self.vendors.get(src.vendor)
            if client_cls is None:
                log.error(
                    "source.unavailable",
                    source=src.name,
                    vendor=src.vendor,
                    reason=f"the {spec.title} client is not in this version of solar-collector",
                )
            else:
                rt.client = client_cls(src, self.http, rt.budget, self.state, clock=self.clock)
            self.sources.append(rt)

    def _open_spool(self, batch_lines: int) -> Spool:
        """The daemon's spool is `spool`; a command's is `spool-<pid>`, its own.

        So a `backfill` can run beside the daemon, and a daemon can start while a
        long backfill runs. Whoever runs adopts the lines of every spool that no
        running process holds (a command killed with lines undelivered, or the
        daemon's own while it is stopped), so no point is stranded. Its records
        hold at most `batch_lines` lines, so a batch of whole records fits a write.
        """
        cfg = self.config
        if self.daemon:
            try:
                spool = Spool(cfg.state_dir / "spool", cfg.buffer_max_size, record_lines=batch_lines)
            except SpoolLockedError:
                raise CollectorError(
                    f"another solar-collector daemon is running with state_dir {cfg.state_dir}"
                ) from None
        else:
            self._private_spool = cfg.state_dir / f"spool-{os.getpid()}"
            spool = Spool(self._private_spool, cfg.buffer_max_size, record_lines=batch_lines)
        self.adopt_orphans(spool)
        return spool

    def adopt_orphans(self, spool: Spool | None = None) -> int:
        """Move the lines of spools whose process is gone into ours; how many moved.

        Only `spool-<pid>` directories of dead processes are adopted (and the
        flock is taken too, so a live one is never touched); the daemon's own
        `spool` is replayed by the daemon alone, so a command never holds it
        while a daemon starts. The orphan is deleted while its lock is held.
        """
        spool = spool or self.spool
        if spool is None:
            return 0
        moved = 0
        for other_dir in sorted(self.config.state_dir.glob("spool-*")):
            match = _SPOOL_DIR.fullmatch(other_dir.name)
            if match is None or other_dir == self._private_spool or not other_dir.is_dir():
                continue
            if _pid_alive(int(match.group(1))):
                continue  # its process is running; it delivers its own lines
            try:
                other = Spool(other_dir, self.config.buffer_max_size)
            except SpoolLockedError:
                continue
            except OSError as err:
                log.warning("spool.orphan_unreadable", path=str(other_dir), error=str(err))
                continue
            n = 0
            with other:
                while (batch := other.peek()) is not None:
                    spool.append(batch.lines())  # durable here before it leaves there
                    other.ack(batch)
                    n += batch.count
                shutil.rmtree(other_dir, ignore_errors=True)  # still under its lock
            if n:
                log.info("spool.adopted", path=str(other_dir), lines=n)
                moved += n
        if moved and self.forwarder is not None:
            self.forwarder.wake()
        return moved

    async def _ensure_open(self, rt: SourceRuntime) -> bool:
        """Log in and discover devices once (again after an auth error)."""
        if rt.client is None:
            return False
        async with rt.open_lock:
            if rt.opened:
                return True
            await self._open(rt)
        return True

    async def _open(self, rt: SourceRuntime) -> None:
        assert rt.client is not None
        await rt.client.open()
        devices = list(await rt.client.discover())
        if rt.cfg.devices:
            devices = [d for d in devices if d.known_as(rt.cfg.devices)]
        rt.devices = devices
        rt.opened = True
        rt.ready.set()
        log.info(
            "source.ready",
            source=rt.cfg.name,
            vendor=rt.cfg.vendor,
            devices=[d.sn for d in devices],
        )

    # -- one run of a job ----------------------------------------------------------
    async def poll(self, rt: SourceRuntime, stream: str) -> bool:
        """One run of one stream of one source. True on full success. Never raises.

        A run skipped for back-off touches no counter. A run that fetched some
        data and then failed delivers that data first (the cursors advance only
        over what is durable), then handles its error; it counts as failed for
        back-off only when it delivered nothing.
        """
        now = self.clock.time()
        not_before = rt.not_before.get(stream, 0.0)
        if now < not_before:
            log.info("poll.backoff", source=rt.cfg.name, stream=stream, retry_in_s=round(not_before - now))
            return False
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(source=rt.cfg.name, vendor=rt.cfg.vendor, stream=stream)
        budget_mod.priority.set(budget_mod.LIVE)
        t0 = time.monotonic()
        calls_before = rt.budget.account.calls_made
        ok = False
        backoff = False  # an error that the next runs should back off from
        points = 0
        try:
            if not await self._ensure_open(rt):
                return False
            assert rt.client is not None
            interval = rt.intervals.get(stream, 300.0)
            result = await asyncio.wait_for(rt.client.poll(stream, rt.devices), timeout=max(60.0, interval))
            rt.stats.skipped_values += result.skipped_values
            rt.stats.records_dropped += result.records_dropped
            points = await self.deliver(rt, result.points)
            # The points are durable in the spool: now the cursors may advance.
            self._advance(rt, stream, result)
            if result.next_data_at is not None:
                self._follow_uploads(rt, stream, result.next_data_at)
            if result.error is not None:
                raise result.error
            ok = True
        except BudgetExhaustedError as err:
            log.warning("poll.no_budget", reason=str(err))
        except VendorRateLimitError as err:  # the pause, not back-off, sets the next call
            rt.stats.rate_limited += 1
            until = err.retry_at or (self.clock.time() + 600)
            rt.budget.pause(until, f"{type(err).__name__}: code {err.code}")
            log.warning("poll.rate_limited", code=err.code, paused_s=round(until - self.clock.time()))
        except VendorAuthError as err:
            rt.stats.errors += 1
            backoff = True
            rt.opened = False  # log in again next time
            rt.ready.clear()
            log.error("poll.auth_failed", code=err.code, error=str(err))
        except VendorError as err:
            rt.stats.errors += 1
            backoff = True
            log.warning("poll.failed", error_class=type(err).__name__, code=err.code, error=str(err))
        except TimeoutError:
            rt.stats.errors += 1
            backoff = True
            log.warning("poll.timeout")
        except Exception:  # the outermost job boundary: log, count, carry on
            rt.stats.errors += 1
            backoff = True
            log.exception("poll.crashed")
        finally:
            calls = rt.budget.account.calls_made - calls_before
            rt.stats.requests += calls
            if ok or points:
                rt.failures[stream] = 0
                rt.not_before.pop(stream, None)
                rt.stats.last_success = self.clock.time()
            elif backoff:
                # Exponential back-off per stream: after n failures in a row skip
                # 2^(n-1) - 1 runs (capped at an hour). Half an interval of slack
                # absorbs the jitter of the next run times.
                n = rt.failures.get(stream, 0) + 1
                rt.failures[stream] = n
                interval = rt.intervals.get(stream, 300.0)
                back = min(MAX_BACKOFF, interval * 2 ** (n - 1))
                rt.not_before[stream] = self.clock.time() + back - interval / 2
            log.info(
                "poll.done",
                ok=ok,
                points=points,
                api_calls=calls,
                skipped_values=rt.stats.skipped_values,
                records_dropped=rt.stats.records_dropped,
                dur_ms=round((time.monotonic() - t0) * 1000),
            )
            if task is not None:
                self._inflight.discard(task)
        return ok

    def _advance(self, rt: SourceRuntime, stream: str, result: PollResult) -> None:
        """Move the cursors over what is now durable; note gaps for the backfill."""
        if self.state is None or self.dry_run:
            return
        # One commit for the whole poll, however many devices it covered (issue #6 §6).
        with self.state.transaction():
            self._advance_in(rt, stream, result)

    def _advance_in(self, rt: SourceRuntime, stream: str, result: PollResult) -> None:
        assert self.state is not None
        if result.latest:
            before = self.state.last_seen(rt.cfg.name, stream)
            # One missed sample is a gap: the real-time endpoint never gives it again.
            limit = 1.5 * max(rt.intervals.get(stream, 300.0), rt.spec.data_resolution)
            if stream == "live":
                for sn, new in result.latest.items():
                    old = before.get(sn)
                    if old is not None and new - old > limit:
                        # Data missing between two polls (an outage at the vendor or
                        # device, failed polls): the backfill fetches it from history.
                        self.state.add_gap(rt.cfg.name, sn, old, new)
                        log.info("gap.found", device=sn, start=old, end=new, seconds=new - old)
            self.state.set_last_seen(rt.cfg.name, stream, result.latest)
        for key, value in result.state_updates.items():
            self.state.put(key, value)

    def _follow_uploads(self, rt: SourceRuntime, stream: str, next_data_at: float) -> None:
        """Shift a stream's runs to just after the devices' uploads (the vendor's hint)."""
        if self.scheduler is None:
            return
        interval = rt.intervals.get(stream, 300.0)
        offset = next_data_at % interval
        old = rt.offsets.get(stream, 0.0)
        gap = abs(offset - old) % interval
        if min(gap, interval - gap) < 20.0:
            return
        rt.offsets[stream] = offset
        self.scheduler.add(
            f"{rt.cfg.name}:{stream}",
            _bind(self.poll, rt, stream),
            interval,
            now=self.clock.time(),
            offset=offset,
        )
        log.info("poll.rescheduled", source=rt.cfg.name, stream=stream, seconds_past=round(offset))

    async def deliver(self, rt: SourceRuntime | None, points: Sequence[Point]) -> int:
        """Make points durable (spool) or print them (dry run). Returns how many."""
        lines = []
        for p in points:
            try:
                lines.append(p.to_line())
            except ValueError as err:  # an empty or non-finite point: a mapper bug
                log.error("point.invalid", error=str(err))
        if not lines:
            return 0
        if self.dry_run:
            assert self.sink is not None
            await self.sink.write(lines)
        else:
            assert self.spool is not None and self.forwarder is not None
            await self.spool.append_async(lines)  # a big one is compressed in a thread
            self.forwarder.wake()
        if rt is not None:
            rt.stats.points_written += len(lines)
        return len(lines)

    # -- self-metrics ------------------------------------------------------------------
    async def self_metrics(self) -> None:
        """The `collector` measurement: one point per source per minute."""
        # A job of its own: no poll's log context (APScheduler may start it from one).
        structlog.contextvars.clear_contextvars()
        if self.daemon:
            self.adopt_orphans()  # lines a killed `backfill` left behind
        now = self.clock.time()
        stamp = int(now // 60 * 60)
        points = []
        pending = self.spool.pending if self.spool is not None else 0
        for rt in self.sources:
            s = rt.stats.take()
            if rt.metrics_minute is not None and rt.metrics_minute[0] == stamp:
                s = s.plus(rt.metrics_minute[1])
            rt.metrics_minute = (stamp, s)
            usage = rt.budget.account.usage()
            used, limit = _day_usage(usage)
            fields: dict[str, float | int | str] = {
                "requests": s.requests,
                "errors": s.errors,
                "rate_limited": s.rate_limited,
                "points_written": s.points_written,
                "skipped_values": s.skipped_values,
                "records_dropped": s.records_dropped,
                "points_pending": pending,
            }
            if used is not None:
                fields["quota_used"] = used
            if limit is not None:
                # A float, as the first release wrote it: InfluxDB refuses a field whose
                # type changes, so an integer now would lose the point in existing shards.
                fields["quota_limit"] = float(limit)
            if s.last_success is not None:
                fields["last_success_age_s"] = float(round(now - s.last_success, 1))
            if self.forwarder is not None:
                fields["points_dropped"] = self.forwarder.dropped
                fields["points_rejected"] = self.forwarder.rejected
            rt.stats.last_success = s.last_success
            points.append(Point("collector", {"source": rt.cfg.name, "vendor": rt.cfg.vendor}, fields, stamp))
        await self.deliver(None, points)

    # -- the two ways to run -----------------------------------------------------------
    async def run_once(self) -> int:
        """Poll every source's every stream once, write, flush. 0 if all succeeded."""
        await self.start()
        try:
            jobs = [self.poll(rt, s) for rt in self.sources for s in rt.intervals]
            results = await asyncio.gather(*jobs)
            await self.self_metrics()
            flushed = await self._flush()
            ok = all(results) and all(rt.client is not None for rt in self.sources) and flushed
            return 0 if ok else 1
        finally:
            await self.close()

    async def run(self) -> int:
        """The daemon: until SIGTERM/SIGINT, then flush and return 0."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.daemon = True
        await self.start()
        self.scheduler = Scheduler()
        now = self.clock.time()
        for rt in self.sources:
            if rt.client is None:
                continue
            for stream, interval in rt.intervals.items():
                self.scheduler.add(
                    f"{rt.cfg.name}:{stream}",
                    _bind(self.poll, rt, stream),
                    interval,
                    now=now,
                    first_run=_utc(now + 1),  # poll at once on start, then on the clock
                )
        self.scheduler.add("collector:self", self.self_metrics, SELF_METRICS_INTERVAL, now=now)
        self.scheduler.start()
        for rt in self.sources:
            if isinstance(rt.client, HistoryCapable):
                task = asyncio.create_task(self._backfill_loop(rt), name=f"backfill:{rt.cfg.name}")
                self._background.add(task)
        log.info(
            "collector.started",
            version=__version__,
            sources=[rt.cfg.name for rt in self.sources],
            sink=type(self.sink).__name__,
        )
        await self._stop.wait()
        await self.stop()
        return 0

    async def _backfill_loop(self, rt: SourceRuntime) -> None:
        """The daemon's backfill, in the budget live polling leaves: first the gaps
        (since the last run, and any seen while running), then `backfill.since`
        up to today; then it looks again every hour. Checkpoints make a finished
        range free; a gap is forgotten only once its range is durable."""
        stop = self._stop
        ready = asyncio.ensure_future(rt.ready.wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        stopping.cancel()
        while not stop.is_set():
            stopped = ""
            try:
                stopped = await self._backfill_pass(rt)
            except Exception:  # one bad pass must not end the daemon's backfill
                log.exception("backfill.crashed", source=rt.cfg.name)
                stopped = "crashed"
            # Budget used up (or a failure): again in 15 minutes; else in an hour.
            await sleep_until(self, self.clock.time() + (900 if stopped else 3600), stop)

    async def _backfill_pass(self, rt: SourceRuntime) -> str:
        assert self.state is not None
        bf = Backfiller(self, rt)
        stop = self._stop
        if rt.seen_at_start:
            for dev in rt.devices:
                last = rt.seen_at_start.get(dev.sn)
                if last is not None and self.started_at - last > 1.5 * rt.intervals.get("live", 300.0):
                    self.state.add_gap(rt.cfg.name, dev.sn, last, int(self.started_at))
            rt.seen_at_start = {}
        by_sn = {d.sn: d for d in rt.devices}
        merged: dict[str, tuple[int, int, list[tuple[int, int]]]] = {}
        for sn, start, end in self.state.gaps(rt.cfg.name):
            lo, hi, parts = merged.get(sn, (start, end, []))
            merged[sn] = (min(lo, start), max(hi, end), [*parts, (start, end)])
        incomplete = ""
        found = [(sn, *merged[sn]) for sn in merged if sn in by_sn]
        if found:
            # One run over every device's gap: a vendor that batches devices (Sungrow)
            # refills a plant-wide outage with one call per window, not one per device.
            report = await bf.run_ranges(
                [([by_sn[sn]], start, end) for sn, start, end, _ in found], should_stop=stop.is_set
            )
            self._log_backfill(rt, report, "gap")
            if report.stopped:  # budget, rate limit, credentials, shutdown: later
                return report.stopped
            if not report.complete:  # a device's windows failed: its gap stays; the others go on
                incomplete = "incomplete"
            # Forget a gap only once all of it is checkpointed: its last window
            # may end too recently (SETTLE) to be final yet.
            settled = self.clock.time() - SETTLE
            for sn, _, _, parts in found:
                if sn in report.failed_devices:
                    continue
                for gap_start, gap_end in parts:
                    if gap_end <= settled:
                        self.state.remove_gap(rt.cfg.name, sn, gap_start, gap_end)
        since = rt.cfg.backfill.since
        if since is not None and not stop.is_set():
            # `since` is read in each device's site zone, as the `backfill` command reads --since.
            for devices, first, end_day in bf.since_ranges(rt.devices, since, whole_days=True):
                if first >= end_day:
                    continue
                report = await bf.run(devices, first, end_day, should_stop=stop.is_set)
                self._log_backfill(rt, report, "since")
                if report.stopped:
                    return report.stopped
                if not report.complete:
                    incomplete = "incomplete"
        return incomplete

    def _log_backfill(self, rt: SourceRuntime, report: BackfillReport, kind: str) -> None:
        if report.windows_fetched or report.windows_failed:
            log.info(
                "backfill.done",
                source=rt.cfg.name,
                kind=kind,
                fetched=report.windows_fetched,
                points=report.points,
                failed=report.windows_failed,
                stopped=report.stopped or None,
            )

    # -- commands that use the app's parts ----------------------------------------------
    async def list_devices(self) -> list[tuple[SourceRuntime, str]]:
        """Log in to each source and discover; (source, error or "") per source."""
        out: list[tuple[SourceRuntime, str]] = []
        await self.start()
        try:
            for rt in self.sources:
                try:
                    if rt.client is None:
                        out.append((rt, f"the {rt.spec.title} client is not in this version"))
                        continue
                    await self._ensure_open(rt)
                    out.append((rt, ""))
                except Exception as err:  # reported per source
                    out.append((rt, f"{type(err).__name__}: {err}"))
        finally:
            await self.close()
        return out

    async def backfill(
        self, *, source: str | None, device: str | None, since: dt.datetime, until: dt.datetime | None
    ) -> int:
        """The `backfill` command: exit code 0 when every selected range is complete."""
        await self.start()
        code = 0
        try:
            selected = [rt for rt in self.sources if source is None or rt.cfg.name == source]
            if not selected:
                log.error("backfill.no_source", source=source)
                return 2
            for rt in selected:
                if not isinstance(rt.client, HistoryCapable):
                    log.error("backfill.unsupported", source=rt.cfg.name, vendor=rt.cfg.vendor)
                    code = 1
                    continue
                await self._ensure_open(rt)
                devices = [d for d in rt.devices if device is None or d.sn == device]
                if not devices:
                    log.error("backfill.no_device", source=rt.cfg.name, device=device)
                    code = 1
                    continue
                bf = Backfiller(self, rt)
                ranges = bf.since_ranges(devices, since, until)
                # One run over every range, so the vendor's batched calls cover several devices.
                progress = Progress(await bf.calls_needed(ranges))
                try:
                    report = await bf.run_ranges(ranges, progress=progress)
                finally:
                    progress.close()
                log.info(
                    "backfill.finished",
                    source=rt.cfg.name,
                    windows=report.windows_total,
                    already_done=report.windows_done_before,
                    fetched=report.windows_fetched,
                    failed=report.windows_failed,
                    points=report.points,
                    stopped=report.stopped or None,
                )
                if not report.complete:
                    code = 1
            if not await self._flush():
                code = 1
            return code
        finally:
            await self.close()

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("collector.forced_exit", signal=signal.Signals(sig).name)
            os._exit(128 + sig)
        log.info("collector.stopping", signal=signal.Signals(sig).name)
        self._stop.set()

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.pause()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        inflight = [t for t in self._inflight if not t.done()]
        if inflight:
            log.info("collector.waiting_for_polls", count=len(inflight))
            _done, pending = await asyncio.wait(inflight, timeout=SHUTDOWN_POLL_GRACE)
            for t in pending:
                t.cancel()
        await self.self_metrics()
        await self._flush()
        if self.scheduler is not None:
            self.scheduler.shutdown()
        await self.close()
        log.info("collector.stopped")

    async def _flush(self) -> bool:
        if self.forwarder is None:
            return True
        ok = await self.forwarder.flush(SHUTDOWN_FLUSH_GRACE)
        if not ok and self.spool is not None:
            log.warning(
                "flush.incomplete",
                pending=self.spool.pending,
                note="kept in the spool; delivered on the next start",
            )
        return ok

    async def close(self) -> None:
        for rt in self.sources:
            if rt.client is not None and rt.opened:
                with contextlib.suppress(Exception):
                    await rt.client.close()
        if self.forwarder is not None:
            self.forwarder.stop()
        if self._forward_task is not None:
            self._forward_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._forward_task
            self._forward_task = None
        if self.sink is not None:
            await self.sink.close()
            self.sink = None
        if self.spool is not None:
            empty = self.spool.pending == 0
            self.spool.close()
            self.spool = None
            if empty and self._private_spool is not None:
                shutil.rmtree(self._private_spool, ignore_errors=True)
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self.state is not None:
            self.state.close()
            self.state = None


def _bind(func: Any, *args: Any) -> Any:
    async def job() -> None:
        await func(*args)

    return job


_SPOOL_DIR = re.compile(r"spool-(\d+)")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


def _day_usage(usage: dict[str, dict[str, tuple[int, float]]]) -> tuple[int | None, float | None]:
    """The busiest counter's calls in the last 24 h (or longest window) and its limit."""
    best: tuple[int | None, float | None] = (None, None)
    for windows in usage.values():
        if not windows:
            continue
        name = "per_day" if "per_day" in windows else sorted(windows)[-1]
        used, limit = windows[name]
        if best[0] is None or used > best[0]:
            best = (used, limit)
    if best[1] is not None and not math.isfinite(best[1]):
        return best[0], None
    return best
