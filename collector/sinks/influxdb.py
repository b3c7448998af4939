"""InfluxDB sink: a thin aiohttp writer for the v1 (`/write`) and v2 (`/api/v2/write`) APIs.

We own batching, retries and the spool; influxdb-client's batching WriteApi is
not used (stack.md §3.3: threads, silent loss after its retry budget, flush()
a no-op). Status handling follows Telegraf's outputs.influxdb_v2 and the
InfluxDB docs (stack.md §1.3, §2.6):

=================  ===========================================================
2xx                written
400, 422           bad lines: a 1.x/2.x ``partial write: ... dropped=N`` means
                   the rest landed; otherwise bisect the batch so the bad line
                   alone is dropped and counted and every other line lands
413                split the batch in half and resend, recursively
401, 403           SinkAuthError: hold the lines, retry slowly, say so loudly
404                SinkAuthError: the database / bucket is missing (config)
other 4xx          SinkAuthError: held, not dropped (a proxy or URL problem;
                   Telegraf drops these, we would rather not lose data)
408, 429, 5xx,     SinkRetryableError honouring ``Retry-After`` (seconds or an
timeouts,          HTTP date; capped at 600 s; unparseable counts as 10 s)
connection errors
=================  ===========================================================

``retention()`` asks the server how long it keeps points, once per process:
1.x ``SHOW RETENTION POLICIES`` through ``/query`` (the configured policy, else
the default one), 2.x ``GET /api/v2/buckets`` (``retentionRules``). Anything
else (no permission, 404, VictoriaMetrics, a network error) is None: unknown.

Bodies are gzip'd (level 1 by default: see bench/README.md). A batch from
the spool is already gzip'd (each spool record is one gzip member, level 1), so
it is posted as that multi-member stream, without recompressing; influxd and
VictoriaMetrics read every member (Go's ``compress/gzip`` reads multi-member
streams by default; tests/sinks/test_influxdb.py checks both servers). So
``gzip_level`` 1-9 all post the spool's level-1 members; the level applies to
what ``write`` and the 400/413 splitting compress themselves. ``gzip_level`` 0
posts plain text: the batch is inflated in the forwarder's worker thread. TLS
verification is left on. Credentials go in headers only and never appear in
``repr``, exception messages or logs.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import re
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import aiohttp
import structlog
from yarl import URL

from collector.errors import ConfigError, SinkAuthError, SinkRetryableError
from collector.sinks.base import Encoded, WriteReport

log = structlog.get_logger(__name__)

RETRY_AFTER_CAP = 600.0  # Telegraf caps Retry-After at 600 s (stack.md §1.3)
RETRY_AFTER_UNPARSEABLE = 10.0  # Telegraf: an unparseable Retry-After counts as 10 s
MAX_MESSAGES = 100
MAX_MESSAGE_CHARS = 1000

# InfluxDB 1.x: tsdb.PartialWriteError "partial write: <reason> dropped=N". The N
# counts points refused by the storage (type conflict, retention, limits) but NOT
# lines that failed to parse: those are listed as "unable to parse '<line>': ..."
# and reported with dropped=0 (observed on influxd 1.6.7, httpd/handler.go).
_PARTIAL_RE = re.compile(r"partial write:.*dropped=(\d+)", re.DOTALL)
_UNPARSEABLE_RE = re.compile(r"unable to parse '")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date.

    None when absent; capped at 600 s; an unparseable value counts as 10 s
    (Telegraf's rules, stack.md §1.3).
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
        if not math.isfinite(seconds):
            return RETRY_AFTER_UNPARSEABLE
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return RETRY_AFTER_UNPARSEABLE
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            return RETRY_AFTER_UNPARSEABLE
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def _server_message(body: bytes, extra: str | None = None) -> str:
    """The error text of an InfluxDB answer: 1.x {"error"}, 2.x {"message"}, else the body.

    ``extra`` is the X-Influx-Error header, which Telegraf also appends.
    """
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        msg = data.get("error") or data.get("message")
        if isinstance(msg, str):
            text = msg
    if extra and extra not in text:
        text = f"{text} ({extra})" if text else extra
    return text


_GO_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration as InfluxQL prints it (``48h0m0s``, ``0s``); None if it is not one."""
    text = text.strip()
    if not text or _GO_DURATION_RE.sub("", text):
        return None
    return sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_DURATION_RE.findall(text))


def _v1_retention(data: Any, policy: str | None) -> float | None:
    """The duration (s) of ``policy`` (else the default one) in a SHOW RETENTION POLICIES answer;
    0 means infinite; None when the answer is not one (an error, VictoriaMetrics' database list)."""
    try:
        series = data["results"][0]["series"][0]
        columns = list(series["columns"])
        name_i, dur_i, def_i = columns.index("name"), columns.index("duration"), columns.index("default")
        for row in series["values"]:
            if (row[name_i] == policy) if policy else row[def_i] is True:
                return parse_go_duration(str(row[dur_i]))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return None


def _v2_retention(data: Any, bucket: str) -> float | None:
    """``everySeconds`` of the bucket's expire rule (0: infinite); None when it is not there."""
    try:
        for b in data["buckets"]:
            if b.get("name") != bucket:
                continue
            rules = [r for r in b.get("retentionRules") or [] if r.get("type", "expire") == "expire"]
            if not rules:
                return 0.0  # no rule: kept forever
            return float(rules[0]["everySeconds"])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
    return None


def _clip(msg: str) -> str:
    return msg if len(msg) <= MAX_MESSAGE_CHARS else msg[:MAX_MESSAGE_CHARS] + "…"


def _split_raw(raw: bytes, lines: int) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
    """Split newline-terminated raw lines into two halves by line count."""
    half = lines // 2
    pos = -1
    for _ in range(half):
        pos = raw.find(b"\n", pos + 1)
    return (raw[: pos + 1], half), (raw[pos + 1 :], lines - half)


class InfluxSink:
    """Writes line protocol to InfluxDB 1.x (api="v1") or 1.8+/2.x/3.x (api="v2").

    One POST at a time per call; the Forwarder keeps a single call in flight so
    write order holds (stack.md §9 B6). Second precision.
    """

    def __init__(
        self,
        url: str,
        api: Literal["v1", "v2"] = "v2",
        *,
        org: str | None = None,
        bucket: str | None = None,
        token: str | None = None,
        database: str | None = None,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        gzip_level: int = 1,
        name: str = "influxdb",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if api not in ("v1", "v2"):
            raise ConfigError("influxdb.api", f"must be v1 or v2, not {api!r}")
        if not 0 <= gzip_level <= 9:
            raise ConfigError("influxdb.gzip_level", "must be 0 (off) to 9")
        base = URL(url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ConfigError("influxdb.url", "must be an http:// or https:// URL")
        self.name = name
        self.api = api
        self.timeout = timeout
        self.gzip_level = gzip_level
        self._clock = clock
        self._org = org
        self._bucket = bucket
        self._database = database
        self._retention_policy = retention_policy
        self._username = username
        self._token = token
        self._password = password
        # Credentials embedded in the URL are used by aiohttp but never shown.
        self._display_url = str(base.with_user(None).with_password(None)).rstrip("/")
        self._secrets = [x for x in (token, password, base.password) if x]
        root = str(base).rstrip("/")
        self._headers: dict[str, str] = {"Content-Type": "text/plain; charset=utf-8"}
        if api == "v2":
            if not bucket:
                raise ConfigError("influxdb.bucket", "required for api v2")
            query = {"bucket": bucket, "precision": "s"}
            if org:
                query["org"] = org
            self._write_url = URL(root + "/api/v2/write").with_query(query)
            self._target = f"bucket {bucket!r}" + (f" (org {org!r})" if org else "")
            if token:
                self._headers["Authorization"] = f"Token {token}"
        else:
            if not database:
                raise ConfigError("influxdb.database", "required for api v1")
            query = {"db": database, "precision": "s"}
            if retention_policy:
                query["rp"] = retention_policy
            self._write_url = URL(root + "/write").with_query(query)
            self._target = f"database {database!r}" + (
                f" (retention policy {retention_policy!r})" if retention_policy else ""
            )
            if username:
                self._headers["Authorization"] = aiohttp.encode_basic_auth(username, password or "")
        if api == "v2":
            bucket_query = {"name": bucket or ""}
            if org:
                bucket_query["org"] = org
            self._retention_url = URL(root + "/api/v2/buckets").with_query(bucket_query)
        else:
            quoted = (database or "").replace("\\", "\\\\").replace('"', '\\"')  # an InfluxQL identifier
            self._retention_url = URL(root + "/query").with_query(
                {"q": f'SHOW RETENTION POLICIES ON "{quoted}"'}
            )
        self._retention: float | None = None
        self._retention_asked = False
        self._retention_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._own_session = False

    def __repr__(self) -> str:
        secret = "***" if (self._token or self._password) else None
        target = (
            f"org={self._org!r}, bucket={self._bucket!r}, token={secret!r}"
            if self.api == "v2"
            else f"database={self._database!r}, rp={self._retention_policy!r}, "
            f"username={self._username!r}, password={secret!r}"
        )
        return f"InfluxSink({self._display_url!r}, api={self.api!r}, {target})"

    # ---------------------------------------------------------------- lifecycle

    async def open(self, session: aiohttp.ClientSession | None) -> None:
        """Use the app's session, or make one when given None (closed by close())."""
        if session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        else:
            self._session = session
            self._own_session = False

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None
        self._own_session = False

    # ---------------------------------------------------------------- retention

    async def retention(self) -> float | None:
        """Seconds the server keeps a point; None: forever, or it cannot be asked.

        Asked once per process (the answer, or the failure, is cached), with the
        writer's credentials. Never raises: a backfill goes on unclamped.
        """
        if self._session is None:  # before open(): not asked, so not cached either
            return None
        async with self._retention_lock:
            if not self._retention_asked:
                self._retention_asked = True
                self._retention = await self._ask_retention()
            return self._retention

    async def _ask_retention(self) -> float | None:
        assert self._session is not None
        headers = {k: v for k, v in self._headers.items() if k == "Authorization"}
        what = "bucket" if self.api == "v2" else "retention policy"
        try:
            async with self._session.get(
                self._retention_url, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as resp:
                status = resp.status
                body = await resp.read()
        except (TimeoutError, aiohttp.ClientError) as err:
            log.info(
                "sink.retention_unknown",
                sink=self.name,
                url=self._display_url,
                reason=self._redact(f"{type(err).__name__}: {err}"),
            )
            return None
        seconds: float | None = None
        if status == 200:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if self.api == "v2":
                assert self._bucket is not None
                seconds = _v2_retention(data, self._bucket)
            else:
                seconds = _v1_retention(data, self._retention_policy)
        if seconds is None:
            log.info(
                "sink.retention_unknown",
                sink=self.name,
                url=self._display_url,
                status=status,
                reason=_clip(self._redact(_server_message(body))) or None,
                note=f"cannot read the {what}; backfill is not clamped",
            )
            return None
        if seconds <= 0:
            log.debug("sink.retention", sink=self.name, target=self._target, retention="infinite")
            return None
        log.debug("sink.retention", sink=self.name, target=self._target, retention_s=seconds)
        return seconds

    # -------------------------------------------------------------------- write

    async def write(self, lines: Sequence[str]) -> WriteReport:
        """Write lines (no trailing newlines). See the module docstring for outcomes."""
        if not lines:
            return WriteReport(0)
        raw = ("\n".join(lines) + "\n").encode("utf-8")
        return await self.write_encoded(self.encode(raw, len(lines)))

    def encode(self, raw: bytes, lines: int) -> Encoded:
        """Gzip newline-terminated lines (level ``gzip_level``; 0 sends them plain)."""
        if self.gzip_level == 0:
            return Encoded(raw, raw, lines, None)
        comp = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)  # wbits 31: gzip container
        return Encoded(raw, comp.compress(raw) + comp.flush(), lines, "gzip")

    def encode_gzip(self, body: bytes, lines: int) -> Encoded | None:
        """Post a gzip stream (the spool's members) as it is; None with gzip_level 0 (plain text)."""
        if self.gzip_level == 0:
            return None
        return Encoded(None, body, lines, "gzip")

    async def write_encoded(self, batch: Encoded) -> WriteReport:
        """Send one encoded batch, splitting / bisecting as the status requires."""
        if batch.lines == 0:
            return WriteReport(0)
        status, retry_after, message = await self._post(batch)
        if 200 <= status < 300:
            return WriteReport(batch.lines)
        if status in (400, 422):
            return await self._bad_request(batch, status, message)
        if status == 413:
            if batch.lines == 1:
                log.debug("line too large for the server; rejecting it", sink=self.name)
                return WriteReport(0, 1, [_clip(f"413 line too large: {message}")])
            return await self._halves(batch)
        if status in (401, 403):
            raise SinkAuthError(
                f"{self.name}: {status} from {self._display_url}: credentials refused for {self._target}; "
                f"holding the points until it is fixed: {_clip(message)}",
                status=status,
                retry_after=retry_after,
            )
        if status == 404:
            raise SinkAuthError(
                f"{self.name}: 404 from {self._display_url}: the {self._target} does not exist "
                f"(create it, or fix the config); holding the points: {_clip(message)}",
                status=status,
                retry_after=retry_after,
            )
        if status == 408 or status == 429 or status >= 500:
            raise SinkRetryableError(
                f"{self.name}: {status} from {self._display_url}: {_clip(message)}",
                status=status,
                retry_after=retry_after,
            )
        raise SinkAuthError(
            f"{self.name}: unexpected {status} from {self._display_url} (check the url); "
            f"holding the points: {_clip(message)}",
            status=status,
            retry_after=retry_after,
        )

    async def _post(self, batch: Encoded) -> tuple[int, float | None, str]:
        if self._session is None:
            raise RuntimeError(f"{self.name}: write before open()")
        headers = self._headers
        if batch.content_encoding:
            headers = {**headers, "Content-Encoding": batch.content_encoding}
        try:
            async with self._session.post(
                self._write_url,
                data=batch.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                if 200 <= resp.status < 300:
                    return resp.status, None, ""
                body = await resp.read()
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), self._clock())
                message = _server_message(body, resp.headers.get("X-Influx-Error"))
                return resp.status, retry_after, self._redact(message)
        except TimeoutError as err:
            raise SinkRetryableError(
                f"{self.name}: no answer from {self._display_url} within {self.timeout:g} s"
            ) from err
        except aiohttp.ClientError as err:
            raise SinkRetryableError(
                self._redact(f"{self.name}: cannot write to {self._display_url}: {type(err).__name__}: {err}")
            ) from err

    def _redact(self, text: str) -> str:
        """Belt and braces: no credential in any message, whatever a library or server echoes."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _bad_request(self, batch: Encoded, status: int, message: str) -> WriteReport:
        partial = _PARTIAL_RE.search(message)
        if partial is not None:
            # The server wrote the rest and told us how many it refused (stack.md §2.6).
            rejected = min(batch.lines, int(partial.group(1)) + len(_UNPARSEABLE_RE.findall(message)))
            if rejected > 0:
                msgs = [_clip(m) for m in message.split("\n") if m.strip()][:MAX_MESSAGES]
                return WriteReport(batch.lines - rejected, rejected, msgs)
            # dropped=0 and nothing we can attribute: fall through to bisecting.
        if batch.lines == 1:
            return WriteReport(0, 1, [_clip(f"{status} {message}")])
        # Whole batch refused (InfluxDB 2.x OSS rejects all on one malformed line):
        # bisect so only the bad line(s) are dropped (TSD-008, stack.md §1.3).
        log.debug("bad request; bisecting the batch", sink=self.name, status=status, lines=batch.lines)
        return await self._halves(batch)

    async def _halves(self, batch: Encoded) -> WriteReport:
        (raw_a, n_a), (raw_b, n_b) = _split_raw(batch.raw, batch.lines)
        first = await self.write_encoded(self.encode(raw_a, n_a))
        second = await self.write_encoded(self.encode(raw_b, n_b))
        report = first + second
        if len(report.messages) > MAX_MESSAGES:
            report = WriteReport(report.written, report.rejected, report.messages[:MAX_MESSAGES])
        return report
