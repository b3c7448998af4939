"""Fixtures for the sink tests: real servers, a scripted HTTP peer, a fake clock.

Real servers (tests/servers.py): influxd 1.x for the v1 API and InfluxQL reads,
VictoriaMetrics for the v2 API. A missing binary fails the test, it never skips.
Servers are session-scoped; each test writes to its own database / bucket.
Tests that stop a server get their own instance.

Status codes the real servers cannot be made to return (429, 5xx, Retry-After,
InfluxDB 2.x's whole-batch 400) come from ``Peer``: a real aiohttp.web server
that answers from a script, Telegraf style.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from aiohttp import web

from tests.servers import InfluxServer, ServerUnavailableError, VictoriaServer, free_port

T = TypeVar("T")
_names = itertools.count(1)


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion in a fresh event loop (no pytest-asyncio needed)."""

    async def main() -> T:
        return await coro

    return asyncio.run(main())


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


def _start(server: InfluxServer | VictoriaServer) -> None:
    try:
        server.start()
    except ServerUnavailableError as err:
        pytest.fail(str(err), pytrace=False)


def make_influxd(workdir: Path, *, database: str | None = "solar") -> InfluxServer:
    try:
        return InfluxServer(workdir, database=database)
    except ServerUnavailableError as err:
        pytest.fail(str(err), pytrace=False)


def make_victoria(workdir: Path) -> VictoriaServer:
    try:
        return VictoriaServer(workdir)
    except ServerUnavailableError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """A shared influxd 1.x (no auth). Use ``influx_db`` for a fresh database."""
    server = make_influxd(tmp_path_factory.mktemp("influxd"), database=None)
    _start(server)
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxd: InfluxServer) -> str:
    """A fresh, empty database on the shared influxd."""
    name = unique("db")
    influxd.create_database(name)
    return name


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaServer]:
    """A shared VictoriaMetrics. Use ``vm_meas`` for a fresh measurement name."""
    server = make_victoria(tmp_path_factory.mktemp("victoria"))
    _start(server)
    yield server
    server.stop()


@pytest.fixture
def vm_meas() -> str:
    """A measurement name no other test uses (VM's /api/v2/write ignores the bucket,
    so tests sharing the server keep apart by measurement: series ``<meas>_<field>``)."""
    return unique("meas")


AUTH_MAX_BODY = 20_000
ADMIN = ("admin", "admin-pw")
READER = ("reader", "reader-pw")


@pytest.fixture(scope="session")
def influxd_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """influxd with auth on and a small max-body-size: real 401, 403 and 413 answers.

    Users: ADMIN (all privileges) and READER (read-only on ``solar``).
    """
    try:
        server = InfluxServer(
            tmp_path_factory.mktemp("influxd-auth"),
            database="solar",
            admin=ADMIN,
            max_body_size=AUTH_MAX_BODY,
        )
    except ServerUnavailableError as err:
        pytest.fail(str(err), pytrace=False)
    _start(server)
    server.influxql(f"CREATE USER {READER[0]} WITH PASSWORD '{READER[1]}'")
    server.influxql(f"GRANT READ ON solar TO {READER[0]}")
    yield server
    server.stop()


# --------------------------------------------------------------------- fake peer


@dataclass
class Reply:
    """One scripted answer of the Peer."""

    status: int = 204
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (timeouts)


@dataclass
class Request:
    """What the Peer received: path, query, headers and the (gunzipped) lines."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    lines: list[str]


Responder = Callable[[Request], Reply]


class Peer:
    """A real aiohttp.web HTTP server answering writes from a script (Telegraf-style fake).

    ``script``: replies used in order, then ``default``; or a callable deciding per request.
    """

    def __init__(self, script: list[Reply] | Responder | None = None, default: Reply | None = None) -> None:
        self.script = script if script is not None else []
        self.default = default or Reply(204)
        self.requests: list[Request] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def landed(self) -> list[str]:
        """Lines of the requests answered 2xx, in arrival order."""
        return [
            ln for req, rep in zip(self.requests, self.replies, strict=False) if rep < 300 for ln in req.lines
        ]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()  # aiohttp's server undoes Content-Encoding: gzip itself
        req = Request(
            request.path,
            dict(request.query),
            dict(request.headers),
            [ln for ln in raw.decode().split("\n") if ln],
        )
        self.requests.append(req)
        if callable(self.script):
            reply = self.script(req)
        elif self.script:
            reply = self.script.pop(0)
        else:
            reply = self.default
        self.replies.append(reply.status)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, text=reply.body or None, headers=reply.headers)

    async def __aenter__(self) -> Peer:
        self.replies: list[int] = []
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# -------------------------------------------------------------------- fake time


class FakeTime:
    """Injectable clock and sleep for the Forwarder: sleeping advances the clock at once."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll pred() until true or fail after timeout (never a bare sleep to wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()
