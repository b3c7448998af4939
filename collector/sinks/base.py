"""The sink interface: where line protocol ends up.

A sink's ``write`` either succeeds, possibly with some lines rejected by the
server (counted, with the server's messages), or raises
``SinkRetryableError`` / ``SinkAuthError`` (collector/errors.py) so the caller
keeps the lines and tries again later. It never loses lines silently.

``EncodedSink`` is an optional capability (style.md: capabilities are their own
small interfaces, checked by the pipeline): a sink that can take the spool's
raw bytes and prepare the request body (gzip) ahead of time, so the forwarder
compresses the next batch while the current one is in flight.

``RetentionSink`` is another: a sink whose server can say how long it keeps a
point, so a backfill spends no vendor call on data the server would drop.
``retention_of`` asks any sink, None where it cannot say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import aiohttp


@dataclass(frozen=True, slots=True)
class WriteReport:
    """The outcome of one successful write.

    ``written``: lines the server accepted; ``rejected``: lines it refused for
    good (bad line, type conflict, beyond retention), dropped and counted;
    ``messages``: the server's messages about the rejected lines.
    """

    written: int
    rejected: int = 0
    messages: list[str] = field(default_factory=list)

    def __add__(self, other: WriteReport) -> WriteReport:
        return WriteReport(
            self.written + other.written, self.rejected + other.rejected, self.messages + other.messages
        )


@runtime_checkable
class Sink(Protocol):
    """Where line protocol goes: InfluxDB, the embedded local store, or stdout."""

    name: str

    async def open(self, session: aiohttp.ClientSession | None) -> None:
        """Prepare for writing; HTTP sinks use the app's one session (None: make their own)."""
        ...

    async def write(self, lines: Sequence[str]) -> WriteReport:
        """Write lines (no trailing newlines), in order. Raises SinkRetryableError or SinkAuthError."""
        ...

    async def close(self) -> None:
        """Release what open() acquired. Idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class Encoded:
    """A batch ready to send: the raw newline-terminated lines and the request body."""

    raw: bytes
    body: bytes
    lines: int
    content_encoding: str | None  # "gzip" or None


@runtime_checkable
class EncodedSink(Sink, Protocol):
    """A sink that accepts pre-encoded batches (see the module docstring)."""

    def encode(self, raw: bytes, lines: int) -> Encoded:
        """Build the request body for newline-terminated lines. Pure CPU; safe in a worker thread."""
        ...

    async def write_encoded(self, batch: Encoded) -> WriteReport:
        """Like ``write``, for a batch from ``encode``."""
        ...


@runtime_checkable
class RetentionSink(Sink, Protocol):
    """A sink that can ask its server how long it keeps points (see the module docstring)."""

    async def retention(self) -> float | None:
        """Seconds a point is kept, asked once per process and cached; None when the
        server keeps points forever or cannot be asked. Never raises."""
        ...


async def retention_of(sink: Sink | None) -> float | None:
    """The sink's retention in seconds; None for a sink that cannot say (local, stdout)."""
    if isinstance(sink, RetentionSink):
        return await sink.retention()
    return None
