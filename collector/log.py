"""Logging: structlog, JSON off a TTY, console on one, and no secret ever printed.

Redaction works on values, not only on key names: every credential value from
the config is replaced by `***` wherever it appears in any string of a log
event, including rendered tracebacks (which are rendered to text *before* the
redaction step, without local variables). Key names that look secret
(`token`, `password`, …) are masked too, and so are query-string parameters
like `tokenId=…`, for values the config did not know (tokens from a login).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(
    r"(token|secret|password|passwd|authorization|signature|api_?key|access_?key|appkey)", re.I
)
_QUERY_SECRET = re.compile(
    r"((?:token|tokenId|token_id|api_?key|access_?key|appkey|password|signature|secret)=)([^&\s\"']+)", re.I
)
MASK = "***"


class Redactor:
    """A structlog processor (and string filter) that removes known secret values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Add secret values (e.g. a token obtained at login). Short values are kept too."""
        merged = set(self._secrets) | {s for s in secrets if s}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(merged, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return _QUERY_SECRET.sub(r"\1" + MASK, value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: (MASK if _is_secret_key(k, v) else self.value(v)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.text(str(value))

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in list(event):
            val = event[key]
            event[key] = MASK if _is_secret_key(key, val) else self.value(val)
        return event


def _is_secret_key(key: object, value: object) -> bool:
    return isinstance(key, str) and isinstance(value, str) and bool(_SECRET_KEYS.search(key)) and value != ""


REDACTOR = Redactor()


def configure(
    level: str = "info", fmt: str = "auto", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Set up structlog and stdlib logging (aiohttp, apscheduler) through one redacting chain."""
    REDACTOR.update(secrets)
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become text here, without locals (structlog's dict
        # tracebacks show locals by default, and locals hold credentials).
        structlog.processors.format_exc_info,
        REDACTOR,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
        if console
        else structlog.processors.JSONRenderer()
    )
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Chatty libraries: their warnings matter, their info lines do not.
    for name in ("apscheduler", "aiohttp.access"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
