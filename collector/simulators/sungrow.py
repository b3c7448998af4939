"""Sungrow iSolarCloud Open API V1 gateway simulator, over the plant model.

Built from ``shared/vendor-docs/sungrow-isolarcloud-open-api.txt`` ("doc §n", its section numbers)
and ``shared/research/sungrow.md`` ("notes §n"); where the two disagree the notes (real behaviour)
win and the line that does so says it. Where neither decides, the choice is marked **Decision** and
kept strict, so a collector that passes here is safe on the real gateway.

Protocol rules
--------------
* **Transport** (doc §1.3 (2)-(7); notes §3.1): every call is ``POST`` with a JSON body holding
  ``appkey``, ``token`` (except login) and ``lang``; headers ``sys_code: 901`` and ``x-access-key``.
  HTTP 200 for every body-level error. Envelope ``{req_serial_num, result_code, result_msg,
  result_data}`` with ``result_code`` a **string**, ``"1"`` success, ``result_data: null`` on errors
  (notes §5.1, §4.1).
* **Header and key checks**, in this order (**Decision**: headers before the body, as a gateway
  filter chain would): no ``x-access-key`` → ``E911``; unknown access key → ``E912``; no or wrong
  ``sys_code`` → ``003`` (doc Appendix 2 "sys_code should be empty"; a wrong value is a
  **Decision**); then the body (below); no ``appkey`` → ``001``; unknown appkey → ``E00000``; an
  appkey with another app's access key → ``E914``; an expired app (:attr:`SungrowApp.expired`) →
  ``E00001`` (doc Appendix 2). ``E903`` (IP switching) and ``E996`` / ``E994`` are not modelled:
  inject them with ``Injection.errno(code_id(...))``.
* **lang** (notes §3.1): in the body (the doc's header table is wrong, notes win); a value that is
  not one of the doc's ``_xx_YY`` codes (e.g. ``en_US``) → ``010``; missing is accepted.
* **Login** (doc §2.1; notes §3.1): ``/openapi/login`` with ``user_account`` / ``user_password``
  (missing → ``009``). ``result_code "1"`` always; success only with ``login_state "1"`` and a token
  ``<user_id>_<32 hex>``; ``-1`` unknown account, ``0`` wrong password (``err_times`` /
  ``remain_times``), ``2`` locked after :attr:`SungrowLimits.max_password_errors` wrong passwords
  (``disable_time`` set, **Decision**: locked for ``lock_s``), ``5`` locked by the administrator
  (:attr:`SungrowUser.locked`). Logins per account are limited (``E916``, notes §4.1: threshold
  undocumented; **Decision** :attr:`SungrowLimits.logins_per_hour`).
* **Token** (doc §1.1, Appendix 8; notes §4.1): valid ``token_ttl_s`` (24 h) and **sliding**: every
  authenticated call resets it. Missing → ``002``; unknown, expired, or issued to another appkey →
  ``E00003 er_token_login_invalid``. **Decision**: a new login of the same user and appkey revokes the
  previous token (``single_token``), so a collector must share one token across processes.
* **Grants** (notes §1, §4.3): an endpoint not granted to the appkey (:attr:`SungrowApp.denied`), and
  any unknown ``/openapi/...`` path, → ``E900 Unauthorized access``.
* **Encrypted calls** (doc Appendix 4-7; notes §3.2), when the simulator has an RSA key pair
  (:attr:`SungrowSim.rsa_public_key`: base64 of the X.509 SubjectPublicKeyInfo DER, as the portal
  issues it — notes §3.2 step 2: the doc's "PKCS#8" comment is wrong, the code uses X.509):
  header ``x-random-secret-key`` = RSA PKCS#1 v1.5 of a 16-character AES key, base64 (URL-safe or
  standard, padding optional: notes §3.2 inference, Apache ``decodeBase64`` is lenient), decrypted in
  blocks of the modulus size (``rsaSplitCodec``); undecryptable → ``E906``; plaintext not 16 bytes →
  ``E907``. The body is the hex (either case, notes §3.2 step 4 inference) of AES-128-ECB/PKCS5 of
  the JSON; undecryptable or not JSON → ``E905``. Inside it ``api_key_param {nonce, timestamp}``
  (doc §1.3 (6); Appendix 7): missing → ``E908``; nonce not 32 letters/digits → ``E909``; timestamp
  (UNIX ms, string or integer, notes §3.2 step 3) more than ``timestamp_tolerance_s`` from the gateway
  clock (**Decision** 60 s; the doc gives no figure) or unreadable → ``E913``; a nonce seen before
  (within ``nonce_memory_s``) → ``E910``. The reply (every JSON envelope, errors included, once the
  key is known) is the upper-case hex of AES-128-ECB/PKCS5 of the JSON with the same key
  (Appendix 6-7). A body without ``x-random-secret-key`` that is not JSON → ``E904``; a plain JSON
  body for an app with :attr:`SungrowApp.encrypted_only` → ``E902 Request is not encrypted``
  (notes §1: newer apps).
* **Clock** (doc Appendix 7; notes §3.3): ``GET /timestamp`` answers the gateway's UNIX ms; its format
  is undocumented — **Decision**: the plain envelope with ``result_data`` the ms as a string. Every
  reply carries a ``Date`` header from the simulator clock (notes §3.3, roth-andreas).

Limits (notes §4.3; :class:`SungrowLimits`; sliding windows in the LimitEngine)
------------------------------------------------------------------------------
* Gateway throttle per appkey: a token bucket of 15 refilled at 10/s (notes §4.3 inference, Spring
  Cloud Gateway) — **Decision**: modelled as 15 calls per 1.5 s sliding window; refused with
  ``E901`` (HTTP 200; whether the real gateway sends 429 is undocumented, notes §4.3). Every reply to
  a known appkey carries ``X-RateLimit-Burst-Capacity``, ``X-RateLimit-Replenish-Rate``,
  ``X-RateLimit-Requested-Tokens`` and ``X-RateLimit-Remaining`` (doc §2.4.5 … §2.10.5 screenshots).
  Refused calls do not count against the quotas (**Decision**: the gateway filter answers first);
  calls refused by authentication do not count either, calls answered ``009`` / ``010`` do.
* Quota per appkey: ``per_hour`` (2000, the Basic package, notes §1 / §4.3) → ``E999``; per day
  (default 24 × hourly as in the CN-doc sample, notes §4.3) → ``E998`` (**Decision**: E998 is the
  only other quota code, "monthly" in the notes). Every call counts, login included.
  ``getOpenApiCallInfo`` (doc §2.2; notes §4.3) reports them: numbers as strings except
  ``max_call_times`` (an integer), ``hour`` ``"0"`` in the config list but ``"00"`` in the residue
  list (doc §2.2.5); the "current hour" is the sliding window, the hours are the gateway's zone
  (**Decision**: UTC).

Discovery
---------
* ``getPowerStationList`` (doc §2.3; notes §5.3, §5.5, §9.1): ``curPage`` / ``size`` required
  (``009``), paged ``{rowCount, pageList}``. ``ps_id`` an integer; ``ps_current_time_zone`` a fixed
  ``GMT±h`` (``GMT+5:30`` for half hours, **Decision**) of the plant's **standard** offset — whether it
  flips with DST is undocumented (notes §5.3), **Decision** no flip (``tz_follows_dst`` switches);
  ``curr_power`` / ``today_energy`` / ``total_energy`` as ``{unit, value}`` auto-scaled W/kW/MW and
  Wh/kWh/MWh (notes §5.5), values strings with ≤ 3 decimals; ``ps_fault_status`` 1 while a fault is
  open, else ``3`` (the doc sample's "normal", notes §5.10); update times ISO-8601 with the plant's
  offset (doc §2.3.4).
* ``getDeviceList`` (doc §2.5; notes §5.4, §9.1): ``ps_id``, ``curPage``, ``size`` required;
  optional ``device_type_list``. ``ps_key`` ``<ps_id>_<device_type>_<device_code>_<chnnl_id>``;
  device types (doc Appendix 1): a PV-only inverter is ``1``; a hybrid is ``14`` with its battery
  ``43`` and grid meter ``7``; every logger a communication module ``22`` (code 247+); the plant
  ``11`` (``<ps_id>_11_0_0``) only with ``is_virtual_unit=1`` (doc §2.5.3: virtual devices on
  request). ``dev_status`` / ``dev_fault_status`` strings here (notes §5.2: integers in realtime);
  fault status ``4`` normal (notes §5.10). A ``ps_id`` the user does not own → ``010``
  (**Decision**). :attr:`SungrowSim.hidden` drops devices (a device list that changes between runs).
* ``getOpenPointInfo`` (doc §2.10): ``device_type``, ``type`` (1 signals, 2 telemetry, 5 property),
  ``curPage``, ``size`` required; the simulator's point tables. ``storage_unit`` on device types
  14 / 7 repeats the display unit (kW, kWh) although values are W / Wh (notes §5.5: "storage_unit is
  not reliable for ESS/meter points").

Live data (notes §5.2-5.7, §6)
------------------------------
* ``getDeviceRealTimeData`` (doc §2.14; notes §7.1, §2.2): ``device_type`` and ``point_id_list``
  (bare ids, ``"13003"``, as the doc sample; **Decision**: ``"p13003"`` matches no point and comes
  back ``null``) and ``ps_key_list`` or ``sn_list`` required (``009``); more than 100 points → ``010``
  (notes §7.1); more than 50 devices → ``010`` (**Decision**, as the history endpoints). Devices of
  another type or not the user's go to ``fail_ps_key_list`` / ``fail_sn_list`` (notes §5.1).
  ``getPVInverterRealTimeData`` (doc §2.6): device type 1 only, every point key, unsupported ones
  ``null`` (doc §2.6.5).
* Values are strings (``"190970.0"``), ``null`` where the device has no such point; base units W,
  Wh, V, A, var (doc §2.6.1); SOC / SOH as fractions ``0.791`` (notes §5.6); power factor a ratio;
  the PV inverter's ``p27`` in 0.1 Hz (``"499.9"``, doc §2.6.5, notes §5.7; per device
  :attr:`SungrowQuirks.decihertz`); the ESS flows as non-negative pairs (13149/13121, 13126/13150,
  notes §6.2); meter ``p8018`` negative = export (notes §6.4). **Decision** placeholders: the PV
  inverter's MPPT voltages and currents read ``"--"`` while it does not feed in, its apparent power
  ``p43`` is ``""`` (notes §5.2: anchors see ``""`` / ``"--"``; which points carry them is not
  recorded). ``device_time`` ``yyyyMMddHHmmss`` in the plant's local time (notes §5.3) of the
  5-minute bucket holding the device's newest upload (notes §5.3: always on 5-minute boundaries);
  the values are the truth at that upload. Battery current positive = charging (**Decision**).
  Running state ``p29`` / ``p13146`` (**Decision**, Sungrow's Modbus words in decimal): run ``0``,
  standby ``5120``, starting ``4608``, fault ``21760``, permanent fault shown as stop ``32768``;
  ``p304`` fault ``1`` / ``0``.

History (notes §7.1, §5.8, §5.9)
--------------------------------
* ``getDevicePointMinuteDataList`` (doc §2.7): ``points`` (comma separated, ``p``-prefixed: bare ids
  give success with no data, notes §5.8), ``ps_key_list``, ``start_time_stamp``, ``end_time_stamp``
  (``yyyyMMddHHmmss``, plant-local) required (``009``); window > 3 h (wall clock or real time,
  **Decision** both) → ``010``; ≥ 50 points → ``010`` (doc "< 50"); > 50 ps_keys or mixed device
  types → ``010``; ``minute_interval`` a multiple of 5 (default 5) → else ``010``. Rows at the local
  5-minute buckets with an upload, ``start ≤ time_stamp ≤ end`` (doc §2.7.5 sample: both ends);
  missing rows for gaps; points without data omitted; unknown ps_keys listed in ``result_msg``
  ``illegal device list:…`` with ``result_code "1"`` (doc §1.3 (7)). Same-day rows are served (notes
  §5.8: InkyPi saw them; the doc says no current day): :attr:`SungrowQuirks` ``current_day``.
* ``getDevicePointsDayMonthYearDataList`` (doc §2.8; notes §5.9): ``ps_key_list``, ``data_point``,
  ``start_time``, ``end_time``, ``data_type``, ``query_type`` required; days ``yyyyMMdd`` ≤ 100,
  months ``yyyyMM`` ≤ 24, years ``yyyy`` ≤ 5 per call (both ends counted), else ``010``.
  **Decision**: only energy points are served (others omitted); ``"2"`` peak = the day's energy for
  a daily counter (the doc's advice) or the lifetime counter at the period's last upload, ``"3"``
  valley = the period's lowest (0 for a daily counter on a day, the lifetime counter at the first
  upload), ``"4"`` total (months, years only) = energy in the period for a daily counter, the
  lifetime counter at the period's last upload for a lifetime one; ``"1"`` average and a monthly
  ``"2"`` of a daily counter are omitted. The plant (type 11) sums its inverters.
  Values with 4 decimals ``"371600.0000"`` (notes §5.2).
* ``getFaultAlarmInfo`` (doc §2.9; notes §5.10): ``curPage`` / ``size`` required; ``process_status``
  8 open, 9 closed, 999 both, empty = open; 9 / 999 must not span months (``010``); times
  ``yyyyMMddHHmm`` or ``yyyy-MM-dd HH:mm`` (the doc sample's form); default the current local month.
  Rows from the plant's faults that started in the window: ``fault_code`` unique
  ``<type code>.<yyyyMM>.<hex>``, ``fault_type_code`` 60000 + code (PV inverter) / 13800 + code (ESS)
  (notes §5.10, CN-doc Appendix 8), ``process_status`` 1 open / 9 closed, ``create_time`` /
  ``over_time`` local ``yyyy-MM-dd HH:mm:ss`` (``""`` while open, doc §2.9.5).

Fault injection: the base :class:`~collector.simulators.base.Injection` kinds (``html``, ``http``,
``hang``, ``errno`` with a :func:`code_id`, ``malformed`` = truncated JSON; the base ``nulls`` /
``strings`` / ``empty`` change only JSON numbers, and Sungrow's values are already strings;
``http`` with status 200 = an empty body), plus
:meth:`SungrowSim.inject_null_result` (``result_data: null`` with ``result_code "1"``),
:meth:`SungrowSim.inject_values` (every point ``null`` / ``"--"`` / ``""``) and
:meth:`SungrowSim.inject_bad_cipher` (an encrypted reply that does not decrypt). Secrets (passwords,
tokens, AES keys) are never logged.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import math
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import formatdate
from typing import Any, Literal

from aiohttp import web
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from collector.simulators.base import (
    Call,
    Charge,
    Clock,
    Endpoint,
    Injection,
    Limit,
    ProtocolError,
    Reply,
    Simulator,
)
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
    stable_hash,
    zone_info,
)

# ------------------------------------------------------------------------------------------------
# Result codes

RESULT_CODES: tuple[str, ...] = (
    "1", "-1", "000", "001", "002", "003", "009", "010", "011",
    "E00000", "E00001", "E00002", "E00003", "E998", "E999",
    "E900", "E901", "E902", "E903", "E904", "E905", "E906", "E907", "E908", "E909", "E910",
    "E911", "E912", "E913", "E914", "E916",
)  # fmt: skip
"""Every result code the simulator answers (doc Appendix 2; notes §9.2)."""

MESSAGES: dict[str, str] = {
    "1": "success",
    "-1": "error",
    "000": "er_unknown_exception",
    "001": "er_missing_parameter:appkey",
    "002": "er_missing_parameter:token",
    "003": "er_missing_parameter:sys_code",
    "009": "er_missing_parameter",
    "010": "er_parameter_value_invalid",
    "E00000": "er_invalid_appkey",
    "E00001": "er_api_service_has_expired",
    "E00003": "er_token_login_invalid",
    "E998": "er_month_call_api_times_upper_limit",
    "E999": "er_hour_call_api_times_upper_limit",
    "E900": "Unauthorized access",
    "E901": "Call too frequently",
    "E902": "Request is not encrypted",
    "E904": "Missing parameter in request header: x-random-secret-key",
    "E905": "AES decryption exception",
    "E906": "RSA decryption exception",
    "E907": "AES random secret key length must be 16",
    "E908": "Missing key parameter: api_key_param",
    "E909": "Invalid parameter format: nonce [32-bit string of numbers and letters]",
    "E910": "Repeated request",
    "E911": "Missing parameter in request header: x-access-key",
    "E912": "Illegal x-access-key",
    "E913": "Expired request",
    "E914": "Mismatched appkey and x-access-key",
    "E916": "Login too frequently",
}


def code_id(code: str) -> int:
    """The integer the framework carries for Sungrow result code ``code`` (its index in
    :data:`RESULT_CODES`); the call log's ``code`` holds it, :func:`code_name` turns it back."""
    return RESULT_CODES.index(code)


def code_name(cid: int | None) -> str | None:
    """The Sungrow result code behind a call-log ``code``."""
    return None if cid is None else RESULT_CODES[cid]


def sg_error(code: str, message: str | None = None) -> ProtocolError:
    """A body-level refusal with Sungrow result ``code``."""
    return ProtocolError(code_id(code), message or MESSAGES.get(code, code))


LANGS = frozenset(
    {"_zh_CN", "_en_US", "_ja_JP", "_es_ES", "_de_DE", "_pt_BR", "_fr_FR", "_it_IT", "_ko_KR",
     "_nl_NL", "_pl_PL", "_vi_VN", "_zh_TW"}
)  # fmt: skip
"""Valid ``lang`` values (doc §1.3 (5))."""

LOGIN = "/openapi/login"
TIMESTAMP = "/timestamp"
DEMO_APPKEY = "DEMOAPPKEY0000000000000000000001"
DEMO_ACCESS_KEY = "demoaccesskey00000000000000000001"
DEMO_USER = "demo@example.com"
DEMO_PASSWORD = "demo-password"
"""The demo gateway's credentials (not secrets: they only open the local simulator)."""

APPKEY_KEY = web.RequestKey("sungrow_appkey", str)
AES_KEY = web.RequestKey("sungrow_aes_key", bytes)
"""Request storage: the caller's appkey (for the rate-limit headers) and its AES key (never logged)."""

NONCE_RE = re.compile(r"[A-Za-z0-9]{32}")
RUNNING = {"normal": 0, "standby": 5120, "starting": 4608, "fault": 21760, "permanent_fault": 32768}
"""Running-state words (**Decision**: Sungrow's Modbus running-state values in decimal)."""


# ------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class SungrowLimits:
    """Gateway limits and timings (notes §4; see the module docstring)."""

    per_hour: int = 2000
    per_day: int | None = None
    """None: 24 × ``per_hour`` (CN-doc sample, notes §4.3)."""
    burst: int = 15
    replenish_per_s: int = 10
    logins_per_hour: int = 10
    token_ttl_s: float = 24 * 3600.0
    timestamp_tolerance_s: float = 60.0
    nonce_memory_s: float = 3600.0
    max_password_errors: int = 5
    lock_s: float = 1800.0
    single_token: bool = True
    realtime_max_points: int = 100
    max_devices: int = 50
    minute_max_points: int = 49
    minute_window_s: int = 3 * 3600
    day_max: int = 100
    month_max: int = 24
    year_max: int = 5


@dataclass(frozen=True)
class SungrowApp:
    """An app registered in the developer portal: appkey, access key, grants, quota."""

    appkey: str
    access_key: str
    denied: frozenset[str] = frozenset()
    """Endpoint paths not granted (→ E900), e.g. ``{"/openapi/getFaultAlarmInfo"}``."""
    encrypted_only: bool = False
    expired: bool = False
    """The app's API service has expired (→ E00001, doc Appendix 2)."""
    per_hour: int | None = None
    """None: :attr:`SungrowLimits.per_hour`."""
    per_day: int | None = None


@dataclass(frozen=True)
class SungrowUser:
    """An iSolarCloud account; ``site_ids`` None = every site of the plant."""

    account: str
    password: str
    user_id: int
    site_ids: tuple[str, ...] | None = None
    locked: bool = False
    """Locked by the administrator (login_state 5)."""


@dataclass(frozen=True)
class SungrowQuirks:
    """Per-device switches (see the module docstring)."""

    decihertz: bool = True
    """PV inverter ``p27`` in 0.1 Hz (doc §2.6.5 "499.9")."""
    placeholders: bool = True
    """``"--"`` MPPT values while not feeding in, ``""`` apparent power (**Decision**)."""


@dataclass(frozen=True)
class Device:
    """One device of a plant as the gateway lists it."""

    ps_id: int
    ps_key: str
    device_type: int
    code: int
    sn: str
    inverter_sn: str
    """The plant-model inverter behind it ("" for the plant, type 11)."""
    site_id: str
    name: str
    model: str
    uuid: int
    comm_sn: str


@dataclass
class _Session:
    user: str
    appkey: str
    expires: float


@dataclass
class _UserState:
    errors: int = 0
    locked_until: float = 0.0


# ------------------------------------------------------------------------------------------------
# Crypto (doc Appendix 4-7)


def b64decode_lenient(text: str) -> bytes:
    """Apache ``decodeBase64``: either alphabet, padding optional (notes §3.2 inference)."""
    s = text.strip().replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    return base64.b64decode(s, validate=True)


def aes_key_bytes(key: str) -> bytes:
    """``getSecretKey``: the UTF-8 key padded with ``'0'`` / cut to 16 bytes (doc Appendix 5)."""
    raw = key.encode()[:16]
    return raw + b"0" * (16 - len(raw))


def aes_encrypt_hex(plain: bytes, key: bytes) -> str:
    """AES-128-ECB/PKCS5 → upper-case hex (doc Appendix 5)."""
    padder = sym_padding.PKCS7(128).padder()
    data = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # the vendor's scheme (doc Appendix 5)
    return (enc.update(data) + enc.finalize()).hex().upper()


def aes_decrypt_hex(text: str, key: bytes) -> bytes:
    """Hex (either case) → AES-128-ECB/PKCS5 → bytes (doc Appendix 6); ValueError if it fails."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError as err:
        raise ValueError("not hex") from err
    if not raw or len(raw) % 16:
        raise ValueError("bad length")
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # the vendor's scheme (doc Appendix 5)
    data = dec.update(raw) + dec.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    return unpadder.update(data) + unpadder.finalize()


class GatewayKeys:
    """The gateway's RSA key pair (the portal gives the public half to the app)."""

    def __init__(self, key_size: int = 1024) -> None:
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=key_size)

    @property
    def public_key_b64(self) -> str:
        """Base64 of the X.509 SubjectPublicKeyInfo DER (the client's ``rsa_public_key``)."""
        der = self._private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def decrypt_secret(self, header: str) -> bytes:
        """``x-random-secret-key`` → the plaintext key bytes (``rsaSplitCodec`` in decrypt mode:
        blocks of the modulus size); ValueError if it does not decrypt."""
        try:
            raw = b64decode_lenient(header)
        except (binascii.Error, ValueError) as err:
            raise ValueError("not base64") from err
        block = self._private.key_size // 8
        if not raw or len(raw) % block:
            raise ValueError("bad length")
        out = b""
        for i in range(0, len(raw), block):
            out += self._private.decrypt(raw[i : i + block], asym_padding.PKCS1v15())
        # OpenSSL's implicit rejection (3.2+, and patched 3.0 builds) answers a ciphertext for
        # another key with random bytes instead of an error, which would read as a wrong-length
        # key (E907); Java's Cipher throws, i.e. E906. The key is a 16-character string (doc
        # Appendix 5, notes §3.2 step 1): bytes that are not printable text did not decrypt.
        try:
            text = out.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError("does not decrypt") from err
        if not text.isprintable():
            raise ValueError("does not decrypt")
        return out


# ------------------------------------------------------------------------------------------------
# Points

Value = float | str | None


@dataclass(frozen=True)
class _Ctx:
    sim: SungrowSim
    device: Device
    truth: Truth
    u: int
    parts: tuple[Truth, ...] = ()
    """For the plant (type 11): the truth of each of its inverters."""


@dataclass(frozen=True)
class Point:
    """One point of a device type: id, name, units, how to read it from the truth.

    ``counter`` names a :class:`~collector.simulators.plant.Counters` field for energy points, with
    ``period`` ``today`` (resets at local midnight), ``month``, ``year`` or ``total``.
    """

    pid: int
    name: str
    unit: str
    get: Callable[[_Ctx], Value]
    decimals: int = 1
    counter: str | None = None
    period: Literal["today", "month", "year", "total"] | None = None
    kind: Literal[1, 2, 5] = 2
    show_unit: str | None = None


def _fmt(v: Value, decimals: int) -> str | None:
    if v is None or isinstance(v, str):
        return v
    r = round(v, decimals)
    if r == 0:
        r = 0.0
    return f"{r:.{decimals}f}"


def _counter(period: Literal["today", "month", "year", "total"], attr: str) -> Callable[[_Ctx], Value]:
    def get(ctx: _Ctx) -> Value:
        if period == "today":
            return float(getattr(ctx.truth.today, attr))
        if period == "total":
            return float(getattr(ctx.truth.total, attr))
        start = ctx.sim.period_start(ctx.device.inverter_sn, ctx.u, period)
        return float(getattr(ctx.sim.plant.energy(ctx.device.inverter_sn, start, ctx.u), attr))

    return get


def _energy(pid: int, name: str, period: Literal["today", "month", "year", "total"], attr: str) -> Point:
    return Point(pid, name, "Wh", _counter(period, attr), 1, attr, period, show_unit="kWh")


def _phase(i: int, attr: str) -> Callable[[_Ctx], Value]:
    def get(ctx: _Ctx) -> Value:
        phases = ctx.truth.phases
        return float(getattr(phases[i], attr)) if i < len(phases) else None

    return get


def _line(i: int) -> Callable[[_Ctx], Value]:
    def get(ctx: _Ctx) -> Value:
        phases = ctx.truth.phases
        return phases[i].voltage_v * math.sqrt(3) if len(phases) == 3 else None

    return get


def _mppt(i: int, attr: str) -> Callable[[_Ctx], Value]:
    def get(ctx: _Ctx) -> Value:
        strings = ctx.truth.strings
        if i >= len(strings):
            return None
        placeholders = ctx.sim.quirks_for(ctx.device.sn).placeholders
        pv_inverter = ctx.device.device_type == 1
        if attr != "power_w" and placeholders and pv_inverter and ctx.truth.state != "normal":
            return "--"  # Decision: placeholder while not feeding in (notes §5.2)
        return float(getattr(strings[i], attr))

    return get


def _bat(attr: str, scale: float = 1.0) -> Callable[[_Ctx], Value]:
    def get(ctx: _Ctx) -> Value:
        bat = ctx.truth.battery
        return None if bat is None else float(getattr(bat, attr)) * scale

    return get


def _freq_pv(ctx: _Ctx) -> Value:
    hz = ctx.truth.grid_frequency_hz
    # doc §2.6.5 sample "p27": "499.9" — 0.1 Hz units on some firmware paths (notes §5.7)
    return hz * 10 if ctx.sim.quirks_for(ctx.device.sn).decihertz else hz


def _apparent(ctx: _Ctx) -> Value:
    if ctx.sim.quirks_for(ctx.device.sn).placeholders:
        return ""  # Decision: an empty-string placeholder (notes §5.2)
    return math.hypot(ctx.truth.ac_power_w, ctx.truth.reactive_power_var)


def _state(ctx: _Ctx) -> Value:
    return str(RUNNING[ctx.truth.state])


def _fault_flag(ctx: _Ctx) -> Value:
    return "1" if ctx.truth.state in ("fault", "permanent_fault") else "0"


def _mppt_points(ids: Sequence[tuple[int, int]]) -> list[Point]:
    out: list[Point] = []
    for i, (v, a) in enumerate(ids):
        out.append(Point(v, f"MPPT{i + 1} Voltage", "V", _mppt(i, "voltage_v")))
        out.append(Point(a, f"MPPT{i + 1} Current", "A", _mppt(i, "current_a")))
    return out


PV_MPPT = [(5, 6), (7, 8), (9, 10), (45, 46), (47, 48), (49, 50), (51, 52), (53, 54), (55, 56), (57, 58)]

PV_POINTS: tuple[Point, ...] = (
    _energy(1, "Daily Yield", "today", "yield_wh"),
    _energy(2, "Total Yield", "total", "yield_wh"),
    _energy(87, "Monthly Yield", "month", "yield_wh"),
    _energy(88, "Yearly Yield", "year", "yield_wh"),
    Point(4, "Internal Air Temperature", "℃", lambda c: c.truth.inverter_temperature_c),
    *_mppt_points(PV_MPPT),
    Point(11, "PV1 Power", "W", _mppt(0, "power_w")),
    Point(12, "PV2 Power", "W", _mppt(1, "power_w")),
    Point(13, "PV3 Power", "W", _mppt(2, "power_w")),
    Point(14, "Total DC Power", "W", lambda c: c.truth.pv_power_w, show_unit="kW"),
    Point(15, "A-B Line Voltage", "V", _line(0)),
    Point(16, "B-C Line Voltage", "V", _line(1)),
    Point(17, "C-A Line Voltage", "V", _line(2)),
    Point(18, "Phase A Voltage", "V", _phase(0, "voltage_v")),
    Point(19, "Phase B Voltage", "V", _phase(1, "voltage_v")),
    Point(20, "Phase C Voltage", "V", _phase(2, "voltage_v")),
    Point(21, "Phase A Current", "A", _phase(0, "current_a")),
    Point(22, "Phase B Current", "A", _phase(1, "current_a")),
    Point(23, "Phase C Current", "A", _phase(2, "current_a")),
    Point(24, "Total Active Power", "W", lambda c: c.truth.ac_power_w, show_unit="kW"),
    Point(25, "Total Reactive Power", "var", lambda c: c.truth.reactive_power_var),
    Point(26, "Total Power Factor", "", lambda c: c.truth.power_factor, 3),
    Point(27, "Grid Frequency", "Hz", _freq_pv),
    Point(29, "Running State", "", _state, kind=1),
    Point(43, "Total Apparent Power", "VA", _apparent),
    Point(304, "Fault State", "", _fault_flag, kind=1),
)
PV_NULL_IDS = (*range(33, 39), *range(59, 66), *range(70, 86), 92, 93, 94, 95, *range(96, 114))
"""PV-inverter points the simulated devices do not have: ``null`` in getPVInverterRealTimeData."""

ESS_POINTS: tuple[Point, ...] = (
    Point(13003, "Total DC Power", "W", lambda c: c.truth.pv_power_w, show_unit="kW"),
    Point(13011, "Total Active Power", "W", lambda c: c.truth.ac_power_w, show_unit="kW"),
    Point(13119, "Load Power", "W", lambda c: c.truth.load_power_w, show_unit="kW"),
    Point(13149, "Purchased Power", "W", lambda c: c.truth.grid_import_power_w, show_unit="kW"),
    Point(13121, "Feed-in Power", "W", lambda c: c.truth.grid_export_power_w, show_unit="kW"),
    Point(13126, "Battery Charging Power", "W", _bat("charge_power_w"), show_unit="kW"),
    Point(13150, "Battery Discharging Power", "W", _bat("discharge_power_w"), show_unit="kW"),
    Point(13141, "Battery Level (SOC)", "", _bat("soc_pct", 0.01), 3, show_unit="%"),
    Point(13142, "Battery State of Health (SOH)", "", _bat("soh_pct", 0.01), 3, show_unit="%"),
    Point(13138, "Battery Voltage", "V", _bat("voltage_v")),
    Point(13139, "Battery Current", "A", _bat("current_a")),
    Point(13143, "Battery Temperature", "℃", _bat("temperature_c")),
    Point(13140, "Battery Capacity", "Wh", _bat("capacity_wh"), kind=5, show_unit="kWh"),
    _energy(13112, "Daily PV Yield", "today", "pv_wh"),
    _energy(13134, "Total PV Yield", "total", "pv_wh"),
    _energy(13147, "Daily Purchased Energy", "today", "grid_import_wh"),
    _energy(13148, "Total Purchased Energy", "total", "grid_import_wh"),
    _energy(13122, "Daily Feed-in Energy", "today", "grid_export_wh"),
    _energy(13125, "Total Feed-in Energy", "total", "grid_export_wh"),
    _energy(13028, "Daily Battery Charging Energy", "today", "battery_charge_wh"),
    _energy(13034, "Total Battery Charging Energy", "total", "battery_charge_wh"),
    _energy(13029, "Daily Battery Discharging Energy", "today", "battery_discharge_wh"),
    _energy(13035, "Total Battery Discharging Energy", "total", "battery_discharge_wh"),
    _energy(13199, "Daily Load Consumption", "today", "load_wh"),
    _energy(13130, "Total Load Consumption", "total", "load_wh"),
    Point(13019, "Internal Air Temperature", "℃", lambda c: c.truth.inverter_temperature_c),
    Point(13001, "MPPT1 Voltage", "V", _mppt(0, "voltage_v")),
    Point(13002, "MPPT1 Current", "A", _mppt(0, "current_a")),
    Point(13105, "MPPT2 Voltage", "V", _mppt(1, "voltage_v")),
    Point(13106, "MPPT2 Current", "A", _mppt(1, "current_a")),
    Point(13157, "Phase A Voltage", "V", _phase(0, "voltage_v")),
    Point(13158, "Phase B Voltage", "V", _phase(1, "voltage_v")),
    Point(13159, "Phase C Voltage", "V", _phase(2, "voltage_v")),
    Point(13008, "Phase A Current", "A", _phase(0, "current_a")),
    Point(13009, "Phase B Current", "A", _phase(1, "current_a")),
    Point(13010, "Phase C Current", "A", _phase(2, "current_a")),
    Point(13007, "Grid Frequency", "Hz", lambda c: c.truth.grid_frequency_hz, 2),
    Point(13013, "Total Power Factor", "", lambda c: c.truth.power_factor, 3),
    Point(13012, "Total Reactive Power", "var", lambda c: c.truth.reactive_power_var),
    Point(13146, "Running State", "", _state, kind=1),
)


def _meter_power(ctx: _Ctx) -> Value:
    # notes §6.4: p8018 negative = exporting, positive = importing
    return ctx.truth.grid_import_power_w - ctx.truth.grid_export_power_w


METER_POINTS: tuple[Point, ...] = (
    Point(8018, "Meter Active Power", "W", _meter_power, show_unit="kW"),
    _energy(8030, "Forward Active Energy", "total", "grid_import_wh"),
    _energy(8031, "Reverse Active Energy", "total", "grid_export_wh"),
    _energy(8062, "Daily Forward Active Energy", "today", "grid_import_wh"),
    _energy(8063, "Daily Reverse Active Energy", "today", "grid_export_wh"),
    Point(8000, "Phase A Voltage", "V", _phase(0, "voltage_v")),
    Point(8001, "Phase B Voltage", "V", _phase(1, "voltage_v")),
    Point(8002, "Phase C Voltage", "V", _phase(2, "voltage_v")),
    Point(8064, "Grid Frequency", "Hz", lambda c: c.truth.grid_frequency_hz, 2),
)

BATTERY_POINTS: tuple[Point, ...] = (
    Point(58601, "Battery Voltage", "V", _bat("voltage_v")),
    Point(58602, "Battery Current", "A", _bat("current_a")),
    Point(58603, "Battery Temperature", "℃", _bat("temperature_c")),
    Point(58604, "Battery Remaining Charge", "", _bat("soc_pct", 0.01), 3, show_unit="%"),
    Point(58605, "Battery SOH", "", _bat("soh_pct", 0.01), 3, show_unit="%"),
    _energy(58606, "Total Charging Energy", "total", "battery_charge_wh"),
    _energy(58607, "Total Discharging Energy", "total", "battery_discharge_wh"),
)


def _site_sum(attr: str, sub: str = "") -> Callable[[_Ctx], Value]:
    def get(ctx: _Ctx) -> Value:
        total = 0.0
        for t in ctx.parts:
            obj: Any = getattr(t, sub) if sub else t
            total += float(getattr(obj, attr))
        return total

    return get


def _site_battery(attr: str) -> Callable[[_Ctx], Value]:
    def get(ctx: _Ctx) -> Value:
        bats = [t.battery for t in ctx.parts if t.battery is not None]
        return sum(float(getattr(b, attr)) for b in bats) if bats else None

    return get


def _site_soc(ctx: _Ctx) -> Value:
    bats = [t.battery for t in ctx.parts if t.battery is not None]
    capacity = sum(b.capacity_wh for b in bats)
    return sum(b.soc_pct * b.capacity_wh for b in bats) / capacity / 100 if capacity else None


def _site_energy(pid: int, name: str, period: Literal["today", "total"], attr: str) -> Point:
    return Point(pid, name, "Wh", _site_sum(attr, period), 1, attr, period, show_unit="kWh")


PLANT_POINTS: tuple[Point, ...] = (
    Point(83033, "Plant Power", "W", _site_sum("ac_power_w"), show_unit="kW"),
    Point(83002, "Inverter AC Power", "W", _site_sum("ac_power_w"), show_unit="kW"),
    Point(83067, "PV Power", "W", _site_sum("pv_power_w"), show_unit="kW"),
    Point(83106, "Load Power", "W", _site_sum("load_power_w"), show_unit="kW"),
    Point(83252, "Battery Level (SOC)", "", _site_soc, 3, show_unit="%"),
    Point(83238, "Energy Storage Charging Power", "W", _site_battery("charge_power_w"), show_unit="kW"),
    _site_energy(83022, "Daily Yield of Plant", "today", "yield_wh"),
    _site_energy(83024, "Plant Total Yield", "total", "yield_wh"),
    _site_energy(83102, "Daily Purchased Energy", "today", "grid_import_wh"),
    _site_energy(83105, "Total Purchased Energy", "total", "grid_import_wh"),
    _site_energy(83072, "Daily Feed-in Energy", "today", "grid_export_wh"),
    _site_energy(83075, "Total Feed-in Energy", "total", "grid_export_wh"),
    _site_energy(83118, "Daily Load Consumption", "today", "load_wh"),
    _site_energy(83124, "Total Load Consumption", "total", "load_wh"),
    _site_energy(83243, "Daily Battery Charging Energy", "today", "battery_charge_wh"),
    _site_energy(83244, "Daily Battery Discharging Energy", "today", "battery_discharge_wh"),
    _site_energy(83241, "Total Battery Charging Energy", "total", "battery_charge_wh"),
    _site_energy(83242, "Total Battery Discharging Energy", "total", "battery_discharge_wh"),
)
"""Plant-level points (notes §6.3), sums over the plant's inverters at their newest uploads.
**Decision**: the grid power p83549 (sign undocumented, absent on InkyPi's plant) is not served;
the storage power p83238 is the charging power only (its sign is undocumented, notes §6.3)."""

POINTS: dict[int, tuple[Point, ...]] = {
    1: PV_POINTS,
    14: ESS_POINTS,
    7: METER_POINTS,
    43: BATTERY_POINTS,
    11: PLANT_POINTS,
}
"""Device type → its points (doc Appendix 1 types; notes §6)."""

POINT_KEYS = frozenset(f"p{p.pid}" for points in POINTS.values() for p in points) | frozenset(
    f"p{i}" for i in PV_NULL_IDS
)
TYPE_NAMES = {1: "Inverter", 7: "Meter", 11: "Plant", 14: "Energy Storage System", 22: "Communication Module",
              43: "Battery"}  # fmt: skip

DeviceHandler = Callable[[Call], Awaitable[Any]]


# ------------------------------------------------------------------------------------------------
# Helpers


def local_stamp(t: float, zone: str, fmt: str = "%Y%m%d%H%M%S") -> str:
    """``t`` as plant-local wall clock text."""
    return datetime.fromtimestamp(t, zone_info(zone)).strftime(fmt)


def bucket(t: float, zone: str) -> datetime:
    """The plant-local 5-minute bucket (naive wall clock) holding ``t`` (notes §5.3)."""
    dt = datetime.fromtimestamp(t, zone_info(zone)).replace(tzinfo=None, second=0, microsecond=0)
    return dt - timedelta(minutes=dt.minute % 5)


def gmt_label(offset_s: int) -> str:
    """``GMT+1``, ``GMT-3``, ``GMT+5:30`` (notes §5.3; the half-hour form is a **Decision**)."""
    sign = "+" if offset_s >= 0 else "-"
    h, rem = divmod(abs(offset_s) // 60, 60)
    return f"GMT{sign}{h}" + (f":{rem:02d}" if rem else "")


def scaled(value: float, units: tuple[str, str, str]) -> dict[str, str]:
    """``{unit, value}`` auto-scaled by 1000s (notes §5.5), ≤ 3 decimals, trailing zeros cut."""
    unit = units[0]
    for u in units[1:]:
        if abs(value) < 1000:
            break
        value /= 1000
        unit = u
    text = f"{round(value, 3):.3f}".rstrip("0").rstrip(".")
    return {"unit": unit, "value": "0" if text in ("-0", "") else text}


def _str_param(body: Mapping[str, Any], name: str) -> str:
    v = body.get(name)
    if v is None or v == "":
        raise sg_error("009", f"er_missing_parameter:{name}")
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise sg_error("010", f"er_parameter_value_invalid:{name}")
    return str(v)


def _int_param(body: Mapping[str, Any], name: str, lo: int = 1, hi: int = 10**6) -> int:
    text = _str_param(body, name)
    try:
        n = int(text)
    except ValueError as err:
        raise sg_error("010", f"er_parameter_value_invalid:{name}") from err
    if not lo <= n <= hi:
        raise sg_error("010", f"er_parameter_value_invalid:{name}")
    return n


def _list_param(body: Mapping[str, Any], name: str) -> list[str]:
    v = body.get(name)
    if v is None or v == [] or v == "":
        raise sg_error("009", f"er_missing_parameter:{name}")
    if isinstance(v, str):
        v = v.split(",")
    if not isinstance(v, list) or not all(isinstance(x, str | int) and not isinstance(x, bool) for x in v):
        raise sg_error("010", f"er_parameter_value_invalid:{name}")
    return [str(x) for x in v]


def _page(body: Mapping[str, Any]) -> tuple[int, int]:
    return _int_param(body, "curPage"), _int_param(body, "size", 1, 1000)


def _paged(rows: list[dict[str, Any]], page: int, size: int) -> dict[str, Any]:
    return {"pageList": rows[(page - 1) * size : page * size], "rowCount": len(rows)}


# ------------------------------------------------------------------------------------------------
# The simulator


class SungrowSim(Simulator):
    """The iSolarCloud Open API V1 gateway over a :class:`Plant` (rules: module docstring).

    ``apps`` and ``users`` are the portal's apps and the accounts; ``keys`` the gateway's RSA pair
    (None: plain mode only — every call must then be plain); ``ps_ids`` site_id → ps_id (default a
    stable hash); ``quirks`` per device SN; ``current_day``: whether history serves the current day.
    """

    vendor = "sungrow"
    value_keys = POINT_KEYS | frozenset({"2", "3", "4"})

    def __init__(
        self,
        plant: Plant,
        *,
        apps: Sequence[SungrowApp] | None = None,
        users: Sequence[SungrowUser] | None = None,
        keys: GatewayKeys | None = None,
        limits: SungrowLimits | None = None,
        clock: Clock | None = None,
        ps_ids: Mapping[str, int] | None = None,
        quirks: Mapping[str, SungrowQuirks] | None = None,
        current_day: bool = True,
        tz_follows_dst: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(clock=clock, host=host)
        self.plant = plant
        self.settings = limits if limits is not None else SungrowLimits()
        apps = apps if apps is not None else [SungrowApp(DEMO_APPKEY, DEMO_ACCESS_KEY)]
        users = users if users is not None else [SungrowUser(DEMO_USER, DEMO_PASSWORD, 505120)]
        self.apps: dict[str, SungrowApp] = {a.appkey: a for a in apps}
        self._by_access = {a.access_key: a for a in apps}
        self.users: dict[str, SungrowUser] = {u.account: u for u in users}
        self.keys = keys
        self.quirks: dict[str, SungrowQuirks] = dict(quirks or {})
        self.current_day = current_day
        self.tz_follows_dst = tz_follows_dst
        self.ps_ids: dict[str, int] = {
            s.site_id: (ps_ids or {}).get(s.site_id, 1_000_000 + stable_hash("ps", s.site_id) % 9_000_000)
            for s in plant.sites
        }
        self.devices: list[Device] = self._build_devices()
        self._by_key = {d.ps_key: d for d in self.devices}
        self.sessions: dict[str, _Session] = {}
        self._user_state: dict[str, _UserState] = {}
        self._nonces: dict[str, float] = {}
        self._null_results: dict[str, int] = {}
        self._value_injections: dict[str, deque[str | None]] = {}
        self.hidden: set[str] = set()
        """ps_keys left out of every answer (a device list that changes between runs)."""
        self._bad_cipher: dict[str, int] = {}
        s = self.settings
        self._throttle = Limit("throttle", s.burst, s.burst / s.replenish_per_s)
        self._hourly = {a.appkey: Limit("hourly", a.per_hour or s.per_hour, 3600.0) for a in apps}
        self._daily = {
            a.appkey: Limit("daily", a.per_day or s.per_day or 24 * (a.per_hour or s.per_hour), 86400.0)
            for a in apps
        }
        self._logins = Limit("login", s.logins_per_hour, 3600.0)

    @classmethod
    def demo(cls, *, clock: Clock | None = None, encrypted: bool = False) -> SungrowSim:
        """The demo gateway (:func:`demo_sim`)."""
        return demo_sim(clock=clock, encrypted=encrypted)

    @property
    def rsa_public_key(self) -> str | None:
        """The public key the client config takes (``rsa_public_key``), None in plain mode."""
        return None if self.keys is None else self.keys.public_key_b64

    def quirks_for(self, sn: str) -> SungrowQuirks:
        return self.quirks.get(sn, SungrowQuirks())

    # ---------------------------------------------------------------- devices

    def _build_devices(self) -> list[Device]:
        out: list[Device] = []
        for site in self.plant.sites:
            ps = self.ps_ids[site.site_id]
            out.append(Device(ps, f"{ps}_11_0_0", 11, 0, "", "", site.site_id, site.name, "", ps, ""))
            for i, inv in enumerate(site.inverters):
                code = i + 1
                comm = inv.logger_sn or f"B{stable_hash('comm', inv.sn) % 10**10:010d}"
                uuid = 1_000_000 + stable_hash("uuid", inv.sn) % 9_000_000

                def dev(
                    dtype: int, sn: str, name: str, model: str, n: int, c: int = code,
                    ps: int = ps, inv: Inverter = inv, site: Site = site, uuid: int = uuid, comm: str = comm,
                ) -> Device:  # fmt: skip
                    key = f"{ps}_{dtype}_{c}_1"
                    return Device(ps, key, dtype, c, sn, inv.sn, site.site_id, name, model, uuid + n, comm)

                if inv.battery is None:
                    out.append(dev(1, inv.sn, f"{inv.model}({comm})_001_{code:03d}", inv.model, 0))
                else:
                    out.append(dev(14, inv.sn, f"{inv.model}({comm})_001_{code:03d}", inv.model, 0))
                    out.append(dev(43, f"{inv.sn}B", f"Battery_{code:03d}", inv.battery.model, 1))
                    out.append(dev(7, f"{inv.sn}M", f"Meter_{code:03d}", "DTSU666", 2))
                out.append(dev(22, comm, f"WiNet-S_{code:03d}", "WiNet-S", 3, 247 + i))
        return out

    def _owned_sites(self, user: str) -> set[str]:
        u = self.users[user]
        return {s.site_id for s in self.plant.sites} if u.site_ids is None else set(u.site_ids)

    def _owned(self, call: Call) -> list[Device]:
        sites = self._owned_sites(call.extra["user"])
        return [d for d in self.devices if d.site_id in sites and d.ps_key not in self.hidden]

    # ---------------------------------------------------------------- routes

    def endpoints(self) -> Sequence[Endpoint]:
        handlers: dict[str, DeviceHandler] = {
            # notes §3.1: /openapi/login (doc §2.1, CN-doc); the English Appendix 7's
            # /v1/userService/login is the app API's path, not served here
            LOGIN: self._login,
            "/openapi/getOpenApiCallInfo": self._call_info,
            "/openapi/getPowerStationList": self._plant_list,
            "/openapi/getDeviceList": self._device_list,
            "/openapi/getOpenPointInfo": self._point_info,
            "/openapi/getDeviceRealTimeData": self._realtime,
            "/openapi/getPVInverterRealTimeData": self._pv_realtime,
            "/openapi/getDevicePointMinuteDataList": self._minute,
            "/openapi/getDevicePointsDayMonthYearDataList": self._day_month_year,
            "/openapi/getFaultAlarmInfo": self._faults,
        }
        return [Endpoint("POST", path, self._wrap(path, h)) for path, h in handlers.items()]

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.router.add_route("GET", TIMESTAMP, self._timestamp)
        app.router.add_route("*", "/openapi/{name:.*}", self._unknown)
        return app

    def _wrap(self, path: str, handler: DeviceHandler) -> DeviceHandler:
        async def run(call: Call) -> Any:
            lang = call.body.get("lang")
            if lang not in (None, "") and lang not in LANGS:
                raise sg_error("010", "er_parameter_value_invalid:lang")  # notes §3.1 (ES-notes)
            result = await handler(call)
            if self._null_results.get(path, 0) > 0:
                self._null_results[path] -= 1
                return None
            pending = self._value_injections.get(path)
            if pending:
                return _replace_points(result, pending.popleft())
            return result

        return run

    def _route(self, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            resp = await self._dispatch(endpoint, request)
            return self._finish(request, resp)

        return route

    def _finish(self, request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        """Encrypt the reply (when the call was), add the rate-limit and Date headers."""
        appkey = request.get(APPKEY_KEY)
        key = request.get(AES_KEY)
        if isinstance(resp, web.Response) and key is not None and isinstance(resp.body, bytes):
            try:
                json.loads(resp.body)
            except ValueError:
                pass  # proxy pages and truncated bodies go out as they are
            else:
                if self._bad_cipher.get(request.path, 0) > 0:
                    self._bad_cipher[request.path] -= 1
                    text = secrets.token_hex(40).upper()[:75]  # odd length: not even hex
                else:
                    text = aes_encrypt_hex(resp.body, key)
                resp = web.Response(status=resp.status, text=text, content_type="application/json")
        if isinstance(appkey, str) and appkey in self.apps:
            s = self.settings
            resp.headers["X-RateLimit-Burst-Capacity"] = str(s.burst)
            resp.headers["X-RateLimit-Replenish-Rate"] = str(s.replenish_per_s)
            resp.headers["X-RateLimit-Requested-Tokens"] = "1"
            resp.headers["X-RateLimit-Remaining"] = str(self.limits.remaining(self._throttle, appkey))
        resp.headers["Date"] = formatdate(self.clock(), usegmt=True)
        return resp

    async def _timestamp(self, request: web.Request) -> web.StreamResponse:
        reply = self.ok_reply(str(int(self.clock() * 1000)))
        return self._finish(request, reply.response())

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        # notes §1: a non-existent endpoint answers E900 like a non-granted one
        return self._finish(request, self.error_reply(code_id("E900"), MESSAGES["E900"]).response())

    # ---------------------------------------------------------------- envelopes

    def _envelope(self, code: str, msg: str, data: Any) -> dict[str, Any]:
        return {
            "req_serial_num": secrets.token_hex(16),
            "result_code": code,
            "result_msg": msg,
            "result_data": data,
        }

    def ok_reply(self, result: Any) -> Reply:
        msg = "success"
        if isinstance(result, _WithMsg):
            msg, result = result.msg, result.data
        return Reply(200, self._envelope("1", msg, result))

    def error_reply(self, code: int, message: str, http_status: int = 200) -> Reply:
        # notes §4.1: errors are HTTP 200 with result_data null
        name = RESULT_CODES[code] if 0 <= code < len(RESULT_CODES) else str(code)
        return Reply(http_status, self._envelope(name, message, None))

    def reply_code(self, reply: Reply) -> int | None:
        if isinstance(reply.body, dict) and reply.body.get("result_code") in RESULT_CODES:
            return RESULT_CODES.index(reply.body["result_code"])
        return None

    def _refuse(self, code: str, message: str | None = None) -> Reply:
        return self.error_reply(code_id(code), message or MESSAGES[code])

    async def _injected(self, injection: Injection) -> Reply:
        if injection.kind == "malformed":
            text = '{"req_serial_num":"0","result_code":"1","result_data":{"device_point_list":[{"dev'
            return Reply(200, text=text, content_type="application/json")
        if injection.kind == "http" and injection.code == 200:
            return Reply(200, text="", content_type="application/json")
        return await super()._injected(injection)

    def inject_null_result(self, path: str, count: int = 1) -> None:
        """Answer the next ``count`` successful calls of ``path`` with ``result_data: null``."""
        self._null_results[path] = self._null_results.get(path, 0) + count

    def inject_values(self, path: str, value: str | None, count: int = 1) -> None:
        """Answer the next ``count`` successful calls of ``path`` with every point value replaced by
        ``value`` (``None``, ``"--"``, ``""``, notes §5.2). The base ``nulls`` / ``strings`` /
        ``empty`` injections change only JSON numbers, and Sungrow's point values are strings."""
        self._value_injections.setdefault(path, deque()).extend([value] * count)

    def inject_bad_cipher(self, path: str, count: int = 1) -> None:
        """Answer the next ``count`` encrypted calls of ``path`` with a body that does not decrypt."""
        self._bad_cipher[path] = self._bad_cipher.get(path, 0) + count

    # ---------------------------------------------------------------- auth

    async def authenticate(self, call: Call) -> Reply | None:
        """Headers, decryption, api_key_param, appkey, grant, token (module docstring order)."""
        request = call.request
        headers = request.headers
        access = headers.get("x-access-key")
        if not access:
            return self._refuse("E911")
        app_by_access = self._by_access.get(access)
        if app_by_access is None:
            return self._refuse("E912")
        request[APPKEY_KEY] = app_by_access.appkey
        if headers.get("sys_code") != "901":
            return self._refuse("003")
        text = await request.text()
        secret = headers.get("x-random-secret-key")
        encrypted = bool(secret)
        if secret:
            if self.keys is None:
                return self._refuse("E906")  # Decision: no key pair → nothing decrypts
            try:
                plain_key = self.keys.decrypt_secret(secret)
            except ValueError:
                return self._refuse("E906")
            if len(plain_key) != 16:
                return self._refuse("E907")
            request[AES_KEY] = plain_key
            try:
                body = json.loads(aes_decrypt_hex(text, plain_key).decode())
            except (ValueError, UnicodeDecodeError):
                return self._refuse("E905")
        else:
            try:
                body = json.loads(text)
            except ValueError:
                # Decision: a body that is not JSON without the key header is an encrypted call
                # missing its key (E904)
                return self._refuse("E904")
        if not isinstance(body, dict):
            return self._refuse("010")
        call.body = body
        if encrypted:
            refusal = self._check_api_key_param(body, call.t)
            if refusal is not None:
                return refusal
        appkey = body.get("appkey")
        if not appkey:
            return self._refuse("001")
        app = self.apps.get(str(appkey))
        if app is None:
            return self._refuse("E00000")
        if app.access_key != access:
            return self._refuse("E914")
        if app.expired:
            return self._refuse("E00001")
        if not encrypted and app.encrypted_only:
            return self._refuse("E902")
        call.account = app.appkey
        if call.path in app.denied:
            return self._refuse("E900")
        if call.path == LOGIN:
            return None
        token = body.get("token")
        if not token:
            return self._refuse("002")
        session = self.sessions.get(str(token))
        if session is None or session.appkey != app.appkey or session.expires <= call.t:
            return self._refuse("E00003")
        session.expires = call.t + self.settings.token_ttl_s  # doc §1.1: sliding validity
        call.extra["user"] = session.user
        return None

    def _check_api_key_param(self, body: Mapping[str, Any], now: float) -> Reply | None:
        param = body.get("api_key_param")
        if not isinstance(param, dict):
            return self._refuse("E908")
        nonce = param.get("nonce")
        if not isinstance(nonce, str) or not NONCE_RE.fullmatch(nonce):
            return self._refuse("E909")
        try:
            ts = int(param.get("timestamp"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return self._refuse("E913")
        if abs(ts / 1000 - now) > self.settings.timestamp_tolerance_s:
            return self._refuse("E913")
        memory = self.settings.nonce_memory_s
        for old in [n for n, t in self._nonces.items() if t <= now - memory]:
            del self._nonces[old]
        if nonce in self._nonces:
            return self._refuse("E910")
        self._nonces[nonce] = now
        return None

    async def parse(self, call: Call) -> None:
        """The body was read and decrypted in :meth:`authenticate`; name the devices for the log."""
        keys = call.body.get("ps_key_list") if isinstance(call.body, dict) else None
        if isinstance(keys, list):
            call.devices = tuple(str(k) for k in keys if isinstance(k, str))

    # ---------------------------------------------------------------- limits

    def charges(self, call: Call, endpoint: Endpoint) -> Sequence[Charge]:
        """Throttle (E901) first, then hourly (E999) and daily (E998) quota, then logins (E916)."""
        appkey = call.account or ""
        out = [
            Charge(self._throttle, appkey),
            Charge(self._hourly[appkey], appkey),
            Charge(self._daily[appkey], appkey),
        ]
        if call.path == LOGIN:
            out.append(Charge(self._logins, str(call.body.get("user_account", ""))))
        return out

    def limit_refusal(self, call: Call, charge: Charge) -> Reply:
        name = charge.limit.name
        code = {"throttle": "E901", "hourly": "E999", "daily": "E998", "login": "E916"}[name]
        return self._refuse(code)

    # ---------------------------------------------------------------- time helpers

    def zone_of(self, device: Device) -> str:
        return next(s.zone for s in self.plant.sites if s.site_id == device.site_id)

    def period_start(self, sn: str, t: float, period: str) -> int:
        """Local start of ``t``'s month or year at ``sn``'s site, not before commissioning."""
        zone = self.plant.site_of(sn).zone
        dt = datetime.fromtimestamp(t, zone_info(zone))
        first = date(dt.year, dt.month if period == "month" else 1, 1)
        start = int(datetime(first.year, first.month, 1, tzinfo=zone_info(zone)).timestamp())
        return max(start, self.plant.commissioned_at(sn))

    def _parse_local(self, text: str, fmt: str) -> datetime:
        try:
            dt = datetime.strptime(text, fmt)
        except ValueError as err:
            raise sg_error("010", "er_parameter_value_invalid:time") from err
        if dt.strftime(fmt) != text:
            raise sg_error("010", "er_parameter_value_invalid:time")
        return dt

    @staticmethod
    def _to_utc(naive: datetime, zone: str, fold: int) -> float:
        return naive.replace(tzinfo=zone_info(zone), fold=fold).timestamp()

    # ---------------------------------------------------------------- handlers: account

    async def _login(self, call: Call) -> Any:
        body = call.body
        account = _str_param(body, "user_account")
        password = _str_param(body, "user_password")
        user = self.users.get(account)
        state = self._user_state.setdefault(account, _UserState())
        s = self.settings
        base: dict[str, Any] = {"token": None, "user_account": account, "disable_time": None}
        if user is None:
            return {**base, "login_state": "-1", "msg": "账号不存在"}  # CN-doc failure sample
        if user.locked:
            return {**base, "login_state": "5"}
        if state.locked_until > call.t:
            disable = local_stamp(state.locked_until, "UTC", "%Y-%m-%d %H:%M:%S")
            return {**base, "login_state": "2", "err_times": str(state.errors), "disable_time": disable}
        if not secrets.compare_digest(password.encode(), user.password.encode()):
            state.errors += 1
            remain = max(0, s.max_password_errors - state.errors)
            if remain == 0:
                state.locked_until = call.t + s.lock_s
                state.errors = 0
                disable = local_stamp(state.locked_until, "UTC", "%Y-%m-%d %H:%M:%S")
                return {**base, "login_state": "2", "err_times": str(s.max_password_errors),
                        "remain_times": "0", "disable_time": disable}  # fmt: skip
            return {**base, "login_state": "0", "err_times": str(state.errors), "remain_times": str(remain)}
        state.errors = 0
        appkey = call.account or ""
        if s.single_token:
            for tok in [t for t, v in self.sessions.items() if v.user == account and v.appkey == appkey]:
                del self.sessions[tok]
        token = f"{user.user_id}_{secrets.token_hex(16)}"
        self.sessions[token] = _Session(account, appkey, call.t + s.token_ttl_s)
        return {
            **base,
            "login_state": "1",
            "token": token,
            "user_id": str(user.user_id),
            "user_name": account.split("@")[0],
            "email": account,
            "err_times": "0",
            "language": "English",
            "user_master_org_id": str(user.user_id + 1),
            "user_master_org_name": "Demo organisation",
            "mobile_tel": None,
        }

    def expire_tokens(self) -> None:
        """Invalidate every token (as the gateway may at any time)."""
        self.sessions.clear()

    async def _call_info(self, call: Call) -> Any:
        appkey = call.account or ""
        hourly, daily = self._hourly[appkey], self._daily[appkey]
        used_hour = self.limits.used(hourly, appkey)
        current = datetime.fromtimestamp(call.t, zone_info("UTC")).hour  # Decision: gateway hours in UTC
        return {
            "per_day_access_times_config": str(daily.max_calls),
            "curr_hour_accessed_times": str(used_hour),
            "today_accessed_times": str(self.limits.used(daily, appkey)),
            "per_hour_access_times_config": [
                {"hour": str(h), "max_call_times": hourly.max_calls} for h in range(24)
            ],
            "per_hour_residue_times": [
                {
                    "times": str(max(0, hourly.max_calls - used_hour) if h == current else hourly.max_calls),
                    "hour": f"{h:02d}",
                }
                for h in range(24)
            ],
        }

    # ---------------------------------------------------------------- handlers: discovery

    def _device_status(self, device: Device, now: float) -> tuple[int, int]:
        """(dev_status 1/0, dev_fault_status 1 fault / 4 normal) from the newest upload; the plant
        is online while any inverter is, in fault while any is."""
        online = fault = False
        for sn in self._sns(device):
            u = self.plant.upload_time(sn, now)
            online |= u is not None and now - u <= 3 * self.plant.inverter(sn).upload_interval_s
            fault |= bool(self.plant.active_faults(sn, now))
        return (1 if online else 0), (1 if fault else 4)

    def _sns(self, device: Device) -> list[str]:
        """The plant-model inverters behind a device (all of the site's for the plant)."""
        if device.device_type != 11:
            return [device.inverter_sn]
        site = next(s for s in self.plant.sites if s.site_id == device.site_id)
        return [inv.sn for inv in site.inverters]

    def _live_ctx(self, d: Device, now: float) -> _Ctx | None:
        """The values behind a realtime answer: the newest upload(s) at ``now``."""
        if d.device_type != 11:
            u = self.plant.upload_time(d.inverter_sn, now)
            return None if u is None else _Ctx(self, d, self.plant.truth(d.inverter_sn, u), u)
        parts = [t for t in (self.plant.snapshot(sn, now) for sn in self._sns(d)) if t is not None]
        if not parts:
            return None
        return _Ctx(self, d, parts[0], max(t.t for t in parts), tuple(parts))

    async def _plant_list(self, call: Call) -> Any:
        page, size = _page(call.body)
        sites = self._owned_sites(call.extra["user"])
        rows = [self._plant_row(s, call.t) for s in self.plant.sites if s.site_id in sites]
        return _paged(rows, page, size)

    def _plant_row(self, site: Site, now: float) -> dict[str, Any]:
        zone = site.zone
        dt = datetime.fromtimestamp(now, zone_info(zone))
        offset = dt.utcoffset() or timedelta(0)
        if not self.tz_follows_dst:
            offset -= dt.dst() or timedelta(0)
        power = today = total = 0.0
        last = 0
        faults = 0
        online = False
        for inv in site.inverters:
            u = self.plant.upload_time(inv.sn, now)
            online |= u is not None and now - u <= 3 * inv.upload_interval_s
            faults += len(self.plant.active_faults(inv.sn, now))
            if u is None:
                continue
            truth = self.plant.truth(inv.sn, u)
            power += truth.ac_power_w
            today += truth.today.yield_wh
            total += truth.total.yield_wh
            last = max(last, u)
        stamp = datetime.fromtimestamp(last, zone_info(zone)).isoformat(timespec="seconds") if last else None
        has_battery = any(inv.battery is not None for inv in site.inverters)
        return {
            "ps_id": self.ps_ids[site.site_id],
            "ps_name": site.name,
            "ps_type": 5 if has_battery else 4,
            "valid_flag": 1,
            "share_type": "0",
            "build_status": 2,
            "connect_type": 2,
            "install_date": f"{site.commissioned:%Y-%m-%d} 09:00:00",
            "ps_current_time_zone": gmt_label(int(offset.total_seconds())),
            "ps_location": ", ".join(x for x in (site.address, site.city, site.country) if x),
            "description": None,
            "latitude": site.latitude,
            "longitude": site.longitude,
            "fault_count": faults,
            "alarm_count": 0,
            "ps_status": 1 if online else 0,
            "ps_fault_status": 1 if faults else 3,  # doc sample: 3 = normal (notes §5.10)
            "curr_power": scaled(power, ("W", "kW", "MW")),
            "today_energy": scaled(today, ("Wh", "kWh", "MWh")),
            "total_energy": scaled(total, ("Wh", "kWh", "MWh")),
            "total_capcity": {
                "unit": "kWp",
                "value": f"{sum(inv.kwp for inv in site.inverters):g}",
            },
            "cur_power_update_time": stamp,
            "today_energy_update_time": stamp,
            "total_energy_update_time": stamp,
        }

    async def _device_list(self, call: Call) -> Any:
        ps_id = _str_param(call.body, "ps_id")
        page, size = _page(call.body)
        owned = [d for d in self._owned(call) if str(d.ps_id) == ps_id]
        if not owned:
            raise sg_error("010", "er_parameter_value_invalid:ps_id")  # Decision
        types = call.body.get("device_type_list")
        wanted: set[int] | None = None
        if types not in (None, "", []):
            if not isinstance(types, list):
                raise sg_error("010", "er_parameter_value_invalid:device_type_list")
            try:
                wanted = {int(x) for x in types}
            except (TypeError, ValueError) as err:
                raise sg_error("010", "er_parameter_value_invalid:device_type_list") from err
        virtual = str(call.body.get("is_virtual_unit", "0")) == "1"
        rows = []
        for d in owned:
            if (d.device_type == 11) != virtual:
                continue
            if wanted is not None and d.device_type not in wanted:
                continue
            rows.append(self._device_row(d, call.t))
        return _paged(rows, page, size)

    def _device_row(self, d: Device, now: float) -> dict[str, Any]:
        status, fault = (1, 4) if d.device_type == 11 else self._device_status(d, now)
        return {
            "ps_key": d.ps_key,
            "uuid": d.uuid,
            "type_name": TYPE_NAMES[d.device_type],
            "factory_name": "SUNGROW",
            "device_model_code": d.model,
            "device_model_id": stable_hash("model", d.model) % 1000,
            "device_name": d.name,
            "device_type": d.device_type,
            "device_code": d.code,
            "chnnl_id": 1 if d.device_type != 11 else 0,
            "rel_state": 1,
            "device_sn": d.sn or None,
            "communication_dev_sn": d.comm_sn or None,
            "dev_status": str(status),  # notes §5.2: a string here, an integer in realtime
            "dev_fault_status": str(fault),
        }

    async def _point_info(self, call: Call) -> Any:
        dtype = _int_param(call.body, "device_type", 1, 99)
        kind = _int_param(call.body, "type", 1, 5)
        if kind not in (1, 2, 5):
            raise sg_error("010", "er_parameter_value_invalid:type")
        page, size = _page(call.body)
        rows = []
        for p in POINTS.get(dtype, ()):
            if p.kind != kind:
                continue
            row: dict[str, Any] = {
                "device_type": dtype,
                "point_id": p.pid,
                "point_name": p.name,
                "open_point_remark": None,
            }
            if kind != 1:
                show = p.show_unit or p.unit
                row["show_unit"] = show
                # notes §5.5: storage_unit is not reliable for ESS / meter points (shows kW / kWh)
                row["storage_unit"] = show if dtype in (7, 14) else p.unit
            rows.append(row)
        return _paged(rows, page, size)

    # ---------------------------------------------------------------- handlers: live

    def _select(self, call: Call, dtype: int | None) -> tuple[list[Device], dict[str, Any]]:
        """The devices named by ``ps_key_list`` (or ``sn_list``) and the fail lists."""
        owned = {d.ps_key: d for d in self._owned(call)}
        keys = call.body.get("ps_key_list")
        fail: dict[str, Any] = {}
        out: list[Device] = []
        if keys not in (None, [], ""):
            names = _list_param(call.body, "ps_key_list")
            if len(names) > self.settings.max_devices:
                raise sg_error("010", "er_parameter_value_invalid:ps_key_list")
            bad = []
            for k in dict.fromkeys(names):
                d = owned.get(k)
                if d is None or (dtype is not None and d.device_type != dtype):
                    bad.append(k)
                else:
                    out.append(d)
            if bad:
                fail["fail_ps_key_list"] = bad
            return out, fail
        if call.body.get("sn_list") in (None, [], ""):
            raise sg_error("009", "er_missing_parameter:ps_key_list")
        sns = _list_param(call.body, "sn_list")
        if len(sns) > self.settings.max_devices:
            raise sg_error("010", "er_parameter_value_invalid:sn_list")
        by_sn = {d.sn: d for d in owned.values() if d.sn}
        bad = []
        for sn in dict.fromkeys(sns):
            d = by_sn.get(sn)
            if d is None or (dtype is not None and d.device_type != dtype):
                bad.append(sn)
            else:
                out.append(d)
        fail["fail_sn_list"] = bad
        return out, fail

    def _device_point(self, d: Device, now: float, wanted: Sequence[str] | None) -> dict[str, Any]:
        """One ``device_point`` map; ``wanted`` point keys (``p<id>``) or None for all."""
        status, fault = self._device_status(d, now)
        ctx = self._live_ctx(d, now)
        zone = self.zone_of(d)
        row: dict[str, Any] = {
            "device_name": d.name,
            "device_sn": d.sn or None,
            "device_time": None if ctx is None else bucket(ctx.u, zone).strftime("%Y%m%d%H%M%S"),
            "ps_id": d.ps_id,
            "ps_key": d.ps_key,
            "uuid": d.uuid,
            "dev_status": status,
            "dev_fault_status": fault,
            "communication_dev_sn": d.comm_sn,
        }
        points = {f"p{p.pid}": p for p in POINTS[d.device_type]}
        keys = list(points) + [f"p{i}" for i in PV_NULL_IDS] if wanted is None else list(wanted)
        for key in keys:
            p = points.get(key)
            row[key] = None if p is None or ctx is None else _fmt(p.get(ctx), p.decimals)
        return row

    async def _realtime(self, call: Call) -> Any:
        dtype = _int_param(call.body, "device_type", 1, 99)
        ids = _list_param(call.body, "point_id_list")
        if len(ids) > self.settings.realtime_max_points:
            # notes §2.2 (KRoperUK): "Parameters point_id_list size is over 100"
            raise sg_error("010", "Parameters point_id_list size is over 100")
        devices, fail = self._select(call, dtype)
        if dtype not in POINTS:  # Decision: a device type without open points fails every device
            if "fail_sn_list" in fail:
                fail["fail_sn_list"] = [*fail["fail_sn_list"], *(d.sn for d in devices)]
            else:
                fail["fail_ps_key_list"] = [*fail.get("fail_ps_key_list", []), *(d.ps_key for d in devices)]
            devices = []
        wanted = [f"p{i}" for i in dict.fromkeys(ids)]  # bare ids (doc §2.14.5); "p1" → "pp1": null
        rows = [{"device_point": self._device_point(d, call.t, wanted)} for d in devices]
        return {"device_point_list": rows, **fail}

    async def _pv_realtime(self, call: Call) -> Any:
        devices, fail = self._select(call, 1)
        rows = [{"device_point": self._device_point(d, call.t, None)} for d in devices]
        return {"device_point_list": rows, **fail}

    # ---------------------------------------------------------------- handlers: history

    def _history_devices(self, call: Call) -> tuple[list[Device], list[str]]:
        names = _list_param(call.body, "ps_key_list")
        if len(names) > self.settings.max_devices:
            raise sg_error("010", "er_parameter_value_invalid:ps_key_list")
        owned = {d.ps_key: d for d in self._owned(call)}
        good = [owned[k] for k in dict.fromkeys(names) if k in owned and owned[k].device_type in POINTS]
        bad = [k for k in dict.fromkeys(names) if k not in owned or owned[k].device_type not in POINTS]
        if len({d.device_type for d in good}) > 1:
            raise sg_error("010", "er_parameter_value_invalid:ps_key_list")  # doc: same type only
        return good, bad

    def _today_cutoff(self, d: Device, now: float) -> float:
        """History ends at ``now``, or at local midnight when the current day is not served."""
        if self.current_day:
            return now
        zone = self.zone_of(d)
        return _midnight(zone, datetime.fromtimestamp(now, zone_info(zone)).date()) - 1

    async def _minute(self, call: Call) -> Any:
        body = call.body
        points_text = _str_param(body, "points")
        devices, bad = self._history_devices(call)
        start_text = _str_param(body, "start_time_stamp")
        end_text = _str_param(body, "end_time_stamp")
        interval_text = body.get("minute_interval")
        interval = 5
        if interval_text not in (None, ""):
            interval = _int_param(body, "minute_interval", 5, 1440)
            if interval % 5:
                raise sg_error("010", "er_parameter_value_invalid:minute_interval")
        wanted = [p.strip() for p in points_text.split(",") if p.strip()]
        if len(wanted) > self.settings.minute_max_points:
            raise sg_error("010", "er_parameter_value_invalid:points")  # doc §2.7.1: < 50 points
        start = self._parse_local(start_text, "%Y%m%d%H%M%S")
        end = self._parse_local(end_text, "%Y%m%d%H%M%S")
        limit = self.settings.minute_window_s
        if end < start or (end - start).total_seconds() > limit:
            # notes §5.8: "the query time interval exceeds the maximum limit" (010)
            raise sg_error("010", "the query time interval exceeds the maximum limit")
        data: dict[str, Any] = {}
        for d in devices:
            zone = self.zone_of(d)
            lo = min(self._to_utc(start, zone, 0), self._to_utc(start, zone, 1))
            hi = max(self._to_utc(end, zone, 0), self._to_utc(end, zone, 1))
            if hi - lo > limit:
                raise sg_error("010", "the query time interval exceeds the maximum limit")
            points = {f"p{p.pid}": p for p in POINTS[d.device_type]}
            chosen = [points[k] for k in dict.fromkeys(wanted) if k in points]
            cutoff = min(hi + 300, self._today_cutoff(d, call.t))
            rows = []
            for g, ctx in self._samples(d, lo - 300, cutoff):
                minutes = g.hour * 60 + g.minute
                if not start <= g <= end or minutes % interval:
                    continue
                row: dict[str, Any] = {}
                for p in chosen:
                    v = _fmt(p.get(ctx), p.decimals)
                    if v is not None:
                        row[f"p{p.pid}"] = v
                row["time_stamp"] = g.strftime("%Y%m%d%H%M%S")
                rows.append(row)
            data[d.ps_key] = rows
        msg = "success" if not bad else "illegal device list:" + ",".join(bad)
        return _WithMsg(msg, data)

    def _samples(self, d: Device, begin: float, end: float) -> list[tuple[datetime, _Ctx]]:
        """(local 5-minute bucket, values) for each upload in ``[begin, end]``; for the plant, the
        buckets in which every inverter uploaded (**Decision**: otherwise the plant row is missing)."""
        zone = self.zone_of(d)
        if d.device_type != 11:
            sn = d.inverter_sn
            return [
                (bucket(u, zone), _Ctx(self, d, self.plant.truth(sn, u), u))
                for u in self.plant.upload_times(sn, begin, end)
            ]
        per_sn = [{u // 300: u for u in self.plant.upload_times(sn, begin, end)} for sn in self._sns(d)]
        common = sorted(set.intersection(*(set(m) for m in per_sn))) if per_sn else []
        out = []
        for k in common:
            parts = tuple(self.plant.truth(sn, m[k]) for sn, m in zip(self._sns(d), per_sn, strict=True))
            u = max(m[k] for m in per_sn)
            out.append((bucket(u, zone), _Ctx(self, d, parts[0], u, parts)))
        return out

    async def _day_month_year(self, call: Call) -> Any:
        body = call.body
        devices, bad = self._history_devices(call)
        point_names = [p.strip() for p in _str_param(body, "data_point").split(",") if p.strip()]
        start_text = _str_param(body, "start_time")
        end_text = _str_param(body, "end_time")
        types = [t.strip() for t in _str_param(body, "data_type").split(",") if t.strip()]
        query = _int_param(body, "query_type", 1, 3)
        order = str(body.get("order", "0") or "0")
        if order not in ("0", "1") or not types or any(t not in ("1", "2", "3", "4") for t in types):
            raise sg_error("010", "er_parameter_value_invalid:data_type")
        if query == 1 and "4" in types:
            raise sg_error("010", "er_parameter_value_invalid:data_type")  # doc: no day total
        fmt, cap = {1: ("%Y%m%d", self.settings.day_max), 2: ("%Y%m", self.settings.month_max),
                    3: ("%Y", self.settings.year_max)}[query]  # fmt: skip
        start = self._parse_local(start_text, fmt).date()
        end = self._parse_local(end_text, fmt).date()
        periods = _periods(start, end, query)
        if end < start or len(periods) > cap:
            raise sg_error("010", "the query time interval exceeds the maximum limit")
        data: dict[str, Any] = {}
        for d in devices:
            zone = self.zone_of(d)
            sn = d.inverter_sn
            points = {f"p{p.pid}": p for p in POINTS[d.device_type]}
            chosen = [points[k] for k in dict.fromkeys(point_names) if k in points and points[k].counter]
            series: dict[str, list[dict[str, str]]] = {f"p{p.pid}": [] for p in chosen}
            cutoff = self._today_cutoff(d, call.t)
            for first, nxt, label in periods:
                sums: dict[str, dict[str, float]] = {}
                for sn in self._sns(d):  # the plant (type 11) sums its inverters
                    a = max(float(self.plant.commissioned_at(sn)), _midnight(zone, first))
                    b = min(_midnight(zone, nxt) - 1, cutoff)
                    ub = self.plant.upload_time(sn, b)
                    if b < a or ub is None or ub < a:
                        continue
                    firsts = self.plant.upload_times(sn, a, a + 3600)
                    ua = firsts[0] if firsts else ub
                    for p in chosen:
                        acc = sums.setdefault(f"p{p.pid}", {})
                        for t, v in _period_values(self.plant, sn, p, types, ua, ub, a, query).items():
                            acc[t] = acc.get(t, 0.0) + v
                for key, vals in sums.items():
                    if vals:
                        series[key].append({**{t: f"{v:.4f}" for t, v in vals.items()}, "time_stamp": label})
            if order == "1":
                for rows in series.values():
                    rows.reverse()
            data[d.ps_key] = {k: v for k, v in series.items() if v}
        msg = "success" if not bad else "illegal device list:" + ",".join(bad)
        return _WithMsg(msg, data)

    # ---------------------------------------------------------------- handlers: faults

    async def _faults(self, call: Call) -> Any:
        body = call.body
        page, size = _page(body)
        status = str(body.get("process_status") or "8")
        if status not in ("8", "9", "999"):
            raise sg_error("010", "er_parameter_value_invalid:process_status")
        ps_id = body.get("ps_id")
        owned = [d for d in self._owned(call) if d.device_type in (1, 14)]
        if ps_id not in (None, ""):
            owned = [d for d in owned if str(d.ps_id) == str(ps_id)]
        by_sn = {d.inverter_sn: d for d in owned}
        start_t = body.get("startTime")
        end_t = body.get("endTime")
        rows = []
        for fault in self.plant.faults:
            d = by_sn.get(fault.sn)
            if d is None or fault.start > call.t:
                continue
            zone = self.zone_of(d)
            lo, hi = self._fault_window(start_t, end_t, zone, call.t, status)
            if not lo <= fault.start <= hi:
                continue
            closed = fault.end <= call.t
            if (status == "8" and closed) or (status == "9" and not closed):
                continue
            rows.append(self._fault_row(d, fault, zone, closed))
        rows.sort(key=lambda r: str(r["create_time"]), reverse=True)
        return _paged(rows, page, size)

    def _fault_window(self, start: Any, end: Any, zone: str, now: float, status: str) -> tuple[float, float]:
        def parse(v: Any) -> datetime:
            text = str(v)
            for fmt in ("%Y%m%d%H%M", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"):
                try:
                    return datetime.strptime(text, fmt)
                except ValueError:
                    continue
            raise sg_error("010", "er_parameter_value_invalid:startTime")

        if start in (None, "") and end in (None, ""):
            dt = datetime.fromtimestamp(now, zone_info(zone))  # doc §2.9.3: the current month
            first = datetime(dt.year, dt.month, 1)
            days = calendar.monthrange(dt.year, dt.month)[1]
            a, b = first, first + timedelta(days=days) - timedelta(seconds=1)
        else:
            a = parse(start) if start not in (None, "") else datetime(1970, 1, 1)
            b = (
                parse(end)
                if end not in (None, "")
                else datetime.fromtimestamp(now, zone_info(zone)).replace(tzinfo=None)
            )
            if b < a:
                raise sg_error("010", "er_parameter_value_invalid:endTime")
            if status in ("9", "999") and (a.year, a.month) != (b.year, b.month):
                # doc §2.9.3, notes §5.10: closed faults cannot be queried across months
                raise sg_error("010", "er_parameter_value_invalid:endTime")
        return self._to_utc(a, zone, 0), self._to_utc(b, zone, 1) + 59

    def _fault_row(self, d: Device, fault: Fault, zone: str, closed: bool) -> dict[str, Any]:
        type_code = (60000 if d.device_type == 1 else 13800) + fault.code
        month = local_stamp(fault.start, zone, "%Y%m")
        uid = f"{stable_hash('fault', fault.sn, fault.start):x}"[:13]
        return {
            "ps_id": d.ps_id,
            "ps_key": d.ps_key,
            "ps_name": next(s.name for s in self.plant.sites if s.site_id == d.site_id),
            "fault_code": f"{type_code}.{month}.{uid}",
            "fault_type_code": type_code,
            "fault_type": 1,
            "fault_level": 1,
            "process_status": 9 if closed else 1,
            "fault_name": fault.message or f"Fault {fault.code}",
            "fault_desc": "",
            "type_name": TYPE_NAMES[d.device_type],
            "device_name": d.name,
            "device_model_code": d.model,
            "uuid": d.uuid,
            "create_time": local_stamp(fault.start, zone, "%Y-%m-%d %H:%M:%S"),
            "over_time": local_stamp(fault.end, zone, "%Y-%m-%d %H:%M:%S") if closed else "",
        }


def _replace_points(obj: Any, value: str | None) -> Any:
    """A copy of ``obj`` with every ``p<id>`` value replaced by ``value``."""
    if isinstance(obj, _WithMsg):
        return _WithMsg(obj.msg, _replace_points(obj.data, value))
    if isinstance(obj, dict):
        return {
            k: value
            if re.fullmatch(r"p\d+", str(k)) and not isinstance(v, list | dict)
            else _replace_points(v, value)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_replace_points(x, value) for x in obj]
    return obj


@dataclass(frozen=True)
class _WithMsg:
    """A handler result with a ``result_msg`` other than "success" (doc §1.3 (7))."""

    msg: str
    data: Any = field(default=None)


def _midnight(zone: str, day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=zone_info(zone)).timestamp()


def _periods(start: date, end: date, query: int) -> list[tuple[date, date, str]]:
    """(first day, first day of the next period, label) for each period from start to end."""
    out: list[tuple[date, date, str]] = []
    cur = start
    while cur <= end and len(out) <= 400:
        if query == 1:
            nxt = cur + timedelta(days=1)
            label = f"{cur:%Y%m%d}"
        elif query == 2:
            nxt = date(cur.year + cur.month // 12, cur.month % 12 + 1, 1)
            label = f"{cur:%Y%m}"
        else:
            nxt = date(cur.year + 1, 1, 1)
            label = f"{cur:%Y}"
        out.append((cur, nxt, label))
        cur = nxt
    return out


def _period_values(
    plant: Plant, sn: str, p: Point, types: Sequence[str], ua: int, ub: int, a: float, query: int
) -> dict[str, float]:
    """Data-type values of energy point ``p`` over one period (module docstring, History)."""
    attr = p.counter or ""
    row: dict[str, float] = {}

    def total(t: float) -> float:
        return float(getattr(plant.counters(sn, t), attr))

    for t in types:
        v: float | None
        if p.period == "total":
            v = {"2": total(ub), "3": total(ua), "4": total(ub)}.get(t)
        elif query == 1:
            v = {"2": total(ub) - total(a), "3": 0.0}.get(t)
        else:
            v = {"4": total(ub) - total(a)}.get(t)
        if v is not None:
            row[t] = v
    return row


# ------------------------------------------------------------------------------------------------
# Demo

DEMO_SITE_ID = "sungrow-demo-site"
DEMO_PS_ID = 1129147
DEMO_HYBRID_SN = "A2350000001"
DEMO_PV_SN = "A2350000002"


def demo_plant(commissioned: date | None = None, *, seed: int = 2) -> Plant:
    """The demo plant in Europe/Amsterdam: a hybrid SH10RT (two strings, a 9.6 kWh battery) and a
    PV-only SG5.0RS; the PV inverter has a grid fault (code 5) yesterday from 12:00 to 12:40 local."""
    if commissioned is None:
        commissioned = datetime.now().date() - timedelta(days=40)
    zone = "Europe/Amsterdam"
    hybrid = Inverter(
        DEMO_HYBRID_SN,
        "SH10RT",
        10000,
        (PvString(6.0, 0.3, 380.0), PvString(4.0, -0.3, 320.0)),
        battery=Battery(9600, max_power_w=5000, model="SBR096", grid_charge=GridCharge(2, 5, 40, 2000)),
        phases=3,
        load_kwh_per_day=12.0,
        logger_sn="B2350000101",
    )
    pv = Inverter(DEMO_PV_SN, "SG5.0RS", 5000, (PvString(5.2),), logger_sn="B2350000102")
    site = Site(
        DEMO_SITE_ID, "Demo Home NL", zone, 52.37, 4.90, (hybrid, pv), commissioned,
        country="Netherlands", city="Amsterdam",
    )  # fmt: skip
    yesterday = max(commissioned + timedelta(days=1), datetime.now().date() - timedelta(days=1))
    faults = [
        Fault(DEMO_PV_SN, 5, local_time(zone, yesterday, 12), local_time(zone, yesterday, 12, 40),
              "Grid Overvoltage"),
    ]  # fmt: skip
    outages: list[Outage] = []
    return Plant([site], seed=seed, faults=faults, outages=outages)


def demo_sim(*, clock: Clock | None = None, encrypted: bool = False, host: str = "127.0.0.1") -> SungrowSim:
    """The demo gateway: :func:`demo_plant`, the demo app and account, optionally encrypted."""
    return SungrowSim(
        demo_plant(),
        apps=[SungrowApp(DEMO_APPKEY, DEMO_ACCESS_KEY, encrypted_only=encrypted)],
        keys=GatewayKeys() if encrypted else None,
        ps_ids={DEMO_SITE_ID: DEMO_PS_ID},
        clock=clock,
        host=host,
    )


__all__ = [
    "DEMO_ACCESS_KEY",
    "DEMO_APPKEY",
    "DEMO_PASSWORD",
    "DEMO_USER",
    "RESULT_CODES",
    "Device",
    "GatewayKeys",
    "Point",
    "SungrowApp",
    "SungrowLimits",
    "SungrowQuirks",
    "SungrowSim",
    "SungrowUser",
    "code_id",
    "code_name",
    "demo_plant",
    "demo_sim",
]
