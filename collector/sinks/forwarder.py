"""The one writer: drains the spool to the sink, in order, peek → write → ack.

Exactly one coroutine writes (``run``, or ``flush`` when ``run`` is not
active), with one request in flight, so the server sees lines in append order
(stack.md §1.3 ``concurrent_writes = 1``, §9 B6). While a POST is in flight the
next batch is read from the spool, when the sink offers ``EncodedSink``: the
spool's records are gzip members already, so a sink that posts gzip takes the
batch as it is (``encode_gzip``, no work left); one that posts plain text gets
it inflated in a worker thread (zlib releases the GIL).

Outcomes of a write (the sink classifies statuses, see influxdb.py):

* success: ack the batch; rejected lines (bad line, type conflict) are counted
  and logged with the server's messages, never retried (stack.md §9 B5);
* ``SinkRetryableError``: keep the batch, wait ``max(Retry-After, backoff)``,
  backoff exponential with full jitter capped at 60 s, the total at 600 s;
* ``SinkAuthError`` (401/403/404): keep the batch, retry every ~60 s and log an
  error each time (so at most one a minute), stack.md §2.6;
* anything else unexpected: kept and retried with backoff, logged with its traceback.

Nothing leaves the spool except by ack (after the server took it) or the
spool's own size cap (oldest first, counted in ``dropped`` and logged here).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from collector.errors import SinkAuthError, SinkRejectedError, SinkRetryableError
from collector.sinks.base import Encoded, EncodedSink, Sink, WriteReport
from collector.sinks.spool import Batch, Spool

BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0  # Telegraf caps its backoff at 60 s (stack.md §1.3)
RETRY_CAP = 600.0  # ... and Retry-After at 600 s
AUTH_RETRY = 60.0
MAX_LOGGED_MESSAGES = 5


class Forwarder:
    """Drains a Spool into a Sink with one writer coroutine (see the module docstring).

    Counters: ``written``, ``rejected``, ``write_errors`` (failed attempts),
    ``last_success`` (Unix time of the last successful write, None before),
    ``dropped`` and ``pending`` (from the spool).
    """

    def __init__(
        self,
        spool: Spool,
        sink: Sink,
        *,
        batch_lines: int = 5000,
        batch_bytes: int = 5_000_000,
        log: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        auth_retry: float = AUTH_RETRY,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        prepare_ahead: bool = True,
    ) -> None:
        self.spool = spool
        self.sink = sink
        self.batch_lines = batch_lines
        self.batch_bytes = batch_bytes
        self.log = log if log is not None else structlog.get_logger(__name__).bind(sink=sink.name)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self.auth_retry = auth_retry
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._encoded_sink = sink if prepare_ahead and isinstance(sink, EncodedSink) else None

        self.written = 0
        self.rejected = 0
        self.write_errors = 0
        self.last_success: float | None = None

        self._failures = 0  # consecutive failed attempts
        self._failing_since: float | None = None
        self._dropped_seen = spool.dropped
        self._lock = asyncio.Lock()  # the writer role
        self._running = False
        self._stopped = False
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._kick = asyncio.Event()  # a flush asks for an attempt now
        self._progress = asyncio.Event()
        self._prepared: tuple[Batch, asyncio.Future[Encoded]] | None = None

    # ---------------------------------------------------------------- counters

    @property
    def dropped(self) -> int:
        """Lines the spool dropped (oldest first) to stay under its cap."""
        return self.spool.dropped

    @property
    def pending(self) -> int:
        return self.spool.pending

    # ----------------------------------------------------------------- control

    def wake(self) -> None:
        """New lines were appended: write them without waiting for a poll timer."""
        self._note_dropped()
        self._wake.set()

    def stop(self) -> None:
        """Ask ``run`` to return after the write in flight (the spool keeps the rest)."""
        self._stopped = True
        self._stop.set()

    async def run(self) -> None:
        """Write until ``stop()``; sleeps on ``wake()`` when the spool is empty."""
        if self._running:
            raise RuntimeError("Forwarder.run is already running")
        self._running = True
        try:
            async with self._lock:
                await self._loop(deadline=None)
        finally:
            self._running = False
            self._progress.set()

    async def flush(self, timeout: float) -> bool:
        """Write everything pending, within ``timeout`` seconds. True if the spool is empty.

        With ``run`` active, this asks it for an immediate attempt and waits;
        otherwise it is the writer itself for the duration.
        """
        deadline = self._clock() + timeout
        if self._running:
            self._kick.set()
            self.wake()
            try:
                while self.spool.pending > 0 and self._running:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        break
                    self._progress.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._progress.wait(), timeout=remaining)
            finally:
                self._kick.clear()
            if self._running or self.spool.pending == 0:
                return self.spool.pending == 0
        async with self._lock:
            await self._loop(deadline=deadline)
        return self.spool.pending == 0

    # -------------------------------------------------------------------- loop

    async def _loop(self, deadline: float | None) -> None:
        """The writer. deadline None: until stopped; else until empty, stopped or past deadline."""
        try:
            while not (self._stopped and deadline is None):
                self._note_dropped()
                batch, encoded = self._take_next()
                if batch is None:
                    if deadline is not None:
                        return
                    self._progress.set()
                    await self._wait_events(self._wake, self._stop)
                    self._wake.clear()
                    continue
                outcome = await self._attempt(batch, encoded)
                self._progress.set()
                if outcome is None:
                    continue
                delay, honour = outcome
                if deadline is not None:
                    remaining = deadline - self._clock()
                    if remaining <= 0 or self._stopped:
                        return
                    delay = min(delay, remaining)
                elif self._stopped:
                    return
                await self._backoff(delay, kickable=not honour)
        finally:
            await self._drop_prepared()

    async def _attempt(
        self, batch: Batch, encoded: asyncio.Future[Encoded] | None
    ) -> tuple[float, bool] | None:
        """Write one batch. None on success, else (seconds to wait, honour-Retry-After)."""
        try:
            report = await self._write(batch, encoded)
        except SinkAuthError as err:
            self._failed()
            wait = max(self.auth_retry * (0.9 + 0.2 * self._rng()), err.retry_after or 0.0)
            self.log.error(
                "sink.held",
                error=str(err),
                status=err.status,
                pending=self.spool.pending,
                retry_in_s=round(wait, 1),
                note="points are kept in the spool until the sink accepts them",
            )
            return min(wait, RETRY_CAP), err.retry_after is not None
        except SinkRetryableError as err:
            self._failed()
            backoff = self._rng() * min(self.backoff_cap, self.backoff_base * 2 ** min(self._failures, 30))
            wait = min(max(err.retry_after or 0.0, backoff), RETRY_CAP)
            self.log.warning(
                "sink.retry",
                error=str(err),
                status=err.status,
                retry_after=err.retry_after,
                retry_in_s=round(wait, 2),
                attempt=self._failures,
                pending=self.spool.pending,
            )
            return wait, err.retry_after is not None
        except SinkRejectedError as err:
            # A sink that refuses a whole batch for good: count, log, move on.
            report = WriteReport(0, batch.count, [str(err)])
        except Exception as err:  # an unknown failure must not lose the batch: keep, retry
            self._failed()
            wait = self._rng() * min(self.backoff_cap, self.backoff_base * 2 ** min(self._failures, 30))
            self.log.exception("sink.write_crashed", error=repr(err), retry_in_s=round(wait, 2))
            return wait, False
        self.spool.ack(batch)
        self.written += report.written
        self.rejected += report.rejected
        now = self._clock()
        self.last_success = now
        if report.rejected:
            self.log.warning(
                "sink.rejected",
                rejected=report.rejected,
                written=report.written,
                messages=report.messages[:MAX_LOGGED_MESSAGES],
                note="rejected lines are dropped, not retried",
            )
        if self._failures:
            self.log.info(
                "sink.recovered",
                failed_attempts=self._failures,
                outage_s=round(now - (self._failing_since or now), 1),
                pending=self.spool.pending,
            )
            self._failures = 0
            self._failing_since = None
        return None

    def _failed(self) -> None:
        self.write_errors += 1
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = self._clock()

    def _take_next(self) -> tuple[Batch | None, asyncio.Future[Encoded] | None]:
        """The batch at the head of the spool, with its body if it was prepared ahead."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            if self.spool.is_head(prepared[0]):
                return prepared
            prepared[1].cancel()  # stale: the spool moved (cap drops) meanwhile
        return self.spool.peek(self.batch_lines, self.batch_bytes), None

    async def _write(self, batch: Batch, encoded: asyncio.Future[Encoded] | None) -> WriteReport:
        sink = self._encoded_sink
        if sink is None:
            return await self.sink.write(batch.lines())
        if encoded is None:
            encoded = self._encode(sink, batch)
        body = await encoded
        send = asyncio.ensure_future(sink.write_encoded(body))
        # One POST in flight; meanwhile read (and inflate, if the sink wants text) the
        # next batch (order holds: it is only sent after this one is acked, and only
        # if still the head).
        nxt = self.spool.peek(self.batch_lines, self.batch_bytes, after=batch)
        if nxt is not None:
            self._prepared = (nxt, self._encode(sink, nxt))
        try:
            return await send
        except BaseException:
            # Retry the same body next time; the prepared next batch is not needed yet.
            if self._prepared is not None:
                self._prepared[1].cancel()
            self._prepared = (batch, encoded)
            raise

    @staticmethod
    def _encode(sink: EncodedSink, batch: Batch) -> asyncio.Future[Encoded]:
        """The request body of a batch: its gzip stream as it is, else inflated in a thread."""
        encoded = sink.encode_gzip(batch.gzip, batch.count)
        if encoded is not None:
            done: asyncio.Future[Encoded] = asyncio.get_running_loop().create_future()
            done.set_result(encoded)
            return done
        return asyncio.ensure_future(asyncio.to_thread(lambda: sink.encode(batch.data, batch.count)))

    async def _drop_prepared(self) -> None:
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            prepared[1].cancel()

    # ---------------------------------------------------------------- waiting

    async def _wait_events(self, *events: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _backoff(self, seconds: float, *, kickable: bool) -> None:
        """Sleep (injectable), cut short by stop(), and by flush() unless Retry-After said so."""
        if seconds <= 0 or (kickable and self._kick.is_set()):
            self._kick.clear()  # a flush's request is consumed by one immediate attempt
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waiters: list[asyncio.Future[Any]] = [sleeper, asyncio.ensure_future(self._stop.wait())]
        if kickable:
            waiters.append(asyncio.ensure_future(self._kick.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        self._kick.clear()

    def _note_dropped(self) -> None:
        dropped = self.spool.dropped
        if dropped > self._dropped_seen:
            self.log.error(
                "spool.overflow",
                dropped_now=dropped - self._dropped_seen,
                dropped_total=dropped,
                max_bytes=self.spool.max_bytes,
                note="the sink has been unreachable too long; the oldest points were dropped",
            )
            self._dropped_seen = dropped
