"""Real InfluxDB 1.x and VictoriaMetrics servers for tests and benchmarks.

Each server runs from its Debian binary (`/usr/bin/influxd`, `/usr/bin/victoria-metrics`)
on a free loopback port with every file in a private directory. A server can be
stopped (gracefully or with SIGKILL) and started again on the same port and data
directory, which is how the outage tests work.

Readiness is polled with a deadline, never slept for. A missing binary raises
`ServerUnavailableError`; the pytest fixtures turn that into a failure (not a
skip): CI installs both binaries in `.ci/run`, so a missing one is a broken setup.

Not a pytest plugin: plain classes, usable from `bench/sink_bench.py` too.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

INFLUXD = os.environ.get("SOLAR_TEST_INFLUXD", "/usr/bin/influxd")
VICTORIA = os.environ.get("SOLAR_TEST_VICTORIA", "/usr/bin/victoria-metrics")

START_TIMEOUT = 30.0

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class ServerUnavailableError(RuntimeError):
    """The server binary is missing or the server did not become ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def _binary(path: str) -> str:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ServerUnavailableError(
            f"{path} not found: install the Debian package "
            f"({'influxdb' if 'influx' in path else 'victoria-metrics'}); CI does it in .ci/run"
        )
    return path


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the test process dies, so no server outlives a crashed run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Server:
    """Start/stop/restart one server process; subclasses say how."""

    name = "server"
    ready_path = "/"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        try:
            status, _ = _http("GET", self.url + self.ready_path, timeout=1.0)
        except OSError:
            return False
        return status in (200, 204)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and poll until it answers, or raise with its log tail."""
        if self.proc is not None and self.proc.poll() is None:
            return
        cmd = self._command()
        log = open(self.log_path, "ab")  # noqa: SIM115 (handed to the child)
        try:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, preexec_fn=_die_with_parent
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self._ready():
                try:
                    self._after_start()
                except BaseException:
                    self.stop()  # never leave a half-set-up server running
                    raise
                return
            time.sleep(0.02)  # polling interval while waiting for readiness
        self.stop()
        raise ServerUnavailableError(f"{self.name} on port {self.port} did not start:\n{self.log_tail()}")

    def _after_start(self) -> None:
        pass

    def stop(self, *, kill: bool = False, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, or SIGKILL with kill=True) and wait for it to exit."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def restart(self) -> None:
        """Stop and start again on the same port and data directory."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InfluxServer(_Server):
    """InfluxDB 1.x (`influxd`): `/write` (v1 API) and InfluxQL `/query`.

    Debian's 1.6.7 has no `/api/v2/write` (added in 1.8), so v2-API tests run
    against VictoriaMetrics instead.
    """

    name = "influxd"
    ready_path = "/ping"

    def __init__(
        self,
        workdir: Path,
        *,
        database: str | None = "solar",
        admin: tuple[str, str] | None = None,
        max_body_size: int | None = None,
    ) -> None:
        """``admin`` (user, password) turns on ``auth-enabled`` and creates that admin
        user; ``max_body_size`` lowers the 413 threshold (1.6 applies it to the body
        as sent, i.e. compressed)."""
        _binary(INFLUXD)
        super().__init__(workdir)
        self.rpc_port = free_port()
        self.database = database
        self.admin = admin
        self.max_body_size = max_body_size
        self.config_path = workdir / "influxdb.conf"

    def _command(self) -> list[str]:
        d = self.workdir
        # Every directory in the tmp dir; HTTP and the RPC (backup) port on free
        # loopback ports; reporting, _internal monitoring and chatter off.
        self.config_path.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
  logging-enabled = false
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  pprof-enabled = false
  auth-enabled = {"true" if self.admin else "false"}
  max-body-size = {self.max_body_size or 25000000}
[logging]
  level = "warn"
  suppress-logo = true
"""
        )
        return [_binary(INFLUXD), "-config", str(self.config_path)]

    def _after_start(self) -> None:
        if self.admin:
            user, password = self.admin
            # With auth on and no users yet, influxd accepts this one statement unauthenticated.
            self.influxql(f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES")
        if self.database:
            self.create_database(self.database)

    def create_database(self, name: str) -> None:
        self.influxql(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        self.influxql(f'DROP DATABASE "{name}"')

    def influxql(self, q: str, *, db: str | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL through `/query`; returns the `results` list (raises on an error)."""
        params = {"q": q, "epoch": "s"}
        if db:
            params["db"] = db
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.admin:
            user, password = self.admin
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        status, body = _http(
            "POST", f"{self.url}/query", body=urllib.parse.urlencode(params).encode(), headers=headers
        )
        data = json.loads(body or b"{}")
        if status != 200 or "error" in data:
            raise RuntimeError(f"influxql {q!r}: {status} {body[:500]!r}")
        results: list[dict[str, Any]] = data.get("results", [])
        for res in results:
            if "error" in res:
                raise RuntimeError(f"influxql {q!r}: {res['error']}")
        return results

    def rows(self, q: str, *, db: str | None = None) -> list[dict[str, Any]]:
        """Rows of a SELECT as dicts (`time` in Unix seconds, tags included), in time order."""
        out: list[dict[str, Any]] = []
        for res in self.influxql(q, db=db or self.database):
            for series in res.get("series", []):
                tags = series.get("tags", {})
                for values in series["values"]:
                    row = dict(zip(series["columns"], values, strict=True))
                    row.update(tags)
                    out.append(row)
        out.sort(key=lambda r: r["time"])
        return out

    def count(self, measurement: str, field: str, *, db: str | None = None) -> int:
        """COUNT(field) over all time."""
        rows = self.rows(f'SELECT COUNT("{field}") FROM "{measurement}"', db=db)
        return int(rows[0]["count"]) if rows else 0


class VictoriaServer(_Server):
    """VictoriaMetrics single-node: accepts `/write` and `/api/v2/write` line protocol.

    An InfluxDB line `m,tag=v f=1 <ts>` becomes the series `m_f{tag="v"}`
    (plus `db="<db|bucket>"` when the request names one). VM 1.79 (Debian) has no
    `-inmemoryDataFlushInterval`; `/internal/force_flush` makes just-written rows
    searchable, and `-search.latencyOffset=0s` / `-search.disableCache` stop the
    query layer from hiding recent samples.
    """

    name = "victoria-metrics"
    ready_path = "/health"

    def __init__(self, workdir: Path) -> None:
        _binary(VICTORIA)
        super().__init__(workdir)

    def _command(self) -> list[str]:
        return [
            _binary(VICTORIA),
            f"-storageDataPath={self.workdir / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]

    def flush(self) -> None:
        """Make everything written so far searchable."""
        status, body = _http("GET", self.url + "/internal/force_flush")
        if status not in (200, 204):
            raise RuntimeError(f"force_flush: {status} {body[:200]!r}")

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, Any]]:
        """Raw samples via `/api/v1/export` (JSON lines): metric labels, values, timestamps (ms)."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        status, body = _http("GET", f"{self.url}/api/v1/export?{query}")
        if status != 200:
            raise RuntimeError(f"export: {status} {body[:500]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def samples(self, match: str = '{__name__!=""}') -> dict[SeriesKey, list[tuple[int, float]]]:
        """{(metric name, sorted labels without __name__): [(unix seconds, value), ...] in time order}."""
        out: dict[SeriesKey, list[tuple[int, float]]] = {}
        for row in self.export(match):
            labels = dict(row["metric"])
            name = labels.pop("__name__")
            key = (name, tuple(sorted(labels.items())))
            pairs = out.setdefault(key, [])
            stamps = zip(row["timestamps"], row["values"], strict=True)
            pairs.extend((int(ts) // 1000, float(v)) for ts, v in stamps)
        for pairs in out.values():
            pairs.sort()
        return out

    def count(self, match: str = '{__name__!=""}') -> int:
        """Number of samples matching a series selector."""
        return sum(len(v) for v in self.samples(match).values())
