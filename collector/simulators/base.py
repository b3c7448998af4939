"""The reusable vendor-simulator framework: HTTP runner, limit engine, call log, fault injection.

A vendor simulator subclasses :class:`Simulator` and supplies *rules*, not per-test branches:

* :meth:`Simulator.endpoints` — the routes (method, path, handler);
* :meth:`Simulator.authenticate` — header / token / signature rules, returning the vendor's refusal;
* :meth:`Simulator.charges` — which sliding-window limits a call consumes (:class:`Charge`);
* :meth:`Simulator.limit_refusal`, :meth:`Simulator.error_reply`, :meth:`Simulator.ok_reply` — the
  vendor's envelopes for a refused call, a body-level error and a success.

Every request then runs the same pipeline (:meth:`Simulator._dispatch`)::

    authenticate → parse body → limits (refusals are counted in ``violations``) → injected fault → handler

and is recorded in :attr:`Simulator.calls` with its time, account, outcome and vendor code, so a test
can assert "no limit was ever exceeded" with ``sim.violations == 0``.

Time comes from an injectable clock (:data:`Clock`, e.g. :class:`ManualClock`), used for the limits,
the signature-timestamp checks and "now" in the data, so tests never sleep.

The server binds ``127.0.0.1`` on a free port (port 0) by default; use ``async with sim:`` or
``await sim.start()`` / ``await sim.stop()`` in-process, or :func:`serve_forever` standalone.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import signal
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from aiohttp import web

Clock = Callable[[], float]
"""Returns the current Unix time in seconds (float)."""


class ManualClock:
    """A clock that only moves when told to (for tests): ``clock()``, ``advance(s)``, ``set(t)``."""

    def __init__(self, t: float) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.t += seconds

    def set(self, t: float) -> None:
        """Set the clock to Unix time ``t``."""
        self.t = float(t)


# --------------------------------------------------------------------------------------------------
# Limits


@dataclass(frozen=True)
class Limit:
    """At most ``max_calls`` (summed costs) within any sliding window of ``window_s`` seconds."""

    name: str
    max_calls: int
    window_s: float


@dataclass(frozen=True)
class Charge:
    """A call consumes ``cost`` of ``limit`` for ``key`` (e.g. an account, or (account, endpoint)).

    ``when_refused``: whether the charge is still recorded when *another* limit refuses the call
    (a call refused for calling too fast may still cost daily quota).
    """

    limit: Limit
    key: Hashable
    cost: int = 1
    when_refused: bool = False


class LimitEngine:
    """Sliding-window limits per (limit, key), on an injectable clock.

    A call at ``t`` counts against a window while ``now < t + window_s``.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._events: dict[tuple[str, Hashable], deque[tuple[float, int]]] = {}
        self._sums: dict[tuple[str, Hashable], int] = {}

    def _purge(self, limit: Limit, key: Hashable, now: float) -> int:
        k = (limit.name, key)
        events = self._events.get(k)
        if not events:
            return 0
        total = self._sums[k]
        while events and events[0][0] <= now - limit.window_s:
            total -= events.popleft()[1]
        self._sums[k] = total
        return total

    def used(self, limit: Limit, key: Hashable) -> int:
        """Cost recorded for ``key`` within the current window."""
        return self._purge(limit, key, self.clock())

    def remaining(self, limit: Limit, key: Hashable) -> int:
        """How much of ``limit`` is left for ``key`` right now."""
        return max(0, limit.max_calls - self.used(limit, key))

    def check(self, charges: Sequence[Charge]) -> Charge | None:
        """The first charge that would exceed its limit, or None if all fit."""
        now = self.clock()
        needed: dict[tuple[str, Hashable], int] = {}
        for charge in charges:
            k = (charge.limit.name, charge.key)
            needed[k] = needed.get(k, 0) + charge.cost
            if self._purge(charge.limit, charge.key, now) + needed[k] > charge.limit.max_calls:
                return charge
        return None

    def record(self, charges: Sequence[Charge]) -> None:
        """Record ``charges`` at the current time, unconditionally."""
        now = self.clock()
        for charge in charges:
            k = (charge.limit.name, charge.key)
            self._events.setdefault(k, deque()).append((now, charge.cost))
            self._sums[k] = self._sums.get(k, 0) + charge.cost

    def acquire(self, charges: Sequence[Charge]) -> Charge | None:
        """Record ``charges`` if they all fit and return None; otherwise return the refusing charge
        and record only the charges marked ``when_refused`` (if those fit)."""
        refused = self.check(charges)
        if refused is None:
            self.record(charges)
            return None
        counted = [c for c in charges if c.when_refused and c is not refused]
        if counted and self.check(counted) is None:
            self.record(counted)
        return refused

    def reset(self) -> None:
        """Forget every recorded call."""
        self._events.clear()
        self._sums.clear()


# --------------------------------------------------------------------------------------------------
# Call log

Outcome = Literal["ok", "error", "auth", "limited", "injected", "locked"]


@dataclass(frozen=True)
class CallRecord:
    """One request as the simulator saw it.

    ``outcome``: ``ok`` (served), ``error`` (a vendor error from the handler, e.g. a bad body),
    ``auth`` (refused by authentication), ``limited`` (refused by ``limit``), ``injected`` (answered by
    an injected fault), ``locked`` (refused because the account is locked out after repeated limit
    refusals, e.g. SolaX's one-hour ban; such calls are not ``violations``). ``code`` is the vendor's
    body-level code (0 = success) where there is one.
    """

    t: float
    method: str
    path: str
    account: str | None
    status: int
    code: int | None
    outcome: Outcome
    limit: str | None = None
    devices: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------
# Fault injection

InjectionKind = Literal["errno", "http", "html", "malformed", "hang", "nulls", "strings", "empty"]


@dataclass(frozen=True)
class Injection:
    """A fault to answer a call with. Build one with the class methods.

    ``errno`` — the vendor's body-level error ``code`` (via :meth:`Simulator.error_reply`);
    ``http`` — HTTP status ``code`` with a short JSON-less text body; ``html`` — an HTML error page
    with status ``code`` (a proxy / maintenance page); ``malformed`` — HTTP 200 with truncated JSON;
    ``hang`` — no answer for ``seconds`` (then 504), so the client times out; ``nulls`` / ``strings``
    / ``empty`` — the handler's real answer with the numeric values under the vendor's
    :attr:`Simulator.value_keys` replaced by ``null`` / numeric strings / ``""``.
    """

    kind: InjectionKind
    code: int = 0
    message: str = ""
    seconds: float = 30.0

    @classmethod
    def errno(cls, code: int, message: str = "") -> Injection:
        return cls("errno", code, message)

    @classmethod
    def http(cls, status: int = 500) -> Injection:
        return cls("http", status)

    @classmethod
    def html(cls, status: int = 502) -> Injection:
        return cls("html", status)

    @classmethod
    def malformed(cls) -> Injection:
        return cls("malformed", 200)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Injection:
        return cls("hang", 504, seconds=seconds)

    @classmethod
    def nulls(cls) -> Injection:
        return cls("nulls")

    @classmethod
    def strings(cls) -> Injection:
        return cls("strings")

    @classmethod
    def empty(cls) -> Injection:
        return cls("empty")


ANY_ENDPOINT = "*"


class Injector:
    """Pending injections per endpoint path (or :data:`ANY_ENDPOINT`), consumed in order."""

    def __init__(self) -> None:
        self._pending: dict[str, deque[Injection]] = {}

    def add(self, path: str, injection: Injection, count: int = 1) -> None:
        """Answer the next ``count`` calls of ``path`` with ``injection``."""
        self._pending.setdefault(path, deque()).extend([injection] * count)

    def take(self, path: str) -> Injection | None:
        """The next injection for ``path`` (specific before ``*``), removing it."""
        for key in (path, ANY_ENDPOINT):
            queue = self._pending.get(key)
            if queue:
                return queue.popleft()
        return None

    def pending(self, path: str | None = None) -> int:
        """How many injections are still waiting (for ``path``, or in total)."""
        if path is not None:
            return len(self._pending.get(path, ()))
        return sum(len(q) for q in self._pending.values())

    def clear(self) -> None:
        self._pending.clear()


def mutate_values(obj: Any, keys: frozenset[str], mode: Literal["nulls", "strings", "empty"]) -> Any:
    """A copy of JSON ``obj`` with numbers under ``keys`` (or in lists under them) replaced."""

    def change(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return v
        return None if mode == "nulls" else "" if mode == "empty" else str(v)

    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k in keys and isinstance(v, list):
                out[k] = [change(x) for x in v]
            elif k in keys:
                out[k] = change(v)
            else:
                out[k] = mutate_values(v, keys, mode)
        return out
    if isinstance(obj, list):
        return [mutate_values(x, keys, mode) for x in obj]
    return obj


# --------------------------------------------------------------------------------------------------
# Simulator


class ProtocolError(Exception):
    """Raised by a handler (or the body parser) for a vendor body-level error ``code``."""

    def __init__(self, code: int, message: str, http_status: int = 200) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


@dataclass
class Call:
    """A request inside the pipeline: what the rules and the handler see."""

    request: web.Request
    method: str
    path: str
    t: float
    query: Mapping[str, str]
    body: Any = None
    account: str | None = None
    devices: tuple[str, ...] = ()
    parse_error: ProtocolError | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    """A route: ``handler(call)`` returns the ``result`` (JSON) or raises :class:`ProtocolError`."""

    method: str
    path: str
    handler: Handler
    kind: Literal["query", "write"] = "query"


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status and a JSON body (or raw text when ``text`` is set)."""

    status: int
    body: Any = None
    text: str | None = None
    content_type: str = "application/json"

    def response(self) -> web.Response:
        if self.text is not None:
            return web.Response(status=self.status, text=self.text, content_type=self.content_type)
        return web.json_response(self.body, status=self.status)


class Simulator(abc.ABC):
    """Base class of the vendor simulators (see the module docstring for the pipeline)."""

    vendor: ClassVar[str] = ""
    value_keys: ClassVar[frozenset[str]] = frozenset({"value"})
    """JSON keys whose numbers the ``nulls`` / ``strings`` / ``empty`` injections rewrite."""

    def __init__(self, *, clock: Clock | None = None, host: str = "127.0.0.1") -> None:
        self.clock: Clock = clock if clock is not None else time.time
        self.host = host
        self.limits = LimitEngine(self.clock)
        self.injector = Injector()
        self.calls: list[CallRecord] = []
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._stopping = asyncio.Event()

    # ---------------------------------------------------------------- vendor hooks

    @abc.abstractmethod
    def endpoints(self) -> Sequence[Endpoint]:
        """The vendor's routes."""

    @abc.abstractmethod
    async def authenticate(self, call: Call) -> Reply | None:
        """Set ``call.account`` and return None, or return the vendor's refusal."""

    async def parse(self, call: Call) -> None:
        """Parse the request body into ``call.body`` (default: JSON object for POST) and set
        ``call.devices``; raise :class:`ProtocolError` for a body the vendor rejects."""
        if call.method == "POST":
            try:
                call.body = await call.request.json(loads=json.loads)
            except ValueError as err:
                raise ProtocolError(*self.bad_body_error()) from err

    def bad_body_error(self) -> tuple[int, str]:
        """(code, message) for a body that is not JSON."""
        return (400, "bad request body")

    @abc.abstractmethod
    def charges(self, call: Call, endpoint: Endpoint) -> Sequence[Charge]:
        """The limits this call consumes, most significant refusal first."""

    @abc.abstractmethod
    def limit_refusal(self, call: Call, charge: Charge) -> Reply:
        """The vendor's answer to a call refused by ``charge``'s limit."""

    @abc.abstractmethod
    def error_reply(self, code: int, message: str, http_status: int = 200) -> Reply:
        """The vendor's body-level error envelope."""

    @abc.abstractmethod
    def ok_reply(self, result: Any) -> Reply:
        """The vendor's success envelope around ``result``."""

    def reply_code(self, reply: Reply) -> int | None:
        """The vendor code in a reply (for the call log); default: none."""
        return None

    # ---------------------------------------------------------------- public helpers

    @property
    def violations(self) -> int:
        """Number of calls refused because a limit was exceeded."""
        return sum(1 for c in self.calls if c.outcome == "limited")

    def inject(self, path: str, injection: Injection, count: int = 1) -> None:
        """Answer the next ``count`` calls of ``path`` (or ``"*"``) that pass authentication and the
        limits with ``injection`` (such calls consume quota like real ones)."""
        self.injector.add(path, injection, count)

    def calls_to(self, path: str) -> list[CallRecord]:
        """The logged calls of one endpoint path."""
        return [c for c in self.calls if c.path == path]

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        if self._base_url is None:
            raise RuntimeError("simulator not started")
        return self._base_url

    def build_app(self) -> web.Application:
        """The aiohttp application with every endpoint routed through the pipeline."""
        app = web.Application()
        for endpoint in self.endpoints():
            app.router.add_route(endpoint.method, endpoint.path, self._route(endpoint))
        return app

    async def start(self, port: int = 0) -> str:
        """Start serving on ``host:port`` (0 = a free port); returns the base URL."""
        if self._runner is not None:
            return self.base_url
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, port)
        await site.start()
        addresses = runner.addresses
        bound = int(addresses[0][1]) if addresses else port
        self._runner = runner
        self._base_url = f"http://{self.host}:{bound}"
        return self._base_url

    async def stop(self) -> None:
        """Stop serving; hung (injected) requests are released first."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._base_url = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- pipeline

    def _route(self, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            return await self._dispatch(endpoint, request)

        return route

    def _log(self, call: Call, reply: Reply, outcome: Outcome, limit: str | None = None) -> None:
        self.calls.append(
            CallRecord(
                t=call.t,
                method=call.method,
                path=call.path,
                account=call.account,
                status=reply.status,
                code=self.reply_code(reply),
                outcome=outcome,
                limit=limit,
                devices=call.devices,
            )
        )

    async def _dispatch(self, endpoint: Endpoint, request: web.Request) -> web.StreamResponse:
        call = Call(request, request.method, request.path, self.clock(), request.query)
        refusal = await self.authenticate(call)
        if refusal is not None:
            self._log(call, refusal, "auth")
            return refusal.response()
        try:
            await self.parse(call)
        except ProtocolError as err:
            call.parse_error = err
        refused = self.limits.acquire(self.charges(call, endpoint))
        if refused is not None:
            reply = self.limit_refusal(call, refused)
            self._log(call, reply, "limited", refused.limit.name)
            return reply.response()

        injection = self.injector.take(call.path)
        if injection is not None and injection.kind not in ("nulls", "strings", "empty"):
            reply = await self._injected(injection)
            self._log(call, reply, "injected")
            return reply.response()

        try:
            if call.parse_error is not None:
                raise call.parse_error
            result = await endpoint.handler(call)
        except ProtocolError as err:
            reply = self.error_reply(err.code, err.message, err.http_status)
            self._log(call, reply, "error")
            return reply.response()
        reply = self.ok_reply(result)
        if injection is not None:
            mode: Literal["nulls", "strings", "empty"] = injection.kind  # type: ignore[assignment]
            reply = Reply(reply.status, mutate_values(reply.body, self.value_keys, mode))
            self._log(call, reply, "injected")
        else:
            self._log(call, reply, "ok")
        return reply.response()

    async def _injected(self, injection: Injection) -> Reply:
        if injection.kind == "errno":
            return self.error_reply(injection.code, injection.message or "injected error")
        if injection.kind == "http":
            return Reply(injection.code, text=f"{injection.code} injected error", content_type="text/plain")
        if injection.kind == "html":
            page = (
                f"<html><head><title>{injection.code} Bad Gateway</title></head><body>"
                f"<center><h1>{injection.code} Bad Gateway</h1></center><hr><center>nginx</center>"
                "</body></html>"
            )
            return Reply(injection.code, text=page, content_type="text/html")
        if injection.kind == "malformed":
            truncated = '{"errno":0,"result":[{"datas":[{"variable":"pvPo'
            return Reply(200, text=truncated, content_type="application/json")
        # hang: hold the request until the client gives up, the time passes or the simulator stops
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), injection.seconds)
        return Reply(504, text="504 Gateway Time-out", content_type="text/plain")


async def serve_forever(sim: Simulator, port: int = 0, *, announce: Callable[[str], None] = print) -> None:
    """Run ``sim`` until SIGINT / SIGTERM, announcing its base URL (for ``python -m``)."""
    await sim.start(port)
    announce(sim.base_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()


class SimThread:
    """Serve a simulator from its own event loop in a background thread.

    So the simulator stamps a request when it arrives, not when a busy event loop it
    shares with the collector gets round to it (a collector mapping a large answer, or
    another simulator computing a year of history, would otherwise squeeze the gaps a
    per-second limit checks); and a test can run the CLI as a blocking subprocess and
    read the simulator's call log meanwhile."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"{sim.vendor}-sim", daemon=True)
        self.url = ""

    def __enter__(self) -> SimThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(30)
        return self.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
