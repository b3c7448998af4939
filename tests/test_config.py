"""The config loader: interpolation, secrets, validation with exact error keys."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from collector.config import (
    DEFAULT_BUFFER_MAX_SIZE,
    DEFAULT_STATE_DIR,
    Config,
    config_from_dict,
    load_config,
    parse_duration,
    parse_size,
)
from collector.errors import ConfigError
from collector.vendors import VENDOR_SPECS
from collector.vendors.base import Limits

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-T0KEN: #x"  # holds YAML specials on purpose


def foxess(**extra: Any) -> dict[str, Any]:
    return {"name": "roof", "vendor": "foxess", "api_key": "k", **extra}


def cfg(*sources: Mapping[str, Any], env: Mapping[str, str] | None = None, **top: Any) -> Config:
    data: dict[str, Any] = {"sources": list(sources), **top}
    return config_from_dict(data, env={} if env is None else env)


def error(*sources: Mapping[str, Any], env: Mapping[str, str] | None = None, **top: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg(*sources, env=env, **top)
    return info.value


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------
# durations and sizes


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("5 min", 300.0),
        ("300", 300.0),
        ("2.5", 2.5),
        (300, 300.0),
        (0.25, 0.25),
        ("0", 0.0),
    ],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("junk", ["", "abc", "5x", "m5", "-5m", "5m-", "1h30", True, -1, float("nan"), None])
def test_parse_duration_rejects_junk(junk: Any) -> None:
    with pytest.raises(ConfigError):
        parse_duration(junk)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("500MB", 500_000_000),
        ("1GiB", 1 << 30),
        ("100k", 100_000),
        ("100KiB", 102_400),
        ("1.5 MiB", 1_572_864),
        ("2gb", 2_000_000_000),
        ("1024", 1024),
        ("10B", 10),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("junk", ["", "MB", "5 XB", "-1", "1e9", True, -5, 1.5])
def test_parse_size_rejects_junk(junk: Any) -> None:
    with pytest.raises(ConfigError):
        parse_size(junk)


# --------------------------------------------------------------------------
# defaults


def test_defaults() -> None:
    c = cfg(foxess())
    assert c.path is None
    assert c.timezone == "UTC"
    assert c.state_dir == DEFAULT_STATE_DIR == Path("./state")
    assert c.influxdb is None
    assert c.buffer_max_size == DEFAULT_BUFFER_MAX_SIZE == 1 << 30
    assert (c.log_level, c.log_format) == ("info", "auto")
    assert c.warnings == ()
    (s,) = c.sources
    spec = VENDOR_SPECS["foxess"]
    assert s.name == s.site == "roof"
    assert s.base_url == spec.default_base_url
    assert s.timezone == "UTC"
    assert s.devices is None and s.interval is None
    assert s.limits == spec.default_limits and s.limits_overridden == ()
    assert s.backfill.since is None
    assert dict(s.credentials) == {"api_key": "k"}
    assert s.index == 0 and s.key("interval") == "sources[0].interval"
    assert s.tzinfo() == zoneinfo.ZoneInfo("UTC")
    assert s.spec is spec
    assert c.source("roof") is s and c.source("nope") is None


def test_empty_config_and_empty_sources() -> None:
    assert config_from_dict(None, env={}).sources == ()
    assert config_from_dict({}, env={}).sources == ()
    assert cfg().sources == ()
    assert config_from_dict({"sources": None}, env={}).sources == ()


def test_top_level_keys() -> None:
    c = cfg(
        state_dir="/var/lib/sc",
        buffer_max_size="500MB",
        log_level="WARN",
        log_format="json",
        timezone="Europe/Berlin",
        version=1,
    )
    assert c.state_dir == Path("/var/lib/sc")
    assert c.buffer_max_size == 500_000_000
    assert c.log_level == "warning"
    assert c.log_format == "json"
    assert c.timezone == "Europe/Berlin"


# --------------------------------------------------------------------------
# interpolation


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${K}", {"K": "v"}, "v"),
        ("pre-${K}-post", {"K": "v"}, "pre-v-post"),
        ("${K:-dflt}", {}, "dflt"),
        ("${K:-dflt}", {"K": ""}, "dflt"),
        ("${K:-dflt}", {"K": "v"}, "v"),
        ("${K-dflt}", {}, "dflt"),
        ("${K-dflt}", {"K": ""}, ""),
        ("${K:?needed}", {"K": "v"}, "v"),
        ("${K?needed}", {"K": ""}, ""),
        ("${K:-${J}}", {"J": "nested"}, "nested"),
        ("${K:-}", {}, ""),
        ("a$$b", {}, "a$b"),
        ("$${K}", {"K": "v"}, "${K}"),
        ("pa$word", {}, "pa$word"),
        ("end$", {}, "end$"),
    ],
)
def test_interpolation_forms(value: str, env: dict[str, str], expected: str) -> None:
    c = cfg(foxess(site="x" + value), env=env)
    assert c.sources[0].site == "x" + expected


def test_interpolation_after_parsing_keeps_yaml_specials(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "sources:\n  - name: roof\n    vendor: foxess\n    api_key: ${KEY}\n")
    c = load_config(path, env={"KEY": SECRET})
    assert c.sources[0].credentials["api_key"] == SECRET


def test_interpolated_numbers_are_coerced() -> None:
    env = {"POLL": "300", "DAY": "1000", "PS": "0.5", "BATCH": "100", "T": "15s", "GZ": "0"}
    c = cfg(
        foxess(interval="${POLL}", limits={"per_day": "${DAY}", "per_second": "${PS}"}),
        influxdb={
            "url": "http://db:8086",
            "org": "o",
            "bucket": "b",
            "token": "t",
            "batch_size": "${BATCH}",
            "timeout": "${T}",
            "gzip_level": "${GZ}",
        },
        buffer_max_size="${SIZE:-2GiB}",
        env=env,
    )
    s = c.sources[0]
    assert s.interval == 300.0
    assert s.limits.per_day == 1000 and s.limits.per_second == 0.5
    assert c.influxdb is not None
    assert (c.influxdb.batch_size, c.influxdb.timeout, c.influxdb.gzip_level) == (100, 15.0, 0)
    assert c.buffer_max_size == 2 << 30


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("${MISSING}", "MISSING is not set"),
        ("${MISSING:?set it please}", "set it please"),
        ("${EMPTY:?set it please}", "EMPTY is empty"),
        ("${MISSING?gone}", "gone"),
        ("${1BAD}", "malformed"),
        ("${K!x}", "malformed"),
        ("${K", "unterminated"),
    ],
)
def test_interpolation_errors_name_key_and_variable(value: str, needle: str) -> None:
    e = error(foxess(api_key=value), env={"EMPTY": "", "K": "v"})
    assert e.key == "sources[0].api_key"
    assert needle in e.message


def test_unset_variable_in_nested_key() -> None:
    e = error(influxdb={"url": "${INFLUX_URL}"})
    assert e.key == "influxdb.url"
    assert "INFLUX_URL" in e.message


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SC_TEST_KEY", "from-os")
    c = config_from_dict({"sources": [foxess(api_key="${SC_TEST_KEY}")]})
    assert c.sources[0].credentials["api_key"] == "from-os"


# --------------------------------------------------------------------------
# _file secrets


def test_file_secret(tmp_path: Path) -> None:
    secret = write(tmp_path / "key", SECRET + "\n")
    c = cfg(foxess(api_key=None, api_key_file=str(secret)))
    assert c.sources[0].credentials["api_key"] == SECRET
    assert SECRET in c.secrets


def test_file_secret_path_from_env_and_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    write(tmp_path / "creds" / "token", "tok\r\n")
    write(tmp_path / "creds" / "influx", "itok")
    cfg_file = write(
        tmp_path / "c.yaml",
        "influxdb: {url: 'http://h:8086', org: o, bucket: b, token_file: creds/influx}\n"
        "sources:\n  - {name: s, vendor: solax, devices: [A],\n"
        "     token_id_file: '${CREDENTIALS_DIRECTORY}/token'}\n",
    )
    c = load_config(cfg_file, env={"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")})
    assert c.sources[0].credentials["token_id"] == "tok"
    assert c.influxdb is not None and c.influxdb.token == "itok"
    assert c.secrets == {"tok", "itok"}


def test_file_secret_errors(tmp_path: Path) -> None:
    e = error(foxess(api_key=None, api_key_file=str(tmp_path / "missing")))
    assert e.key == "sources[0].api_key_file" and "not found" in e.message
    empty = write(tmp_path / "empty", "\n")
    e = error(foxess(api_key=None, api_key_file=str(empty)))
    assert e.key == "sources[0].api_key_file" and "empty" in e.message
    e = error(foxess(api_key_file=str(empty)))
    assert e.key == "sources[0].api_key_file" and "not both" in e.message
    e = error(foxess(api_key=None, api_key_file=str(tmp_path)))
    assert e.key == "sources[0].api_key_file"


def test_influx_file_secret_error_key(tmp_path: Path) -> None:
    e = error(influxdb={"url": "http://h", "org": "o", "bucket": "b", "token_file": str(tmp_path / "x")})
    assert e.key == "influxdb.token_file"


# --------------------------------------------------------------------------
# validation: every error names its key


@pytest.mark.parametrize(
    ("source", "key", "needle"),
    [
        ({"vendor": "foxess", "api_key": "k"}, "sources[0].name", "required"),
        (foxess(name=""), "sources[0].name", "letters"),
        (foxess(name="has space"), "sources[0].name", "letters"),
        (foxess(name=42), "sources[0].name", "string"),
        ({"name": "x", "api_key": "k"}, "sources[0].vendor", "foxess, sungrow"),
        (foxess(vendor="fox"), "sources[0].vendor", 'did you mean "foxess"'),
        (foxess(vendor="enphase"), "sources[0].vendor", "valid: foxess, sungrow, solax, sunvec, solax_ev"),
        (foxess(api_key=None), "sources[0].api_key", "required for vendor foxess"),
        (foxess(api_key=""), "sources[0].api_key", "must not be empty"),
        (foxess(api_key="   "), "sources[0].api_key", "must not be empty"),
        (foxess(api_key=12345), "sources[0].api_key", "quote it"),
        (foxess(interval="5x"), "sources[0].interval", "not a duration"),
        (foxess(interval=0), "sources[0].interval", "positive"),
        (foxess(interval="-5m"), "sources[0].interval", "not a duration"),
        (foxess(timezone="Mars/Olympus"), "sources[0].timezone", "unknown time zone"),
        (foxess(timezone="Europe/Berlln"), "sources[0].timezone", "Europe/Berlin"),
        (foxess(base_url="ftp://x"), "sources[0].base_url", "http"),
        (foxess(base_url="https://u:p@x"), "sources[0].base_url", "credentials"),
        (foxess(site=""), "sources[0].site", "empty"),
        (foxess(site="a\nb"), "sources[0].site", "control"),
        (foxess(devices=[]), "sources[0].devices", "omit it"),
        (foxess(devices=["A", ""]), "sources[0].devices[1]", "empty"),
        (foxess(devices=["A", 123]), "sources[0].devices[1]", "quote"),
        (foxess(devices=["A", "A"]), "sources[0].devices[1]", "duplicate"),
        (foxess(devices={"a": 1}), "sources[0].devices", "list"),
        (
            {"name": "x", "vendor": "solax", "token_id": "t"},
            "sources[0].devices",
            "required for vendor solax",
        ),
        (foxess(limits={"per_day": 0}), "sources[0].limits.per_day", "positive"),
        (foxess(limits={"per_day": 1.5}), "sources[0].limits.per_day", "whole number"),
        (foxess(limits={"per_day": "lots"}), "sources[0].limits.per_day", "whole number"),
        (foxess(limits={"per_second": -1}), "sources[0].limits.per_second", "positive"),
        (foxess(limits={"per_second": "nan"}), "sources[0].limits.per_second", "number"),
        (foxess(limits={"per_second": True}), "sources[0].limits.per_second", "number"),
        (foxess(limits={"per_days": 5}), "sources[0].limits.per_days", 'did you mean "per_day"'),
        (foxess(limits=5), "sources[0].limits", "mapping"),
        (foxess(backfill={"since": "yesterday"}), "sources[0].backfill.since", "YYYY-MM-DD"),
        (foxess(backfill={"sinse": "2024-01-01"}), "sources[0].backfill.sinse", 'did you mean "since"'),
        (foxess(intervall="5m"), "sources[0].intervall", 'did you mean "interval"'),
        (foxess(token_id="t"), "sources[0].token_id", "credential of solax"),
        ({"nmae": "x", "vendor": "foxess", "api_key": "k"}, "sources[0].nmae", 'did you mean "name"'),
        ({"name": "x", "vendr": "foxess"}, "sources[0].vendr", 'did you mean "vendor"'),
    ],
)
def test_source_errors(source: dict[str, Any], key: str, needle: str) -> None:
    e = error({k: v for k, v in source.items() if v is not None})
    assert e.key == key
    assert needle in e.message
    assert str(e).startswith(f"{key}: ")


def test_error_key_uses_source_index() -> None:
    e = error(foxess(), foxess(name="two", interval="soon"))
    assert e.key == "sources[1].interval"


def test_duplicate_source_names() -> None:
    e = error(foxess(), foxess())
    assert e.key == "sources[1].name"
    assert "sources[0]" in e.message


@pytest.mark.parametrize(
    ("top", "key", "needle"),
    [
        ({"sources": {"a": 1}}, "sources", "list"),
        ({"sources": ["x"]}, "sources[0]", "mapping"),
        ({"timezone": "Nowhere/Land"}, "timezone", "unknown time zone"),
        ({"timezone": 5}, "timezone", "string"),
        ({"state_dir": 5}, "state_dir", "string"),
        ({"buffer_max_size": "lots"}, "buffer_max_size", "not a size"),
        ({"buffer_max_size": 0}, "buffer_max_size", "positive"),
        ({"log_level": "loud"}, "log_level", "debug, info"),
        ({"log_format": "xml"}, "log_format", "auto, json, console"),
        ({"version": 2}, "version", "unsupported"),
        ({"sorces": []}, "sorces", 'did you mean "sources"'),
        ({"influx": {}}, "influx", 'did you mean "influxdb"'),
        ({"zzz": 1}, "zzz", "valid: version, timezone"),
        ({True: 1}, "True", "quote"),
    ],
)
def test_top_level_errors(top: dict[Any, Any], key: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(top, env={})
    assert info.value.key == key
    assert needle in info.value.message


V2 = {"url": "http://localhost:8086", "org": "home", "bucket": "solar", "token": "tok"}
V1 = {"url": "https://db.example:8086", "api": "v1", "database": "solar"}


@pytest.mark.parametrize(
    ("influx", "key", "needle"),
    [
        ({"api": "v2"}, "influxdb.url", "required"),
        ({**V2, "url": "localhost:8086"}, "influxdb.url", "http"),
        ({**V2, "url": "http://"}, "influxdb.url", "http"),
        ({**V2, "url": "http://a:b@h"}, "influxdb.url", "credentials"),
        ({**V2, "api": "v3"}, "influxdb.api", "must be v1 or v2"),
        ({**V2, "org": None}, "influxdb.org", "required with api: v2"),
        ({**V2, "bucket": None}, "influxdb.bucket", "required with api: v2"),
        ({**V2, "token": None}, "influxdb.token", "required with api: v2"),
        ({**V2, "token": ""}, "influxdb.token", "must not be empty"),
        ({**V1, "database": None}, "influxdb.database", "required with api: v1"),
        ({**V1, "username": "u"}, "influxdb.password", "go together"),
        ({**V2, "timeout": "0s"}, "influxdb.timeout", "positive"),
        ({**V2, "batch_size": 0}, "influxdb.batch_size", "positive"),
        ({**V2, "gzip_level": 10}, "influxdb.gzip_level", "0 (off) to 9"),
        ({**V2, "gzip_level": -1}, "influxdb.gzip_level", "at least 0"),
        ({**V2, "tokn": "x"}, "influxdb.tokn", 'did you mean "token"'),
        ("http://x", "influxdb", "mapping"),
    ],
)
def test_influx_errors(influx: Any, key: str, needle: str) -> None:
    if isinstance(influx, dict):
        influx = {k: v for k, v in influx.items() if v is not None}
    e = error(influxdb=influx)
    assert e.key == key
    assert needle in e.message


def test_influx_v2() -> None:
    c = cfg(influxdb={**V2, "url": "http://localhost:8086/"})
    i = c.influxdb
    assert i is not None
    assert (i.url, i.api, i.org, i.bucket, i.token) == ("http://localhost:8086", "v2", "home", "solar", "tok")
    assert (i.timeout, i.batch_size, i.gzip_level) == (10.0, 5000, 1)
    assert c.secrets == {"tok"}
    assert c.warnings == ()


def test_influx_v1() -> None:
    c = cfg(influxdb={**V1, "retention_policy": "autogen", "username": "u", "password": "pw"})
    i = c.influxdb
    assert i is not None
    assert (i.api, i.database, i.retention_policy, i.username, i.password) == (
        "v1",
        "solar",
        "autogen",
        "u",
        "pw",
    )
    assert i.org is None and i.token is None
    assert "pw" in c.secrets


def test_influx_keys_of_the_other_api_warn() -> None:
    c = cfg(influxdb={**V2, "database": "solar"})
    assert c.warnings == ("influxdb.database: ignored with api: v2",)


# --------------------------------------------------------------------------
# time zones


def test_source_timezone_overrides_top_level() -> None:
    c = cfg(foxess(), foxess(name="two", timezone="America/New_York"), timezone="Europe/Berlin")
    assert [s.timezone for s in c.sources] == ["Europe/Berlin", "America/New_York"]
    assert c.sources[1].tzinfo() == zoneinfo.ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        (":Europe/Paris", "Europe/Paris"),
        ("/usr/share/zoneinfo/Asia/Tokyo", "Asia/Tokyo"),
        ("", "UTC"),
        ("CET-1CEST,M3.5.0,M10.5.0/3", "UTC"),
    ],
)
def test_default_timezone_from_tz_env(tz: str, expected: str) -> None:
    c = cfg(foxess(), env={"TZ": tz})
    assert c.timezone == expected == c.sources[0].timezone
    assert bool(c.warnings) == (expected == "UTC" and tz != "")


def test_top_level_timezone_beats_tz_env() -> None:
    assert cfg(env={"TZ": "Asia/Tokyo"}, timezone="Europe/Berlin").timezone == "Europe/Berlin"


# --------------------------------------------------------------------------
# limits


def test_limits_override_merges_with_vendor_defaults() -> None:
    c = cfg(foxess(limits={"per_minute": 10}), {"name": "sg", "vendor": "sungrow", **SUNGROW})
    fox, sg = c.sources
    assert fox.limits == Limits(per_second=1, per_minute=10, per_day=1440)
    assert fox.limits_overridden == ("per_minute",)
    assert sg.limits == VENDOR_SPECS["sungrow"].default_limits
    assert c.warnings == ()


def test_limits_override_replaces_a_default_and_warns_when_raised() -> None:
    c = cfg(foxess(limits={"per_day": 1000, "per_second": 0.5}))
    assert c.sources[0].limits == Limits(per_second=0.5, per_day=1000)
    assert c.sources[0].limits_overridden == ("per_second", "per_day")
    assert c.warnings == ()
    c = cfg(foxess(limits={"per_day": 5000}))
    assert c.sources[0].limits.per_day == 5000
    assert len(c.warnings) == 1 and c.warnings[0].startswith("sources[0].limits.per_day: 5000 is above")


# --------------------------------------------------------------------------
# devices, backfill, other vendors

SUNGROW = {"appkey": "a", "access_key": "b", "username": "u", "password": "p"}


def test_devices() -> None:
    c = cfg(
        foxess(devices=["SN1", " SN2 "]),
        {"name": "x", "vendor": "solax", "token_id": "t", "devices": "${SNS}"},
        env={"SNS": "A1, B2 C3"},
    )
    assert c.sources[0].devices == ("SN1", "SN2")
    assert c.sources[1].devices == ("A1", "B2", "C3")


def test_sungrow_credentials_and_optional_key() -> None:
    c = cfg({"name": "sg", "vendor": "sungrow", **SUNGROW, "rsa_public_key": "PEM"})
    assert dict(c.sources[0].credentials) == {**SUNGROW, "rsa_public_key": "PEM"}
    assert c.secrets == {"a", "b", "u", "p", "PEM"}
    e = error({"name": "sg", "vendor": "sungrow", **SUNGROW, "password": None})
    assert e.key == "sources[0].password"


def test_sungrow_region_picks_the_gateway() -> None:
    c = cfg({"name": "sg", "vendor": "sungrow", **SUNGROW, "region": "AU"})
    assert c.sources[0].base_url == "https://augateway.isolarcloud.com"
    assert cfg({"name": "sg", "vendor": "sungrow", **SUNGROW}).sources[0].base_url == (
        "https://gateway.isolarcloud.eu"
    )
    e = error({"name": "sg", "vendor": "sungrow", **SUNGROW, "region": "us"})
    assert e.key == "sources[0].region" and "cn, intl, eu, au" in e.message
    both = {"name": "sg", "vendor": "sungrow", **SUNGROW, "region": "eu", "base_url": "https://x.example"}
    assert error(both).key == "sources[0].region"
    # A vendor with one address has no `region` key.
    assert error(foxess(region="eu")).key == "sources[0].region"


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (dt.date(2024, 1, 1), "2024-01-01T00:00:00"),
        ("2024-07-01", "2024-07-01T00:00:00"),
        ("2024-01-01T06:30:00", "2024-01-01T06:30:00"),
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00+00:00"),
        (dt.datetime(2024, 1, 1, 12, 0), "2024-01-01T12:00:00"),
        (dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC), "2024-01-01T12:00:00+00:00"),
        ("2024-01-01T06:00:00+11:00", "2024-01-01T06:00:00+11:00"),
    ],
)
def test_backfill_since_is_naive_unless_it_has_an_offset(since: Any, expected: str) -> None:
    """Naive: read in each site's zone when the backfill runs (the device's, else the
    source's), the rule `backfill --since` follows; an explicit offset is kept."""
    c = cfg(foxess(timezone="Europe/Berlin", backfill={"since": since}))
    got = c.sources[0].backfill.since
    assert got is not None
    assert got.isoformat() == expected


def test_backfill_date_from_yaml_is_left_to_the_site_zone(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        "timezone: UTC\nsources:\n"
        "  - {name: a, vendor: foxess, api_key: k, backfill: {since: 2024-01-01}}\n"
        "  - {name: b, vendor: foxess, api_key: k, timezone: Asia/Tokyo, backfill: {since: 2024-01-01}}\n",
    )
    a, b = load_config(path, env={}).sources
    assert a.backfill.since == b.backfill.since == dt.datetime(2024, 1, 1)


def test_every_vendor_loads() -> None:
    sources = []
    for slug, spec in VENDOR_SPECS.items():
        src: dict[str, Any] = {"name": slug, "vendor": slug, **{c: f"{slug}-{c}" for c in spec.credentials}}
        if spec.needs_devices:
            src["devices"] = ["D1"]
        sources.append(src)
    c = cfg(*sources)
    assert [s.vendor for s in c.sources] == list(VENDOR_SPECS)


# --------------------------------------------------------------------------
# load_config: files, YAML errors, permissions


def test_load_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "sources: []\n")
    c = load_config(None, env={"SOLAR_COLLECTOR_CONFIG": str(path)})
    assert c.path == path


def test_load_config_without_path() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={})
    assert info.value.key == ""
    assert str(info.value) == "no config file: pass --config or set SOLAR_COLLECTOR_CONFIG"


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", env={})


def test_yaml_syntax_error_gives_line_and_hides_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", f"sources:\n  - name: a\n    api_key: {SECRET}: more\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "line 3" in str(info.value)
    assert SECRET not in str(info.value) and "s3cr3t" not in str(info.value)


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "sources:\n  - name: a\n    vendor: foxess\n    name: b\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'name' at line 4 \(first at line 2\)"):
        load_config(path, env={})


def test_yaml_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path, env={})


INLINE = "sources:\n  - {name: a, vendor: foxess, api_key: inline-secret}\n"
VIA_ENV = "sources:\n  - {name: a, vendor: foxess, api_key: '${KEY}'}\n"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize(
    ("text", "mode", "warns"),
    [
        (INLINE, 0o644, True),
        (INLINE, 0o640, True),
        (INLINE, 0o600, False),
        (VIA_ENV, 0o644, False),
        ("sources:\n  - {name: a, vendor: foxess, api_key: '${NOPE:-fallback-secret}'}\n", 0o644, True),
        ("sources: []\n", 0o644, False),
    ],
)
def test_permissions_warning(tmp_path: Path, text: str, mode: int, warns: bool) -> None:
    path = write(tmp_path / "c.yaml", text, mode)
    c = load_config(path, env={"KEY": "k"})
    if warns:
        (warning,) = c.warnings
        assert str(path) in warning and "chmod 600" in warning and "sources[0].api_key" in warning
        assert "inline-secret" not in warning
    else:
        assert c.warnings == ()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_permissions_warning_not_for_file_secrets(tmp_path: Path) -> None:
    write(tmp_path / "key", "k\n")
    path = write(tmp_path / "c.yaml", "sources:\n  - {name: a, vendor: foxess, api_key_file: key}\n", 0o644)
    assert load_config(path, env={}).warnings == ()


# --------------------------------------------------------------------------
# secrets stay out of repr() and error messages


def test_secrets_collected_and_absent_from_repr() -> None:
    c = cfg(
        {"name": "sg", "vendor": "sungrow", **SUNGROW, "password": SECRET},
        foxess(api_key="fox-" + SECRET),
        influxdb={**V2, "token": "influx-" + SECRET},
    )
    assert {SECRET, "fox-" + SECRET, "influx-" + SECRET} <= c.secrets
    for text in (repr(c), str(c), repr(c.sources[0]), repr(c.influxdb)):
        assert "s3cr3t" not in text
    v1 = cfg(influxdb={**V1, "username": "u", "password": SECRET})
    assert "s3cr3t" not in repr(v1) and SECRET in v1.secrets


@pytest.mark.parametrize(
    "source",
    [
        foxess(api_key=SECRET, interval="bogus"),
        foxess(api_key=SECRET, bogus=1),
        foxess(api_key=SECRET, devices=[]),
        {"name": "sg", "vendor": "sungrow", **SUNGROW, "password": SECRET, "username": 7},
        foxess(api_key=SECRET, api_key_file="/nonexistent"),
    ],
)
def test_errors_never_show_a_secret(source: dict[str, Any]) -> None:
    e = error(source)
    assert "s3cr3t" not in str(e)


def test_invalid_secret_value_is_not_echoed() -> None:
    e = error(foxess(api_key=987654321))
    assert "987654321" not in str(e)
    e = error(influxdb={**V2, "url": "http://user:hunter2@db"})
    assert "hunter2" not in str(e)


def test_secret_from_env_in_error_free_config_is_redactable() -> None:
    c = cfg(foxess(api_key="${K}"), env={"K": SECRET})
    assert SECRET in c.secrets
    assert "s3cr3t" not in repr(c)


# --------------------------------------------------------------------------
# the example config


EXAMPLE_ENV = {
    "INFLUXDB_TOKEN": "influx-token",
    "FOXESS_API_KEY": "fox-key",
    "SUNGROW_APPKEY": "sg-appkey",
    "SUNGROW_ACCESS_KEY": "sg-access",
    "SUNGROW_USERNAME": "sg-user",
    "SUNGROW_PASSWORD": "sg-pass",
    "SOLAX_TOKEN_ID": "solax-token",
    "SUNVEC_TOKEN_ID": "sunvec-token",
}


def test_example_config_loads() -> None:
    c = load_config(ROOT / "config.example.yaml", env=EXAMPLE_ENV)
    assert c.warnings == ()
    assert c.timezone == "Europe/Berlin"
    assert c.state_dir == Path("/var/lib/solar-collector")
    assert (c.buffer_max_size, c.log_level, c.log_format) == (1 << 30, "info", "auto")
    assert c.influxdb is not None
    assert (c.influxdb.url, c.influxdb.api, c.influxdb.token) == (
        "http://localhost:8086",
        "v2",
        "influx-token",
    )
    assert {s.vendor for s in c.sources} == set(VENDOR_SPECS)
    roof = c.source("home-roof")
    assert roof is not None
    assert roof.site == "garage" and roof.devices == ("SN1", "SN2") and roof.interval == 300.0
    assert roof.limits == Limits(per_second=1, per_day=1440)  # the FoxESS defaults
    assert roof.backfill.since == dt.datetime(2024, 1, 1)  # read in each site's zone when used
    assert c.secrets == set(EXAMPLE_ENV.values())


def test_example_config_names_every_key() -> None:
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    keys = [
        "timezone:", "state_dir:", "buffer_max_size:", "log_level:", "log_format:", "influxdb:",
        "url:", "api:", "org:", "bucket:", "token:", "database:", "retention_policy:", "username:",
        "password:", "timeout:", "batch_size:", "gzip_level:", "name:", "vendor:", "base_url:",
        "site:", "devices:", "interval:", "limits:", "per_second:", "per_minute:", "per_hour:",
        "per_day:", "backfill:", "since:", "api_key:", "appkey:", "access_key:", "rsa_public_key",
        "token_id:",
    ]  # fmt: skip
    assert [k for k in keys if k not in text] == []
