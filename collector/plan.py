"""The live polling plan per source against its vendor limits (`check`, `run`).

A stream polled every `p` seconds runs at most floor(W / p) + 1 times in any
window of W seconds (the +1 covers scheduling jitter, which can bring two runs
closer than `p`). Sources on one vendor account share its counters, so their
plans are summed. A plan fits when every window stays within `LIVE_SHARE` of
its limit; the rest is kept for discovery, token refresh, retries and backfill.

When no live interval fits beside a source's other streams (a tight quota: the
limits are smaller than one round of every stream needs), the other streams are
left out, the last first, until the live stream fits; `run` warns once naming
them and polls what fits (`SourcePlan.disabled`), and `check` refuses the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collector.budget import LIVE_SHARE, account_key
from collector.config import Config, SourceConfig
from collector.vendors import VENDOR_SPECS
from collector.vendors.base import StreamSpec


@dataclass(frozen=True)
class WindowPlan:
    """Planned live calls on one counter in one window, against the limit."""

    window: str
    length: float
    planned: float  # this source's own calls
    account_planned: float  # with the other sources on the same account
    limit: float

    @property
    def fits(self) -> bool:
        return self.account_planned <= self.limit * LIVE_SHARE


@dataclass(frozen=True)
class SourcePlan:
    source: str
    vendor: str
    account: str
    interval: float  # the configured (or default) interval
    min_interval: float | None  # the shortest that fits (None: nothing fits)
    windows: tuple[WindowPlan, ...]
    counted_per: str  # "inverter" or "account", for the report
    devices_assumed: int
    #: Streams that cannot run within the limits at any interval (`run` leaves them out).
    disabled: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return not self.disabled and all(w.fits for w in self.windows)


def runs_in(length: float, interval: float) -> int:
    """Most runs of a job every `interval` s inside any `length`-second window."""
    return math.floor(length / interval) + 1


def effective_interval(src: SourceConfig, stream: StreamSpec) -> float:
    """The config's `interval` sets the live stream; other streams keep their own."""
    if stream.name == "live" and src.interval is not None:
        return src.interval
    return stream.default_interval


def _calls_per_run(src: SourceConfig, stream: StreamSpec) -> tuple[int, int]:
    """(calls per run on one counter, devices assumed)."""
    spec = VENDOR_SPECS[src.vendor]
    n = len(src.devices) if src.devices else 1
    if spec.budget_scope == "device":
        return stream.calls_per_run, n  # a batched call counts once per device
    return stream.calls_per_run * math.ceil(n / max(1, stream.batch)), n


def _source_need(
    src: SourceConfig,
    live_interval: float | None = None,
    *,
    skip_live: bool = False,
    disabled: tuple[str, ...] = (),
) -> dict[float, float]:
    spec = VENDOR_SPECS[src.vendor]
    need: dict[float, float] = {}
    for stream in spec.streams:
        if (skip_live and stream.name == "live") or stream.name in disabled:
            continue
        p = effective_interval(src, stream)
        if stream.name == "live" and live_interval is not None:
            p = live_interval
        per_run, _ = _calls_per_run(src, stream)
        for _name, length, _limit in src.limits.windows():
            if length > 1.0:
                need[length] = need.get(length, 0.0) + runs_in(length, p) * per_run
    return need


def live_need(
    src: SourceConfig, live_interval: float | None = None, disabled: tuple[str, ...] = ()
) -> dict[float, float]:
    """Calls per counter per window of all scheduled streams (for the backfill reserve)."""
    return _source_need(src, live_interval, disabled=disabled)


def _min_interval(
    src: SourceConfig, others: dict[float, float], disabled: tuple[str, ...] = ()
) -> float | None:
    """The shortest whole-second live interval at which this source fits beside the others
    (the account's other sources, and this source's own non-live streams)."""
    spec = VENDOR_SPECS[src.vendor]
    live = [s for s in spec.streams if s.name == "live"]
    if not live or "live" in disabled:
        return None
    per_run = _calls_per_run(src, live[0])[0]
    own_rest = _source_need(src, skip_live=True, disabled=disabled)
    others = {k: others.get(k, 0.0) + own_rest.get(k, 0.0) for k in set(others) | set(own_rest)}
    best = 1.0
    for _name, length, limit in src.limits.windows():
        if length <= 1.0:
            continue
        room = limit * LIVE_SHARE - others.get(length, 0.0)
        max_runs = math.floor(room / per_run) if per_run else 10**9
        if max_runs < 1:
            return None
        if max_runs == 1:
            best = max(best, length + 1)  # one run per window: an interval longer than it
            continue
        # need floor(length / p) + 1 <= max_runs  <=>  p > length / max_runs
        best = max(best, math.floor(length / max_runs) + 1)
    return best


def _disabled(src: SourceConfig) -> tuple[str, ...]:
    """The streams left out so that the live stream fits at some interval: none when it
    fits with all of them; else the other streams, the last first; all when even the
    live stream alone cannot fit."""
    spec = VENDOR_SPECS[src.vendor]
    rest = [s.name for s in spec.streams if s.name != "live"]
    dropped: tuple[str, ...] = ()
    while _min_interval(src, {}, dropped) is None:
        if not rest:
            return tuple(s.name for s in spec.streams)
        dropped = (*dropped, rest.pop())
    return dropped


def plan(config: Config) -> list[SourcePlan]:
    """The plan of every source, with the sources sharing an account summed."""
    by_account: dict[str, list[SourceConfig]] = {}
    for src in config.sources:
        by_account.setdefault(account_key(src.vendor, src.credentials), []).append(src)
    disabled = {src.name: _disabled(src) for src in config.sources}
    needs = {src.name: _source_need(src, disabled=disabled[src.name]) for src in config.sources}
    out: list[SourcePlan] = []
    for src in config.sources:
        spec = VENDOR_SPECS[src.vendor]
        acct = account_key(src.vendor, src.credentials)
        others: dict[float, float] = {}
        for other in by_account[acct]:
            if other.name != src.name:
                for length, n in needs[other.name].items():
                    others[length] = others.get(length, 0.0) + n
        own = needs[src.name]
        windows = tuple(
            WindowPlan(
                name, length, own.get(length, 0.0), own.get(length, 0.0) + others.get(length, 0.0), limit
            )
            for name, length, limit in src.limits.windows()
            if length > 1.0
        )
        live = next((s for s in spec.streams if s.name == "live"), spec.streams[0])
        interval = effective_interval(src, live)
        out.append(
            SourcePlan(
                source=src.name,
                vendor=src.vendor,
                account=acct,
                interval=interval,
                min_interval=_min_interval(src, others, disabled[src.name]),
                windows=windows,
                counted_per="inverter" if spec.budget_scope == "device" else "account",
                devices_assumed=_calls_per_run(src, spec.streams[0])[1],
                disabled=disabled[src.name],
            )
        )
    return out


def format_duration(seconds: float) -> str:
    s = math.ceil(seconds)
    if s % 3600 == 0:
        return f"{s // 3600}h"
    if s % 60 == 0:
        return f"{s // 60}m"
    if s > 60:
        return f"{s // 60}m{s % 60}s"
    return f"{s}s"
