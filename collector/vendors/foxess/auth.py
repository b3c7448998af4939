"""FoxESS Open API request signing (layer 1).

The signature is the lowercase hex md5 of `path + "\\r\\n" + api_key + "\\r\\n" + ts_ms`,
where the separators are the **literal four characters** backslash, r, backslash, n —
not CR LF. The doc's prose says `url+"\\r\\n"+token+"\\r\\n"+timestamp`, which reads
like CR LF, but its Python sample uses a raw f-string (`fr'{path}\\r\\n…'`), every
production client signs the literal form, and real CR LF was answered with errno
40256 "illegal signature" (research/foxess.md §2.1, macxq/foxess-ha#170). We follow
the notes and the doc's sample.

Only the URL **path** is signed: no host, no query string (research/foxess.md §2.1:
EnergyStats signs `url.path`; foxess-ha signs `/op/v0/device/generation` while
requesting `…?sn=`). The timestamp must be fresh (the server refuses requests older
than about 60 s), so headers are built anew for every attempt, retries included.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

#: The separator, spelled out so no reader mistakes it for CR LF.
SEPARATOR = "\\" + "r" + "\\" + "n"
assert len(SEPARATOR) == 4


def sign_path(url_or_path: str) -> str:
    """The part of a URL that is signed: its path, without host or query string."""
    path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path.split("?", 1)[0]
    return path or "/"


def signature(path: str, api_key: str, timestamp_ms: int) -> str:
    """md5 over `path \\r\\n key \\r\\n timestamp` (literal backslashes), lowercase hex."""
    text = SEPARATOR.join((sign_path(path), api_key, str(int(timestamp_ms))))
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def signed_headers(path: str, api_key: str, timestamp_ms: int, *, lang: str = "en") -> dict[str, str]:
    """The auth headers of one request (doc "Request header requirements").

    User-Agent is not set here: the app's HTTP session already sends a descriptive
    one (the doc asks script callers to change it; research/foxess.md §2.2).
    """
    ts = str(int(timestamp_ms))
    return {
        "token": api_key,
        "timestamp": ts,
        "signature": signature(path, api_key, int(ts)),
        "lang": lang,
    }
