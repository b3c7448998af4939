"""A deterministic EV-charger model: charge sessions and their truth at any second, in SI units.

An :class:`EvFleet` holds chargers (wallboxes) and answers :meth:`EvFleet.truth` for any Unix second:
status, charging mode, charging power (W) and the energy of the current session (Wh). A cloud
simulator (the SolaX pile API in :mod:`collector.simulators.solax`) converts the truth into the
vendor's units; the tests compare what the collector stored with the truth.

How the model works (deterministic for a given configuration and ``seed``):

* Per local day of the charger's zone, a seeded draw decides whether a car arrives that evening
  (probability :attr:`Charger.arrival_probability`) and, if so: the arrival minute (16:30-21:30 local),
  the car's on-board charger (7.4 kW single-phase or 11 kW three-phase, capped by the charger), the
  session's charging mode (1 FAST, 2 ECO, 3 GREEN), the energy the car needs (4-45 kWh) and the
  unplug time next morning (06:30-08:30 local).
* After plug-in the charger spends :data:`PREPARING_S` seconds in ``Preparing``, then charges at a
  constant power until the need is met: FAST at the car's and charger's limit, ECO at 10 A per phase,
  GREEN at the 6 A minimum per phase (no PV surplus in the evening: **Decision**). Some sessions have
  a pause mid-charge (the car stops drawing: ``SuspendedEV``). The need is capped so that charging
  ends at least 10 minutes before the unplug. Then the car sits ``Finishing`` until it is unplugged.
* Power is constant while charging, so the session energy is exactly ``power × charging seconds``
  (``energy(t2) - energy(t1)`` is the integral of the power between them, to the second).
* The session energy resets to 0 at the next plug-in; between sessions (``Available``) it keeps the
  last session's value (the "energy of the current session" of a charger with no car is the last
  one's). Before the first session it is 0.
* A :class:`ChargerFault` sets the status (4 ``Faulted`` or 5 ``Unavailable``) for its interval; a
  session's charging is interrupted meanwhile (power 0, no energy) and the schedule is not extended,
  so such a session delivers less than its need.
* The charger reports to the cloud every :attr:`Charger.report_interval_s` seconds at a per-SN phase;
  :meth:`EvFleet.snapshot` is the truth at the newest report (what a cloud serves).

Status codes (OCPP-aligned table, field notes ``shared/research/solax.md`` §5.3): 0 Available,
1 Preparing, 2 Charging, 3 Finishing, 4 Faulted, 5 Unavailable, 7 SuspendedEV (6 Reserved and
8 SuspendedEVSE exist in the table but the model does not produce them). Modes (§5.3): 0 STOP,
1 FAST, 2 ECO, 3 GREEN; the mode reads 0 while no car is plugged in (**Decision**, as the pile doc's
sample: status 0 with mode 0).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from collector.simulators.plant import local_date, local_midnight, local_time, stable_hash

AVAILABLE = 0
PREPARING = 1
CHARGING = 2
FINISHING = 3
FAULTED = 4
UNAVAILABLE = 5
RESERVED = 6
SUSPENDED_EV = 7
SUSPENDED_EVSE = 8

CHARGER_STATUS: dict[int, str] = {
    AVAILABLE: "Available",
    PREPARING: "Preparing",
    CHARGING: "Charging",
    FINISHING: "Finishing",
    FAULTED: "Faulted",
    UNAVAILABLE: "Unavailable",
    RESERVED: "Reserved",
    SUSPENDED_EV: "SuspendedEV",
    SUSPENDED_EVSE: "SuspendedEVSE",
}
"""``chargerStatus`` codes (notes §5.3, OCPP-aligned)."""

STOP, FAST, ECO, GREEN = 0, 1, 2, 3
CHARGING_MODES: dict[int, str] = {STOP: "STOP", FAST: "FAST", ECO: "ECO", GREEN: "GREEN"}
"""``chargingMode`` codes (notes §5.3)."""

PREPARING_S = 90
"""Seconds from plug-in to the start of charging (state ``Preparing``)."""

PHASE_VOLTAGE_V = 230.0
CAR_LIMITS_W = (7360.0, 11040.0)
"""On-board chargers of the simulated cars: 7.4 kW (1 × 32 A) and 11 kW (3 × 16 A)."""

ECO_CURRENT_A = 10.0
GREEN_CURRENT_A = 6.0


@dataclass(frozen=True)
class Charger:
    """A wallbox in zone ``zone``, in service from local midnight of ``commissioned``.

    ``phases`` × ``max_current_a`` × 230 V is its maximum power (3 × 16 A = 11.04 kW;
    1 × 32 A = 7.36 kW).
    """

    sn: str
    zone: str
    commissioned: date
    phases: int = 3
    max_current_a: float = 16.0
    arrival_probability: float = 0.6
    report_interval_s: int = 60

    def __post_init__(self) -> None:
        local_midnight(self.zone, self.commissioned)  # raises for an unknown zone
        if self.phases not in (1, 3) or not 6 <= self.max_current_a <= 32:
            raise ValueError(f"implausible charger {self!r}")
        if not 0 <= self.arrival_probability <= 1 or not 10 <= self.report_interval_s <= 3600:
            raise ValueError(f"implausible charger {self!r}")

    @property
    def max_power_w(self) -> float:
        """The charger's maximum power, W."""
        return self.phases * self.max_current_a * PHASE_VOLTAGE_V


@dataclass(frozen=True)
class ChargerFault:
    """Charger ``sn`` shows ``status`` (4 Faulted or 5 Unavailable) in ``[start, end)``, Unix s."""

    sn: str
    start: int
    end: int
    status: int = FAULTED

    def __post_init__(self) -> None:
        if self.status not in (FAULTED, UNAVAILABLE) or self.end <= self.start:
            raise ValueError(f"bad charger fault {self!r}")


@dataclass(frozen=True)
class ChargeSession:
    """One car's visit: plugged in ``[plug_in, unplug)``, charging in :attr:`charging` intervals."""

    sn: str
    plug_in: int
    charge_start: int
    charge_end: int
    unplug: int
    power_w: float
    mode: int
    need_wh: float
    pause: tuple[int, int] | None = None
    """``[start, end)`` of a pause mid-charge (``SuspendedEV``), or None."""

    @property
    def charging(self) -> tuple[tuple[int, int], ...]:
        """The intervals ``[a, b)`` in which the car draws power (faults not subtracted)."""
        if self.pause is None:
            return ((self.charge_start, self.charge_end),)
        return ((self.charge_start, self.pause[0]), (self.pause[1], self.charge_end))


@dataclass(frozen=True, slots=True)
class ChargerTruth:
    """What a charger really does at Unix second ``t`` (W, Wh)."""

    sn: str
    t: int
    status: int
    mode: int
    power_w: float
    session_energy_wh: float
    """Energy of the current (or, with no car plugged in, the last) session."""
    session: ChargeSession | None
    """The session the energy belongs to (None before the first one)."""


def _overlap(a: int, b: int, c: int, d: int) -> int:
    return max(0, min(b, d) - max(a, c))


class EvFleet:
    """The deterministic chargers: their sessions, faults and truth at any second."""

    def __init__(
        self, chargers: Sequence[Charger], *, seed: int = 0, faults: Iterable[ChargerFault] = ()
    ) -> None:
        self.chargers: dict[str, Charger] = {}
        for charger in chargers:
            if charger.sn in self.chargers:
                raise ValueError(f"duplicate charger SN {charger.sn}")
            self.chargers[charger.sn] = charger
        self.seed = seed
        self.faults: tuple[ChargerFault, ...] = tuple(sorted(faults, key=lambda f: (f.sn, f.start)))
        for fault in self.faults:
            if fault.sn not in self.chargers:
                raise ValueError(f"fault for an unknown charger {fault!r}")
        self._sessions: dict[tuple[str, date], ChargeSession | None] = {}

    def charger(self, sn: str) -> Charger:
        """The charger ``sn`` (``KeyError`` if unknown)."""
        return self.chargers[sn]

    def commissioned_at(self, sn: str) -> int:
        """Unix second from which charger ``sn`` exists."""
        c = self.chargers[sn]
        return local_midnight(c.zone, c.commissioned)

    # ---------------------------------------------------------------- sessions

    def session_of_day(self, sn: str, day: date) -> ChargeSession | None:
        """The session that starts on local ``day`` (None: no car that day)."""
        key = (sn, day)
        if key in self._sessions:
            return self._sessions[key]
        c = self.chargers[sn]
        session = None if day < c.commissioned else self._draw(c, day)
        if len(self._sessions) > 4096:
            self._sessions.clear()
        self._sessions[key] = session
        return session

    def _draw(self, c: Charger, day: date) -> ChargeSession | None:
        rng = random.Random(stable_hash(self.seed, "ev-session", c.sn, day.isoformat()))
        if rng.random() >= c.arrival_probability:
            return None
        arrive_min = rng.randint(16 * 60 + 30, 21 * 60 + 30)
        plug_in = local_time(c.zone, day, arrive_min // 60, arrive_min % 60) + rng.randint(0, 59)
        unplug_min = rng.randint(6 * 60 + 30, 8 * 60 + 30)
        unplug = local_time(c.zone, day + timedelta(days=1), unplug_min // 60, unplug_min % 60)
        unplug += rng.randint(0, 59)
        mode = rng.choices((FAST, ECO, GREEN), weights=(5, 3, 2))[0]
        car = rng.choice(CAR_LIMITS_W)
        fast = min(car, c.max_power_w)
        if mode == FAST:
            power = fast
        else:
            amps = ECO_CURRENT_A if mode == ECO else GREEN_CURRENT_A
            power = min(fast, amps * c.phases * PHASE_VOLTAGE_V)
        charge_start = plug_in + PREPARING_S
        paused = rng.random() < 0.3
        pause_s = rng.randint(10, 40) * 60 if paused else 0
        pause_at = rng.uniform(0.25, 0.6)
        wanted_wh = rng.uniform(4000, 45000)
        charge_s = round(wanted_wh / power * 3600)
        charge_s = max(60, min(charge_s, unplug - 600 - charge_start - pause_s))
        charge_end = charge_start + charge_s + pause_s
        pause = None
        if paused:
            p0 = charge_start + round(charge_s * pause_at)
            pause = (p0, p0 + pause_s)
        need_wh = power * charge_s / 3600  # whole charging seconds: the energy is exact to the second
        return ChargeSession(c.sn, plug_in, charge_start, charge_end, unplug, power, mode, need_wh, pause)

    def sessions(self, sn: str, begin: float, end: float) -> list[ChargeSession]:
        """Sessions of ``sn`` plugged in at some time within ``[begin, end)``, oldest first."""
        c = self.chargers[sn]
        first = max(c.commissioned, local_date(c.zone, begin) - timedelta(days=1))
        last = local_date(c.zone, end)
        out = []
        day = first
        while day <= last:
            s = self.session_of_day(sn, day)
            if s is not None and s.plug_in < end and s.unplug > begin:
                out.append(s)
            day += timedelta(days=1)
        return out

    def _current_session(self, sn: str, t: int) -> ChargeSession | None:
        """The newest session plugged in at or before ``t`` (None before the first)."""
        c = self.chargers[sn]
        day = local_date(c.zone, t)
        while day >= c.commissioned:
            s = self.session_of_day(sn, day)
            if s is not None and s.plug_in <= t:
                return s
            day -= timedelta(days=1)
        return None

    # ---------------------------------------------------------------- truth

    def active_fault(self, sn: str, t: float) -> ChargerFault | None:
        """The fault of ``sn`` active at ``t``, if any."""
        for fault in self.faults:
            if fault.sn == sn and fault.start <= t < fault.end:
                return fault
        return None

    def session_energy_wh(self, session: ChargeSession, t: float) -> float:
        """Energy delivered in ``session`` up to ``t`` (faults subtract their charging time)."""
        ti = int(t)
        faults = [f for f in self.faults if f.sn == session.sn]
        seconds = 0
        for a, b in session.charging:
            b = min(b, ti)
            if b <= a:
                continue
            seconds += b - a - sum(_overlap(a, b, f.start, f.end) for f in faults)
        return session.power_w * seconds / 3600

    def truth(self, sn: str, t: float) -> ChargerTruth:
        """The true state of charger ``sn`` at Unix second ``t`` (``ValueError`` before commissioning)."""
        ti = int(t)
        if ti < self.commissioned_at(sn):
            raise ValueError(f"charger {sn} was not commissioned yet at {t}")
        session = self._current_session(sn, ti)
        plugged = session is not None and ti < session.unplug
        status, mode, power = AVAILABLE, STOP, 0.0
        if session is not None and plugged:
            mode = session.mode
            if ti < session.charge_start:
                status = PREPARING
            elif any(a <= ti < b for a, b in session.charging):
                status, power = CHARGING, session.power_w
            elif ti < session.charge_end:
                status = SUSPENDED_EV
            else:
                status = FINISHING
        fault = self.active_fault(sn, ti)
        if fault is not None:
            status, power = fault.status, 0.0
        energy = self.session_energy_wh(session, ti) if session is not None else 0.0
        return ChargerTruth(sn, ti, status, mode, power, energy, session)

    # ---------------------------------------------------------------- reports

    def report_time(self, sn: str, t: float) -> int | None:
        """The newest report of ``sn`` to its cloud at or before ``t`` (None before the first)."""
        interval = self.chargers[sn].report_interval_s
        phase = stable_hash("ev-report-phase", sn) % interval
        u = int(t) - ((int(t) - phase) % interval)
        return u if u >= self.commissioned_at(sn) else None

    def snapshot(self, sn: str, t: float) -> ChargerTruth | None:
        """What a cloud shows at ``t``: the truth at the newest report (None before the first)."""
        u = self.report_time(sn, t)
        return None if u is None else self.truth(sn, u)


__all__ = [
    "CHARGER_STATUS",
    "CHARGING_MODES",
    "PREPARING_S",
    "ChargeSession",
    "Charger",
    "ChargerFault",
    "ChargerTruth",
    "EvFleet",
]
