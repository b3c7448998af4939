"""FoxessClient: discovery, the `live` and `energy` streams, faults, quota checks, history.

I/O and orchestration only: requests go through `FoxessTransport` (budget, signature,
errno), answers are read by `responses`, and points come from the pure mappers in
`mapping`. See docs/vendors/foxess.md for the endpoints, streams and call budget.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

from collector.clock import Clock, SystemClock
from collector.errors import (
    BudgetExhaustedError,
    VendorAuthError,
    VendorDataQualityError,
    VendorError,
    VendorRateLimitError,
    VendorResponseError,
)
from collector.log import get_logger
from collector.schema.mapping import MappingStats
from collector.schema.plausible import Memory
from collector.schema.point import Point
from collector.state import State
from collector.vendors.base import (
    BATCH_ERRORS,
    STOP_ERRORS,
    Device,
    PollResult,
    devices_from_json,
    devices_to_json,
)
from collector.vendors.foxess.codes import QUOTA_PAUSE, RATE_LIMIT_PAUSE, VENDOR
from collector.vendors.foxess.faults import FaultEvent, FaultTracker, fault_points
from collector.vendors.foxess.generation import PendingGeneration, resolve, window_wait
from collector.vendors.foxess.mapping import (
    GENERATION_TABLE,
    device_tags,
    fault_codes,
    generation_point,
    inverter_point,
    map_report,
    next_upload,
    reportable_skips,
    snapshots_from_history,
    snapshots_from_real,
)
from collector.vendors.foxess.responses import (
    DeviceItem,
    PlantItem,
    ReportRequest,
    read_access_count,
    read_device,
    read_fault_table,
    read_generation,
    read_history,
    read_page,
    read_plant,
    read_real,
    read_report,
    read_report_request,
)
from collector.vendors.foxess.transport import RETRIES, RETRY_DELAY, FoxessTransport
from collector.vendors.foxess.variables import BATTERY_REPORT_VARIABLES, REPORT_VARIABLES

if TYPE_CHECKING:  # collector.config and collector.budget import collector.vendors: no cycle at run time
    from collector.budget import SourceBudget
    from collector.config import SourceConfig

log = get_logger(__name__)

REAL_PATH = "/op/v1/device/real/query"  # v1: up to 50 SNs per call (doc "Inverter-V1")
HISTORY_PATH = "/op/v0/device/history/query"
REPORT_PATH = "/op/v0/device/report/query"
GENERATION_PATH = "/op/v0/device/generation"
DEVICE_LIST_PATH = "/op/v0/device/list"
PLANT_LIST_PATH = "/op/v0/plant/list"
FAULT_TABLE_PATH = "/op/v0/device/fault/get"
ACCESS_COUNT_PATH = "/op/v0/user/getAccessCount"

ENDPOINTS: tuple[str, ...] = (
    REAL_PATH,
    HISTORY_PATH,
    REPORT_PATH,
    GENERATION_PATH,
    DEVICE_LIST_PATH,
    PLANT_LIST_PATH,
    FAULT_TABLE_PATH,
    ACCESS_COUNT_PATH,
)
"""Every endpoint this client calls (the docs page lists the same)."""

BATCH = 50  # doc: "Can transmit up to 50 Serial Number"
PAGE_SIZE = 100  # doc minimum 10; anchors use 100–1000 (research/foxess.md §4.4)
MAX_PAGES = 100  # a guard against a vendor that never stops paging
#: One snapshot per 300 s per logger, at a fixed phase (research/foxess.md §4.1).
UPLOAD_PERIOD = 300.0
#: Poll this long after the expected upload (com.foxess polls 20 s after the snapshot);
#: also the longest an upload is taken to need to reach the cloud after its data time
#: (generation's deferred stamping, `generation.resolve`).
UPLOAD_LAG = 20.0
#: The longest a generation call (its budget wait and the request) is taken to last: it is
#: not made within this long before a device's expected upload (`generation.window_wait`).
GENERATION_GUARD = 5.0
DEVICE_CACHE_TTL = 6 * 3600.0
FAULT_TABLE_TTL = 86400.0  # the table is account-independent and ~160 KB (§4.7)
#: After a failed fault-table fetch (refused, unreadable), fault points go out without a
#: message and the table is not asked for again for this long.
FAULT_TABLE_RETRY = 3600.0
ACCESS_CHECK_EVERY = 3600.0
#: Secondary calls (fault table, access count) never hold a poll up longer than this.
SIDE_CALL_MAX_WAIT = 10.0

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _valid_zone(name: str | None) -> bool:
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


class FoxessClient:
    """One FoxESS Cloud source (an API key). Implements VendorClient and HistoryCapable."""

    #: `/op/v0/device/history/query` takes at most 24 hours per call (doc).
    history_window: float = 86400.0

    def __init__(
        self,
        source: SourceConfig,
        http: aiohttp.ClientSession,
        budget: SourceBudget,
        state: State,
        *,
        clock: Clock | None = None,
        retries: int = RETRIES,
        retry_delay: tuple[float, float] = RETRY_DELAY,
    ) -> None:
        self.source = source
        self._state = state
        self._budget = budget
        self._clock: Clock = clock or SystemClock()
        self._api = FoxessTransport(
            http=http,
            budget=budget,
            base_url=source.base_url,
            api_key=source.credentials.get("api_key", ""),
            clock=self._clock,
            retries=retries,
            retry_delay=retry_delay,
        )
        self._faults = FaultTracker(state, self._key("open_faults"))
        # What earlier snapshots said (counters, battery capacity): the plausibility checks.
        self._memory = Memory()
        # Two stream jobs may open the source at once: one discovery, the other reads its cache.
        self._discover_lock = asyncio.Lock()

    def _key(self, name: str) -> str:
        return f"foxess:{self.source.name}:{name}"

    def _tags(self, dev: Device) -> dict[str, str]:
        return device_tags(self.source.name, dev.site, dev.sn)

    def _tz(self, dev: Device) -> str:
        return dev.timezone or self.source.timezone

    # -- lifecycle ------------------------------------------------------------------------------
    async def open(self) -> None:
        """Nothing to log in to: every request is signed with the API key."""
        if not self.source.credentials.get("api_key"):
            raise VendorAuthError("FoxESS: no api_key configured", vendor=VENDOR)

    async def close(self) -> None:
        """Nothing to release: the HTTP session is the app's."""

    # -- discovery -----------------------------------------------------------------------------
    async def discover(self) -> list[Device]:
        """Plants and inverters (paged), cached for a few hours; filtered by the config's `devices`.

        `site` is the plant id (`stationID`); the time zone is the plant's `ianaTimezone`
        (research/foxess.md §4.9) when it is a valid IANA name, else the source's.
        """
        async with self._discover_lock:
            cached = self._state.get(self._key("devices"))
            devices = devices_from_json(cached) if cached else None
            if devices is None:
                plants = await self._plants()
                items = [d for raw in await self._paged(DEVICE_LIST_PATH) if (d := read_device(raw))]
                devices = [self._device(item, plants) for item in items]
                self._state.put(self._key("devices"), devices_to_json(devices), ttl=DEVICE_CACHE_TTL)
        if self.source.devices:
            wanted = set(self.source.devices)
            missing = wanted - {d.sn for d in devices}
            if missing:
                log.warning("foxess.devices_not_found", source=self.source.name, devices=sorted(missing))
            devices = [d for d in devices if d.sn in wanted]
        return devices

    async def _plants(self) -> dict[str, PlantItem]:
        try:
            rows = await self._paged(PLANT_LIST_PATH)
        except (VendorResponseError, VendorDataQualityError) as err:
            # Plants only give the time zone: carry on with the source's.
            log.warning("foxess.plant_list_failed", error=str(err))
            return {}
        return {p.station_id: p for raw in rows if (p := read_plant(raw)) is not None}

    async def _paged(self, path: str) -> list[Mapping[str, Any]]:
        items: list[Mapping[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            result = await self._api.post(path, {"currentPage": page, "pageSize": PAGE_SIZE})
            pg = read_page(result, path)
            items.extend(pg.items)
            if not pg.items:
                break
            if pg.total is not None and len(items) >= pg.total:
                break
            if pg.total is None and len(pg.items) < PAGE_SIZE:
                break
        return items

    def _device(self, item: DeviceItem, plants: Mapping[str, PlantItem]) -> Device:
        plant = plants.get(item.station_id or "")
        zone = plant.iana_timezone if plant is not None else None
        meta: dict[str, object] = {
            k: v
            for k, v in (
                ("device_type", item.device_type),
                ("product_type", item.product_type),
                ("has_battery", item.has_battery),
                ("has_pv", item.has_pv),
                ("status", item.status),
                ("module_sn", item.module_sn),
            )
            if v is not None
        }
        return Device(
            sn=item.device_sn,
            site=item.station_id or self.source.site,
            kind="inverter",
            timezone=zone if _valid_zone(zone) else self.source.timezone,
            name=item.station_name or (plant.name if plant and plant.name else ""),
            meta=meta,
        )

    # -- streams -------------------------------------------------------------------------------
    async def poll(self, stream: str, devices: Sequence[Device]) -> PollResult:
        """`live`: real-time data of every device, 50 per call. `energy`: reports and generation."""
        if stream == "live":
            return await self._poll_live(devices)
        if stream == "energy":
            return await self._poll_energy(devices)
        raise ValueError(f"FoxESS has no stream {stream!r}")

    async def _poll_live(self, devices: Sequence[Device]) -> PollResult:
        """Real-time data, 50 devices per call.

        A batch that fails for a transient / response / data-quality error is logged and
        skipped; if every batch fails, the first error is raised. A batch refused for
        rate, quota, auth or budget (`STOP_ERRORS`) ends the run: no further calls (not
        even the fault table or the access count); the batches already answered are
        returned with `error` set, or, if none was, the error is raised.

        Each device's data time also settles its pending generation answer, if any (see
        `_settle_generation`): read from state before the first request, so every answer
        here came after the generation call.
        """
        result = PollResult()
        stats = MappingStats()
        by_sn = {d.sn: d for d in devices}
        last = self._state.last_seen(self.source.name, "live")
        pending = {sn: p for sn in by_sn if (p := self._pending_generation(sn)) is not None}
        dropped = 0
        chunks = _chunks(list(by_sn), BATCH)
        failures: list[Exception] = []
        answered = 0
        data_times: list[int] = []
        events: list[FaultEvent] = []
        for chunk in chunks:
            try:
                raw = await self._api.post(REAL_PATH, {"sns": list(chunk)}, devices=chunk)
                records = read_real(raw, REAL_PATH)
            except BATCH_ERRORS as err:
                # One failed batch must not throw away the others' data; all failed → raise.
                failures.append(err)
                log.warning("foxess.batch_failed", endpoint=REAL_PATH, devices=len(chunk), error=str(err))
                continue
            except STOP_ERRORS as err:
                if not answered:
                    raise
                result.error = err
                log.warning(
                    "foxess.run_stopped", endpoint=REAL_PATH, error_class=type(err).__name__, error=str(err)
                )
                break
            answered += 1
            wanted = set(chunk)
            for record in records:
                dev = by_sn.get(record.device_sn)
                if dev is None or dev.sn not in wanted:
                    stats.drop_record(record.device_sn, "not_requested", "a device the request did not name")
                    continue
                for snap in snapshots_from_real([record], tz=self._tz(dev), stats=stats):
                    data_times.append(snap.time)
                    if (gen := pending.pop(dev.sn, None)) is not None:
                        dropped += self._settle_generation(dev, gen, snap.time, result)
                    if snap.time <= last.get(dev.sn, 0):
                        continue  # the same snapshot as last time (or older): already written
                    point = inverter_point(snap, self._tags(dev), stats, self._memory)
                    if point is not None:
                        result.points.append(point)
                    result.latest[dev.sn] = max(result.latest.get(dev.sn, 0), snap.time)
                    codes = fault_codes(snap.values.get("currentFault"))
                    events += self._faults.observe(dev.sn, snap.time, codes, delivered=last.get(dev.sn, 0))
        if failures and len(failures) == len(chunks):
            raise failures[0]
        if events:
            # After a stop error no more calls: the cached table, else no messages.
            messages = await self._fault_messages(fetch=result.error is None)
            result.points += fault_points(events, messages, lambda sn: self._tags(by_sn[sn]), stats)
        result.skipped_values = reportable_skips(stats) + dropped
        result.records_dropped = stats.records_dropped
        result.next_data_at = next_upload(
            data_times, self._clock.time(), period=UPLOAD_PERIOD, lag=UPLOAD_LAG
        )
        if result.skipped_values:
            log.debug("foxess.live_mapped", summary=stats.summary())
        if result.error is None:
            await self._maybe_check_quota()
        return result

    async def _poll_energy(self, devices: Sequence[Device]) -> PollResult:
        """Reports (day / month / year, and a closed period once more) and generation.

        Every answered call adds its points to the result at once, and its cursor (the
        report period asked for, the live time of the generation call) to
        `state_updates`, which the app stores only once those points are durable: so a
        run that fails first leaves the cursors where they were, and the closed period's
        final report is asked for again. The report cursors are read from state at the
        start; the live cursor and the generation records just before each device's call.
        Generation gives no point here: its answer is kept pending (`_generation`). A
        device whose upload is due about now (`generation.window_wait`) has its generation
        call made after the other devices, once that upload's window has passed.

        A device that fails for a transient / response / data-quality error is logged and
        the next one goes on; if every device fails, the first error is raised when
        nothing was fetched at all, else returned as `error` with the rest. A stop error
        (rate, quota, auth, budget) ends the run at once: no further calls; what was
        fetched is returned with `error` set, or, if nothing was, the error is raised.
        """
        result = PollResult()
        stats = MappingStats()
        now = self._clock.time()
        failures: list[Exception] = []
        later: list[Device] = []  # generation calls moved out of an upload's window

        async def reports_and_generation(dev: Device) -> None:
            await self._reports(dev, now, stats, result)
            ts = self._generation_due(dev.sn)
            if ts is not None and self._window_wait(ts) > 0:
                later.append(dev)
            elif ts is not None:
                await self._generation(dev, ts, stats, result)

        async def generation_later(dev: Device) -> None:
            ts = self._generation_due(dev.sn)
            if ts is not None and (wait := self._window_wait(ts)) > 0:
                await self._clock.sleep(wait)
                ts = self._generation_due(dev.sn)
            if ts is not None:
                await self._generation(dev, ts, stats, result)

        for dev in devices:
            if not await self._energy_step(dev, reports_and_generation, result, failures):
                break
        else:  # not stopped: the postponed generation calls, each after its upload's window
            for dev in later:
                if not await self._energy_step(dev, generation_later, result, failures):
                    break
        if failures and len(failures) == len(devices):
            if not (result.points or result.state_updates):
                raise failures[0]
            result.error = failures[0]
        result.skipped_values = reportable_skips(stats)
        return result

    async def _energy_step(
        self,
        dev: Device,
        step: Callable[[Device], Awaitable[None]],
        result: PollResult,
        failures: list[Exception],
    ) -> bool:
        """One device's calls of an energy run. False: a stop error ended the run."""
        try:
            await step(dev)
        except BATCH_ERRORS as err:
            failures.append(err)
            log.warning("foxess.energy_failed", device=dev.sn, error=str(err))
        except STOP_ERRORS as err:
            if not (result.points or result.state_updates):
                raise
            result.error = err
            log.warning("foxess.run_stopped", device=dev.sn, error_class=type(err).__name__, error=str(err))
            return False
        return True

    def _report_requests(self, dev: Device, now: float) -> list[tuple[ReportRequest, str | None]]:
        """This run's report requests: the current day / month / year, and — once, after a
        rollover — the period just closed, so its last hour / day / month is final too.
        Each comes with the state key to record it under (None: nothing to record)."""
        local = datetime.fromtimestamp(now, ZoneInfo(self._tz(dev)))
        variables = tuple(
            v
            for v in REPORT_VARIABLES
            if not (dev.meta.get("has_battery") is False and v in BATTERY_REPORT_VARIABLES)
        )
        out: list[tuple[ReportRequest, str | None]] = []
        for dim in ("day", "month", "year"):
            current = ReportRequest(
                dev.sn,
                dim,
                local.year,
                local.month if dim != "year" else None,
                local.day if dim == "day" else None,
                variables,
            )
            key = self._key(f"report:{dev.sn}:{dim}")
            stored = self._state.get(key)
            if stored:
                try:
                    previous = read_report_request(stored)
                except ValueError:
                    previous = None
                if previous is not None and (previous.year, previous.month, previous.day) != (
                    current.year,
                    current.month,
                    current.day,
                ):
                    out.append((previous, None))
            out.append((current, key))
        return out

    async def _reports(self, dev: Device, now: float, stats: MappingStats, out: PollResult) -> None:
        """Each report's points, and its period's cursor, go into `out` as it is answered."""
        for req, key in self._report_requests(dev, now):
            raw = await self._api.post(REPORT_PATH, req.body(), devices=[dev.sn])
            out.points += map_report(
                read_report(raw, REPORT_PATH),
                req,
                tz=self._tz(dev),
                tags=self._tags(dev),
                stats=stats,
                now=int(now),
            )
            if key is not None:
                out.state_updates[key] = json.dumps(req.body())  # stored once the points are durable

    def _generation_key(self, sn: str) -> str:
        return self._key(f"generation:{sn}")

    def _pending_key(self, sn: str) -> str:
        return self._key(f"generation-pending:{sn}")

    def _generated_at(self, sn: str) -> int:
        """The live data time the device's generation was last asked at, or stamped with
        when later (0: never). Generation is asked for again only after a newer upload."""
        stored = self._state.get(self._generation_key(sn))
        try:
            return int(stored) if stored else 0
        except ValueError:
            return 0

    def _pending_generation(self, sn: str) -> PendingGeneration | None:
        return PendingGeneration.from_json(self._state.get(self._pending_key(sn)))

    def _generation_due(self, sn: str) -> int | None:
        """The live data time to ask generation at, or None: once per upload, and not while
        an earlier answer still waits for its stamp. The live cursor is read now, not at
        the start of the run: a run lasts minutes with many inverters, and the newer this
        upload, the likelier rule (b) can place the answer."""
        ts = self._state.last_seen(self.source.name, "live").get(sn)
        if ts is None or ts <= self._generated_at(sn) or self._pending_generation(sn) is not None:
            return None
        return ts

    def _window_wait(self, ts_prev: int) -> float:
        return window_wait(
            self._clock.time(), ts_prev, period=UPLOAD_PERIOD, lag=UPLOAD_LAG, guard=GENERATION_GUARD
        )

    async def _generation(self, dev: Device, ts_prev: int, stats: MappingStats, out: PollResult) -> None:
        """today / cumulative yield (kWh) of `/op/v0/device/generation`, kept **pending**.

        The answer has no data time (the bug this works around): it reflects the cloud's
        newest upload at the moment of the call, which may be `ts_prev` (the live cursor)
        or a later upload no live poll has seen yet. Stamping it with `ts_prev` could put
        a later upload's values at an earlier time, so no point is written here: the
        mapped fields, `ts_prev` and the call's time bounds go to `state_updates` (the
        pending key; with the generation cursor, so the same upload is not asked for
        again), and the next live poll stamps them (`_settle_generation`).
        """
        called_at = self._clock.time()  # before the budget wait and retries: stricter for (a)
        raw = await self._api.get(GENERATION_PATH, {"sn": dev.sn}, devices=[dev.sn])
        answered_at = self._clock.time()
        point = generation_point(read_generation(raw), tags=self._tags(dev), time=ts_prev, stats=stats)
        if point is not None:
            pending = PendingGeneration(called_at, answered_at, ts_prev, dict(point.fields))
            out.state_updates[self._pending_key(dev.sn)] = pending.to_json()
        out.state_updates[self._generation_key(dev.sn)] = str(ts_prev)

    def _settle_generation(
        self, dev: Device, pending: PendingGeneration, ts_new: int, out: PollResult
    ) -> int:
        """Stamp a pending generation answer with the upload it reflected, now that the
        device's newest data time `ts_new` (seen after the call) is known — rules (a),
        (b), (c) in `generation.resolve` — or keep it pending while `ts_new` is not newer
        than `ts_prev`. The point goes into `out` (the same series and time as a live
        point: the fields merge); the pending key is cleared (`""`) and the generation
        cursor set, both stored by the app once the point is durable. Returns the number
        of values dropped (an ambiguous answer)."""
        verdict, stamp = resolve(pending, ts_new, period=UPLOAD_PERIOD, lag=UPLOAD_LAG)
        if verdict == "wait":
            return 0
        out.state_updates[self._pending_key(dev.sn)] = ""
        out.state_updates[self._generation_key(dev.sn)] = str(max(pending.ts_prev, stamp or 0))
        if verdict == "stamp" and stamp is not None:
            out.points.append(Point(GENERATION_TABLE.measurement, self._tags(dev), pending.fields, stamp))
            return 0
        log.debug(
            "foxess.generation_ambiguous",
            device=dev.sn,
            ts_prev=pending.ts_prev,
            ts_new=ts_new,
            called_at=pending.called_at,
            answered_at=pending.answered_at,
        )
        return len(pending.fields)

    # -- history (HistoryCapable) ----------------------------------------------------------------
    async def history(self, device: Device, start: int, end: int) -> PollResult:
        """`inverter` points with data time in [start, end), one call (≤ 24 h, all variables).

        The same mapping as `live`, so backfilled and live points are one series.
        """
        if end <= start:
            return PollResult()
        if end - start > self.history_window:
            raise ValueError(f"a FoxESS history window is at most 24 h, not {end - start} s")
        body = {"sn": device.sn, "begin": int(start) * 1000, "end": int(end) * 1000}
        raw = await self._api.post(HISTORY_PATH, body, devices=[device.sn])
        stats = MappingStats()
        result = PollResult()
        tags = self._tags(device)
        records = []
        for rec in read_history(raw, HISTORY_PATH):
            if rec.device_sn != device.sn:
                stats.drop_record(rec.device_sn, "not_requested", "a device the request did not name")
            else:
                records.append(rec)
        for snap in snapshots_from_history(records, tz=self._tz(device), stats=stats):
            if not start <= snap.time < end:
                continue
            point = inverter_point(snap, tags, stats, self._memory)
            if point is not None:
                result.points.append(point)
                result.latest[device.sn] = max(result.latest.get(device.sn, 0), snap.time)
        result.skipped_values = reportable_skips(stats)
        result.records_dropped = stats.records_dropped
        return result

    # -- side calls: fault table, access count ----------------------------------------------------
    async def _fault_messages(self, *, fetch: bool = True) -> dict[str, str]:
        """The fault-code table, cached a day in state (it is account-independent, §4.7).

        Fetched only when a fault starts or ends (and `fetch`). It never fails the poll:
        if the call is refused or its answer unreadable, the messages are left out and
        the table is not asked for again for `FAULT_TABLE_RETRY` seconds.
        """
        key = f"foxess:fault-table:{self.source.base_url}"
        cached = self._state.get(key)
        if cached:
            try:
                table = json.loads(cached)
                if isinstance(table, dict):
                    return {str(k): str(v) for k, v in table.items()}
            except ValueError:
                pass
        if not fetch or self._fault_table_failed_recently():
            return {}
        try:
            raw = await self._api.get(FAULT_TABLE_PATH, max_wait=SIDE_CALL_MAX_WAIT)
            table = read_fault_table(raw, FAULT_TABLE_PATH)
        except VendorError as err:
            if isinstance(err, VendorRateLimitError):
                self._pause(err)
            else:
                log.warning("foxess.fault_table_failed", error_class=type(err).__name__, error=str(err))
            self._state.put(self._fault_table_failed_key(), str(self._clock.time()), ttl=FAULT_TABLE_RETRY)
            return {}
        except BudgetExhaustedError as err:  # no call was made: try again next time
            log.warning("foxess.fault_table_failed", error_class=type(err).__name__, error=str(err))
            return {}
        self._state.put(key, json.dumps(table), ttl=FAULT_TABLE_TTL)
        return table

    def _fault_table_failed_key(self) -> str:
        return f"foxess:fault-table-failed:{self.source.base_url}"

    def _fault_table_failed_recently(self) -> bool:
        stored = self._state.get(self._fault_table_failed_key())
        try:
            failed_at = float(stored) if stored else None
        except ValueError:
            return False
        return failed_at is not None and 0 <= self._clock.time() - failed_at < FAULT_TABLE_RETRY

    def _pause(self, err: VendorRateLimitError) -> None:
        """A side call was refused for rate: pause the account as the app would, but keep
        the run's points (the app only pauses when the run itself raises)."""
        log.warning("foxess.side_call_rate_limited", endpoint=err.endpoint, code=err.code)
        self._budget.pause(err.retry_at or self._clock.time() + RATE_LIMIT_PAUSE, f"FoxESS errno {err.code}")

    async def _maybe_check_quota(self) -> None:
        """Hourly, ask the vendor how many calls are left (`getAccessCount`) and tell the budget.

        Whether this call itself counts is not known (§3.1), so it is rare. `remaining == 0`
        pauses the account for `QUOTA_PAUSE` (teh-hippo stops polling at 0, §3.3).
        """
        key = self._key("access_checked")
        if self._state.get(key) is not None:
            return
        self._state.put(key, str(int(self._clock.time())), ttl=ACCESS_CHECK_EVERY)  # a failure waits too
        try:
            count = read_access_count(await self._api.get(ACCESS_COUNT_PATH, max_wait=SIDE_CALL_MAX_WAIT))
        except VendorRateLimitError as err:
            self._pause(err)
            return
        except (VendorError, BudgetExhaustedError) as err:
            log.warning("foxess.access_count_failed", error=str(err))
            return
        log.info("foxess.access_count", source=self.source.name, total=count.total, remaining=count.remaining)
        # The vendor's count wins where it is higher (another app on the same key).
        self._budget.sync_remaining(count.remaining, count.total)
        if count.remaining <= 0:
            self._budget.pause(self._clock.time() + QUOTA_PAUSE, "FoxESS getAccessCount: no calls remaining")
