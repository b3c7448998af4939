"""SolaX Cloud token-API simulator (realtime v2 and the EV-charger pile API), also Sunvec Connect.

Built from ``shared/vendor-docs/solaxcloud-user-api-v2.txt`` ("doc"),
``sunvec-connect-user-api-v2.txt`` (the same document rebranded, notes §6),
``solax-ev-charger-api.txt`` ("pile doc") and ``shared/research/solax.md`` ("notes §n"); where they
disagree the notes (real behaviour) win. Where none decides, the choice is marked **Decision**.
One :class:`SolaxSim` serves all three APIs on one server, because one account token opens them all
and they share its limits. Sunvec is the same class with ``brand="sunvec"`` (its ``vendor`` is then
``"sunvec"``): same paths, envelopes, codes and limits (notes §6).

Endpoints
---------
* ``POST /api/v2/dataAccess/realtimeInfo/get`` (doc §7.1): header ``tokenId``, JSON body
  ``{"wifiSn": "<dongle registration number>"}``.
* ``GET /proxyApp/proxy/api/getPileInfo?tokenId=<t>&pileSn=<sn>`` (pile doc §3.2).
* ``/proxyApp/proxy/api/pileCmd`` (pile doc §3.1) is **not** served: we are read-only. Any call is
  answered ``2001`` and logged, so a test can assert :attr:`SolaxSim.pile_commands` is empty.

Envelopes and codes (notes §2.2-2.3)
------------------------------------
* v2 success: ``{"success": true, "exception": <text>, "result": {...}, "code": 0}``; the text is
  :attr:`SolaxQuirks.success_text` (live: ``"operation success"``; the doc says ``"Query success!"`` —
  a client must not depend on it). A registered dongle without data yet: ``result: null`` with
  success true (notes §2.2, :attr:`SolaxAccount.pending`).
* A dongle that never reported (:attr:`SolaxAccount.never_reported`): the v1 quirk
  ``{"success": false, "exception": "Query success!", "result": "this sn did not access!", "code": 0}``.
* Errors: ``{"success": false, "exception": <text>, "result": null, "code": <code>}`` —
  ``1001 Interface Unauthorized`` (no token at all, **Decision**), ``1002 Parameter validation failed``
  (body not JSON, not an object, no ``wifiSn``; a pile call without ``pileSn``), ``1003 no auth!``
  (dongle not in the token's account), ``2001 Operation failed`` / ``2002 Data not found`` (inject
  them: ``Injection.errno(2001)``; the text defaults to the doc's).
* An unknown token: ``{"exception": "token invalid!", "code": 103, "tokenId": "<the token>",
  "success": false}`` — the token **echoed back** (notes §2.2), so a client must redact it.
* Pile success (v1 style, no ``code``): ``{"success": true, "exception": "query success", "result":
  {...}}``; an unknown ``pileSn``: ``{"success": false, "exception": "Query success!", "result":
  "no auth!", "code": 0}`` (notes §2.2); a bad token: the ``103`` envelope above.
* Transport faults via the base injections: ``Injection.html(503)`` is a SolaX maintenance page
  (HTTP 503, ``text/html``; notes §2.3), ``Injection.http(500)`` plain 5xx text, ``Injection.hang()``.

Limits (notes §4; :class:`SolaxLimits`), per token, shared by every endpoint
---------------------------------------------------------------------------
* At most ``per_minute`` (10) calls in any sliding 60-s window → ``104 Request calls within the
  current minute > threshold``; at most ``per_day`` (10,000) in any sliding 86400-s window →
  ``3`` with :data:`DAILY_TEXT` (notes §2.3: code 3 is a throttle, its text unconfirmed). The daily
  limit is checked first. Every call that passes authentication counts, whatever its answer (1002,
  1003 and injected faults too); a refused call still counts against the *other* window
  (**Decision**, strict) but not against the one that refused it. Calls without a valid token and
  calls during a lock-out count nowhere.
* **Lock-out** (notes §2.3, §4: code 1, "prohibit calls within the next hour"): ``lockout_after`` (3)
  limit refusals of a token in a row — no call of that token passing the limits in between — lock the
  token for ``lockout_s`` (3600 s) from the third refusal (which itself still answers its 104 / 3).
  Every call during the lock-out answers ``1 There have been several violations in a row, and the
  system will prohibit calls within the next hour``, does not extend it, is logged with outcome
  ``locked`` (:attr:`SolaxSim.lockouts`; refusals are ``limited``, :attr:`Simulator.violations`).
  :meth:`SolaxSim.lock_out` locks a token directly.

Realtime data (notes §3.1; rounding in :data:`FIELD_UNITS`)
----------------------------------------------------------
* The record is the plant snapshot at the dongle's newest upload (:meth:`Plant.upload_time`, the
  dongle is :attr:`Inverter.logger_sn`, every :attr:`Inverter.upload_interval_s`), so polling faster
  than the uploads returns the same record. A **PV-only** inverter's dongle sleeps with it
  (:attr:`SolaxQuirks.night_sleep`): it does not upload while the inverter is in standby (no PV, at
  night), so the cloud serves the evening's last record until the first upload of the morning
  (notes §2.4, §3.1 ``yieldtoday``). Hybrids (battery) upload all night.
* Units and signs: powers in W (1 W, JSON integers): ``acpower`` AC output (negative while the
  battery charges from the grid), ``feedinpower`` = export − import (positive = export), ``batPower``
  = charge − discharge (positive = charging), ``powerdc1..4`` per MPPT; energies in kWh (JSON floats):
  ``yieldtoday`` / ``yieldtotal`` the AC output energy today (plant-local day) / lifetime
  (``Counters.yield_wh``) to 0.1 kWh, ``feedinenergy`` / ``consumeenergy`` lifetime grid export /
  import to 0.01 kWh; ``soc`` % to 1 (integer). Values are rounded to the nearest step (Python
  ``round``, so a served value is within half a step of the truth at the upload).
* ``powerdc<n>``: the string's power for each string of the plant inverter; ``0`` for an MPPT the
  model has but no string uses; ``null`` beyond the model's MPPTs (:data:`INVERTER_MODELS`).
* PV-only models (no battery; e.g. ``inverterType "4"`` X1-Boost) send ``0`` placeholders — not null —
  for ``soc``, ``batPower``, ``peps1..3`` and ``batStatus "0"`` (:attr:`SolaxQuirks.pv_only_placeholders`;
  a collector must ignore them by model), and ``feedinpowerM2: null`` (as the doc's X1-Boost sample).
  Hybrids send the real battery fields, ``feedinpowerM2: 0`` and ``peps<n>`` ``0`` for each phase the
  inverter has, ``null`` for the others (**Decision**: the plant has no EPS load).
* ``inverterType`` (string, notes §3.3) from :attr:`Inverter.model` via :data:`INVERTER_MODELS`
  (unknown models: ``"15"`` / ``"14"`` for 1- / 3-phase hybrids, ``"4"`` / ``"16"`` for PV-only).
  ``inverterStatus`` (string, doc §8.1) from the plant state: normal ``102``, standby
  :attr:`SolaxQuirks.standby_status` (``109``), starting ``100``, fault ``103``, permanent fault
  ``104``. ``batStatus`` ``"0"`` normal, or a :class:`BatteryFault`'s ``"1"`` / ``"2"`` while one is
  scheduled (the plant's battery flows are not changed by it).
* ``uploadTime`` ``YYYY-MM-DD HH:MM:SS`` in the site's local zone, DST-aware (so ambiguous in the
  repeated autumn hour); undocumented ``utcDateTime`` ``YYYY-MM-DDTHH:MM:SSZ`` when
  :attr:`SolaxQuirks.utc_datetime` (SolaX live: yes; Sunvec unverified: the Sunvec demo leaves it out).
* **Stale replicas** (notes §2.4): :meth:`SolaxSim.serve_stale` makes the next answers for a dongle
  come from an upload older than the newest one; :attr:`SolaxQuirks.stale_every` does so for every
  N-th data answer of a dongle. :attr:`SolaxSim.served` logs which upload each answer carried.

EV charger (pile doc §3.2; notes §5; the model is :mod:`collector.simulators.ev`)
------------------------------------------------------------------------------
* ``chargerStatus`` (int, OCPP-aligned table, notes §5.3), ``chargingMode`` (int: 0 STOP with no car,
  else the session's 1 FAST / 2 ECO / 3 GREEN), ``chargeEnergy`` kWh of the current session to 0.1
  (resets when a new session starts), ``chargingPower`` W to 1 (a JSON float, like the doc's
  ``Double``), or kW to 0.01 with :attr:`PileQuirks.power_kw` (the unit the notes call unknown). The
  values are the charger's newest report (:meth:`EvFleet.snapshot`, every 60 s by default).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from collector.simulators.base import (
    Call,
    CallRecord,
    Charge,
    Clock,
    Endpoint,
    Injection,
    Limit,
    Outcome,
    ProtocolError,
    Reply,
    Simulator,
)
from collector.simulators.ev import Charger, ChargerFault, ChargerTruth, EvFleet
from collector.simulators.plant import (
    Battery,
    Fault,
    GridCharge,
    Inverter,
    Outage,
    Plant,
    PvString,
    Site,
    Truth,
    local_time,
    zone_info,
)

Brand = Literal["solax", "sunvec"]

# ------------------------------------------------------------------------------------------------
# Protocol constants

REALTIME_PATH = "/api/v2/dataAccess/realtimeInfo/get"
PILE_INFO_PATH = "/proxyApp/proxy/api/getPileInfo"
PILE_CMD_PATH = "/proxyApp/proxy/api/pileCmd"

CODE_OK = 0
CODE_LOCKED = 1
CODE_DAILY = 3
CODE_TOKEN_INVALID = 103
CODE_MINUTE = 104
CODE_UNAUTHORIZED = 1001
CODE_PARAMETER = 1002
CODE_NO_AUTH = 1003
CODE_DUPLICATE = 1004
CODE_FAILED = 2001
CODE_NOT_FOUND = 2002

LOCKED_TEXT = (
    "There have been several violations in a row, and the system will prohibit calls within the next hour"
)
MINUTE_TEXT = "Request calls within the current minute > threshold"
DAILY_TEXT = "Request calls within the current day exceed the maximum call threshold limit"
"""**Decision**: code 3's text is unconfirmed (notes §2.3); it carries the substring clients match."""

MESSAGES: dict[int, str] = {
    CODE_LOCKED: LOCKED_TEXT,
    CODE_DAILY: DAILY_TEXT,
    CODE_TOKEN_INVALID: "token invalid!",
    CODE_MINUTE: MINUTE_TEXT,
    CODE_UNAUTHORIZED: "Interface Unauthorized",
    CODE_PARAMETER: "Parameter validation failed",
    CODE_NO_AUTH: "no auth!",  # notes §2.2: the live text (the doc's table says "Data Unauthorized")
    CODE_DUPLICATE: "Duplicate data",
    CODE_FAILED: "Operation failed",
    CODE_NOT_FOUND: "Data not found",
}
"""Code → the ``exception`` text served (doc §8.2; notes §2.3)."""

V1_QUERY_SUCCESS = "Query success!"
NEVER_REPORTED_TEXT = "this sn did not access!"
PILE_NO_AUTH_TEXT = "no auth!"
PILE_CMD_TEXT = "pileCmd is not served: the collector is read-only"

FIELD_UNITS: dict[str, tuple[str, float]] = {
    "acpower": ("W", 1.0),
    "yieldtoday": ("kWh", 0.1),
    "yieldtotal": ("kWh", 0.1),
    "feedinpower": ("W", 1.0),
    "feedinenergy": ("kWh", 0.01),
    "consumeenergy": ("kWh", 0.01),
    "feedinpowerM2": ("W", 1.0),
    "soc": ("%", 1.0),
    "peps1": ("W", 1.0),
    "peps2": ("W", 1.0),
    "peps3": ("W", 1.0),
    "batPower": ("W", 1.0),
    "powerdc1": ("W", 1.0),
    "powerdc2": ("W", 1.0),
    "powerdc3": ("W", 1.0),
    "powerdc4": ("W", 1.0),
}
"""Realtime field → (unit, resolution) served (notes §3.1). Rounded to the nearest step."""

PILE_FIELD_UNITS: dict[str, tuple[str, float]] = {"chargingPower": ("W", 1.0), "chargeEnergy": ("kWh", 0.1)}
"""Pile field → (unit, resolution) served; with :attr:`PileQuirks.power_kw` ``chargingPower`` is
:data:`PILE_POWER_KW_RESOLUTION` kW instead."""
PILE_POWER_KW_RESOLUTION = 0.01

INVERTER_MODELS: dict[str, tuple[str, int]] = {
    "X1-Boost": ("4", 2),
    "X3-Hybrid-G4": ("14", 2),
    "X1-Hybrid-G4": ("15", 2),
    "X3-MIC/PRO-G2": ("16", 2),
    "X1-Boost-G4": ("18", 2),
    "X1-Mini-G4": ("22", 1),
    "X3-Ultra": ("25", 3),
}
"""Model name → (``inverterType`` code, MPPT count) (notes §3.3, the newer table)."""

INVERTER_STATUS: dict[str, str] = {
    "normal": "102",
    "starting": "100",
    "fault": "103",
    "permanent_fault": "104",
}
"""Plant state → ``inverterStatus`` (doc §8.1); standby is :attr:`SolaxQuirks.standby_status`."""


def upload_time_text(t: float, zone: str) -> str:
    """``uploadTime``: ``YYYY-MM-DD HH:MM:SS`` local wall time in ``zone`` (notes §3.2)."""
    return datetime.fromtimestamp(int(t), zone_info(zone)).strftime("%Y-%m-%d %H:%M:%S")


def utc_text(t: float) -> str:
    """``utcDateTime``: ``YYYY-MM-DDTHH:MM:SSZ`` (notes §2.2, live sample)."""
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def inverter_type(inv: Inverter) -> tuple[str, int]:
    """(``inverterType`` code, MPPT count) of a plant inverter (see :data:`INVERTER_MODELS`)."""
    known = INVERTER_MODELS.get(inv.model)
    if known is not None:
        return known[0], max(known[1], len(inv.strings))
    if inv.battery is not None:
        return ("15" if inv.phases == 1 else "14"), max(2, len(inv.strings))
    return ("4" if inv.phases == 1 else "16"), max(2, len(inv.strings))


def _step(value: float, resolution: float) -> int | float:
    """``value`` rounded to ``resolution`` (1 → int; 0.1 / 0.01 → float without ``-0.0``)."""
    if resolution >= 1:
        return round(value)
    return round(value, round(-math.log10(resolution))) + 0.0


def _field(name: str, value: float) -> int | float:
    return _step(value, FIELD_UNITS[name][1])


# ------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class SolaxLimits:
    """Per-token limits (notes §4; module docstring "Limits")."""

    per_minute: int = 10
    minute_s: float = 60.0
    per_day: int = 10_000
    day_s: float = 86400.0
    lockout_after: int = 3
    """Limit refusals in a row that lock the token."""
    lockout_s: float = 3600.0


@dataclass(frozen=True)
class SolaxQuirks:
    """Per-dongle (or sim-wide) shape quirks (module docstring "Realtime data")."""

    utc_datetime: bool = True
    """Send the undocumented ``utcDateTime`` (SolaX live: yes; Sunvec: unverified)."""
    success_text: str = "operation success"
    """``exception`` of a v2 success (live; the doc's is ``"Query success!"``)."""
    pv_only_placeholders: bool = True
    """PV-only models send 0 / ``"0"`` for the battery and EPS fields instead of null."""
    night_sleep: bool = True
    """A PV-only inverter's dongle does not upload while the inverter is in standby."""
    standby_status: str = "109"
    """``inverterStatus`` of the plant's standby state (109 sleep; 110 standby also occurs)."""
    stale_every: int = 0
    """Every N-th data answer of the dongle comes from a stale replica (0: never)."""
    stale_age_uploads: int = 1
    """How many uploads older than the newest such an answer is."""


@dataclass(frozen=True)
class PileQuirks:
    """Shape quirks of the pile API (sim-wide)."""

    power_kw: bool = False
    """Serve ``chargingPower`` in kW (0.01) instead of W (notes §5.3: the unit is unknown)."""
    success_text: str = "query success"
    """``exception`` of a pile success (pile doc §3.2.7)."""


@dataclass(frozen=True)
class SolaxAccount:
    """An account (one token) and what it owns.

    ``dongles`` / ``piles``: registration numbers of Wi-Fi dongles in the plant / charger SNs in the
    fleet (None: all of them). ``pending``: further dongles registered without data yet (``result:
    null``); ``never_reported``: dongles that never reported (the v1 string-result quirk).
    """

    token: str
    dongles: tuple[str, ...] | None = None
    piles: tuple[str, ...] | None = None
    pending: tuple[str, ...] = ()
    never_reported: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatteryFault:
    """The battery of inverter ``sn`` reports ``batStatus`` ``status`` (``"1"`` fault, ``"2"``
    disconnected) in ``[start, end)``, Unix s (doc §7.1 batStatus)."""

    sn: str
    start: int
    end: int
    status: str = "1"

    def __post_init__(self) -> None:
        if self.status not in ("1", "2") or self.end <= self.start:
            raise ValueError(f"bad battery fault {self!r}")


@dataclass(frozen=True)
class Served:
    """One realtime data answer: when, which dongle, which upload it carried, whether stale."""

    t: float
    wifi_sn: str
    upload: int
    stale: bool


@dataclass(frozen=True)
class _Account:
    token: str
    dongles: frozenset[str]
    piles: frozenset[str]
    pending: frozenset[str]
    never_reported: frozenset[str]


@dataclass(frozen=True)
class _Raw:
    """A handler's complete envelope (served as it is)."""

    body: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# The simulator


class SolaxSim(Simulator):
    """The SolaX Cloud token APIs (realtime v2 and the pile API) over a :class:`Plant` and an
    :class:`EvFleet` (rules: module docstring).

    ``brand``: ``"solax"`` or ``"sunvec"`` (the ``vendor`` slug follows it). ``accounts``: the tokens
    (default: one demo token owning everything). ``quirks``: the default for every dongle (default:
    :class:`SolaxQuirks`, with ``utc_datetime=False`` for Sunvec); ``dongle_quirks`` per dongle.
    ``battery_faults``: scheduled ``batStatus`` faults.
    """

    vendor = "solax"
    value_keys = frozenset(FIELD_UNITS) | frozenset(PILE_FIELD_UNITS) | {"chargerStatus", "chargingMode"}

    def __init__(
        self,
        plant: Plant,
        *,
        brand: Brand = "solax",
        accounts: Sequence[SolaxAccount] | None = None,
        fleet: EvFleet | None = None,
        quirks: SolaxQuirks | None = None,
        dongle_quirks: Mapping[str, SolaxQuirks] | None = None,
        pile_quirks: PileQuirks | None = None,
        battery_faults: Iterable[BatteryFault] = (),
        limits: SolaxLimits | None = None,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(clock=clock, host=host)
        if brand not in ("solax", "sunvec"):
            raise ValueError(f"unknown brand {brand!r}")
        self.brand: Brand = brand
        # Sunvec is the same cloud software (notes §6): the same class, its own vendor slug
        setattr(self, "vendor", brand)  # noqa: B010 -- Simulator.vendor is a ClassVar
        self.plant = plant
        self.fleet = fleet if fleet is not None else EvFleet([])
        self.settings = limits if limits is not None else SolaxLimits()
        self.quirks = quirks if quirks is not None else SolaxQuirks(utc_datetime=brand == "solax")
        self.dongle_quirks: dict[str, SolaxQuirks] = dict(dongle_quirks or {})
        self.pile_quirks = pile_quirks if pile_quirks is not None else PileQuirks()
        self.battery_faults: tuple[BatteryFault, ...] = tuple(battery_faults)

        self._dongles: dict[str, Inverter] = {}
        for inv in plant.inverters:
            if not inv.logger_sn:
                continue  # an inverter without a dongle is not on this cloud
            if inv.logger_sn in self._dongles:
                raise ValueError(f"duplicate dongle {inv.logger_sn}")
            self._dongles[inv.logger_sn] = inv
        for bf in self.battery_faults:
            plant.inverter(bf.sn)  # KeyError for an unknown inverter
        default_token = DEMO_TOKEN if brand == "solax" else DEMO_SUNVEC_TOKEN
        self.accounts: dict[str, _Account] = {}
        for acct in accounts if accounts is not None else [SolaxAccount(default_token)]:
            dongles = frozenset(self._dongles if acct.dongles is None else acct.dongles)
            piles = frozenset(self.fleet.chargers if acct.piles is None else acct.piles)
            unknown = (dongles - set(self._dongles)) | (piles - set(self.fleet.chargers))
            if unknown:
                raise ValueError(f"unknown SNs for token: {sorted(unknown)}")
            self.accounts[acct.token] = _Account(
                acct.token, dongles, piles, frozenset(acct.pending), frozenset(acct.never_reported)
            )

        s = self.settings
        self._minute = Limit("per_minute", s.per_minute, s.minute_s)
        self._day = Limit("per_day", s.per_day, s.day_s)
        self._streak: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}
        self._stale: dict[str, deque[int]] = {}
        self._answers: dict[str, int] = {}
        self.served: list[Served] = []
        """Every realtime data answer (see :class:`Served`)."""

    @classmethod
    def demo(cls, *, brand: Brand = "solax", clock: Clock | None = None) -> SolaxSim:
        """The demo cloud of ``brand`` (:func:`demo_sim`)."""
        return demo_sim(brand=brand, clock=clock)

    # ---------------------------------------------------------------- lookup

    @property
    def dongles(self) -> tuple[str, ...]:
        """Registration numbers of the plant's dongles."""
        return tuple(self._dongles)

    def inverter_of(self, wifi_sn: str) -> Inverter:
        """The plant inverter behind dongle ``wifi_sn`` (``KeyError`` if unknown)."""
        return self._dongles[wifi_sn]

    def quirks_for(self, wifi_sn: str) -> SolaxQuirks:
        """The quirks of dongle ``wifi_sn``."""
        return self.dongle_quirks.get(wifi_sn, self.quirks)

    # ---------------------------------------------------------------- routes and envelopes

    def endpoints(self) -> Sequence[Endpoint]:
        return [
            Endpoint("POST", REALTIME_PATH, self._realtime),
            Endpoint("GET", PILE_INFO_PATH, self._pile_info),
            Endpoint("*", PILE_CMD_PATH, self._pile_cmd, kind="write"),
        ]

    def ok_reply(self, result: Any) -> Reply:
        if isinstance(result, _Raw):
            return Reply(200, result.body)
        return Reply(200, self._v2_ok(self.quirks, result))

    @staticmethod
    def _v2_ok(quirks: SolaxQuirks, result: Any) -> dict[str, Any]:
        return {"success": True, "exception": quirks.success_text, "result": result, "code": CODE_OK}

    def error_reply(self, code: int, message: str, http_status: int = 200) -> Reply:
        # notes §2.2: v2 failures are HTTP 200, success false, result null, an integer code
        return Reply(http_status, {"success": False, "exception": message, "result": None, "code": code})

    def reply_code(self, reply: Reply) -> int | None:
        body = reply.body
        if not isinstance(body, dict):
            return None
        code = body.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            return code
        return CODE_OK if body.get("success") is True else None  # pile successes carry no code

    def bad_body_error(self) -> tuple[int, str]:
        return (CODE_PARAMETER, MESSAGES[CODE_PARAMETER])

    async def _injected(self, injection: Injection) -> Reply:
        if injection.kind == "errno":
            return self.error_reply(
                injection.code, injection.message or MESSAGES.get(injection.code, "error")
            )
        if injection.kind == "html" and injection.code == 503:
            # notes §2.3: an HTML maintenance page instead of JSON during SolaX incidents
            page = (
                "<!DOCTYPE html><html><head><meta charset='utf-8'><title>System maintenance</title></head>"
                "<body><h1>503 Service Temporarily Unavailable</h1><p>SolaX Cloud is under maintenance. "
                "Please try again later.</p></body></html>"
            )
            return Reply(503, text=page, content_type="text/html")
        if injection.kind == "malformed":
            truncated = '{"success":true,"exception":"operation success","result":{"inverterSN":"H34'
            return Reply(200, text=truncated, content_type="application/json")
        return await super()._injected(injection)

    # ---------------------------------------------------------------- auth, parsing, limits

    async def authenticate(self, call: Call) -> Reply | None:
        """Token (header on v2, query on the pile API), then the token's lock-out."""
        if call.path == PILE_CMD_PATH:
            return None  # never served: the handler refuses every call (logged)
        if call.path == REALTIME_PATH:
            token = call.request.headers.get("tokenId")  # doc §5.1: in the headers
        else:
            token = call.query.get("tokenId")  # pile doc §3.2.4: a query parameter
        if not token:
            return self.error_reply(CODE_UNAUTHORIZED, MESSAGES[CODE_UNAUTHORIZED])
        if token not in self.accounts:
            # notes §2.2 (live): undocumented 103, the token echoed back
            body = {"exception": MESSAGES[CODE_TOKEN_INVALID], "code": CODE_TOKEN_INVALID}
            return Reply(200, {**body, "tokenId": token, "success": False})
        call.account = token
        until = self._locked_until.get(token)
        if until is not None:
            if call.t < until:
                call.extra["locked"] = True
                return self.error_reply(CODE_LOCKED, LOCKED_TEXT)
            del self._locked_until[token]
        return None

    async def parse(self, call: Call) -> None:
        if call.path == REALTIME_PATH:
            await super().parse(call)  # not JSON → 1002
            body = call.body
            sn = body.get("wifiSn") if isinstance(body, dict) else None
            if not isinstance(sn, str) or not sn:
                raise ProtocolError(CODE_PARAMETER, MESSAGES[CODE_PARAMETER])
            call.devices = (sn,)
        elif call.path == PILE_INFO_PATH:
            sn = call.query.get("pileSn", "")
            call.devices = (sn,) if sn else ()

    def charges(self, call: Call, endpoint: Endpoint) -> Sequence[Charge]:
        """Per token: the daily window (code 3), then the minute window (104); each call counts in
        the window that did not refuse it."""
        if call.path == PILE_CMD_PATH or call.account is None:
            return []
        token = call.account
        return [Charge(self._day, token, when_refused=True), Charge(self._minute, token, when_refused=True)]

    def limit_refusal(self, call: Call, charge: Charge) -> Reply:
        code = CODE_DAILY if charge.limit is self._day else CODE_MINUTE
        return self.error_reply(code, MESSAGES[code])

    def _log(self, call: Call, reply: Reply, outcome: Outcome, limit: str | None = None) -> None:
        """Log the call, then keep the token's refusal streak (the lock-out rule)."""
        if call.extra.get("locked"):
            outcome = "locked"
        elif outcome == "ok" and isinstance(reply.body, dict) and reply.body.get("success") is False:
            outcome = "error"  # the v1 string-result quirks: success false with code 0
        super()._log(call, reply, outcome, limit)
        token = call.account
        if token is None or outcome in ("auth", "locked"):
            return
        if outcome != "limited":
            self._streak[token] = 0
            return
        self._streak[token] = self._streak.get(token, 0) + 1
        if self._streak[token] >= self.settings.lockout_after:
            self._streak[token] = 0
            self._locked_until[token] = call.t + self.settings.lockout_s

    # ---------------------------------------------------------------- test hooks

    @property
    def lockouts(self) -> int:
        """Number of calls answered with the lock-out (code 1)."""
        return sum(1 for c in self.calls if c.outcome == "locked")

    @property
    def pile_commands(self) -> list[CallRecord]:
        """Every call to ``pileCmd`` (there must be none: the collector is read-only)."""
        return self.calls_to(PILE_CMD_PATH)

    def lock_out(self, token: str, seconds: float | None = None) -> None:
        """Lock ``token`` now for ``seconds`` (default :attr:`SolaxLimits.lockout_s`)."""
        self._locked_until[token] = self.clock() + (self.settings.lockout_s if seconds is None else seconds)

    def locked_until(self, token: str) -> float | None:
        """When ``token``'s lock-out ends (None: not locked)."""
        until = self._locked_until.get(token)
        return until if until is not None and self.clock() < until else None

    def usage(self, token: str) -> tuple[int, int]:
        """Calls of ``token`` counted in the current minute and day windows."""
        return self.limits.used(self._minute, token), self.limits.used(self._day, token)

    def serve_stale(self, wifi_sn: str, count: int = 1, age_uploads: int = 1) -> None:
        """Answer the next ``count`` data answers for ``wifi_sn`` from a stale replica: the upload
        ``age_uploads`` before the newest one (when there is one that old)."""
        if count < 1 or age_uploads < 1:
            raise ValueError("count and age_uploads must be >= 1")
        self._stale.setdefault(wifi_sn, deque()).extend([age_uploads] * count)

    # ---------------------------------------------------------------- uploads and records

    def upload_time(self, wifi_sn: str, t: float) -> int | None:
        """The newest upload dongle ``wifi_sn`` has made at or before ``t`` (None: none yet).

        The plant's upload schedule, except that a PV-only inverter's dongle makes no upload while the
        inverter is in standby (:attr:`SolaxQuirks.night_sleep`).
        """
        inv = self._dongles[wifi_sn]
        u = self.plant.upload_time(inv.sn, t)
        if u is None or inv.battery is not None or not self.quirks_for(wifi_sn).night_sleep:
            return u
        if self._awake(inv.sn, u):
            return u
        # asleep: walk back an hour at a time to an upload made awake, then take the last awake one
        probe = u
        while True:
            earlier = self.plant.upload_time(inv.sn, probe - 3600)
            if earlier is None or self._awake(inv.sn, earlier):
                break
            probe = earlier
        begin = earlier if earlier is not None else self.plant.commissioned_at(inv.sn)
        awake = [x for x in self.plant.upload_times(inv.sn, begin, probe) if self._awake(inv.sn, x)]
        return awake[-1] if awake else None

    def _awake(self, sn: str, u: int) -> bool:
        return self.plant.truth(sn, u).state != "standby"

    def _older(self, wifi_sn: str, u: int, uploads: int) -> int | None:
        for _ in range(uploads):
            earlier = self.upload_time(wifi_sn, u - 1)
            if earlier is None:
                return None
            u = earlier
        return u

    def battery_status(self, sn: str, t: float) -> str:
        """``batStatus`` of inverter ``sn``'s battery at ``t``: a scheduled fault's, else ``"0"``."""
        for bf in self.battery_faults:
            if bf.sn == sn and bf.start <= t < bf.end:
                return bf.status
        return "0"

    def truth(self, wifi_sn: str, t: float) -> Truth | None:
        """The plant truth behind the record served at ``t`` (the newest upload; None: no data)."""
        u = self.upload_time(wifi_sn, t)
        return None if u is None else self.plant.truth(self._dongles[wifi_sn].sn, u)

    def record(self, wifi_sn: str, t: float) -> dict[str, Any] | None:
        """The ``result`` served for ``wifi_sn`` at ``t`` (no stale replica), None: no data yet;
        ``KeyError`` for a dongle that is not in the plant (pending / never-reported ones are not)."""
        u = self.upload_time(wifi_sn, t)
        return None if u is None else self._result(wifi_sn, u)

    def _result(self, wifi_sn: str, u: int) -> dict[str, Any]:
        inv = self._dongles[wifi_sn]
        tr = self.plant.truth(inv.sn, u)
        q = self.quirks_for(wifi_sn)
        zone = self.plant.site_of(inv.sn).zone
        code, mppts = inverter_type(inv)
        bat = tr.battery
        soc: int | float | None
        bat_power: int | float | None
        bat_status: str | None
        peps: list[int | None]
        m2: int | None
        if bat is None:
            # PV-only models send 0 placeholders, not the doc sample's nulls (reported for X1-Boost
            # accounts): a collector must ignore them by model (notes §3.1: null means no battery)
            placeholder = 0 if q.pv_only_placeholders else None
            soc = bat_power = placeholder
            peps = [placeholder] * 3
            bat_status = "0" if q.pv_only_placeholders else None
            m2 = None
        else:
            soc = _field("soc", bat.soc_pct)
            bat_power = _field("batPower", bat.charge_power_w - bat.discharge_power_w)  # + = charging
            peps = [0 if i < inv.phases else None for i in range(3)]  # Decision: no EPS load
            bat_status = self.battery_status(inv.sn, u)
            m2 = 0
        dc: list[int | float | None] = []
        for i in range(4):
            if i < len(tr.strings):
                dc.append(_field(f"powerdc{i + 1}", tr.strings[i].power_w))
            else:
                dc.append(0 if i < mppts else None)
        status = q.standby_status if tr.state == "standby" else INVERTER_STATUS[tr.state]
        result: dict[str, Any] = {
            "inverterSN": inv.sn,
            "sn": wifi_sn,
            "acpower": _field("acpower", tr.ac_power_w),
            "yieldtoday": _field("yieldtoday", tr.today.yield_wh / 1000),
            "yieldtotal": _field("yieldtotal", tr.total.yield_wh / 1000),
            # notes §3.1: positive = export to the grid, negative = import
            "feedinpower": _field("feedinpower", tr.grid_export_power_w - tr.grid_import_power_w),
            "feedinenergy": _field("feedinenergy", tr.total.grid_export_wh / 1000),
            "consumeenergy": _field("consumeenergy", tr.total.grid_import_wh / 1000),
            "feedinpowerM2": m2,
            "soc": soc,
            "peps1": peps[0],
            "peps2": peps[1],
            "peps3": peps[2],
            "inverterType": code,
            "inverterStatus": status,
            "uploadTime": upload_time_text(u, zone),
        }
        if q.utc_datetime:
            result["utcDateTime"] = utc_text(u)  # notes §2.2: undocumented, real UTC
        result["batPower"] = bat_power
        for i in range(4):
            result[f"powerdc{i + 1}"] = dc[i]
        result["batStatus"] = bat_status
        return result

    # ---------------------------------------------------------------- EV charger

    def charger_truth(self, pile_sn: str, t: float) -> ChargerTruth | None:
        """The charger truth behind the pile answer at ``t`` (its newest report; None: none yet).
        ``sim.fleet.truth(sn, t)`` is the truth at the instant ``t``."""
        return self.fleet.snapshot(pile_sn, t)

    def pile_record(self, pile_sn: str, t: float) -> dict[str, Any] | None:
        """The ``result`` served for ``pile_sn`` at ``t`` (None before its first report)."""
        snap = self.fleet.snapshot(pile_sn, t)
        if snap is None:
            return None
        if self.pile_quirks.power_kw:
            power: float = _step(snap.power_w / 1000, PILE_POWER_KW_RESOLUTION)
        else:
            power = float(round(snap.power_w))
        return {
            "chargerStatus": snap.status,
            "chargingMode": snap.mode,
            "chargeEnergy": _step(snap.session_energy_wh / 1000, PILE_FIELD_UNITS["chargeEnergy"][1]),
            "chargingPower": power,
        }

    # ---------------------------------------------------------------- handlers

    def _take_stale_age(self, wifi_sn: str) -> int:
        n = self._answers.get(wifi_sn, 0) + 1
        self._answers[wifi_sn] = n
        queued = self._stale.get(wifi_sn)
        if queued:
            return queued.popleft()
        q = self.quirks_for(wifi_sn)
        if q.stale_every > 0 and n % q.stale_every == 0:
            return q.stale_age_uploads
        return 0

    async def _realtime(self, call: Call) -> Any:
        sn = call.devices[0]
        account = self.accounts[call.account or ""]
        q = self.quirks_for(sn)
        if sn in account.never_reported:
            # notes §2.2: the v1 failure quirk, success false with a string result and code 0
            return _Raw(
                {"success": False, "exception": V1_QUERY_SUCCESS, "result": NEVER_REPORTED_TEXT, "code": 0}
            )
        if sn in account.pending:
            return _Raw(self._v2_ok(q, None))  # notes §2.2: registered, no data yet
        if sn not in account.dongles:
            raise ProtocolError(CODE_NO_AUTH, MESSAGES[CODE_NO_AUTH])
        u = self.upload_time(sn, call.t)
        if u is None:
            return _Raw(self._v2_ok(q, None))
        stale = False
        age = self._take_stale_age(sn)
        if age:
            older = self._older(sn, u, age)
            if older is not None:
                u, stale = older, True  # notes §2.4: an older upload than one already served
        self.served.append(Served(call.t, sn, u, stale))
        return _Raw(self._v2_ok(q, self._result(sn, u)))

    async def _pile_info(self, call: Call) -> Any:
        if not call.devices:
            raise ProtocolError(CODE_PARAMETER, MESSAGES[CODE_PARAMETER])
        sn = call.devices[0]
        if sn not in self.accounts[call.account or ""].piles:
            # notes §2.2: v1 style, success false with the string result and code 0
            return _Raw(
                {"success": False, "exception": V1_QUERY_SUCCESS, "result": PILE_NO_AUTH_TEXT, "code": 0}
            )
        result = self.pile_record(sn, call.t)
        # pile doc §3.2.7: no code on success
        return _Raw({"success": True, "exception": self.pile_quirks.success_text, "result": result})

    async def _pile_cmd(self, call: Call) -> Any:
        raise ProtocolError(CODE_FAILED, PILE_CMD_TEXT)


# ------------------------------------------------------------------------------------------------
# Demo

DEMO_TOKEN = "199901010000000000000001"
"""The SolaX demo token (24 digits like a real one, dated 1999 so it is plainly fake)."""
DEMO_SUNVEC_TOKEN = "199901010000000000000002"
"""The Sunvec demo token."""

DEMO_SITE_ID = "solax-demo-site"
DEMO_ZONE = "Europe/Berlin"
DEMO_HYBRID_SN = "H34DEMO00001"
DEMO_HYBRID_WIFI_SN = "SRDEMO0001"
DEMO_PV_SN = "XB3DEMO00002"
DEMO_PV_WIFI_SN = "SWDEMO0002"
DEMO_PENDING_WIFI_SN = "SXDEMO0003"
"""Registered to the demo account, no data yet (``result: null``)."""
DEMO_NEVER_WIFI_SN = "SXDEMO0004"
"""Registered to the demo account, never reported (``"this sn did not access!"``)."""
DEMO_PILE_SN = "C311DEMO000005"

DEMO_SUNVEC_SITE_ID = "sunvec-demo-site"
DEMO_SUNVEC_ZONE = "America/Mexico_City"
DEMO_SUNVEC_SN = "H15DEMO00001"
DEMO_SUNVEC_WIFI_SN = "SVDEMO0001"


def _default_commissioned() -> date:
    return datetime.now(UTC).date() - timedelta(days=60)


def demo_plant(commissioned: date | None = None, *, seed: int = 3) -> Plant:
    """The SolaX demo site in Europe/Berlin: an X3-Hybrid-G4 (two strings, 11.6 kWh battery, night grid
    charge; dongle :data:`DEMO_HYBRID_WIFI_SN`) and an X1-Boost (one string; :data:`DEMO_PV_WIFI_SN`).

    ``commissioned`` defaults to 60 days before today (UTC). Schedule: the X1-Boost has a grid fault
    the day before yesterday from 12:00 to 12:30 local; the hybrid's dongle is offline on day 20 from
    09:00 to 10:30 local.
    """
    commissioned = commissioned if commissioned is not None else _default_commissioned()
    hybrid = Inverter(
        DEMO_HYBRID_SN,
        "X3-Hybrid-G4",
        10000,
        (PvString(6.0, 0.3, 380.0), PvString(4.4, -0.3, 320.0)),
        battery=Battery(
            11600, max_power_w=6000, model="T-BAT H 11.6", grid_charge=GridCharge(2, 5, 30, 2500)
        ),
        phases=3,
        load_kwh_per_day=12.0,
        logger_sn=DEMO_HYBRID_WIFI_SN,
    )
    pv_only = Inverter(
        DEMO_PV_SN,
        "X1-Boost",
        3300,
        (PvString(3.6, 0.0, 340.0),),
        load_kwh_per_day=3.0,
        logger_sn=DEMO_PV_WIFI_SN,
    )
    site = Site(DEMO_SITE_ID, "SolaX Demo Home", DEMO_ZONE, 52.52, 13.405, (hybrid, pv_only), commissioned)
    recent = max(commissioned + timedelta(days=1), datetime.now(UTC).date() - timedelta(days=2))
    faults = [Fault(DEMO_PV_SN, 2, local_time(DEMO_ZONE, recent, 12), local_time(DEMO_ZONE, recent, 12, 30))]
    day20 = commissioned + timedelta(days=20)
    outages = [Outage(DEMO_HYBRID_SN, local_time(DEMO_ZONE, day20, 9), local_time(DEMO_ZONE, day20, 10, 30))]
    return Plant([site], seed=seed, faults=faults, outages=outages)


def demo_fleet(commissioned: date | None = None, *, seed: int = 5) -> EvFleet:
    """The SolaX demo charger :data:`DEMO_PILE_SN` (11 kW) in Europe/Berlin; faulted yesterday from
    18:00 to 18:20 local."""
    commissioned = commissioned if commissioned is not None else _default_commissioned()
    charger = Charger(DEMO_PILE_SN, DEMO_ZONE, commissioned, phases=3, max_current_a=16)
    yesterday = max(commissioned + timedelta(days=1), datetime.now(UTC).date() - timedelta(days=1))
    fault = ChargerFault(
        DEMO_PILE_SN, local_time(DEMO_ZONE, yesterday, 18), local_time(DEMO_ZONE, yesterday, 18, 20)
    )
    return EvFleet([charger], seed=seed, faults=[fault])


def demo_sunvec_plant(commissioned: date | None = None, *, seed: int = 4) -> Plant:
    """The Sunvec demo site in America/Mexico_City: one X1-Hybrid-G4 (two strings, 6.3 kWh battery;
    dongle :data:`DEMO_SUNVEC_WIFI_SN`)."""
    commissioned = commissioned if commissioned is not None else _default_commissioned()
    hybrid = Inverter(
        DEMO_SUNVEC_SN,
        "X1-Hybrid-G4",
        5000,
        (PvString(3.3, 0.2, 360.0), PvString(2.7, -0.2, 300.0)),
        battery=Battery(6300, max_power_w=5000, model="T-BAT H 6.3"),
        load_kwh_per_day=10.0,
        logger_sn=DEMO_SUNVEC_WIFI_SN,
    )
    site = Site(
        DEMO_SUNVEC_SITE_ID, "Sunvec Demo Home", DEMO_SUNVEC_ZONE, 19.43, -99.13, (hybrid,), commissioned
    )
    return Plant([site], seed=seed)


def demo_sim(
    *, brand: Brand = "solax", clock: Clock | None = None, host: str = "127.0.0.1", token: str | None = None
) -> SolaxSim:
    """The demo cloud.

    SolaX: :func:`demo_plant` and :func:`demo_fleet`; token :data:`DEMO_TOKEN` owning both dongles, the
    charger, :data:`DEMO_PENDING_WIFI_SN` and :data:`DEMO_NEVER_WIFI_SN`; ``utcDateTime`` sent; every
    23rd answer for the hybrid comes from a stale replica; the hybrid's battery reports a fault
    yesterday from 15:00 to 15:20 local. Sunvec: :func:`demo_sunvec_plant`, token
    :data:`DEMO_SUNVEC_TOKEN`, no ``utcDateTime``.
    """
    if brand == "sunvec":
        account = SolaxAccount(token or DEMO_SUNVEC_TOKEN)
        return SolaxSim(
            demo_sunvec_plant(),
            brand="sunvec",
            accounts=[account],
            quirks=SolaxQuirks(utc_datetime=False),
            clock=clock,
            host=host,
        )
    plant = demo_plant()
    commissioned = plant.sites[0].commissioned
    yesterday = max(commissioned + timedelta(days=1), datetime.now(UTC).date() - timedelta(days=1))
    battery_fault = BatteryFault(
        DEMO_HYBRID_SN, local_time(DEMO_ZONE, yesterday, 15), local_time(DEMO_ZONE, yesterday, 15, 20)
    )
    account = SolaxAccount(
        token or DEMO_TOKEN, pending=(DEMO_PENDING_WIFI_SN,), never_reported=(DEMO_NEVER_WIFI_SN,)
    )
    return SolaxSim(
        plant,
        accounts=[account],
        fleet=demo_fleet(commissioned),
        quirks=SolaxQuirks(utc_datetime=True),
        dongle_quirks={DEMO_HYBRID_WIFI_SN: SolaxQuirks(utc_datetime=True, stale_every=23)},
        battery_faults=[battery_fault],
        clock=clock,
        host=host,
    )


@dataclass(frozen=True)
class BrandDemo:
    """A demo factory for one brand of the family (``SIMULATORS["sunvec"]``)."""

    brand: Brand

    def demo(self) -> SolaxSim:
        return demo_sim(brand=self.brand)


def demo_source(slug: Literal["solax", "sunvec", "solax_ev"]) -> dict[str, Any]:
    """The source-config keys for a demo cloud (``token_id``, ``devices``, ``timezone``); a ``solax_ev``
    source uses the ``solax`` simulator's base URL and token (one server, one account)."""
    if slug == "sunvec":
        return {"token_id": DEMO_SUNVEC_TOKEN, "devices": [DEMO_SUNVEC_WIFI_SN], "timezone": DEMO_SUNVEC_ZONE}
    if slug == "solax_ev":
        return {"token_id": DEMO_TOKEN, "devices": [DEMO_PILE_SN], "timezone": DEMO_ZONE}
    return {"token_id": DEMO_TOKEN, "devices": [DEMO_HYBRID_WIFI_SN, DEMO_PV_WIFI_SN], "timezone": DEMO_ZONE}


__all__ = [
    "CODE_DAILY",
    "CODE_FAILED",
    "CODE_LOCKED",
    "CODE_MINUTE",
    "CODE_NOT_FOUND",
    "CODE_NO_AUTH",
    "CODE_PARAMETER",
    "CODE_TOKEN_INVALID",
    "CODE_UNAUTHORIZED",
    "DAILY_TEXT",
    "DEMO_HYBRID_SN",
    "DEMO_HYBRID_WIFI_SN",
    "DEMO_NEVER_WIFI_SN",
    "DEMO_PENDING_WIFI_SN",
    "DEMO_PILE_SN",
    "DEMO_PV_SN",
    "DEMO_PV_WIFI_SN",
    "DEMO_SUNVEC_SN",
    "DEMO_SUNVEC_TOKEN",
    "DEMO_SUNVEC_WIFI_SN",
    "DEMO_SUNVEC_ZONE",
    "DEMO_TOKEN",
    "DEMO_ZONE",
    "FIELD_UNITS",
    "INVERTER_MODELS",
    "LOCKED_TEXT",
    "MESSAGES",
    "MINUTE_TEXT",
    "PILE_CMD_PATH",
    "PILE_FIELD_UNITS",
    "PILE_INFO_PATH",
    "PILE_POWER_KW_RESOLUTION",
    "REALTIME_PATH",
    "BatteryFault",
    "BrandDemo",
    "PileQuirks",
    "Served",
    "SolaxAccount",
    "SolaxLimits",
    "SolaxQuirks",
    "SolaxSim",
    "demo_fleet",
    "demo_plant",
    "demo_sim",
    "demo_source",
    "demo_sunvec_plant",
    "inverter_type",
    "upload_time_text",
    "utc_text",
]
