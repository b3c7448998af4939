"""One HTTP request of a vendor transport: send, read, and turn network failures into ours.

Every vendor's transport sends through `send`: the request carries its budget ticket
(`trace_request_ctx`, so the app's session tells the budget when it left:
`budget.send_trace`), and a timeout or a connection failure becomes a
`VendorTransientError` whose message names the error class only (the exception texts
can be long and may hold the URL; no secret is in them, the cause stays chained).
Body-level status is the vendor's `codes.unwrap`, not this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import CIMultiDict

from collector.errors import VendorTransientError

if TYPE_CHECKING:
    from collector.budget import CallTicket


async def send(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    ticket: CallTicket,
    timeout: aiohttp.ClientTimeout,
    title: str,
    vendor: str,
    endpoint: str,
    **request: Any,
) -> tuple[int, str, CIMultiDict[str]]:
    """(HTTP status, body text, response headers: case-insensitive, as HTTP's are) of one
    request; `request` goes to aiohttp."""
    try:
        async with http.request(
            method, url, timeout=timeout, trace_request_ctx=ticket, **request
        ) as resp:
            raw = await resp.read()
            status = resp.status
            headers = CIMultiDict(resp.headers)
    except TimeoutError:
        raise VendorTransientError(
            f"{title} {endpoint}: no answer within {timeout.total:g} s", vendor=vendor, endpoint=endpoint
        ) from None
    except (aiohttp.ClientError, OSError) as err:
        raise VendorTransientError(
            f"{title} {endpoint}: connection failed ({type(err).__name__})", vendor=vendor, endpoint=endpoint
        ) from err
    return status, raw.decode("utf-8", errors="replace"), headers
