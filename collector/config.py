"""The configuration: one YAML file in, one validated, frozen `Config` out.

The public keys are those of `interface.md`; `config.example.yaml` shows every
one of them. Loading happens in three steps:

1. YAML is parsed (`yaml.SafeLoader`, plus a duplicate-key check).
2. `${VAR}` references are expanded in string *values*, after parsing, so a
   secret holding `: ` or `#` cannot break the YAML. The forms are those of
   the shell and Telegraf: `${VAR}` (unset is an error), `${VAR:-default}`
   (unset or empty), `${VAR-default}` (unset), `${VAR:?message}` (error if
   unset or empty), `${VAR?message}` (error if unset); `$$` is a literal `$`.
   The result is a string; keys that want a number accept numeric strings,
   so `interval: ${POLL}` works.
3. Every section is validated. Errors raise `ConfigError(key, message)` with
   the exact key (`sources[1].interval`, `influxdb.api`); unknown keys are
   errors with a "did you mean" suggestion.

Any credential (a vendor's credentials, `influxdb.token`, `.username`,
`.password`) may be given as `<key>_file: PATH` instead (Docker and systemd
secrets; a relative PATH is relative to the config file's folder). Secret
values never appear in `repr()` or in an error message, and all of them are
collected in `Config.secrets` for the log redactor.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import os
import re
import stat
import types
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import yaml

from collector.errors import ConfigError
from collector.vendors import VENDOR_SPECS
from collector.vendors.base import Limits, VendorSpec

__all__ = [
    "CONFIG_ENV",
    "CONFIG_VERSION",
    "DEFAULT_BUFFER_MAX_SIZE",
    "DEFAULT_STATE_DIR",
    "BackfillConfig",
    "Config",
    "InfluxConfig",
    "SourceConfig",
    "config_from_dict",
    "load_config",
    "parse_duration",
    "parse_size",
]

CONFIG_ENV = "SOLAR_COLLECTOR_CONFIG"
CONFIG_VERSION = 1
DEFAULT_STATE_DIR = Path("./state")
DEFAULT_BUFFER_MAX_SIZE = 1 << 30  # 1 GiB
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("auto", "json", "console")
INFLUX_APIS = ("v1", "v2")
LIMIT_KEYS = ("per_second", "per_minute", "per_hour", "per_day")

_TOP_KEYS = (
    "version",
    "timezone",
    "state_dir",
    "influxdb",
    "sources",
    "buffer_max_size",
    "log_level",
    "log_format",
)
_INFLUX_SECRET_KEYS = ("token", "username", "password")
_INFLUX_KEYS = (
    "url",
    "api",
    "org",
    "bucket",
    "database",
    "retention_policy",
    "timeout",
    "batch_size",
    "gzip_level",
    *_INFLUX_SECRET_KEYS,
    *(f"{k}_file" for k in _INFLUX_SECRET_KEYS),
)
_SOURCE_KEYS = (
    "name",
    "vendor",
    "base_url",
    "timezone",
    "site",
    "devices",
    "interval",
    "limits",
    "backfill",
)
_BACKFILL_KEYS = ("since",)


# --------------------------------------------------------------------------
# Value objects


@dataclass(frozen=True)
class InfluxConfig:
    """The InfluxDB sink. `api="v2"`: `/api/v2/write` (InfluxDB 2.x, 3.x, 1.8+); `"v1"`: `/write`."""

    url: str
    api: Literal["v1", "v2"] = "v2"
    org: str | None = None
    bucket: str | None = None
    token: str | None = field(default=None, repr=False)
    database: str | None = None
    retention_policy: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    batch_size: int = 5000
    gzip_level: int = 1


@dataclass(frozen=True)
class BackfillConfig:
    """Where the daemon's background backfill starts.

    Naive (a date is its midnight) unless the config wrote an explicit offset:
    a naive value is read in each *site's* zone (the device's, else the
    source's) when the backfill runs, as the `backfill --since` command does.
    """

    since: dt.datetime | None = None


@dataclass(frozen=True)
class SourceConfig:
    """One vendor account (a `sources[i]` entry), validated and with defaults applied."""

    name: str
    vendor: str
    base_url: str
    timezone: str  # IANA name: the source's own, else the top-level one
    site: str = ""  # the config's `site:`, else the source name
    devices: tuple[str, ...] | None = None  # None: every device the vendor lists
    interval: float | None = None  # seconds; None: the vendor's default
    limits: Limits = field(default_factory=Limits)  # vendor defaults with the config's overrides applied
    limits_overridden: tuple[str, ...] = ()  # the limit keys the config set
    backfill: BackfillConfig = field(default_factory=BackfillConfig)
    credentials: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}), repr=False, hash=False
    )
    index: int = 0  # position in `sources`, for error keys

    def __post_init__(self) -> None:
        if not self.site:
            object.__setattr__(self, "site", self.name)

    def tzinfo(self) -> zoneinfo.ZoneInfo:
        """The source's time zone."""
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def spec(self) -> VendorSpec:
        """The vendor's static facts (limits, credentials, streams)."""
        return VENDOR_SPECS[self.vendor]

    def key(self, name: str = "") -> str:
        """The config key of this source or one of its keys: `sources[1].interval`."""
        return f"sources[{self.index}].{name}" if name else f"sources[{self.index}]"


@dataclass(frozen=True)
class Config:
    """The whole configuration. `influxdb=None` selects the embedded default sink."""

    path: Path | None
    timezone: str
    state_dir: Path
    influxdb: InfluxConfig | None
    sources: tuple[SourceConfig, ...]
    buffer_max_size: int = DEFAULT_BUFFER_MAX_SIZE
    log_level: str = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    warnings: tuple[str, ...] = ()

    def source(self, name: str) -> SourceConfig | None:
        """The source called `name`, if any."""
        for src in self.sources:
            if src.name == name:
                return src
        return None


# --------------------------------------------------------------------------
# Durations and sizes

_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE = re.compile(rf"\s*(?:{_NUMBER}\s*[a-z]+\s*)+", re.IGNORECASE)
_DURATION_PART_RE = re.compile(rf"({_NUMBER})\s*([a-z]+)", re.IGNORECASE)
_BARE_NUMBER_RE = re.compile(rf"\s*\+?{_NUMBER}\s*")

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1 << 10,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1 << 20,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1 << 30,
    "gib": 1 << 30,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": 1 << 40,
    "tib": 1 << 40,
}
_SIZE_RE = re.compile(rf"\s*({_NUMBER})\s*([a-z]*)\s*", re.IGNORECASE)


def parse_duration(text: str | int | float) -> float:
    """Seconds in a duration: `30s`, `5m`, `1h`, `1h30m`, `1d`, `500ms`; a bare number is seconds.

    Units: ms, s, m, h, d, w (and their long forms `min`, `hours`, ...).
    Raises `ConfigError` (with an empty key) on anything else, negatives included.
    """
    if isinstance(text, bool):
        raise ConfigError("", "must be a duration such as 30s, 5m or 1h, not a boolean")
    if isinstance(text, (int, float)):
        value = float(text)
        if not math.isfinite(value) or value < 0:
            raise ConfigError("", f"must be a non-negative duration, not {text!r}")
        return value
    if not isinstance(text, str):
        raise ConfigError("", f"must be a duration such as 30s, 5m or 1h, not {_type_name(text)}")
    if _BARE_NUMBER_RE.fullmatch(text):
        return float(text)
    if not _DURATION_RE.fullmatch(text):
        raise ConfigError("", f"{text!r} is not a duration (write e.g. 30s, 5m, 1h or 1h30m)")
    total = 0.0
    for number, unit in _DURATION_PART_RE.findall(text):
        factor = _DURATION_UNITS.get(unit.lower())
        if factor is None:
            raise ConfigError(
                "", f"{text!r} is not a duration: unknown unit {unit!r} (use ms, s, m, h, d or w)"
            )
        total += float(number) * factor
    return total


def parse_size(text: str | int) -> int:
    """Bytes in a size: `500MB`, `1GiB`, `100k`; a bare integer is bytes.

    SI units (k, KB, MB, GB, TB) are powers of 1000, IEC units (KiB, MiB,
    GiB, TiB) powers of 1024, as in Telegraf. Case does not matter.
    """
    if isinstance(text, bool):
        raise ConfigError("", "must be a size such as 500MB or 1GiB, not a boolean")
    if isinstance(text, int):
        if text < 0:
            raise ConfigError("", f"must be a non-negative size, not {text}")
        return text
    if not isinstance(text, str):
        raise ConfigError("", f"must be a size such as 500MB or 1GiB, not {_type_name(text)}")
    match = _SIZE_RE.fullmatch(text)
    factor = _SIZE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or factor is None:
        raise ConfigError("", f"{text!r} is not a size (write e.g. 500MB, 1GiB or 100k)")
    return round(float(match.group(1)) * factor)


# --------------------------------------------------------------------------
# Loading


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate the YAML config file.

    `path=None` falls back to the `SOLAR_COLLECTOR_CONFIG` environment variable.
    A file that holds a credential inline and is readable by group or others
    adds a warning to `Config.warnings` (it does not fail).
    """
    env = os.environ if env is None else env
    if path is None or str(path) == "":
        path = env.get(CONFIG_ENV) or None
        if path is None:
            raise ConfigError("", f"no config file: pass --config or set {CONFIG_ENV}")
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"config file {file} not found") from None
    except IsADirectoryError:
        raise ConfigError("", f"config file {file} is a directory") from None
    except PermissionError:
        raise ConfigError("", f"config file {file}: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"config file {file} is not UTF-8 text") from None
    except OSError as err:
        raise ConfigError("", f"config file {file}: {err.strerror or err}") from None
    data = _parse_yaml(text, file)
    config, inline = _build(data, file, env)
    if inline:
        warning = _permissions_warning(file, inline)
        if warning:
            config = dataclasses.replace(config, warnings=(*config.warnings, warning))
    return config


def config_from_dict(
    data: Mapping[str, Any] | None,
    *,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Validate an already-parsed config (as `yaml.safe_load` gives it); `${VAR}` is still expanded.

    `path` names the file it came from: relative `*_file` paths resolve against its folder.
    """
    config, _ = _build(data, path, os.environ if env is None else env)
    return config


class _Loader(yaml.SafeLoader):
    """`SafeLoader` that refuses duplicate keys instead of silently keeping the last."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        line = key_node.start_mark.line + 1
        if key_node.value in seen:
            raise ConfigError(
                "",
                f"duplicate key {key_node.value!r} at line {line} (first at line {seen[key_node.value]})",
            )
        seen[key_node.value] = line
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, file: Path) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except ConfigError as err:  # a duplicate key
        raise ConfigError("", f"{file}: {err.message}") from None
    except yaml.MarkedYAMLError as err:
        # Built by hand: PyYAML's own message quotes the offending line, which
        # may hold a secret.
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = err.problem or err.context or "syntax error"
        raise ConfigError("", f"{file}: YAML syntax error{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError("", f"{file}: YAML error: {type(err).__name__}") from None


def _permissions_warning(file: Path, inline: Sequence[str]) -> str | None:
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o044:
        return None
    return (
        f"config file {file} holds credentials ({', '.join(inline)}) and is readable by "
        f"group/others (mode {mode:04o}): run `chmod 600 {file}`, or move the secrets to "
        "${VAR} references or <key>_file"
    )


# --------------------------------------------------------------------------
# Interpolation

_VAR_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = (":-", ":?", "-", "?")


class _Interpolator:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.literal_keys: set[str] = set()  # keys whose value held text of its own

    def walk(self, value: Any, key: str) -> Any:
        if isinstance(value, str):
            text, literal = self.expand(value, key)
            if literal:
                self.literal_keys.add(key)
            return text
        if isinstance(value, Mapping):
            return {k: self.walk(v, _join(key, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, f"{key}[{i}]") for i, v in enumerate(value)]
        return value

    def expand(self, text: str, key: str) -> tuple[str, bool]:
        """The expanded text, and whether any of it was written in the file itself."""
        out: list[str] = []
        literal = False
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            nxt = text[i + 1] if i + 1 < n else ""
            if ch != "$" or nxt not in ("$", "{"):
                out.append(ch)
                literal = literal or not ch.isspace()
                i += 1
                continue
            if nxt == "$":
                out.append("$")
                literal = True
                i += 2
                continue
            end = self._closing_brace(text, i + 2)
            if end < 0:
                raise ConfigError(key, f"unterminated ${{ at character {i + 1} (write $$ for a literal $)")
            value, lit = self._reference(text[i + 2 : end], key, i)
            out.append(value)
            literal = literal or lit
            i = end + 1
        return "".join(out), literal

    @staticmethod
    def _closing_brace(text: str, start: int) -> int:
        depth = 1
        j = start
        while j < len(text):
            if text[j] == "$" and text[j + 1 : j + 2] == "$":
                j += 2
                continue
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return j
            j += 1
        return -1

    def _reference(self, inner: str, key: str, at: int) -> tuple[str, bool]:
        match = _VAR_NAME_RE.match(inner)
        rest = inner[match.end() :] if match else inner
        op = next((o for o in _OPS if rest.startswith(o)), None)
        if match is None or (rest and op is None):
            raise ConfigError(
                key,
                f"malformed ${{...}} reference at character {at + 1}: expected ${{VAR}}, "
                "${VAR:-default}, ${VAR-default}, ${VAR:?message} or ${VAR?message} "
                "(write $$ for a literal $)",
            )
        name = match.group()
        arg = rest[len(op) :] if op else ""
        value = self.env.get(name)
        if op is None:
            if value is None:
                raise ConfigError(key, f"environment variable {name} is not set")
            return value, False
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                state = "not set" if value is None else "empty"
                raise ConfigError(key, f"environment variable {name} is {state}: {arg or 'required'}")
            return value, False
        use_default = value is None or (op == ":-" and value == "")
        if use_default:
            return self.expand(arg, key)
        try:  # unused default: does the file itself hold text there?
            return cast(str, value), self.expand(arg, key)[1]
        except ConfigError:
            return cast(str, value), bool(arg.strip())


# --------------------------------------------------------------------------
# Validation


def _build(
    data: Mapping[str, Any] | None, path: Path | None, env: Mapping[str, str]
) -> tuple[Config, list[str]]:
    """The validated config, and the keys holding credentials written inline."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError("", f"the config must be a mapping of keys to values, not {_type_name(data)}")
    interp = _Interpolator(env)
    tree = interp.walk(data, "")
    v = _Validator(path, env, interp.literal_keys)
    config = v.config(tree)
    return config, v.inline


class _Validator:
    def __init__(self, path: Path | None, env: Mapping[str, str], literal_keys: set[str]) -> None:
        self.path = path
        self.env = env
        self.literal_keys = literal_keys
        self.secrets: set[str] = set()
        self.inline: list[str] = []
        self.warnings: list[str] = []

    # -- top level

    def config(self, data: Mapping[Any, Any]) -> Config:
        _check_keys(data, "", _TOP_KEYS)
        version = data.get("version")
        if version is not None and _int(version, "version", minimum=1) != CONFIG_VERSION:
            raise ConfigError(
                "version", f"unsupported config version {version} (this build reads version {CONFIG_VERSION})"
            )
        timezone = self.top_timezone(data.get("timezone"))
        state_dir = DEFAULT_STATE_DIR
        if data.get("state_dir") is not None:
            state_dir = Path(_str(data["state_dir"], "state_dir")).expanduser()
        buffer_max_size = DEFAULT_BUFFER_MAX_SIZE
        if data.get("buffer_max_size") is not None:
            buffer_max_size = _size(data["buffer_max_size"], "buffer_max_size")
        log_level = "info"
        if data.get("log_level") is not None:
            log_level = _str(data["log_level"], "log_level").strip().lower()
            log_level = "warning" if log_level == "warn" else log_level
            if log_level not in LOG_LEVELS:
                raise ConfigError("log_level", f"must be one of {', '.join(LOG_LEVELS)}")
        log_format = "auto"
        if data.get("log_format") is not None:
            log_format = _str(data["log_format"], "log_format").strip().lower()
            if log_format not in LOG_FORMATS:
                raise ConfigError("log_format", f"must be one of {', '.join(LOG_FORMATS)}")
        influx = self.influxdb(data.get("influxdb"))
        sources = self.sources(data.get("sources"), timezone)
        return Config(
            path=self.path,
            timezone=timezone,
            state_dir=state_dir,
            influxdb=influx,
            sources=sources,
            buffer_max_size=buffer_max_size,
            log_level=log_level,
            log_format=cast(Literal["auto", "json", "console"], log_format),
            secrets=frozenset(self.secrets),
            warnings=tuple(self.warnings),
        )

    def top_timezone(self, value: Any) -> str:
        if value is not None:
            return _zone(value, "timezone")
        tz = self.env.get("TZ", "").strip()
        if not tz:
            return "UTC"
        name = tz[1:] if tz.startswith(":") else tz  # glibc's ":Area/City" form
        if "zoneinfo/" in name:  # TZ=/usr/share/zoneinfo/Area/City
            name = name.split("zoneinfo/", 1)[1]
        if _valid_zone(name):
            return name
        self.warnings.append(f"timezone: not set and TZ={tz!r} is not an IANA time zone name; using UTC")
        return "UTC"

    # -- influxdb

    def influxdb(self, data: Any) -> InfluxConfig | None:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise ConfigError("influxdb", f"must be a mapping, not {_type_name(data)}")
        _check_keys(data, "influxdb", _INFLUX_KEYS)
        if data.get("url") is None:
            raise ConfigError("influxdb.url", "required (e.g. http://localhost:8086)")
        url = _url(data["url"], "influxdb.url")
        api = _str(data.get("api", "v2"), "influxdb.api").strip().lower()
        if api not in INFLUX_APIS:
            raise ConfigError("influxdb.api", "must be v1 or v2")

        def opt(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else _nonempty(value, f"influxdb.{name}")

        org, bucket, database, rp = opt("org"), opt("bucket"), opt("database"), opt("retention_policy")
        token = self.credential(data, "influxdb", "token")
        username = self.credential(data, "influxdb", "username", secret=False)
        password = self.credential(data, "influxdb", "password")
        if api == "v2":
            hint = " (or set influxdb.api: v1 for InfluxDB 1.x)"
            for name, value in (("org", org), ("bucket", bucket), ("token", token)):
                if value is None:
                    raise ConfigError(f"influxdb.{name}", f"required with api: v2{hint}")
            unused: tuple[str, ...] = ("database", "retention_policy", "username", "password")
        else:
            if database is None:
                raise ConfigError("influxdb.database", "required with api: v1")
            if (username is None) != (password is None):
                missing = "password" if password is None else "username"
                raise ConfigError(f"influxdb.{missing}", "username and password go together with api: v1")
            unused = ("org", "bucket", "token")
        for name in unused:
            if data.get(name) is not None or data.get(f"{name}_file") is not None:
                self.warnings.append(f"influxdb.{name}: ignored with api: {api}")
        timeout = 10.0
        if data.get("timeout") is not None:
            timeout = _duration(data["timeout"], "influxdb.timeout")
        batch_size = 5000
        if data.get("batch_size") is not None:
            batch_size = _int(data["batch_size"], "influxdb.batch_size", minimum=1)
        gzip_level = 1
        if data.get("gzip_level") is not None:
            gzip_level = _int(data["gzip_level"], "influxdb.gzip_level", minimum=0)
            if gzip_level > 9:
                raise ConfigError("influxdb.gzip_level", "must be 0 (off) to 9")
        return InfluxConfig(
            url=url,
            api=cast(Literal["v1", "v2"], api),
            org=org,
            bucket=bucket,
            token=token,
            database=database,
            retention_policy=rp,
            username=username,
            password=password,
            timeout=timeout,
            batch_size=batch_size,
            gzip_level=gzip_level,
        )

    # -- credentials

    def credential(
        self, data: Mapping[Any, Any], prefix: str, name: str, *, secret: bool = True
    ) -> str | None:
        """`name` or `name_file` from `data`; None when neither is given."""
        key, file_key = _join(prefix, name), _join(prefix, f"{name}_file")
        inline, from_file = data.get(name), data.get(f"{name}_file")
        if inline is not None and from_file is not None:
            raise ConfigError(file_key, f"give either {name} or {name}_file, not both")
        if inline is not None:
            if not isinstance(inline, str):
                # Never echo the value: it is a secret. YAML turns unquoted
                # digits into numbers (and drops leading zeros).
                raise ConfigError(key, f"must be a string, not {_type_name(inline)} (quote it in YAML)")
            if not inline.strip():
                raise ConfigError(key, "must not be empty")
            if secret and key in self.literal_keys:
                self.inline.append(key)
            value = inline
        elif from_file is not None:
            value = self.read_secret(_nonempty(from_file, file_key), file_key)
        else:
            return None
        if secret:
            self.secrets.add(value)
        return value

    def read_secret(self, name: str, key: str) -> str:
        file = Path(name).expanduser()
        if not file.is_absolute() and self.path is not None:
            file = self.path.parent / file
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(key, f"file {file} not found") from None
        except IsADirectoryError:
            raise ConfigError(key, f"{file} is a directory") from None
        except PermissionError:
            raise ConfigError(key, f"cannot read {file}: permission denied") from None
        except UnicodeDecodeError:
            raise ConfigError(key, f"file {file} is not UTF-8 text") from None
        except OSError as err:
            raise ConfigError(key, f"cannot read {file}: {err.strerror or type(err).__name__}") from None
        value = text.rstrip("\r\n")
        if not value.strip():
            raise ConfigError(key, f"file {file} is empty")
        return value

    # -- sources

    def sources(self, data: Any, timezone: str) -> tuple[SourceConfig, ...]:
        if data is None:
            return ()
        if not isinstance(data, list):
            raise ConfigError("sources", f"must be a list of sources, not {_type_name(data)}")
        out: list[SourceConfig] = []
        names: dict[str, int] = {}
        for index, item in enumerate(data):
            src = self.source(item, index, timezone)
            if src.name in names:
                raise ConfigError(
                    src.key("name"),
                    f"duplicate source name {src.name!r} (also sources[{names[src.name]}])",
                )
            names[src.name] = index
            out.append(src)
        return tuple(out)

    def source(self, data: Any, index: int, default_tz: str) -> SourceConfig:
        prefix = f"sources[{index}]"
        if not isinstance(data, Mapping):
            raise ConfigError(prefix, f"must be a mapping (name:, vendor:, ...), not {_type_name(data)}")

        vendor_value = data.get("vendor")
        if vendor_value is None:
            all_creds = {c for s in VENDOR_SPECS.values() for c in _credential_keys(s)}
            _check_keys(data, prefix, (*_SOURCE_KEYS, *sorted(all_creds)))
            raise ConfigError(f"{prefix}.vendor", f"required: one of {', '.join(VENDOR_SPECS)}")
        vendor = _str(vendor_value, f"{prefix}.vendor").strip()
        spec = VENDOR_SPECS.get(vendor)
        if spec is None:
            close = difflib.get_close_matches(vendor, list(VENDOR_SPECS), n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            raise ConfigError(
                f"{prefix}.vendor", f"unknown vendor {vendor!r}; {hint}valid: {', '.join(VENDOR_SPECS)}"
            )
        region_key = ("region",) if spec.regions else ()
        _check_keys(data, prefix, (*_SOURCE_KEYS, *region_key, *_credential_keys(spec)), vendor=spec)

        if data.get("name") is None:
            raise ConfigError(f"{prefix}.name", "required: a unique name, the `source` tag")
        name = _str(data["name"], f"{prefix}.name")
        if not re.fullmatch(r"\w[\w.\-]{0,63}", name):
            raise ConfigError(
                f"{prefix}.name",
                "must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or "
                "digit (it becomes the `source` tag and names state files)",
            )

        base_url = spec.default_base_url
        if data.get("base_url") is not None:
            base_url = _url(data["base_url"], f"{prefix}.base_url")
        if data.get("region") is not None:
            if data.get("base_url") is not None:
                raise ConfigError(f"{prefix}.region", "give region or base_url, not both")
            base_url = self.region(data["region"], f"{prefix}.region", spec)
        timezone = default_tz
        if data.get("timezone") is not None:
            timezone = _zone(data["timezone"], f"{prefix}.timezone")
        site = name
        if data.get("site") is not None:
            site = _tag_value(data["site"], f"{prefix}.site")
        devices = self.devices(data.get("devices"), f"{prefix}.devices", spec)
        interval = None
        if data.get("interval") is not None:
            interval = _duration(data["interval"], f"{prefix}.interval")
        limits, overridden = self.limits(data.get("limits"), f"{prefix}.limits", spec)
        backfill = self.backfill(data.get("backfill"), f"{prefix}.backfill")

        credentials: dict[str, str] = {}
        for cred in spec.credentials:
            value = self.credential(data, prefix, cred)
            if value is None:
                raise ConfigError(f"{prefix}.{cred}", f"required for vendor {vendor} (or give {cred}_file)")
            credentials[cred] = value
        for cred in spec.optional_credentials:
            value = self.credential(data, prefix, cred)
            if value is not None:
                credentials[cred] = value

        return SourceConfig(
            name=name,
            vendor=vendor,
            base_url=base_url,
            timezone=timezone,
            site=site,
            devices=devices,
            interval=interval,
            limits=limits,
            limits_overridden=overridden,
            backfill=backfill,
            credentials=types.MappingProxyType(credentials),
            index=index,
        )

    def devices(self, value: Any, key: str, spec: VendorSpec) -> tuple[str, ...] | None:
        if value is None:
            if spec.needs_devices:
                raise ConfigError(key, f"required for vendor {spec.slug}: a list of {spec.device_hint}")
            return None
        items: list[tuple[str, Any]]
        if isinstance(value, str):  # "SN1, SN2" (handy with ${VAR})
            items = [(key, part) for part in re.split(r"[,\s]+", value) if part]
        elif isinstance(value, list):
            items = [(f"{key}[{i}]", item) for i, item in enumerate(value)]
        else:
            raise ConfigError(key, f"must be a list of {spec.device_hint}, not {_type_name(value)}")
        if not items:
            what = "required" if spec.needs_devices else "omit it to use every device"
            raise ConfigError(key, f"must not be empty ({what})")
        seen: set[str] = set()
        out: list[str] = []
        for item_key, item in items:
            if not isinstance(item, str):
                raise ConfigError(
                    item_key, f"must be a string, not {_type_name(item)} (quote serial numbers in YAML)"
                )
            sn = item.strip()
            if not sn:
                raise ConfigError(item_key, "must not be empty")
            if sn in seen:
                raise ConfigError(item_key, f"duplicate device {sn!r}")
            seen.add(sn)
            out.append(sn)
        return tuple(out)

    def region(self, value: Any, key: str, spec: VendorSpec) -> str:
        """A named gateway of the vendor (`spec.regions`) → its base URL."""
        name = _str(value, key).strip().lower()
        if name not in spec.regions:
            raise ConfigError(key, f"unknown {spec.title} region {value!r}; one of {', '.join(spec.regions)}")
        return spec.regions[name]

    def limits(self, value: Any, key: str, spec: VendorSpec) -> tuple[Limits, tuple[str, ...]]:
        if value is None:
            return spec.default_limits, ()
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping ({', '.join(LIMIT_KEYS)}), not {_type_name(value)}")
        _check_keys(value, key, LIMIT_KEYS)
        overrides: dict[str, float | int] = {}
        for name in LIMIT_KEYS:
            if value.get(name) is None:
                continue
            item_key = f"{key}.{name}"
            limit: float | int = (
                _positive_number(value[name], item_key)
                if name == "per_second"
                else _int(value[name], item_key, minimum=1)
            )
            overrides[name] = limit
            default = getattr(spec.default_limits, name)
            if default is not None and limit > default:
                self.warnings.append(
                    f"{item_key}: {limit:g} is above {spec.title}'s documented limit of "
                    f"{default:g}; make sure your plan allows it"
                )
        limits = dataclasses.replace(spec.default_limits, **overrides)  # type: ignore[arg-type]
        return limits, tuple(overrides)

    def backfill(self, value: Any, key: str) -> BackfillConfig:
        if value is None:
            return BackfillConfig()
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping (since:), not {_type_name(value)}")
        _check_keys(value, key, _BACKFILL_KEYS)
        since = value.get("since")
        if since is None:
            return BackfillConfig()
        return BackfillConfig(since=_site_datetime(since, f"{key}.since"))


# --------------------------------------------------------------------------
# Field helpers


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _type_name(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (dt.date, dt.datetime)):
        return "a date"
    return type(value).__name__


def _credential_keys(spec: VendorSpec) -> tuple[str, ...]:
    names = (*spec.credentials, *spec.optional_credentials)
    return (*names, *(f"{n}_file" for n in names))


def _check_keys(
    data: Mapping[Any, Any], prefix: str, allowed: Iterable[str], *, vendor: VendorSpec | None = None
) -> None:
    allowed = list(allowed)
    for raw in data:
        key = _join(prefix, str(raw))
        if not isinstance(raw, str):
            raise ConfigError(key, f"keys must be strings, not {_type_name(raw)} (quote it in YAML)")
        if raw in allowed:
            continue
        if vendor is not None:
            owners = [s.slug for s in VENDOR_SPECS.values() if raw in _credential_keys(s)]
            if owners:
                raise ConfigError(
                    key,
                    f"unknown key for vendor {vendor.slug}: {raw} is a credential of "
                    f"{', '.join(owners)}; {vendor.slug} takes {', '.join(vendor.credentials)}",
                )
        close = difflib.get_close_matches(raw, allowed, n=1)
        if close:
            raise ConfigError(key, f'unknown key; did you mean "{close[0]}"?')
        raise ConfigError(key, f"unknown key (valid: {', '.join(allowed)})")


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, not {_type_name(value)}")
    return value


def _nonempty(value: Any, key: str) -> str:
    text = _str(value, key)
    if not text.strip():
        raise ConfigError(key, "must not be empty")
    return text


def _tag_value(value: Any, key: str) -> str:
    text = _nonempty(value, key)
    if text != text.strip() or any(ord(c) < 32 or ord(c) == 127 for c in text) or text.endswith("\\"):
        raise ConfigError(
            key, "must not have leading/trailing spaces, control characters or a trailing backslash"
        )
    return text


def _url(value: Any, key: str) -> str:
    # The URL is not echoed in messages: it might carry credentials.
    text = _nonempty(value, key).strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise ConfigError(key, "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, "must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(key, "must not contain credentials (user:password@); use the credential keys")
    return text.rstrip("/")


def _int(value: Any, key: str, *, minimum: int) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value)
    ):
        number = int(value)
    if number is None:
        raise ConfigError(key, f"must be a whole number, not {_type_name(value)}")
    if number < minimum:
        raise ConfigError(key, "must be positive" if minimum == 1 else f"must be at least {minimum}")
    return number


def _positive_number(value: Any, key: str) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ConfigError(key, f"must be a number, not {_type_name(value)}")
    if number <= 0:
        raise ConfigError(key, "must be positive")
    return number


def _duration(value: Any, key: str) -> float:
    try:
        seconds = parse_duration(value)
    except ConfigError as err:
        raise ConfigError(key, err.message) from None
    if seconds <= 0:
        raise ConfigError(key, "must be a positive duration")
    return seconds


def _size(value: Any, key: str) -> int:
    try:
        size = parse_size(value)
    except ConfigError as err:
        raise ConfigError(key, err.message) from None
    if size <= 0:
        raise ConfigError(key, "must be a positive size")
    return size


def _valid_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _zone(value: Any, key: str) -> str:
    name = _nonempty(value, key).strip()
    if _valid_zone(name):
        return name
    close = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
    hint = f'; did you mean "{close[0]}"?' if close else " (use an IANA name such as Europe/Berlin)"
    raise ConfigError(key, f"unknown time zone {name!r}{hint}")


def _site_datetime(value: Any, key: str) -> dt.datetime:
    """A date (its midnight) or date-time: naive, to be read in each site's zone when
    used; aware only when the value carries an explicit offset (kept as written)."""
    when: dt.date | dt.datetime | None = None
    if isinstance(value, (dt.date, dt.datetime)):
        when = value
    elif isinstance(value, str):
        text = value.strip()
        for parse in (dt.date.fromisoformat, dt.datetime.fromisoformat):
            try:
                when = parse(text)
                break
            except ValueError:
                continue
    if when is None:
        raise ConfigError(key, "must be a date (YYYY-MM-DD) or an ISO date-time")
    if not isinstance(when, dt.datetime):
        return dt.datetime(when.year, when.month, when.day)
    return when
