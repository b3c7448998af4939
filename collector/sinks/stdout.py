"""The ``--dry-run`` sink: prints each line of line protocol to stdout, writes nothing else."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

import aiohttp

from collector.sinks.base import WriteReport


class StdoutSink:
    """Prints lines to a text stream (stdout by default); touches no file, no network."""

    name = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def __repr__(self) -> str:
        return "StdoutSink()"

    async def open(self, session: aiohttp.ClientSession | None) -> None:
        """Nothing to open; the session is not used."""

    async def write(self, lines: Sequence[str]) -> WriteReport:
        if not lines:
            return WriteReport(0)
        out = self._stream if self._stream is not None else sys.stdout
        out.write("\n".join(lines) + "\n")
        out.flush()
        return WriteReport(len(lines))

    async def close(self) -> None:
        """Flush the stream; it is not closed (it is usually stdout)."""
        out = self._stream if self._stream is not None else sys.stdout
        out.flush()
