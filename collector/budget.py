"""Vendor call budgets: never trip a limit, live polling before backfill.

How it counts (decisions, see docs in the README "Budgets"):

* **Sliding windows.** Every limit (second, minute, hour, day) is enforced over
  a sliding window of that length. No vendor documents when its day resets
  (research/foxess.md: "the quota reset time is not documented"), and at most
  N calls in *every* 24 h window means at most N in any calendar day, wherever
  the vendor's day starts.
* **Counted the way the vendor counts.** One budget per vendor account (the
  hash of the credential), so two sources with one key share it. With
  `budget_scope="device"` (FoxESS: 1440 a day per inverter, pooled for the
  account) a call covering 50 devices counts once against each of them, and
  an account-level call (plant and device lists, the fault table, the access
  count) counts against *every* device, whenever that device becomes known:
  a device's count is its own calls plus all the account's account-level
  calls. So the two discovery calls made before any inverter is known are in
  the pool the first live poll is checked against, in any order, after a
  restart and in another process (issue #6 §1). The per-second limit may be
  per endpoint.
* **Stored compactly.** A call is one row however many devices it covers: the
  device set is stored once as a group (`State.group_id`) and the row names it.
  A day at 1000 inverters is ~200k rows, not the ~60M a row per device took.
* **Persisted.** Each call is written to the state database *before* it is
  made, and loaded on start, so a restart never resets a count; a vendor's
  rate-limit answer pauses the account until its retry time, also persisted.
* **Live first.** A live call may use the whole limit. A backfill call only
  takes capacity that leaves the live plan for a whole window plus a reserve
  untouched, and never a per-second slot that a live call is waiting for.
* **Spacing between calls as they leave.** A per-second slot is *held* from the
  moment a call is granted until its request has left (the app's HTTP session
  reports when the request headers were sent, `send_trace`), and the next call
  on the slot waits for `SECOND_MARGIN / rate` after that send time. So a send
  delayed by a busy event loop or a slow connection pushes the next call back
  instead of shrinking the gap the vendor sees (issue #6 §1b). The hold is in
  the state database too: the daemon and a `backfill` beside it wait for each
  other's sends. A hold whose process died expires after `HOLD` seconds and
  counts as a send at its expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import heapq
import json
import math
import os
import secrets
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp

from collector.clock import Clock
from collector.errors import BudgetExhaustedError
from collector.log import get_logger
from collector.state import DAY, State
from collector.vendors.base import Limits, VendorSpec

log = get_logger(__name__)

LIVE = 0
BACKFILL = 1

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
#: The longest a granted call may hold its per-second slot before its request leaves.
#: Longer than any request's own timeout (which bounds when it can still leave), so a
#: hold can only expire once its process is gone.
HOLD = 90.0
#: How often a call waiting for another process's hold looks again (real clock).
HOLD_POLL = 0.02
#: The group id of account-level calls (no device named).
ACCOUNT = 0


def account_key(vendor: str, credentials: Mapping[str, str]) -> str:
    """A stable, non-secret id for one vendor account (hash of its credentials)."""
    ident = "\0".join(f"{k}={credentials[k]}" for k in sorted(credentials))
    digest = hashlib.sha256(f"{vendor}\0{ident}".encode()).hexdigest()[:12]
    return f"{vendor}:{digest}"


def send_trace() -> aiohttp.TraceConfig:
    """For the app's HTTP session: tells a call's ticket when its request headers left.

    A transport passes its ticket as `trace_request_ctx=`; without this trace (a
    session made elsewhere) the ticket counts the send at the end of the call,
    which is later, so the spacing only grows."""
    trace = aiohttp.TraceConfig()

    async def on_headers_sent(_session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: Any) -> None:
        ticket = getattr(ctx, "trace_request_ctx", None)
        if isinstance(ticket, CallTicket):
            ticket.sent()

    trace.on_request_headers_sent.append(on_headers_sent)
    return trace


@dataclass
class _Log:
    """The calls of one group (one device set, or the account's own calls), oldest first."""

    calls: deque[tuple[float, int, int]] = field(default_factory=deque)  # (time, priority, n)
    total: int = 0  # n summed over `calls`
    backfill: int = 0  # of which at backfill priority

    def add(self, ts: float, prio: int, n: int) -> None:
        if self.calls and ts < self.calls[-1][0]:
            # another process's call, older than our newest: keep time order
            self.calls = deque(sorted([*self.calls, (ts, prio, n)]))
        else:
            self.calls.append((ts, prio, n))
        self.total += n
        if prio == BACKFILL:
            self.backfill += n

    def prune(self, horizon: float) -> None:
        while self.calls and self.calls[0][0] <= horizon:
            _, prio, n = self.calls.popleft()
            self.total -= n
            if prio == BACKFILL:
                self.backfill -= n

    def count(self, now: float, length: float, longest: float) -> tuple[int, int]:
        """(calls, of which backfill) in the window of `length` s ending now (pruned first)."""
        if length >= longest:
            return self.total, self.backfill
        start = now - length
        n = b = 0
        for ts, prio, k in reversed(self.calls):
            if ts <= start:
                break
            n += k
            if prio == BACKFILL:
                b += k
        return n, b

    def inside(self, now: float, length: float, only: int | None) -> Iterator[tuple[float, int]]:
        start = now - length
        for ts, prio, n in self.calls:
            if ts > start and (only is None or prio == only):
                yield ts, n


class _Spacer:
    """One per-second slot (an account, or an account's endpoint): calls spaced apart."""

    def __init__(self, name: str, rate: float) -> None:
        self.name = name
        self.interval = SECOND_MARGIN / rate
        self.next_free = 0.0  # the earliest time the next call may leave, as far as we know
        self.live_waiting = 0
        #: The ticket holding the slot in this process (granted, request not yet sent).
        self.holder: CallTicket | None = None
        self.released: asyncio.Future[None] | None = None


class CallTicket:
    """A granted call. `sent()` when its request leaves; an exit without it counts as sent then."""

    def __init__(self, account: AccountBudget, spacer: _Spacer | None, cost: int) -> None:
        self._account = account
        self._spacer = spacer
        self._cost = cost
        self.sent_at: float | None = None

    def sent(self) -> None:
        """The request left now (idempotent: the first call counts)."""
        if self.sent_at is not None:
            return
        now = self._account.clock.time()
        self.sent_at = now
        sp = self._spacer
        if sp is None or sp.holder is not self:
            return
        sp.next_free = now + sp.interval * self._cost
        sp.holder = None
        if sp.released is not None and not sp.released.done():
            sp.released.set_result(None)
        sp.released = None
        # Not fsync'd: if this is lost (a crash, a database too busy to take it), the hold
        # committed in full when the call was granted stands in for it until it expires,
        # which is only later. Never raises: it runs inside the HTTP request.
        try:
            with self._account.state.relaxed():
                last = now + sp.interval * (self._cost - 1)
                self._account.state.slot_sent(sp.name, last, self._account.book.token)
        except sqlite3.Error as err:
            log.warning("budget.slot_release_failed", slot=sp.name, error=str(err))


class BudgetBook:
    """All budgets of the process, keyed by vendor account; shared across sources.

    It reads the state database's calls (its own and other processes') in row
    order and hands each to its account; calls of accounts not (yet) opened in
    this process are kept until they are."""

    def __init__(self, state: State, clock: Clock) -> None:
        self.state = state
        self.clock = clock
        self._accounts: dict[str, AccountBudget] = {}
        self._by_id: dict[int, AccountBudget] = {}
        self._unclaimed: dict[int, list[tuple[int, float, int, int]]] = {}
        self._last_row = 0
        self._since_prune = 0
        #: Who holds a slot, as written in the state database: this book (process).
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"

    def account(
        self,
        spec: VendorSpec,
        credentials: Mapping[str, str],
        limits: Limits,
        overridden: Iterable[str] = (),
    ) -> AccountBudget:
        """The budget of the account behind `credentials`. `limits` are the source's (the
        vendor's defaults with the config's overrides); `overridden` names the limits the
        config set, which a vendor's own grant (`AccountBudget.grant`) can never loosen."""
        key = account_key(spec.slug, credentials)
        acct = self._accounts.get(key)
        if acct is None:
            with self.state.transaction():
                bid = self.state.budget_id(key)
            acct = AccountBudget(key, bid, spec, limits, self)
            self._accounts[key] = acct
            self._by_id[bid] = acct
            self.refresh()
            for grp, ts, prio, n in self._unclaimed.pop(bid, []):
                acct.take_in(grp, ts, prio, n)
        else:
            acct.tighten(limits)
        acct.cap(limits, overridden)
        return acct

    def accounts(self) -> Iterator[AccountBudget]:
        return iter(self._accounts.values())

    def refresh(self) -> None:
        """Take in the calls recorded since we last looked (by us, or another process)."""
        rows = self.state.calls_after(self._last_row, self.clock.time() - DAY)
        for rowid, bid, grp, ts, prio, n in rows:
            self._last_row = rowid
            acct = self._by_id.get(bid)
            if acct is None:
                self._unclaimed.setdefault(bid, []).append((grp, ts, prio, n))
            else:
                acct.take_in(grp, ts, prio, n)

    def recorded(self, n: int) -> None:
        """`n` calls were recorded: now and then forget the ones older than every window."""
        self._since_prune += n
        if self._since_prune >= 1000:
            self._since_prune = 0
            self.state.prune_calls(self.clock.time() - DAY - 3600)


class AccountBudget:
    """The budget of one vendor account (see the module docstring)."""

    def __init__(self, key: str, budget_id: int, spec: VendorSpec, limits: Limits, book: BudgetBook) -> None:
        self.key = key
        self.id = budget_id
        self.spec = spec
        self.limits = limits
        self.book = book
        self.state = book.state
        self.clock = book.clock
        self._logs: dict[int, _Log] = {ACCOUNT: _Log()}
        self._members: dict[int, tuple[str, ...]] = {}
        self._group_of: dict[tuple[str, ...], int] = {}
        self._device_groups: dict[str, set[int]] = {}
        self._spacers: dict[str, _Spacer] = {}
        self._live_need: dict[float, float] = {}
        self.pause_reason = ""
        self.calls_made = 0
        self.rate_limited = 0
        #: The limits a config set (the lowest over the account's sources): a vendor's
        #: grant never goes above them.
        self._caps: dict[str, float] = {}
        for gid, members in self.state.groups(budget_id).items():
            self._learn_group(gid, members)
        granted = self.state.get(self._grant_key())
        if granted:
            self._apply_grant(_limits_from_json(granted), log_change=False)

    # -- limits and plans ----------------------------------------------------------------
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
        for sp in self._spacers.values():
            if self.limits.per_second:
                sp.interval = SECOND_MARGIN / float(self.limits.per_second)

    def cap(self, limits: Limits, names: Iterable[str]) -> None:
        """Remember the limits the config set (`names`), so a grant never loosens them."""
        for name in names:
            value = getattr(limits, name)
            if value is not None:
                self._caps[name] = min(float(value), self._caps.get(name, math.inf))
        if self._caps:  # a grant loaded from the state before the caps were known
            self._apply_grant(Limits(), log_change=False)

    def _grant_key(self) -> str:
        return f"budget:{self.key}:granted"

    def grant(self, granted: Limits) -> bool:
        """The vendor says what it grants this account (e.g. Sungrow's
        `getOpenApiCallInfo`): those limits replace the documented defaults, capped by
        what the config set (a config may tighten, never loosen, a grant). Kept in the
        state database, so a restart starts from the last grant, not from the defaults.
        True when the limits changed."""
        self.state.put(self._grant_key(), _limits_to_json(granted))
        return self._apply_grant(granted, log_change=True)

    def _apply_grant(self, granted: Limits, *, log_change: bool) -> bool:
        values: dict[str, float | int | None] = {}
        for name in _LIMIT_NAMES:
            vendor = getattr(granted, name)
            value = getattr(self.limits, name) if vendor is None else vendor
            if value is not None and name in self._caps:
                value = min(float(value), self._caps[name])
            if value is not None and name != "per_second":
                value = int(value)
            values[name] = value
        new = Limits(**values)  # type: ignore[arg-type]
        if new == self.limits:
            return False
        if log_change:
            log.info(
                "budget.granted",
                account=self.key,
                **{k: v for k, v in values.items() if v is not None},
                note="the vendor's grant, within the config's limits",
            )
        self.limits = new
        for sp in self._spacers.values():
            if self.limits.per_second:
                sp.interval = SECOND_MARGIN / float(self.limits.per_second)
        return True

    def add_live_plan(self, calls_per_window: Mapping[float, float]) -> None:
        """Declare live calls per counter per window (summed over the account's sources)."""
        for length, n in calls_per_window.items():
            self._live_need[length] = self._live_need.get(length, 0.0) + n

    def _windows(self) -> list[tuple[float, float]]:
        """(length, limit) of the counted windows (per-second limits are spacing)."""
        return [(length, limit) for _, length, limit in self.limits.windows() if length > 1.0]

    def _longest(self) -> float:
        return max((length for length, _ in self._windows()), default=1.0)

    # -- what has been called ------------------------------------------------------------
    def _learn_group(self, gid: int, members: tuple[str, ...]) -> None:
        self._members[gid] = members
        self._group_of[members] = gid
        self._logs.setdefault(gid, _Log())
        for d in members:
            self._device_groups.setdefault(d, set()).add(gid)

    def take_in(self, grp: int, ts: float, prio: int, n: int) -> None:
        """One recorded call row (ours or another process's)."""
        if self.spec.budget_scope != "device":
            grp = ACCOUNT
        elif grp not in self._logs:
            members = self.state.groups(self.id).get(grp)
            if members is None:
                grp = ACCOUNT  # a group we cannot read: count it against everyone (strict)
            else:
                self._learn_group(grp, members)
        self._logs[grp].add(ts, prio, n)

    def _group_for(self, devices: Sequence[str]) -> int:
        """The group a call on `devices` is recorded under (inside the budget's transaction)."""
        if self.spec.budget_scope != "device" or not devices:
            return ACCOUNT
        members = tuple(sorted(set(devices)))
        gid = self._group_of.get(members)
        if gid is None:
            gid = self.state.group_id(self.id, members)
            self._learn_group(gid, members)
        return gid

    def _subjects(self, devices: Sequence[str]) -> list[frozenset[int]]:
        """The sets of groups whose calls count against each limit a call touches.

        Account scope: the account. Device scope: each device named (its groups plus the
        account-level calls); an account-level call touches every device known, and the
        account itself (which stands for the devices not yet known)."""
        if self.spec.budget_scope != "device":
            return [frozenset((ACCOUNT,))]
        names: Iterable[str] = devices if devices else self._device_groups
        out = {frozenset((ACCOUNT, *self._device_groups.get(d, ()))) for d in names}
        if not devices:
            out.add(frozenset((ACCOUNT,)))
        return list(out)

    def _prune(self, now: float) -> None:
        horizon = now - self._longest()
        for lg in self._logs.values():
            lg.prune(horizon)

    def _wait(self, now: float, devices: Sequence[str], cost: int, prio: int) -> float:
        """Seconds until `cost` more calls at `prio` fit every window of every subject
        (0: now; inf: never).

        Live may fill a window to the limit. Backfill must satisfy two caps: its own
        calls stay within what the live plan and the reserve leave, and the total stays
        below the limit less the reserve."""
        self._prune(now)
        windows = self._windows()
        longest = self._longest()
        counts: dict[tuple[int, float], tuple[int, int]] = {}

        def used(subject: frozenset[int], length: float) -> tuple[int, int]:
            n = b = 0
            for g in subject:
                c = counts.get((g, length))
                if c is None:
                    c = counts[(g, length)] = self._logs[g].count(now, length, longest)
                n += c[0]
                b += c[1]
            return n, b

        wait = 0.0
        for subject in self._subjects(devices):
            for length, limit in windows:
                total, backfill = used(subject, length)
                caps: list[tuple[float, int, int | None]]
                if prio == LIVE:
                    caps = [(limit, total, None)]
                else:
                    reserve = max(1.0, math.ceil(limit * BACKFILL_RESERVE))
                    own_cap = math.floor(limit - reserve - self._live_need.get(length, 0.0))
                    caps = [(own_cap, backfill, BACKFILL), (math.floor(limit - reserve), total, None)]
                for cap, have, only in caps:
                    if have + cost <= cap:
                        continue
                    if cost > cap:
                        return math.inf
                    wait = max(wait, self._age_out(subject, now, length, have + cost - cap, only))
        return wait

    def _age_out(
        self, subject: frozenset[int], now: float, length: float, excess: float, only: int | None
    ) -> float:
        """Seconds until `excess` of the subject's calls in the window have aged out of it."""
        merged = heapq.merge(*(self._logs[g].inside(now, length, only) for g in subject))
        gone = 0
        for ts, n in merged:
            gone += n
            if gone >= excess:
                return ts + length - now + 1e-3
        return 0.0

    # -- spacing -------------------------------------------------------------------------
    def _spacer(self, endpoint: str | None) -> _Spacer | None:
        if not self.limits.per_second:
            return None
        slot = endpoint if (self.spec.per_second_scope == "endpoint" and endpoint) else ""
        sp = self._spacers.get(slot)
        if sp is None:
            sp = _Spacer(f"{self.key}#{slot}", float(self.limits.per_second))
            self._spacers[slot] = sp
        return sp

    # -- pauses --------------------------------------------------------------------------
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
            with self.state.transaction():
                self.state.set_pause(self.key, until, reason)

    # -- taking a call -------------------------------------------------------------------
    async def acquire(
        self,
        *,
        endpoint: str | None = None,
        devices: Sequence[str] = (),
        cost: int = 1,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        """Wait for room for one call, record it, return; the call is taken to leave now.

        Raises BudgetExhaustedError when the call cannot be made within `max_wait` (or
        the account is paused). A transport whose send may come later uses `call()`."""
        await self._take(endpoint, devices, cost, max_wait, send_now=True)

    @contextlib.asynccontextmanager
    async def call(
        self,
        *,
        endpoint: str | None = None,
        devices: Sequence[str] = (),
        cost: int = 1,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> AsyncIterator[CallTicket]:
        """`acquire` for a request that leaves inside the block: pass the ticket to the
        request as `trace_request_ctx=` (see `send_trace`), or call `ticket.sent()`
        when it leaves. Until then the next call on the per-second slot waits; if the
        block ends without a send, the call counts as sent at that moment."""
        ticket = await self._take(endpoint, devices, cost, max_wait, send_now=False)
        try:
            yield ticket
        finally:
            ticket.sent()

    async def _take(
        self, endpoint: str | None, devices: Sequence[str], cost: int, max_wait: float, *, send_now: bool
    ) -> CallTicket:
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
                if spacer is not None and spacer.holder is not None:
                    # A call of ours holds the slot until its request leaves: then the
                    # spacing runs from its send time (bounded by that request's timeout).
                    if spacer.released is None:
                        spacer.released = asyncio.get_running_loop().create_future()
                    await asyncio.shield(spacer.released)
                    continue
                wait = self._wait(now, devices, cost, prio)
                if spacer is not None:
                    if spacer.next_free > now + spacer.interval * cost:
                        # The clock stepped back: the last call's time is unknown, so
                        # count it as made just now (never as long ago).
                        spacer.next_free = now + spacer.interval
                    wait = max(wait, spacer.next_free - now)
                    if prio == BACKFILL and spacer.live_waiting:
                        wait = max(wait, spacer.interval)
                if wait <= 0:
                    ticket = self._try_take(devices, spacer, cost, prio, send_now=send_now)
                    if isinstance(ticket, CallTicket):
                        self.calls_made += cost
                        return ticket
                    wait = ticket
                if now + wait > deadline:
                    raise BudgetExhaustedError(
                        f"{self.spec.slug}: no budget for {'backfill' if prio else 'live'} "
                        f"calls for {wait:.0f} s",
                        retry_at=now + wait if math.isfinite(wait) else None,
                    )
                if wait > 0:
                    await clock.sleep(min(wait, max(0.0, deadline - now)))
        finally:
            if spacer is not None and prio == LIVE:
                spacer.live_waiting -= 1

    def _try_take(
        self, devices: Sequence[str], spacer: _Spacer | None, cost: int, prio: int, *, send_now: bool
    ) -> CallTicket | float:
        """Re-check and record in one cross-process transaction. The ticket, or how long
        to wait before trying again (the room went to another process meanwhile)."""
        state = self.state
        with state.transaction():
            now = self.clock.time()
            pause = state.get_pause(self.key)
            if pause is not None and pause[0] > now:
                return 0.0  # another process paused the account meanwhile: the loop raises
            self.book.refresh()
            if spacer is not None:
                last, held_until, holder = state.slot(spacer.name)
                if holder and holder != self.book.token:
                    if held_until > now + HOLD:
                        held_until = now + HOLD  # the clock stepped back under the hold
                    if held_until > now:
                        return HOLD_POLL  # another process's call has not left yet
                    last = max(last, held_until)  # its process died: count it sent at expiry
                if last > now + spacer.interval * cost:
                    # The wall clock stepped back (NTP): a slot "used" in the future
                    # would block every call for that long. Count the last call as
                    # made now (never as long ago: that would let two calls through).
                    log.warning("budget.clock_stepped_back", slot=spacer.name, seconds=round(last - now))
                    last = now
                    state.set_slot(spacer.name, last)
                spacer.next_free = max(spacer.next_free, last + spacer.interval)
                if spacer.next_free > now:
                    return spacer.next_free - now
            wait = self._wait(now, devices, cost, prio)
            if wait > 0:
                return wait
            state.record_call(self.id, self._group_for(devices), now, prio, cost)
            ticket = CallTicket(self, spacer, cost)
            if spacer is not None:
                if send_now:
                    state.set_slot(spacer.name, now + spacer.interval * (cost - 1))
                    spacer.next_free = now + spacer.interval * cost
                    ticket.sent_at = now
                else:
                    state.set_slot(spacer.name, last, now + HOLD, self.book.token)
                    spacer.holder = ticket
                    spacer.next_free = math.inf
        self.book.refresh()  # our own row, with its row id
        self.book.recorded(cost)
        return ticket

    # -- the vendor's own count ------------------------------------------------------------
    def sync_remaining(self, remaining: int, total: int, window: float = DAY) -> int:
        """The vendor's own count (e.g. FoxESS getAccessCount) says `remaining` of `total`
        calls are left over its day (or over the last `window` seconds, e.g. Sungrow's
        hour). Where it has seen more calls than we have recorded
        (another app on the same key, calls before we kept count), record the difference
        as calls made now, spread over the devices, so we never plan with calls the
        vendor has already counted. Returns how many were added."""
        if not 0 <= remaining <= total:
            log.warning("budget.sync_ignored", remaining=remaining, total=total, reason="not a count")
            return 0
        now = self.clock.time()
        self.book.refresh()  # other processes' calls since we last looked
        self._prune(now)
        # The vendor's pool counts a call once per device it names, an account-level call once.
        ours = 0
        for gid, lg in self._logs.items():
            per_call = max(1, len(self._members.get(gid, ()))) if gid != ACCOUNT else 1
            ours += per_call * sum(n for ts, _, n in lg.calls if ts > now - window)
        extra = (total - remaining) - ours
        if extra <= 0:
            return 0
        devices = sorted(self._device_groups) if self.spec.budget_scope == "device" else []
        # Never more than would fill every counter for a day (a nonsense answer must not
        # count millions of calls).
        per_day = self.limits.per_day or self.limits.per_hour or 10_000
        extra = min(extra, int(per_day) * max(1, len(devices)))
        with self.state.transaction():
            if not devices:
                self.state.record_call(self.id, ACCOUNT, now, LIVE, extra)
            else:
                share, rest = divmod(extra, len(devices))
                for i, d in enumerate(devices):
                    if share + (i < rest):
                        self.state.record_call(self.id, self._group_for([d]), now, LIVE, share + (i < rest))
        self.book.refresh()
        return extra

    # -- reports ---------------------------------------------------------------------------
    def usage(self) -> dict[str, dict[str, tuple[int, float]]]:
        """Per counter: window name → (calls in the window now, limit).

        Counters: the account (its account-level calls; under account scope, every
        call) and, under device scope, `account/SN` per device (its calls plus the
        account-level ones: what its limit is checked against)."""
        now = self.clock.time()
        self.book.refresh()
        self._prune(now)
        longest = self._longest()
        named = [(name, length, limit) for name, length, limit in self.limits.windows() if length > 1.0]

        def windows(groups: Iterable[int]) -> dict[str, tuple[int, float]]:
            gs = list(groups)
            return {
                name: (sum(self._logs[g].count(now, length, longest)[0] for g in gs), limit)
                for name, length, limit in named
            }

        out: dict[str, dict[str, tuple[int, float]]] = {}
        if self._logs[ACCOUNT].calls:
            out[self.key] = windows([ACCOUNT])
        for d in sorted(self._device_groups):
            out[f"{self.key}/{d}"] = windows([ACCOUNT, *self._device_groups[d]])
        return out

    def calls_against(self, device: str | None = None) -> list[float]:
        """The times of the calls that count against `device`'s limit (None: the account's
        own calls), one entry per call."""
        now = self.clock.time()
        self.book.refresh()
        self._prune(now)
        groups = [ACCOUNT] if device is None else [ACCOUNT, *self._device_groups.get(device, ())]
        return sorted(ts for g in groups for ts, _, n in self._logs[g].calls for _ in range(n))

    def load_all_counters(self) -> None:
        """Take in every call recorded so far (for `quota`)."""
        self.book.refresh()


_LIMIT_NAMES = ("per_second", "per_minute", "per_hour", "per_day")


def _limits_to_json(limits: Limits) -> str:
    return json.dumps({n: getattr(limits, n) for n in _LIMIT_NAMES if getattr(limits, n) is not None})


def _limits_from_json(text: str) -> Limits:
    try:
        data = json.loads(text)
    except ValueError:
        return Limits()
    if not isinstance(data, dict):
        return Limits()

    def value(name: str) -> float | None:
        v = data.get(name)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    def whole(name: str) -> int | None:
        v = value(name)
        return None if v is None else int(v)

    return Limits(
        per_second=value("per_second"),
        per_minute=whole("per_minute"),
        per_hour=whole("per_hour"),
        per_day=whole("per_day"),
    )


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

    def call(
        self,
        *,
        endpoint: str | None = None,
        devices: Sequence[str] = (),
        cost: int = 1,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> contextlib.AbstractAsyncContextManager[CallTicket]:
        return self.account.call(endpoint=endpoint, devices=devices, cost=cost, max_wait=max_wait)

    def pause(self, until: float, reason: str) -> None:
        self.account.pause(until, reason)

    def grant(self, granted: Limits) -> bool:
        return self.account.grant(granted)

    def sync_remaining(self, remaining: int, total: int, window: float = DAY) -> int:
        added = self.account.sync_remaining(remaining, total, window)
        if added:
            log.warning(
                "budget.synced",
                account=self.account.key,
                added_calls=added,
                note="the vendor counted more calls than we did; our counters now include them",
            )
        return added
