"""Vendor call budgets: never trip a limit, live polling before backfill.

How it counts (decisions, see docs in the README "Budgets"):

* **Sliding windows.** Every limit (second, minute, hour, day) is enforced over
  a sliding window of that length. No vendor documents when its day resets
  (research/foxess.md: "the quota reset time is not documented"), and at most
  N calls in *every* 24 h window means at most N in any calendar day, wherever
  the vendor's day starts.
* **Counted the way the vendor counts.** One budget per vendor account (the
  hash of the credential), so two sources with one key share it; with
  `budget_scope="device"` (FoxESS) each device has its own counters and a call
  covering 50 devices counts once against each of them; the per-second limit
  may be per endpoint.
* **Persisted.** Each call is written to the state database *before* it is
  made, and loaded on start, so a restart never resets a count; a vendor's
  rate-limit answer pauses the account until its retry time, also persisted.
* **Live first.** A live call may use the whole limit. A backfill call only
  takes capacity that leaves the live plan for a whole window plus a reserve
  untouched, and never a per-second slot that a live call is waiting for.
* **Spacing margin.** Per-second limits are enforced with 5 % extra spacing,
  because the vendor measures arrival times, not our send times.
"""

from __future__ import annotations

import contextvars
import hashlib
import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from collector.clock import Clock
from collector.errors import BudgetExhaustedError
from collector.log import get_logger
from collector.state import DAY, State
from collector.vendors.base import Limits, VendorSpec

log = get_logger(__name__)

LIVE = 0
BACKFILL = 1
#: Recorded on device counters for an account-level call (it counts against every
#: device's limit, but it is one call in the vendor's own tally).
ACCOUNT_COPY = 2

#: The priority of calls made in the current task; the job runner sets it.
priority: contextvars.ContextVar[int] = contextvars.ContextVar("budget_priority", default=LIVE)

#: Share of each limit that live plans may use; the rest is kept for backfill,
#: discovery, token refresh and retries (`check` refuses plans over it).
LIVE_SHARE = 0.9
#: Share of each limit kept free by backfill beyond the live plan.
BACKFILL_RESERVE = 0.05
SECOND_MARGIN = 1.05
#: A call that would have to wait longer than this raises instead of waiting.
DEFAULT_MAX_WAIT = 90.0


def account_key(vendor: str, credentials: Mapping[str, str]) -> str:
    """A stable, non-secret id for one vendor account (hash of its credentials)."""
    ident = "\0".join(f"{k}={credentials[k]}" for k in sorted(credentials))
    digest = hashlib.sha256(f"{vendor}\0{ident}".encode()).hexdigest()[:12]
    return f"{vendor}:{digest}"


@dataclass
class _Counter:
    """Sliding-window call log of one counter (an account or one device)."""

    name: str
    limits: Limits
    calls: deque[tuple[float, int]] = field(default_factory=deque)
    last_row: int = 0
    live_need: dict[float, float] = field(default_factory=dict)  # window length → planned live calls

    def prune(self, now: float) -> None:
        horizon = now - self._longest()
        while self.calls and self.calls[0][0] <= horizon:
            self.calls.popleft()

    def _longest(self) -> float:
        ws = [length for _, length, _ in self.limits.windows() if length > 1.0]
        return max(ws) if ws else 1.0

    def count(self, now: float, length: float, only: int | None = None) -> int:
        start = now - length
        n = 0
        for ts, prio in reversed(self.calls):
            if ts <= start:
                break
            if only is None or prio == only:
                n += 1
        return n

    def wait(self, now: float, cost: int, prio: int) -> float:
        """Seconds until `cost` more calls at `prio` fit every window (0: now; inf: never).

        Live may fill a window to the limit. Backfill must satisfy two caps: its
        own calls stay within what the live plan and the reserve leave, and the
        total stays below the limit less the reserve.
        """
        wait = 0.0
        for _name, length, limit in self.limits.windows():
            if length <= 1.0:
                continue  # per-second limits are spacing, handled by _Spacer
            if prio == LIVE:
                wait = max(wait, self._wait_for(now, length, limit, cost, None))
                continue
            reserve = max(1.0, math.ceil(limit * BACKFILL_RESERVE))
            own_cap = math.floor(limit - reserve - self.live_need.get(length, 0.0))
            wait = max(
                wait,
                self._wait_for(now, length, own_cap, cost, BACKFILL),
                self._wait_for(now, length, math.floor(limit - reserve), cost, None),
            )
        return wait

    def _wait_for(self, now: float, length: float, cap: float, cost: int, only: int | None) -> float:
        inside = [ts for ts, p in self.calls if ts > now - length and (only is None or p == only)]
        if len(inside) + cost <= cap:
            return 0.0
        if cost > cap:
            return math.inf
        excess = int(len(inside) + cost - cap)  # calls that must age out first
        return inside[excess - 1] + length - now + 1e-3

    def usage(self, now: float) -> dict[str, tuple[int, float]]:
        return {
            name: (self.count(now, length), limit)
            for name, length, limit in self.limits.windows()
            if length > 1.0
        }


class _Spacer:
    """One per-second slot (an account, or an account's endpoint): calls spaced apart."""

    def __init__(self, name: str, rate: float) -> None:
        self.name = name
        self.interval = SECOND_MARGIN / rate
        self.next_free = 0.0
        self.live_waiting = 0


class BudgetBook:
    """All budgets of the process, keyed by vendor account; shared across sources."""

    def __init__(self, state: State, clock: Clock) -> None:
        self.state = state
        self.clock = clock
        self._accounts: dict[str, AccountBudget] = {}

    def account(self, spec: VendorSpec, credentials: Mapping[str, str], limits: Limits) -> AccountBudget:
        key = account_key(spec.slug, credentials)
        acct = self._accounts.get(key)
        if acct is None:
            acct = AccountBudget(key, spec, limits, self.state, self.clock)
            self._accounts[key] = acct
        else:
            acct.tighten(limits)
        return acct

    def accounts(self) -> Iterator[AccountBudget]:
        return iter(self._accounts.values())


class AccountBudget:
    """The budget of one vendor account (see the module docstring)."""

    def __init__(self, key: str, spec: VendorSpec, limits: Limits, state: State, clock: Clock) -> None:
        self.key = key
        self.spec = spec
        self.limits = limits
        self.state = state
        self.clock = clock
        self._counters: dict[str, _Counter] = {}
        self._spacers: dict[str, _Spacer] = {}
        self._live_need: dict[float, float] = {}
        self.pause_reason = ""
        self.calls_made = 0
        self.rate_limited = 0
        self._since_prune = 0

    def tighten(self, limits: Limits) -> None:
        """Two sources on one account: the stricter of their limits wins."""

        def lo(a: float | int | None, b: float | int | None) -> float | int | None:
            return b if a is None else a if b is None else min(a, b)

        self.limits = Limits(
            per_second=lo(self.limits.per_second, limits.per_second),
            per_minute=lo(self.limits.per_minute, limits.per_minute),  # type: ignore[arg-type]
            per_hour=lo(self.limits.per_hour, limits.per_hour),  # type: ignore[arg-type]
            per_day=lo(self.limits.per_day, limits.per_day),  # type: ignore[arg-type]
        )
        for c in self._counters.values():
            c.limits = self._counter_limits()

    def add_live_plan(self, calls_per_window: Mapping[float, float]) -> None:
        """Declare live calls per counter per window (summed over the account's sources)."""
        for length, n in calls_per_window.items():
            self._live_need[length] = self._live_need.get(length, 0.0) + n
        for c in self._counters.values():
            c.live_need = dict(self._live_need)

    def _counter_limits(self) -> Limits:
        return Limits(
            per_minute=self.limits.per_minute, per_hour=self.limits.per_hour, per_day=self.limits.per_day
        )

    def _counter(self, name: str) -> _Counter:
        c = self._counters.get(name)
        if c is None:
            c = _Counter(name, self._counter_limits(), live_need=dict(self._live_need))
            self._counters[name] = c
            self._refresh(c)
        return c

    def _refresh(self, c: _Counter) -> None:
        """Take in calls recorded since we last looked (by us, or another process)."""
        fresh = self.state.load_calls(c.name, self.clock.time() - DAY, c.last_row)
        if not fresh:
            return
        older = bool(c.calls) and fresh[0][1] < c.calls[-1][0]
        for rowid, ts, prio in fresh:
            c.last_row = rowid
            c.calls.append((ts, prio))
        if older:  # another process's calls, older than our newest: keep time order
            c.calls = deque(sorted(c.calls))

    def _counter_names(self, devices: Sequence[str]) -> list[str]:
        if self.spec.budget_scope != "device":
            return [self.key]
        if devices:
            return [f"{self.key}/{d}" for d in devices]
        # An account-level call (login, device list) under per-device counting:
        # the vendor takes it from the account's pool (research/foxess.md §3.1),
        # which is the devices' limits added up, so it counts against every
        # device we know of as well as the account's own counter.
        known = {n for n in self._counters if n.startswith(f"{self.key}/")}
        known.update(self.state.counters_like(f"{self.key}/"))
        return [self.key, *sorted(known)]

    def _spacer(self, endpoint: str | None) -> _Spacer | None:
        if not self.limits.per_second:
            return None
        slot = endpoint if (self.spec.per_second_scope == "endpoint" and endpoint) else ""
        sp = self._spacers.get(slot)
        if sp is None:
            sp = _Spacer(f"{self.key}#{slot}", float(self.limits.per_second))
            self._spacers[slot] = sp
        return sp

    def paused_until(self) -> float | None:
        p = self.state.get_pause(self.key)
        if p and p[0] > self.clock.time():
            self.pause_reason = p[1]
            return p[0]
        return None

    def pause(self, until: float, reason: str) -> None:
        """The vendor said "too many calls": no call on this account before `until`."""
        self.rate_limited += 1
        current = self.paused_until()
        if current is None or until > current:
            self.state.set_pause(self.key, until, reason)

    async def acquire(
        self,
        *,
        endpoint: str | None = None,
        devices: Sequence[str] = (),
        cost: int = 1,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        """Wait for room for one call, record it, return. Raises BudgetExhaustedError
        when the call cannot be made within `max_wait` (or the account is paused)."""
        prio = priority.get()
        clock = self.clock
        deadline = clock.time() + max_wait
        spacer = self._spacer(endpoint)
        if spacer is not None and prio == LIVE:
            spacer.live_waiting += 1
        try:
            while True:
                now = clock.time()
                paused = self.paused_until()
                if paused is not None:
                    raise BudgetExhaustedError(
                        f"{self.spec.slug}: paused by the vendor until {paused:.0f} ({self.pause_reason})",
                        retry_at=paused,
                    )
                counters = [self._counter(n) for n in self._counter_names(devices)]
                wait = 0.0
                for c in counters:
                    c.prune(now)
                    wait = max(wait, c.wait(now, cost, prio))
                if spacer is not None:
                    if spacer.next_free > now + spacer.interval:
                        # The clock stepped back: the last call's time is unknown, so
                        # count it as made just now (never as long ago).
                        spacer.next_free = now + spacer.interval
                    wait = max(wait, spacer.next_free - now)
                    if prio == BACKFILL and spacer.live_waiting:
                        wait = max(wait, spacer.interval)
                if wait <= 0 and self._try_take(counters, spacer, cost, prio):
                    self.calls_made += cost
                    return
                if now + wait > deadline:
                    raise BudgetExhaustedError(
                        f"{self.spec.slug}: no budget for {'backfill' if prio else 'live'} "
                        f"calls for {wait:.0f} s",
                        retry_at=now + wait if math.isfinite(wait) else None,
                    )
                await clock.sleep(min(wait, max(0.0, deadline - now)))
        finally:
            if spacer is not None and prio == LIVE:
                spacer.live_waiting -= 1

    def _try_take(self, counters: list[_Counter], spacer: _Spacer | None, cost: int, prio: int) -> bool:
        """Re-check and record in one cross-process transaction; False if the room went."""
        with self.state.exclusive():
            now = self.clock.time()
            pause = self.state.get_pause(self.key)
            if pause is not None and pause[0] > now:
                return False  # another process paused the account meanwhile
            for c in counters:
                self._refresh(c)
            if spacer is not None:
                last = self.state.slot_last(spacer.name)
                if last > now + spacer.interval:
                    # The wall clock stepped back (NTP): a slot "used" in the future
                    # would block every call for that long. Count the last call as
                    # made now (never as long ago: that would let two calls through).
                    log.warning("budget.clock_stepped_back", slot=spacer.name, seconds=round(last - now))
                    self.state.set_slot_last(spacer.name, now)
                    spacer.next_free = now + spacer.interval
                    return False
                spacer.next_free = max(spacer.next_free, last + spacer.interval)
                if spacer.next_free > now:
                    return False
            if any(c.wait(now, cost, prio) > 0 for c in counters):
                return False
            names = [c.name for c in counters]
            copies = [n for n in names if n != self.key] if names[0] == self.key and len(names) > 1 else []
            own = [n for n in names if n not in copies]
            for _ in range(cost):
                self.state.record_call(own, now, prio)
                if copies:
                    self.state.record_call(copies, now, ACCOUNT_COPY)
            if spacer is not None:
                self.state.set_slot_last(spacer.name, now + spacer.interval * (cost - 1))
                spacer.next_free = now + spacer.interval * cost
        for c in counters:
            self._refresh(c)  # our own rows, with their row ids
        self._since_prune += cost
        if self._since_prune >= 1000:
            self._since_prune = 0
            self.state.prune_calls(now - DAY - 3600)
        return True

    def sync_remaining(self, remaining: int, total: int) -> int:
        """The vendor's own count (e.g. FoxESS getAccessCount) says `remaining` of `total`
        calls are left over its day. Where it has seen more calls than our counters
        (another app on the same key, calls before we kept count), record the
        difference as calls made now, spread over our counters, so we never plan
        with calls the vendor has already counted. Returns how many were added."""
        if not 0 <= remaining <= total:
            log.warning("budget.sync_ignored", remaining=remaining, total=total, reason="not a count")
            return 0
        vendor_used = total - remaining
        now = self.clock.time()
        # The vendor's pool counts every call: account-level ones (our account
        # counter) and device calls once per device covered (our device counters).
        everything = [self._counter(n) for n in sorted({*self._counters, self.key})]
        for c in everything:
            self._refresh(c)  # other processes' calls since we last looked
        ours = sum(sum(1 for ts, p in c.calls if ts > now - DAY and p != ACCOUNT_COPY) for c in everything)
        names = sorted(n for n in self._counters if "/" in n) or [self.key]
        counters = [self._counter(n) for n in names]
        extra = vendor_used - ours
        if extra <= 0:
            return 0
        # Never more than would fill every counter for a day (a nonsense answer
        # must not insert millions of rows).
        per_day = self.limits.per_day or self.limits.per_hour or 10_000
        extra = min(extra, int(per_day) * len(names))
        with self.state.exclusive():
            for i in range(extra):
                self.state.record_call([names[i % len(names)]], now, LIVE)
        for c in counters:
            self._refresh(c)
        return extra

    def usage(self) -> dict[str, dict[str, tuple[int, float]]]:
        """Per counter: window name → (calls in the window now, limit)."""
        now = self.clock.time()
        out: dict[str, dict[str, tuple[int, float]]] = {}
        for name, c in sorted(self._counters.items()):
            c.prune(now)
            out[name] = c.usage(now)
        return out

    def load_all_counters(self) -> None:
        """Load every counter this account has recorded calls on (for `quota`)."""
        for n in [self.key, *self.state.counters_like(f"{self.key}/")]:
            self._counter(n)


class SourceBudget:
    """What a vendor client holds: its account budget, seen from one source."""

    def __init__(self, account: AccountBudget) -> None:
        self.account = account

    async def acquire(
        self,
        *,
        endpoint: str | None = None,
        devices: Sequence[str] = (),
        cost: int = 1,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        await self.account.acquire(endpoint=endpoint, devices=devices, cost=cost, max_wait=max_wait)

    def pause(self, until: float, reason: str) -> None:
        self.account.pause(until, reason)

    def sync_remaining(self, remaining: int, total: int) -> int:
        added = self.account.sync_remaining(remaining, total)
        if added:
            log.warning(
                "budget.synced",
                account=self.account.key,
                added_calls=added,
                note="the vendor counted more calls than we did; our counters now include them",
            )
        return added
