"""FoxESS HTTP transport (layer 1): budget slot, signed headers, one call, `errno` check, bounded retry.

Every attempt — the first and each retry — takes its own budget slot first
(`SourceBudget.call`; the request carries the ticket, so the per-second spacing
runs from when it really left) and is signed anew with a fresh millisecond timestamp
(the server refuses stale timestamps: research/foxess.md §2.1). Only
`VendorTransientError` is retried, at most `retries` times after a short jittered
pause; rate limits, quota and auth errors go straight up to the app, which pauses
the account (an immediate retry "would just be a guess that spends more of the
daily quota": com.foxess, §3.3).

The API key travels only in the `token` header: never in a URL, an exception or a log line.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from collector.clock import Clock
from collector.errors import VendorTransientError
from collector.log import get_logger
from collector.vendors.foxess.auth import sign_path, signed_headers
from collector.vendors.foxess.codes import VENDOR, unwrap
from collector.vendors.http import send

if TYPE_CHECKING:  # collector.budget imports collector.vendors: no cycle at run time
    from collector.budget import CallTicket, SourceBudget

log = get_logger(__name__)

#: Per-request timeout: below the server's ~60 s timestamp tolerance (TonyM cut his
#: 60 → 55 s "to stop invalid timestamp error", §2.1).
REQUEST_TIMEOUT = 30.0
#: Transient failures are retried this often (each retry costs a budget slot).
RETRIES = 1
#: Pause before a retry, seconds (uniform jitter in this range).
RETRY_DELAY = (2.0, 6.0)


class FoxessTransport:
    """Signed, budgeted calls to one FoxESS base URL with one API key."""

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        budget: SourceBudget,
        base_url: str,
        api_key: str,
        clock: Clock,
        retries: int = RETRIES,
        retry_delay: tuple[float, float] = RETRY_DELAY,
        timeout: float = REQUEST_TIMEOUT,
        lang: str = "en",
    ) -> None:
        self._http = http
        self._budget = budget
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._clock = clock
        self._retries = retries
        self._retry_delay = retry_delay
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._lang = lang

    async def get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        devices: Sequence[str] = (),
        max_wait: float | None = None,
    ) -> Any:
        """GET `path` (query in `params`, not signed); returns the envelope's `result`.

        `max_wait` bounds the wait for a budget slot (None: the budget's default).
        """
        return await self._call("GET", path, params=params, body=None, devices=devices, max_wait=max_wait)

    async def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        devices: Sequence[str] = (),
        max_wait: float | None = None,
    ) -> Any:
        """POST a JSON body to `path`; returns the envelope's `result`."""
        return await self._call("POST", path, params=None, body=body, devices=devices, max_wait=max_wait)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        devices: Sequence[str],
        max_wait: float | None,
    ) -> Any:
        endpoint = sign_path(path)
        attempt = 0
        while True:
            # Budget first, for every attempt: a retry is a call the vendor counts.
            slot = (
                self._budget.call(endpoint=endpoint, devices=devices)
                if max_wait is None
                else self._budget.call(endpoint=endpoint, devices=devices, max_wait=max_wait)
            )
            try:
                async with slot as ticket:
                    return await self._once(method, endpoint, params, body, ticket)
            except VendorTransientError as err:
                if attempt >= self._retries:
                    raise
                attempt += 1
                log.info("foxess.retry", endpoint=endpoint, attempt=attempt, error=str(err))
                await self._clock.sleep(random.uniform(*self._retry_delay))

    async def _once(
        self,
        method: str,
        endpoint: str,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        ticket: CallTicket,
    ) -> Any:
        now = self._clock.time()
        headers = signed_headers(endpoint, self._key, int(now * 1000), lang=self._lang)
        headers["Content-Type"] = "application/json"
        status, text, resp_headers = await send(
            self._http,
            method,
            self._base + endpoint,
            ticket=ticket,
            timeout=self._timeout,
            title="FoxESS",
            vendor=VENDOR,
            endpoint=endpoint,
            params=dict(params) if params else None,
            json=dict(body) if body is not None else None,
            headers=headers,
        )
        content_type = resp_headers.get("Content-Type", "")
        retry_after = resp_headers.get("Retry-After")
        return unwrap(
            status,
            text,
            endpoint=endpoint,
            now=self._clock.time(),
            content_type=content_type,
            headers={"Retry-After": retry_after} if retry_after else None,
            secrets=(self._key,),
        )
