"""SungrowClient: discovery, the `live`, `energy` and `faults` streams, quota, minute history.

I/O and orchestration only: requests go through `SungrowTransport` (budget, encryption,
token, result codes), and points come from the pure mappers in `mapping`. See
docs/vendors/sungrow.md for the endpoints, streams and call budget.

Decisions where the doc and the notes are silent:

* **Time zone.** `device_time`, minute `time_stamp` and fault times are plant-local
  (research/sungrow.md §5.3), and the plant's `ps_current_time_zone` is a fixed offset
  such as `GMT+1` that does not follow DST. So the source's IANA zone (`timezone:`) is
  the one used for every plant of the source; when a plant's offset is not that zone's
  standard offset, one warning names the plant (the config's zone is likely wrong).
* **Devices.** PV inverters (type 1), energy storage systems (14) and meters (7) are
  polled, each under its own `device` tag (its SN, else its ps_key); the plant's own
  figures come from the plant list (`site`). Other types (batteries 43 inside an ESS,
  communication modules 22, …) are ignored. `devices:` in the config matches an SN or a
  ps_key.
* **Faults.** `getFaultAlarmInfo` cannot span months for closed records, so each run
  asks for the current local month (open and closed), and for every earlier month that
  still holds a fault we saw open, until it closes. A record is written when it is new
  or changed (open → closed), never again. E900 (not granted, common) logs one warning,
  and the stream makes no call for a day; nothing else stops.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp

from collector.clock import Clock, SystemClock
from collector.errors import (
    BudgetExhaustedError,
    VendorAuthError,
    VendorDataQualityError,
    VendorError,
    VendorRateLimitError,
    VendorTransientError,
)
from collector.log import get_logger
from collector.schema.mapping import MappingStats
from collector.schema.plausible import Memory
from collector.state import State
from collector.vendors.base import (
    BATCH_ERRORS,
    STOP_ERRORS,
    Device,
    Limits,
    PollResult,
    devices_from_json,
    devices_to_json,
)
from collector.vendors.sungrow import mapping, points
from collector.vendors.sungrow.codes import VENDOR, NotGrantedError
from collector.vendors.sungrow.quota import read_call_info
from collector.vendors.sungrow.responses import fault_record
from collector.vendors.sungrow.spec import BATCH, MINUTE_WINDOW
from collector.vendors.sungrow.transport import SungrowTransport

if TYPE_CHECKING:  # collector.config and collector.budget import collector.vendors
    from collector.budget import SourceBudget
    from collector.config import SourceConfig

log = get_logger(__name__)

PLANT_LIST_PATH = "/openapi/getPowerStationList"
DEVICE_LIST_PATH = "/openapi/getDeviceList"
POINT_INFO_PATH = "/openapi/getOpenPointInfo"
REALTIME_PATH = "/openapi/getDeviceRealTimeData"
PV_REALTIME_PATH = "/openapi/getPVInverterRealTimeData"
MINUTE_PATH = "/openapi/getDevicePointMinuteDataList"
DAY_PATH = "/openapi/getDevicePointsDayMonthYearDataList"
FAULTS_PATH = "/openapi/getFaultAlarmInfo"
CALL_INFO_PATH = "/openapi/getOpenApiCallInfo"

ENDPOINTS: tuple[str, ...] = (
    PLANT_LIST_PATH,
    DEVICE_LIST_PATH,
    POINT_INFO_PATH,
    REALTIME_PATH,
    PV_REALTIME_PATH,
    MINUTE_PATH,
    DAY_PATH,
    FAULTS_PATH,
    CALL_INFO_PATH,
)
"""Every endpoint this client calls (the docs page lists the same)."""

#: Device types polled (vendor doc Appendix 1): PV inverter, energy storage, meter.
POLLED_TYPES = (1, 14, 7)
#: Device types with day / month / year energy (a meter's: its grid import / export).
ENERGY_TYPES = (1, 14, 7)
PAGE_SIZE = 100
MAX_PAGES = 100
DEVICE_CACHE_TTL = 6 * 3600.0
CATALOGUE_TTL = 7 * 86400.0
CALL_INFO_EVERY = 3600.0
FAULTS_DENIED_TTL = 86400.0
#: Fault records remembered as written (longer than any month a fault stays open).
FAULTS_SEEN_TTL = 62 * 86400.0
SIDE_CALL_MAX_WAIT = 10.0
#: The realtime endpoints take at most 100 point ids per call (research/sungrow.md §7.1).
MAX_REALTIME_POINTS = 100



def _chunks(items: Sequence[Device], size: int) -> list[list[Device]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _gmt_offset(text: object) -> int | None:
    """`GMT+1`, `GMT-3`, `GMT+5:30` → offset seconds; None when it is not one."""
    if not isinstance(text, str):
        return None
    t = text.strip().upper()
    if not t.startswith(("GMT", "UTC")):
        return None
    rest = t[3:]
    if not rest:
        return 0
    sign = 1 if rest[0] == "+" else -1 if rest[0] == "-" else 0
    if not sign:
        return None
    hours, _, minutes = rest[1:].partition(":")
    try:
        return sign * (int(hours) * 3600 + (int(minutes) * 60 if minutes else 0))
    except ValueError:
        return None


def _standard_offset(zone: ZoneInfo, when: float) -> int:
    """The zone's offset without DST at `when` (the smaller of January's and July's)."""
    year = dt.datetime.fromtimestamp(when, zone).year
    offsets = []
    for month in (1, 7):
        off = dt.datetime(year, month, 1, 12, tzinfo=zone).utcoffset()
        offsets.append(int(off.total_seconds()) if off is not None else 0)
    return min(offsets)


def _local(ts: float, zone: ZoneInfo, fmt: str) -> str:
    return dt.datetime.fromtimestamp(ts, zone).strftime(fmt)


class SungrowClient:
    """One iSolarCloud source (an appkey + account). Implements VendorClient and
    BatchHistoryCapable (minute data, up to 50 devices of one type per call)."""

    history_window: float = MINUTE_WINDOW
    history_batch: int = BATCH
    #: getDevicePointsDayMonthYearDataList: ≤ 100 days, 24 months, 5 years per call
    #: (research/sungrow.md §7.1), ≤ 50 devices of one type.
    period_span: Mapping[str, int] = MappingProxyType({"day": 100, "month": 24, "year": 5})
    period_batch: int = BATCH
    #: History calls in flight at once (the engine's `_run_jobs`): the gateway answers a
    #: 50-device window in about half a second (research/sungrow.md §7.2: 0.5-0.7 s for
    #: two points), longer than the spacing, so one call at a time would leave it idle.
    history_parallel: int = 3

    def __init__(
        self,
        source: SourceConfig,
        http: aiohttp.ClientSession,
        budget: SourceBudget,
        state: State,
        *,
        clock: Clock | None = None,
        retries: int | None = None,
    ) -> None:
        self.source = source
        self._state = state
        self._budget = budget
        self._clock: Clock = clock or SystemClock()
        creds = source.credentials
        extra: dict[str, Any] = {} if retries is None else {"retries": retries}
        self._api = SungrowTransport(
            http=http,
            budget=budget,
            state=state,
            clock=self._clock,
            appkey=creds.get("appkey", ""),
            access_key=creds.get("access_key", ""),
            username=creds.get("username", ""),
            password=creds.get("password", ""),
            base_url=source.base_url,
            rsa_public_key=creds.get("rsa_public_key") or None,
            **extra,
        )
        self._zone = ZoneInfo(source.timezone)
        self._discover_lock = asyncio.Lock()
        self._zone_warned: set[str] = set()
        # What earlier records said (counters, battery capacity): the plausibility checks.
        self._memory = Memory()

    # -- helpers -----------------------------------------------------------------------------
    def _key(self, name: str) -> str:
        return f"sungrow:{self.source.name}:{name}"

    @property
    def transport(self) -> SungrowTransport:
        return self._api

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """The stored token, else a login (one at a time across processes)."""
        missing = [
            k for k in ("appkey", "access_key", "username", "password") if not self.source.credentials.get(k)
        ]
        if missing:
            raise VendorAuthError(f"iSolarCloud: {', '.join(missing)} not configured", vendor=VENDOR)
        await self._api.token()

    async def close(self) -> None:
        """Nothing to release: the HTTP session is the app's; the token stays stored."""

    # -- discovery ---------------------------------------------------------------------------
    async def discover(self) -> list[Device]:
        """Plants (paged) and their devices of the polled types, cached for a few hours;
        filtered by the config's `devices` (SN or ps_key)."""
        async with self._discover_lock:
            cached = self._state.get(self._key("devices"))
            devices = devices_from_json(cached) if cached else None
            if devices is None:
                devices = []
                for plant in await self._plants():
                    devices += await self._plant_devices(plant)
                self._state.put(self._key("devices"), devices_to_json(devices), ttl=DEVICE_CACHE_TTL)
        if self.source.devices:
            wanted = set(self.source.devices)
            missing = {w for w in wanted if not any(d.known_as((w,)) for d in devices)}
            if missing:
                log.warning("sungrow.devices_not_found", source=self.source.name, devices=sorted(missing))
            devices = [d for d in devices if d.known_as(wanted)]
        return devices

    async def _paged(self, path: str, params: Mapping[str, Any], **kw: Any) -> list[Mapping[str, Any]]:
        rows: list[Mapping[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            data = await self._api.call(path, {**params, "curPage": page, "size": PAGE_SIZE}, **kw)
            items = data.get("pageList") if isinstance(data, Mapping) else None
            if not isinstance(items, list):
                raise VendorDataQualityError(
                    f"iSolarCloud {path}: no pageList in the answer", vendor=VENDOR, endpoint=path
                )
            rows += [r for r in items if isinstance(r, Mapping)]
            total = data.get("rowCount")
            try:
                total_n = int(total) if total is not None else None
            except (TypeError, ValueError):
                total_n = None
            if not items or (total_n is not None and len(rows) >= total_n) or len(items) < PAGE_SIZE:
                break
        return rows

    async def _plants(self) -> list[Mapping[str, Any]]:
        rows = await self._paged(PLANT_LIST_PATH, {})
        now = self._clock.time()
        standard = _standard_offset(self._zone, now)
        for row in rows:
            ps_id = str(row.get("ps_id", ""))
            offset = _gmt_offset(row.get("ps_current_time_zone"))
            if offset is not None and offset != standard and ps_id not in self._zone_warned:
                self._zone_warned.add(ps_id)
                log.warning(
                    "sungrow.zone_mismatch",
                    source=self.source.name,
                    plant=ps_id,
                    plant_zone=row.get("ps_current_time_zone"),
                    timezone=self.source.timezone,
                    note="the plant's offset is not the configured zone's standard time; "
                    "local times are read in the configured zone — check `timezone:`",
                )
        return rows

    async def _plant_devices(self, plant: Mapping[str, Any]) -> list[Device]:
        ps_id = str(plant.get("ps_id", "")).strip()
        if not ps_id:
            return []
        rows = await self._paged(DEVICE_LIST_PATH, {"ps_id": ps_id})
        out: list[Device] = []
        for row in rows:
            try:
                dtype = int(row.get("device_type"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            ps_key = str(row.get("ps_key") or "").strip()
            if dtype not in POLLED_TYPES or not ps_key:
                continue
            sn = str(row.get("device_sn") or "").strip() or ps_key
            out.append(
                Device(
                    sn=sn,
                    site=ps_id,
                    kind="meter" if dtype == 7 else "inverter",
                    timezone=self.source.timezone,
                    name=str(row.get("device_name") or plant.get("ps_name") or ""),
                    meta={
                        "ps_key": ps_key,
                        "device_type": dtype,
                        "ps_id": ps_id,
                        "model": str(row.get("device_model_code") or ""),
                    },
                    aliases=(ps_key,) if ps_key != sn else (),
                )
            )
        return out

    async def _catalogue(self, dtype: int) -> frozenset[str] | None:
        """The point ids the vendor lists for a device type (`getOpenPointInfo`, signals
        and telemetry), cached a week; None where it is not granted or says nothing."""
        key = self._key(f"points:{dtype}")
        cached = self._state.get(key)
        if cached is not None:
            listed = json.loads(cached) if cached.startswith("[") else None
            return frozenset(str(x) for x in listed) if listed else None
        ids: set[str] = set()
        try:
            for kind in (1, 2):
                for row in await self._paged(
                    POINT_INFO_PATH, {"device_type": dtype, "type": kind}, max_wait=SIDE_CALL_MAX_WAIT
                ):
                    pid = str(row.get("point_id") or "").strip()
                    if pid:
                        ids.add(pid.removeprefix("p"))
        except (NotGrantedError, VendorDataQualityError, VendorTransientError) as err:
            log.info("sungrow.point_catalogue_unavailable", device_type=dtype, error=str(err))
            self._state.put(key, "none", ttl=CATALOGUE_TTL)
            return None
        self._state.put(key, json.dumps(sorted(ids)), ttl=CATALOGUE_TTL)
        return frozenset(ids) or None

    async def _live_points(self, dtype: int) -> list[str]:
        wanted = list(points.LIVE_POINTS.get(dtype, ()))
        catalogue = await self._catalogue(dtype)
        if catalogue:
            known = [p for p in wanted if p in catalogue]
            wanted = known or wanted
        return wanted[:MAX_REALTIME_POINTS]

    # -- streams -----------------------------------------------------------------------------
    async def poll(self, stream: str, devices: Sequence[Device]) -> PollResult:
        if stream == "live":
            return await self._poll_live(devices)
        if stream == "energy":
            return await self._poll_energy(devices)
        if stream == "faults":
            return await self._poll_faults(devices)
        raise ValueError(f"iSolarCloud has no stream {stream!r}")

    def _by_key(self, devices: Iterable[Device]) -> dict[str, Device]:
        return {str(d.meta.get("ps_key", d.sn)): d for d in devices}

    def _groups(self, devices: Sequence[Device], types: Iterable[int]) -> list[tuple[int, list[Device]]]:
        out: list[tuple[int, list[Device]]] = []
        for dtype in types:
            of_type = [d for d in devices if d.meta.get("device_type") == dtype]
            out += [(dtype, chunk) for chunk in _chunks(of_type, BATCH)]
        return out

    async def _poll_live(self, devices: Sequence[Device]) -> PollResult:
        """The plant list (→ `site`), then realtime data of each device type, ≤ 50 per call.

        A batch that fails for a transient / response / data-quality error is logged and
        skipped; if every call fails, the first error is raised. Rate, quota, auth or
        budget errors end the run: what came before is returned with `error` set."""
        result = PollResult()
        stats = MappingStats()
        last = self._state.last_seen(self.source.name, "live")
        failures: list[Exception] = []
        calls = 0
        answered = 0
        sites = {d.site for d in devices}
        now = self._clock.time()
        faults = self._fault_state(devices)

        async def attempt(coro: Any) -> Any:
            nonlocal answered
            try:
                data = await coro
            except BATCH_ERRORS as err:
                failures.append(err)
                log.warning("sungrow.batch_failed", error_class=type(err).__name__, error=str(err))
                return None
            answered += 1
            return data

        try:
            calls += 1
            plants = await attempt(self._paged(PLANT_LIST_PATH, {}))
            if plants is not None:
                wanted = [p for p in plants if str(p.get("ps_id", "")) in sites] if sites else plants
                result.points += mapping.map_plants(wanted, stats, source=self.source.name, now=now)
            for dtype, chunk in self._groups(devices, POLLED_TYPES):
                calls += 1
                data = await attempt(self._realtime(dtype, chunk))
                if data is None:
                    continue
                result.records_dropped += self._refused_devices(data, chunk)
                mapped, latest = mapping.map_realtime(
                    data,
                    self._by_key(chunk),
                    stats,
                    source=self.source.name,
                    now=now,
                    faults=faults,
                    memory=self._memory,
                )
                for point in mapped:
                    sn = point.tags.get("device", "")
                    if point.measurement == "inverter" and point.time <= last.get(sn, 0):
                        continue  # the same 5-minute bucket as last time: already written
                    result.points.append(point)
                for sn, ts in latest.items():
                    if ts > last.get(sn, 0):
                        result.latest[sn] = max(result.latest.get(sn, 0), ts)
        except STOP_ERRORS as err:
            if not answered:
                raise
            result.error = err
            log.warning("sungrow.run_stopped", error_class=type(err).__name__, error=str(err))
        if failures and len(failures) == calls:
            raise failures[0]
        result.skipped_values = stats.total_skipped
        result.records_dropped += stats.records_dropped
        if stats.total_skipped:
            log.debug("sungrow.live_mapped", summary=stats.summary())
        if result.error is None:
            await self._maybe_check_quota()
        return result

    def _refused_devices(self, data: Any, chunk: Sequence[Device]) -> int:
        """Devices the gateway refused in a realtime answer (`fail_ps_key_list`: no longer
        this account's, or of another type — a device list that changed since discovery):
        one warning, counted, and the device list is read again at the next start."""
        failed: list[str] = []
        if isinstance(data, Mapping):
            for key in ("fail_ps_key_list", "fail_sn_list"):
                items = data.get(key)
                if isinstance(items, list):
                    failed += [str(x) for x in items if x not in (None, "")]
        if failed:
            log.warning(
                "sungrow.devices_refused",
                source=self.source.name,
                devices=failed[:10],
                count=len(failed),
                of=len(chunk),
                note="the gateway does not answer for them now; the device list is read again next start",
            )
            self._state.delete(self._key("devices"))
        return len(failed)

    async def _realtime(self, dtype: int, chunk: Sequence[Device]) -> Any:
        keys = [str(d.meta.get("ps_key", d.sn)) for d in chunk]
        if dtype == 1 and not self._state.get(self._key("pv_realtime_denied")):
            try:
                return await self._api.call(PV_REALTIME_PATH, {"ps_key_list": keys}, devices=keys)
            except NotGrantedError:
                # Not granted to this appkey: the generic endpoint serves type 1 too.
                log.info("sungrow.pv_realtime_not_granted", note=f"using {REALTIME_PATH}")
                self._state.put(self._key("pv_realtime_denied"), "1", ttl=86400.0)
        ids = await self._live_points(dtype)
        return await self._api.call(
            REALTIME_PATH,
            {"device_type": dtype, "point_id_list": ids, "ps_key_list": keys},
            devices=keys,
        )

    # -- fault state from the faults stream ---------------------------------------------------
    def _open_faults(self) -> dict[str, dict[str, Any]]:
        """fault_code → the getFaultAlarmInfo record of every fault seen open, not yet closed."""
        text = self._state.get(self._key("open_faults"))
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def _fault_state(self, devices: Sequence[Device]) -> dict[str, tuple[int, ...]] | None:
        """Device tag → open fault codes, for `fault_count` / `fault_code` on live points;
        None (the fields left out: unknown, not 0) until the faults stream has run, or
        while it is not granted."""
        if self._state.get(self._key("faults_polled")) is None:
            return None
        rows = list(self._open_faults().values())
        return mapping.active_faults({"pageList": rows}, self._by_key(devices))

    # -- energy --------------------------------------------------------------------------------
    async def _poll_energy(self, devices: Sequence[Device]) -> PollResult:
        """Day (yesterday and today), month (this and last) and year totals per device type."""
        result = PollResult()
        stats = MappingStats()
        now = self._clock.time()
        today = dt.datetime.fromtimestamp(now, self._zone).date()
        yesterday = today - dt.timedelta(days=1)
        last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        queries = (
            (1, f"{yesterday:%Y%m%d}", f"{today:%Y%m%d}", mapping.day_data_type(1)),
            (2, f"{last_month:%Y%m}", f"{today:%Y%m}", mapping.day_data_type(2)),
            (3, f"{today:%Y}", f"{today:%Y}", mapping.day_data_type(3)),
        )
        failures: list[Exception] = []
        calls = answered = 0
        try:
            for dtype, chunk in self._groups(devices, ENERGY_TYPES):
                day_points = points.DAY_POINTS.get(dtype, ())
                if not day_points:
                    continue
                keys = [str(d.meta.get("ps_key", d.sn)) for d in chunk]
                for query_type, start, end, data_type in queries:
                    request = {
                        "ps_key_list": keys,
                        "data_point": ",".join(day_points),
                        "start_time": start,
                        "end_time": end,
                        "query_type": str(query_type),
                        "data_type": data_type,
                        "order": "0",
                    }
                    calls += 1
                    try:
                        data = await self._api.call(DAY_PATH, request, devices=keys)
                    except BATCH_ERRORS as err:
                        failures.append(err)
                        log.warning("sungrow.batch_failed", endpoint=DAY_PATH, error=str(err))
                        continue
                    answered += 1
                    by_key = self._by_key(chunk)
                    result.points += mapping.map_day(data, request, by_key, stats, source=self.source.name)
        except STOP_ERRORS as err:
            if not answered:
                raise
            result.error = err
        if failures and len(failures) == calls:
            raise failures[0]
        result.skipped_values = stats.total_skipped
        result.records_dropped = stats.records_dropped
        return result

    # -- faults --------------------------------------------------------------------------------
    async def _poll_faults(self, devices: Sequence[Device]) -> PollResult:
        result = PollResult()
        if self._state.get(self._key("faults_denied")) is not None:
            return result
        stats = MappingStats()
        now = self._clock.time()
        local_now = dt.datetime.fromtimestamp(now, self._zone)
        this_month = f"{local_now:%Y%m}"
        open_before = self._open_faults()
        months = {this_month} | {str(r.get("month")) for r in open_before.values() if r.get("month")}
        rows: list[Mapping[str, Any]] = []
        try:
            for month in sorted(months):
                first = dt.datetime.strptime(month + "01", "%Y%m%d")
                nxt = (first + dt.timedelta(days=32)).replace(day=1)
                end = local_now.replace(tzinfo=None) if month == this_month else nxt - dt.timedelta(minutes=1)
                rows += await self._paged(
                    FAULTS_PATH,
                    {
                        "process_status": "999",
                        "startTime": f"{first:%Y%m%d%H%M}",
                        "endTime": f"{end:%Y%m%d%H%M}",
                    },
                )
        except NotGrantedError as err:
            log.warning(
                "sungrow.faults_not_granted",
                source=self.source.name,
                error=str(err),
                note="this appkey may not read faults (E900); no fault records, asked again in a day",
            )
            self._state.put(self._key("faults_denied"), "1", ttl=FAULTS_DENIED_TTL)
            return result
        by_key = self._by_key(devices)
        seen_text = self._state.get(self._key("faults_written"))
        try:
            written: dict[str, str] = json.loads(seen_text) if seen_text else {}
        except ValueError:
            written = {}
        fresh: list[Mapping[str, Any]] = []
        open_now: dict[str, dict[str, Any]] = {}
        for row in rows:
            code = str(row.get("fault_code") or "")
            # The mapping's rule (an over_time, or process_status 4 / 9: closed), not another one.
            status = "closed" if mapping.is_closed(fault_record(row)) else "open"
            dev = by_key.get(str(row.get("ps_key") or ""))
            if not code or dev is None:
                continue
            if status == "open":
                month = code.split(".")[1] if code.count(".") >= 2 else this_month
                open_now[code] = {**row, "month": month}
            if written.get(code) != status:
                fresh.append(row)
                written[code] = status
        result.points += mapping.map_faults(
            {"pageList": fresh}, by_key, self.source.timezone, stats, source=self.source.name
        )
        # Cursors: stored by the app only once the points are durable.
        result.state_updates[self._key("faults_written")] = json.dumps(written)
        result.state_updates[self._key("open_faults")] = json.dumps(open_now)
        result.state_updates[self._key("faults_polled")] = str(int(now))
        result.skipped_values = stats.total_skipped
        result.records_dropped = stats.records_dropped
        return result

    # -- quota ---------------------------------------------------------------------------------
    async def _maybe_check_quota(self) -> None:
        """Hourly: `getOpenApiCallInfo` — the appkey's hourly and daily grant (the budget
        takes it, within the config's limits) and what the gateway has counted."""
        key = self._key("call_info_checked")
        if self._state.get(key) is not None:
            return
        self._state.put(key, str(int(self._clock.time())), ttl=CALL_INFO_EVERY)
        try:
            data = await self._api.call(CALL_INFO_PATH, {}, max_wait=SIDE_CALL_MAX_WAIT)
        except VendorRateLimitError as err:
            log.warning("sungrow.side_call_rate_limited", endpoint=CALL_INFO_PATH, code=err.code)
            self._budget.pause(err.retry_at or self._clock.time() + 600.0, f"iSolarCloud {err.code}")
            return
        except (VendorError, BudgetExhaustedError) as err:
            log.info("sungrow.call_info_failed", error=str(err))
            return
        info = read_call_info(data, self._clock.time())
        if info is None:
            log.warning("sungrow.call_info_unreadable")
            return
        self._budget.grant(Limits(per_hour=info.per_hour, per_day=info.per_day))
        log.info(
            "sungrow.call_info",
            source=self.source.name,
            per_hour=info.per_hour,
            per_day=info.per_day,
            hour_used=info.hour_used,
            day_used=info.day_used,
        )
        if info.per_hour and info.hour_used is not None:
            self._budget.sync_remaining(max(0, info.per_hour - info.hour_used), info.per_hour, 3600.0)
        if info.per_day and info.day_used is not None:
            self._budget.sync_remaining(max(0, info.per_day - info.day_used), info.per_day)

    # -- energy totals of past periods (PeriodHistoryCapable) ---------------------------------
    async def period_history(
        self, devices: Sequence[Device], period: str, first: dt.date, last: dt.date
    ) -> PollResult:
        """`energy` points of the days / months / years from `first` to `last` (local dates,
        both included): one getDevicePointsDayMonthYearDataList call for up to 50 devices
        of one type (at most 100 days, 24 months or 5 years: `period_span`)."""
        result = PollResult()
        if not devices:
            return result
        dtype = int(devices[0].meta.get("device_type", 0))  # type: ignore[call-overload]
        day_points = points.DAY_POINTS.get(dtype, ())
        if not day_points:
            return result
        query_type, fmt = {"day": (1, "%Y%m%d"), "month": (2, "%Y%m"), "year": (3, "%Y")}[period]
        keys = [str(d.meta.get("ps_key", d.sn)) for d in devices]
        request = {
            "ps_key_list": keys,
            "data_point": ",".join(day_points),
            "start_time": first.strftime(fmt),
            "end_time": last.strftime(fmt),
            "query_type": str(query_type),
            "data_type": mapping.day_data_type(query_type),
            "order": "0",
        }
        data = await self._api.call(DAY_PATH, request, devices=keys)
        stats = MappingStats()
        result.points = mapping.map_day(data, request, self._by_key(devices), stats, source=self.source.name)
        result.skipped_values = stats.total_skipped
        result.records_dropped = stats.records_dropped
        return result

    # -- history (BatchHistoryCapable) ---------------------------------------------------------
    def history_group(self, device: Device) -> str:
        return str(device.meta.get("device_type", ""))

    async def history(self, device: Device, start: int, end: int) -> PollResult:
        return await self.history_many([device], start, end)

    async def history_many(self, devices: Sequence[Device], start: int, end: int) -> PollResult:
        """`inverter` points with data time in [start, end): minute data at 5 minutes,
        one call for up to 50 devices of one type (≤ 3 h, both in real and in local
        time: a window over the spring-forward hour is asked for in two halves)."""
        result = PollResult()
        if end <= start or not devices:
            return result
        dtype = int(devices[0].meta.get("device_type", 0))  # type: ignore[call-overload]
        wanted = points.MINUTE_POINTS.get(dtype, ())
        if not wanted:
            return result
        keys = [str(d.meta.get("ps_key", d.sn)) for d in devices]
        by_key = self._by_key(devices)
        stats = MappingStats()
        for s, e in self._minute_spans(start, end):
            request = {
                "ps_key_list": keys,
                "points": ",".join(wanted),
                "start_time_stamp": _local(s, self._zone, "%Y%m%d%H%M%S"),
                "end_time_stamp": _local(e - 1, self._zone, "%Y%m%d%H%M%S"),
                "minute_interval": 5,
            }
            data = await self._api.call(MINUTE_PATH, request, devices=keys)
            mapped = mapping.map_minute(data, by_key, stats, source=self.source.name, memory=self._memory)
            for point in mapped:
                if start <= point.time < end:
                    result.points.append(point)
                    sn = point.tags.get("device", "")
                    result.latest[sn] = max(result.latest.get(sn, 0), point.time)
        result.skipped_values = stats.total_skipped
        result.records_dropped = stats.records_dropped
        return result

    def _minute_spans(self, start: int, end: int) -> list[tuple[int, int]]:
        """[start, end) as spans the minute endpoint takes: at most 3 h on the plant's wall
        clock *and* in real time, the latter read as widely as the local stamps allow (a
        stamp in autumn's repeated hour may mean either pass, and the gateway measures from
        the earliest reading of the start to the latest of the end). Over the spring gap a
        3-hour window is 4 h on the wall clock; over the autumn fold, 4 h in the widest
        reading: such a window is asked for in halves (on 5-minute marks)."""
        first_stamp = _local(start, self._zone, "%Y%m%d%H%M%S")
        last_stamp = _local(end - 1, self._zone, "%Y%m%d%H%M%S")
        wall = dt.datetime.strptime(last_stamp, "%Y%m%d%H%M%S") - dt.datetime.strptime(
            first_stamp, "%Y%m%d%H%M%S"
        )
        lo = mapping.local_candidates(first_stamp, self._zone)[0]
        hi = mapping.local_candidates(last_stamp, self._zone)[1]
        fits = wall.total_seconds() <= MINUTE_WINDOW and hi - lo <= MINUTE_WINDOW
        if fits or end - start <= 600:
            return [(start, end)]
        mid = start + (end - start) // 2 // 300 * 300
        return self._minute_spans(start, mid) + self._minute_spans(mid, end)
