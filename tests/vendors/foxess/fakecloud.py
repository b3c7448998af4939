"""A tiny scripted FoxESS cloud on aiohttp.web for unit tests of the client's I/O logic.

Not the simulator (that one is written separately from the same documents and joins
later through contract tests): this server only records requests, checks the
signature the way the field notes establish it, and answers what each test scripts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from collector.budget import BudgetBook, SourceBudget
from collector.clock import FakeClock
from collector.config import SourceConfig
from collector.state import State
from collector.vendors.foxess import FOXESS_SPEC

KEY = "test-key-0123456789abcdef"


def expected_signature(path: str, key: str, timestamp: str) -> str:
    """The notes' recipe, spelled independently of collector.vendors.foxess.auth."""
    text = path + r"\r\n" + key + r"\r\n" + timestamp
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    signature_ok: bool


Reply = dict[str, Any] | tuple[int, str, str] | Callable[[], Awaitable[Any]]
Handler = Callable[[Req], Reply]


def ok(result: Any) -> dict[str, Any]:
    return {"errno": 0, "msg": "Operation successful", "result": result}


@dataclass
class FakeFox:
    key: str = KEY
    handlers: dict[str, Handler] = field(default_factory=dict)
    requests: list[Req] = field(default_factory=list)

    def on(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    def calls(self, path: str) -> list[Req]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        text = await request.text()
        body = json.loads(text) if text else None
        headers = {k.lower(): v for k, v in request.headers.items()}
        sig_ok = headers.get("token") == self.key and headers.get("signature") == expected_signature(
            request.path, self.key, headers.get("timestamp", "")
        )
        req = Req(request.method, request.path, dict(request.query), headers, body, sig_ok)
        self.requests.append(req)
        if not sig_ok:
            return web.json_response({"errno": 40256, "msg": "illegal signature", "result": None})
        handler = self.handlers.get(request.path)
        if handler is None:
            return web.json_response({"errno": 40257, "msg": "no such endpoint in this test", "result": None})
        reply = handler(req)
        if callable(reply):
            reply = await reply()
        if isinstance(reply, tuple):
            status, ctype, raw = reply
            return web.Response(status=status, text=raw, content_type=ctype)
        return web.json_response(reply)


def source(
    url: str, *, name: str = "home", tz: str = "Europe/London", devices: tuple[str, ...] | None = None
) -> SourceConfig:
    return SourceConfig(
        name=name,
        vendor="foxess",
        base_url=url,
        timezone=tz,
        devices=devices,
        limits=FOXESS_SPEC.default_limits,
        credentials={"api_key": KEY},
    )


def budget(state: State, clock: FakeClock) -> SourceBudget:
    acct = BudgetBook(state, clock).account(FOXESS_SPEC, {"api_key": KEY}, FOXESS_SPEC.default_limits)
    return SourceBudget(acct)


@asynccontextmanager
async def serve(fake: FakeFox) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def slow(seconds: float, reply: Any) -> Callable[[], Awaitable[Any]]:
    async def later() -> Any:
        await asyncio.sleep(seconds)
        return reply

    return later


def state_at(tmp_path: Path) -> State:
    return State(tmp_path / "state")
