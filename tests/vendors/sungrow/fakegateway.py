"""A tiny scripted iSolarCloud gateway on aiohttp.web for unit tests of the transport.

Not the simulator (written separately from the same documents, met later through
contract tests): this server records requests, decrypts encrypted ones with its own
minimal reading of the doc's Appendix 4–7 (independent of collector.vendors.sungrow.auth),
checks the headers, logs users in, expires tokens on request, refuses timestamps too
far from its clock (E913), and answers what each test scripts.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email.utils
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from collector.budget import BudgetBook, SourceBudget
from collector.clock import FakeClock
from collector.state import State
from collector.vendors import VENDOR_SPECS

APPKEY = "APPKEY0123456789ABCDEF0123456789"
ACCESS_KEY = "i71w7tskmns5accesskeyi3b8zqncvay3"
USERNAME = "owner@example.com"
PASSWORD = "pw-Secret-4711"
SPEC = VENDOR_SPECS["sungrow"]


def _aes(key: str) -> Cipher[modes.ECB]:
    raw = key.encode()[:16]
    return Cipher(algorithms.AES(raw + b"0" * (16 - len(raw))), modes.ECB())


def aes_hex_encrypt(text: str, key: str) -> str:
    data = text.encode()
    n = 16 - len(data) % 16
    enc = _aes(key).encryptor()
    return (enc.update(data + bytes([n]) * n) + enc.finalize()).hex().upper()


def aes_hex_decrypt(hex_text: str, key: str) -> str:
    dec = _aes(key).decryptor()
    out = dec.update(bytes.fromhex(hex_text)) + dec.finalize()
    return out[: -out[-1]].decode()


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    encrypted: bool
    aes_key: str | None = None


Reply = dict[str, Any] | tuple[int, str, str] | tuple[int, str, str, dict[str, str]]
Handler = Callable[[Req], Reply]


def ok(data: Any) -> dict[str, Any]:
    return {"req_serial_num": "0" * 32, "result_code": "1", "result_msg": "success", "result_data": data}


def err(code: str, msg: str = "error") -> dict[str, Any]:
    return {"req_serial_num": "0" * 32, "result_code": code, "result_msg": msg, "result_data": None}


@dataclass
class FakeGateway:
    clock: FakeClock
    private_key: rsa.RSAPrivateKey | None = None  # set: encrypted mode
    #: The gateway's clock minus the test's FakeClock, seconds.
    skew: float = 0.0
    tolerance: float = 300.0
    handlers: dict[str, Handler] = field(default_factory=dict)
    requests: list[Req] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)
    login_handler: Handler | None = None
    #: Replies to the encrypted call's plain (not encrypted) when set.
    plain_replies: bool = False
    timestamp_reply: tuple[int, str] | None = None  # None: the clock in ms
    #: Real seconds a login takes (to make logins of several processes overlap).
    login_delay: float = 0.0
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def on(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    def calls(self, path: str) -> list[Req]:
        return [r for r in self.requests if r.path == path]

    def server_time(self) -> float:
        return self.clock.time() + self.skew

    def expire_tokens(self) -> None:
        self.valid_tokens.clear()

    def public_key_b64(self) -> str:
        assert self.private_key is not None
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def _date(self) -> str:
        return email.utils.formatdate(self.server_time(), usegmt=True)

    def _json(
        self, body: dict[str, Any], req: Req | None, extra: dict[str, str] | None = None
    ) -> web.Response:
        text = json.dumps(body)
        headers = {"Date": self._date(), **(extra or {})}
        if req is not None and req.aes_key is not None and not self.plain_replies:
            return web.Response(
                text=aes_hex_encrypt(text, req.aes_key), content_type="text/plain", headers=headers
            )
        return web.Response(text=text, content_type="application/json", headers=headers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if request.method == "GET" and request.path == "/timestamp":
            self.requests.append(Req("GET", request.path, headers, None, False))
            if self.timestamp_reply is not None:
                status, text = self.timestamp_reply
                return web.Response(status=status, text=text, headers={"Date": self._date()})
            return web.Response(text=str(int(self.server_time() * 1000)), headers={"Date": self._date()})
        text = await request.text()
        secret = headers.get("x-random-secret-key")
        aes_key: str | None = None
        if secret is not None and self.private_key is not None:
            raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
            aes_key = self.private_key.decrypt(raw, asym_padding.PKCS1v15()).decode()
            body = json.loads(aes_hex_decrypt(text, aes_key))
        else:
            body = json.loads(text) if text else None
        req = Req(request.method, request.path, headers, body, aes_key is not None, aes_key)
        self.requests.append(req)
        if headers.get("sys_code") != "901":
            return self._json(err("003", "er_missing_parameter:sys_code"), req)
        if headers.get("x-access-key") != ACCESS_KEY:
            return self._json(err("E912", "Illegal x-access-key"), req)
        if not isinstance(body, dict) or body.get("appkey") != APPKEY:
            return self._json(err("E00000", "er_invalid_appkey"), req)
        if self.private_key is not None:
            if aes_key is None:
                return self._json(err("E902", "Request is not encrypted"), req)
            stamp = float(body["api_key_param"]["timestamp"]) / 1000.0
            if abs(stamp - self.server_time()) > self.tolerance:
                return self._json(err("E913", "Expired request"), req)
        if request.path == "/openapi/login":
            if self.login_delay:
                await asyncio.sleep(self.login_delay)
            return self._reply(self.login_handler(req) if self.login_handler else self._login(req), req)
        if body.get("token") not in self.valid_tokens:
            return self._json(err("E00003", "er_token_login_invalid"), req)
        handler = self.handlers.get(request.path)
        if handler is None:
            return self._json(err("E900", "Unauthorized access"), req)
        return self._reply(handler(req), req)

    def _login(self, req: Req) -> Reply:
        if req.body.get("user_account") != USERNAME:
            return ok({"login_state": "-1", "token": None, "msg": "账号不存在"})
        if req.body.get("user_password") != PASSWORD:
            return ok({"login_state": "0", "token": None, "err_times": "1", "remain_times": "4"})
        token = f"505120_{next(self._seq):032x}"
        self.valid_tokens.add(token)
        self.issued.append(token)
        return ok({"login_state": "1", "token": token, "user_id": "505120", "err_times": "0"})

    def _reply(self, reply: Reply, req: Req) -> web.StreamResponse:
        if isinstance(reply, tuple):
            status, ctype, raw = reply[0], reply[1], reply[2]
            extra = reply[3] if len(reply) == 4 else {}  # type: ignore[misc]
            return web.Response(
                status=status, text=raw, content_type=ctype, headers={"Date": self._date(), **extra}
            )
        headers = reply.pop("_headers", None)
        return self._json(reply, req, headers)


def budget(state: State, clock: FakeClock) -> SourceBudget:
    """The appkey's budget without the per-second spacing, so a fake clock's times are
    exactly the test's (the spacing has its own tests: tests/test_budget.py)."""
    creds = {"appkey": APPKEY, "access_key": ACCESS_KEY, "username": USERNAME, "password": PASSWORD}
    limits = dataclasses.replace(SPEC.default_limits, per_second=None)
    return SourceBudget(BudgetBook(state, clock).account(SPEC, creds, limits))


@asynccontextmanager
async def serve(fake: FakeGateway) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
