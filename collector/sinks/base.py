"""The sink interface: where line protocol ends up.

A sink's ``write`` either succeeds, possibly with some lines rejected by the
server (counted, with the server's messages), or raises
``SinkRetryableError`` / ``SinkAuthError`` (collector/errors.py) so the caller
keeps the lines and tries again later. It never loses lines silently.

``EncodedSink`` is an optional capability (style.md: capabilities are their own
small interfaces, checked by the pipeline): a sink that takes the spool's bytes
and builds the request body itself. The spool keeps its records gzip'd (one
gzip member per record), so a batch is already a multi-member gzip stream that
such a sink can post as it is (``encode_gzip``); a sink that wants plain text
gets the inflated lines (``encode``), prepared in a worker thread while the
current batch is in flight.

``RetentionSink`` is another: a sink whose server can say how long it keeps a
point, so a backfill spends no vendor call on data the server would drop.
``retention_of`` asks any sink, None where it cannot say.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import aiohttp

_INFLATE_CHUNK = 64 * 1024


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


def gunzip(stream: bytes) -> bytes:
    """Inflate a gzip stream of one or more members (RFC 1952 §2.2: members simply follow
    each other). Raises zlib.error on a corrupt or truncated stream.

    ``gzip.decompress`` does the same but copies the rest of the stream at every member
    boundary; this copies at most one 64 KiB chunk per member.
    """
    out: list[bytes] = []
    view = memoryview(stream)
    pos = 0
    while pos < len(view):
        member = zlib.decompressobj(31)  # wbits 31: one gzip member
        while not member.eof:
            if pos >= len(view):
                raise zlib.error("truncated gzip stream")
            chunk = view[pos : pos + _INFLATE_CHUNK]
            out.append(member.decompress(chunk))
            pos += len(chunk) - len(member.unused_data)  # unused_data: the next member's start
    return out[0] if len(out) == 1 else b"".join(out)


@dataclass(frozen=True, slots=True)
class Encoded:
    """A batch ready to send: the request body and, when at hand, the raw lines.

    ``plain``: the newline-terminated lines, or None when only the gzip body exists
    (a spool batch posted as it is); ``raw`` then inflates the body, which only the
    rare paths need (bisecting a refused batch, halving on 413).
    """

    plain: bytes | None
    body: bytes
    lines: int
    content_encoding: str | None  # "gzip" or None

    @property
    def raw(self) -> bytes:
        """The newline-terminated lines (inflated from the body if need be)."""
        if self.plain is not None:
            return self.plain
        if self.content_encoding == "gzip":
            return gunzip(self.body)
        return self.body


@runtime_checkable
class EncodedSink(Sink, Protocol):
    """A sink that accepts pre-encoded batches (see the module docstring)."""

    def encode(self, raw: bytes, lines: int) -> Encoded:
        """Build the request body for newline-terminated lines. Pure CPU; safe in a worker thread."""
        ...

    def encode_gzip(self, body: bytes, lines: int) -> Encoded | None:
        """The request body for a gzip stream of newline-terminated lines (one or more
        members), without recompressing: cheap, called on the event loop. None when this
        sink posts plain text; the caller then inflates and calls ``encode`` (in a thread)."""
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
