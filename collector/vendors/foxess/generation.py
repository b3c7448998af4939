"""Deferred stamping of `/op/v0/device/generation` (pure: no I/O, no clock).

The bug this solves: the generation answer (today / month / lifetime yield) carries **no
data time**. It reflects the cloud's newest upload *at the moment of the call*, and that
moment is only known to fall between the request being sent and its answer arriving.
Stamping it with the live cursor's data time is right only while no later upload has
reached the cloud; the old client therefore called only while that upload was "fresh",
and with many inverters (an energy run lasts minutes, 1 call/s per endpoint) the same
inverters were systematically never fresh and never got generation values.

So the energy run calls without that check and keeps the answer *pending*
(`PendingGeneration`, stored in state once the run's other points are durable); the next
live poll, which sees the device's newest data time `ts_new` (its request made after the
pending record was stored, so after the call), decides which upload the answer reflected
(`resolve`):

* `ts_new <= ts_prev` — no new upload yet: keep it pending (the next poll decides).
* (a) `ts_new <= called_at - lag` — the upload `ts_new` had reached the cloud before the
  call (an upload arrives within `lag` of its data time), and it is still the newest
  after the call: the answer reflected `ts_new`.
* (b) `ts_new > answered_at` and `ts_new - ts_prev < 1.5 * period` — `ts_new` is the upload
  right after `ts_prev` (none was missed), and its data time is after the answer, so it
  reached the cloud after the call: the answer reflected `ts_prev` (which the cloud had
  before the call: a live poll had seen it).
* (c) anything else — an upload within the lag window around the call, or an outage in
  between (uploads missed, so which one the call saw is unknown): dropped and counted,
  never written at a time it may not belong to.

`called_at` is taken before the request (before its budget wait: earlier is stricter
for (a)), `answered_at` after the answer (later is stricter for (b)).

Uploads come at a fixed phase (every `period` s after `ts_prev`), so the window in which
a call could only end in (c) is known in advance: the energy run does not call inside it
(`window_wait`) but after its other devices, waiting out what is left of the window.
Otherwise an inverter whose call falls at the same point of its upload cycle each run
(a fixed schedule, a fixed device order) would be dropped every time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from collector.schema.point import FieldValue

Verdict = Literal["wait", "stamp", "drop"]


@dataclass(frozen=True)
class PendingGeneration:
    """A generation answer waiting for the next live data time to say which upload it was."""

    called_at: float
    answered_at: float
    ts_prev: int
    #: The mapped inverter fields (`yield_energy_today_wh`, `yield_energy_total_wh`, Wh).
    fields: dict[str, FieldValue]

    def to_json(self) -> str:
        return json.dumps(
            {
                "called_at": self.called_at,
                "answered_at": self.answered_at,
                "ts_prev": self.ts_prev,
                "fields": self.fields,
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> PendingGeneration | None:
        """None for a missing, cleared (`""`) or unreadable record."""
        if not text:
            return None
        try:
            raw: Any = json.loads(text)
            called_at = float(raw["called_at"])
            answered_at = float(raw.get("answered_at", called_at))
            ts_prev = int(raw["ts_prev"])
            fields = raw["fields"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(fields, dict) or not fields:
            return None
        clean: dict[str, FieldValue] = {}
        for key, value in fields.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            if isinstance(value, float) and not math.isfinite(value):
                return None
            clean[str(key)] = value
        return cls(called_at, answered_at, ts_prev, clean)


def resolve(
    pending: PendingGeneration, ts_new: int, *, period: float, lag: float
) -> tuple[Verdict, int | None]:
    """Which upload a pending generation answer reflected, given the newest data time seen
    after it: ("stamp", time), ("drop", None) or ("wait", None). See the module doc."""
    if ts_new <= pending.ts_prev:
        return "wait", None
    if ts_new <= pending.called_at - lag:
        return "stamp", ts_new  # (a)
    if ts_new > pending.answered_at and ts_new - pending.ts_prev < 1.5 * period:
        return "stamp", pending.ts_prev  # (b)
    return "drop", None  # (c)


def window_wait(now: float, ts_prev: int, *, period: float, lag: float, guard: float) -> float:
    """How long a generation call made at `now` should wait to be placeable by (a) or (b):
    0 unless `now` lies within `guard` s (the call's own duration) before, or `lag` s
    after, an upload expected at `ts_prev + k·period` (k ≥ 1); else the time to its end."""
    if now < ts_prev + period - guard:
        return 0.0
    pos = (now - ts_prev) % period
    if pos >= period - guard:
        return period - pos + lag
    if pos < lag:
        return lag - pos
    return 0.0
