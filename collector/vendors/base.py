"""What the pipeline knows about a vendor: its spec (limits, credentials) and client interface.

A vendor package adds a client class implementing `VendorClient` (and, where the
vendor has them, the optional `HistoryCapable` interface) and one line in the
explicit `VENDORS` dict of `collector/vendors/__init__.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from collector.errors import (
    BudgetExhaustedError,
    VendorAuthError,
    VendorDataQualityError,
    VendorError,
    VendorRateLimitError,
    VendorResponseError,
    VendorTransientError,
)

if TYPE_CHECKING:
    import aiohttp

    from collector.budget import SourceBudget
    from collector.clock import Clock
    from collector.config import SourceConfig
    from collector.schema.point import Point
    from collector.state import State


@dataclass(frozen=True)
class Limits:
    """Call limits in each window; None means the vendor sets none."""

    per_second: float | None = None
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None

    def windows(self) -> list[tuple[str, float, float]]:
        """(name, window length in seconds, limit) for every limit that is set."""
        out: list[tuple[str, float, float]] = []
        for name, length, limit in (
            ("per_second", 1.0, self.per_second),
            ("per_minute", 60.0, self.per_minute),
            ("per_hour", 3600.0, self.per_hour),
            ("per_day", 86400.0, self.per_day),
        ):
            if limit is not None:
                out.append((name, length, float(limit)))
        return out


@dataclass(frozen=True)
class StreamSpec:
    """One live data stream of a vendor, scheduled as its own job.

    `calls_per_run` is what one run costs each budget counter it touches:
    with `budget_scope="device"` each device's counter, else the account's.
    `batch` is how many devices one call can cover (for account-scoped plans).
    """

    name: str
    default_interval: float = 300.0
    calls_per_run: int = 1
    batch: int = 1


@dataclass(frozen=True)
class VendorSpec:
    """Static facts about a vendor cloud: from its doc and our field notes."""

    slug: str
    title: str
    default_base_url: str
    credentials: tuple[str, ...]
    optional_credentials: tuple[str, ...] = ()
    default_limits: Limits = Limits()
    # Whom the vendor counts calls against: each device ("device") or the
    # credential as a whole ("account"); the per-second limit may be per endpoint.
    budget_scope: Literal["device", "account"] = "account"
    per_second_scope: Literal["endpoint", "budget"] = "budget"
    # The quota day as the vendor counts it is unknown for most vendors, so the
    # budget uses sliding windows, which can never exceed a fixed-day limit.
    needs_devices: bool = False
    streams: tuple[StreamSpec, ...] = (StreamSpec("live"),)
    data_resolution: float = 300.0
    device_hint: str = "device serial numbers"
    #: Named gateways (`region:` in a source picks one instead of `base_url`), e.g.
    #: Sungrow's `eu`, `intl`, `cn`, `au`; empty where the vendor has one address.
    regions: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Device:
    """A device a source can see; `site` is the vendor's plant id or the config's site."""

    sn: str
    site: str
    kind: str = "inverter"
    timezone: str | None = None
    name: str = ""
    meta: Mapping[str, object] = field(default_factory=dict)
    #: Other names the config's `devices:` may use for it (Sungrow: the ps_key).
    aliases: tuple[str, ...] = ()

    def known_as(self, names: Iterable[str]) -> bool:
        """Whether any of `names` is this device's SN or one of its aliases."""
        wanted = set(names)
        return self.sn in wanted or any(a in wanted for a in self.aliases)


def devices_to_json(devices: Iterable[Device]) -> str:
    """Devices as JSON, for a client's discovery cache in the state database."""
    return json.dumps(
        [
            {
                "sn": d.sn,
                "site": d.site,
                "kind": d.kind,
                "timezone": d.timezone,
                "name": d.name,
                "meta": dict(d.meta),
                "aliases": list(d.aliases),
            }
            for d in devices
        ]
    )


def devices_from_json(text: str) -> list[Device] | None:
    """`devices_to_json` read back; None when the text is not such a list (a stale or
    damaged cache: the client discovers again)."""
    try:
        rows = json.loads(text)
        return [
            Device(
                sn=str(r["sn"]),
                site=str(r["site"]),
                kind=str(r.get("kind") or "inverter"),
                timezone=r.get("timezone"),
                name=str(r.get("name") or ""),
                meta=dict(r.get("meta") or {}),
                aliases=tuple(str(a) for a in r.get("aliases") or ()),
            )
            for r in rows
        ]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass
class PollResult:
    """What one run of a stream produced: points, and the newest data time per device."""

    points: list[Point] = field(default_factory=list)
    latest: dict[str, int] = field(default_factory=dict)
    skipped_values: int = 0
    #: Whole records refused (no data time, an unreadable one, a device not asked for),
    #: each logged by the mapper (`mapping.record_dropped`).
    records_dropped: int = 0
    #: When the vendor should next have fresh data for these devices (Unix time),
    #: e.g. the device's last upload + its upload period + a little lag. The app
    #: shifts the stream's schedule so the next runs fall just after it.
    next_data_at: float | None = None
    #: Cursors the client wants kept (`State.put` key → value), e.g. "the report
    #: for this period is final". The app stores them only after the points are
    #: durable in the spool (never in a dry run), like `latest`.
    state_updates: dict[str, str] = field(default_factory=dict)
    #: A run that fetched some data and then hit an error returns what it has,
    #: with the error: the app delivers the points first, then acts on the error
    #: (pause, re-login, count) exactly as if it had been raised.
    error: Exception | None = None


class VendorClient(Protocol):
    """I/O for one source. `__init__` does no I/O; the app owns the HTTP session."""

    def __init__(
        self,
        source: SourceConfig,
        http: aiohttp.ClientSession,
        budget: SourceBudget,
        state: State,
        *,
        clock: Clock | None = None,
    ) -> None: ...

    async def open(self) -> None:
        """Log in (where the vendor needs it)."""

    async def discover(self) -> Sequence[Device]:
        """The sites and devices this source can see (after the config's filter)."""

    async def poll(self, stream: str, devices: Sequence[Device]) -> PollResult:
        """Fetch one stream for the devices (batched as the vendor allows) and map it."""

    async def close(self) -> None:
        """Release what `open` took."""


@runtime_checkable
class HistoryCapable(Protocol):
    """Optional: the vendor can return history for a device and time window."""

    history_window: float  # the longest window one call may cover, seconds

    async def history(self, device: Device, start: int, end: int) -> PollResult:
        """Points with data time in [start, end) (Unix seconds)."""


@runtime_checkable
class BatchHistoryCapable(HistoryCapable, Protocol):
    """Optional: one history call covers several devices of one group (Sungrow: up to
    50 ps_keys of one device type). The backfill engine batches windows that share a
    grid cell (`history_window` from the site's midnight), a group and a zone."""

    history_batch: int  # the most devices one call may name

    def history_group(self, device: Device) -> str:
        """Devices of one group may share a call (e.g. the device type)."""

    async def history_many(self, devices: Sequence[Device], start: int, end: int) -> PollResult:
        """Points of every device with data time in [start, end) (Unix seconds)."""


@runtime_checkable
class PeriodHistoryCapable(Protocol):
    """Optional: energy totals of past days / months / years (the `energy` measurement),
    several periods and devices per call (Sungrow: 100 days, 24 months or 5 years, up to
    50 devices of one type). The backfill engine fetches them beside the minute history,
    in cells of `period_span[period]` periods, and checkpoints each device's cell."""

    period_batch: int
    period_span: Mapping[str, int]  # "day" / "month" / "year" → periods per call

    def history_group(self, device: Device) -> str: ...

    async def period_history(
        self, devices: Sequence[Device], period: str, first: date, last: date
    ) -> PollResult:
        """`energy` points of the periods from the one holding `first` to the one holding
        `last` (local dates, both included)."""


def text_value(value: Any) -> str | None:
    """A string or an integer id as stripped text (ids come as numbers here and strings there);
    None for anything else or blank."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def json_body(text: str, content_type: str) -> Any:
    """The answer's JSON, or None for an empty body, an HTML page or invalid JSON (`http_failure`
    then says which)."""
    if not text.strip() or looks_like_html(content_type, text):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def http_failure(
    status: int,
    text: str,
    content_type: str,
    *,
    body: Any,
    where: str,
    envelope: str,
    retry_at: float,
    kw: Mapping[str, Any],
) -> VendorError:
    """The exception for an answer without the vendor's body envelope: the HTTP status decides
    (429 a rate limit until `retry_at`, 5xx transient, 401/403 auth, other 4xx refused), else the
    body (empty, HTML or invalid JSON: transient; JSON without `envelope`: data quality). `body`
    is the caller's `json_body` of `text`. The body itself is never quoted."""
    if status == 429:
        return VendorRateLimitError(f"{where} (too many requests)", retry_at=retry_at, **kw)
    if status >= 500:
        return VendorTransientError(f"{where} (server error)", **kw)
    if status in (401, 403):
        return VendorAuthError(f"{where} (refused)", **kw)
    if status >= 400:
        return VendorResponseError(f"{where} (request refused)", **kw)
    if not text.strip():
        return VendorTransientError(f"{where} answered an empty body", **kw)
    if looks_like_html(content_type, text):
        return VendorTransientError(f"{where} answered an HTML page ({len(text)} bytes), not JSON", **kw)
    if body is None:
        return VendorTransientError(f"{where} answered invalid JSON ({len(text)} bytes)", **kw)
    return VendorDataQualityError(f"{where}: the answer has no {envelope} envelope", **kw)


def looks_like_html(content_type: str, text: str) -> bool:
    """An HTML page (a proxy's, a login or maintenance page) rather than the vendor's JSON."""
    return "html" in content_type.lower() or text.lstrip()[:1] == "<"


def load_saved(text: str, *, title: str, vendor: str, endpoint: str) -> Any:
    """A saved answer (`solar-collector parse`) as JSON; malformed JSON is the same
    `VendorDataQualityError` a live answer would raise."""
    try:
        return json.loads(text)
    except ValueError:
        raise VendorDataQualityError(
            f"{title} {endpoint}: malformed JSON", vendor=vendor, endpoint=endpoint
        ) from None


def request_object(request: str) -> dict[str, Any]:
    """A saved request body (`parse --request`) as a JSON object; ValueError otherwise."""
    try:
        body = json.loads(request)
    except ValueError as err:
        raise ValueError(f"the request body is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise ValueError("the request body is not a JSON object")
    return body


#: Errors that end a client's run at once: a further call would be refused too (rate,
#: quota, budget) or could not be made (auth). What was fetched before is returned with it.
STOP_ERRORS: tuple[type[Exception], ...] = (VendorRateLimitError, VendorAuthError, BudgetExhaustedError)
#: Errors that fail one batch / one device only: the others go on.
BATCH_ERRORS: tuple[type[Exception], ...] = (
    VendorTransientError,
    VendorResponseError,
    VendorDataQualityError,
)


#: The longest vendor message an exception quotes.
MAX_QUOTED = 200


def quote_message(msg: object, secrets: Sequence[str] = ()) -> str:
    """A vendor's error message for an exception text: `": '…'"`, folded onto one line,
    at most `MAX_QUOTED` characters, every secret blanked (longest first, so a secret
    containing another is blanked whole); "" when there is none. Only ever quoted: the
    code decides, never the message."""
    if not isinstance(msg, str) or not msg.strip():
        return ""
    text = " ".join(msg.split())[:MAX_QUOTED]
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return f": {text!r}"
