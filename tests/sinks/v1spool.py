"""A spool directory in the v1 layout (raw line-protocol segments), byte for byte as
the spool wrote it before records (collector/sinks/spool.py up to f2758f2), for the
upgrade tests. Only the layout, not the old class:

* ``<segment:020d>.seg``: lines, each followed by ``b"\\n"``, UTF-8;
* ``ack``: two 32-byte slots ``<QQQI4x`` (generation, segment, byte offset,
  crc32 of the first 24 bytes); generation g lives in slot g % 2; the newest
  valid slot is the read position (segment, offset of the next unread line);
* ``lock``: an empty file (flock'ed while the spool was open).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

V1_ACK_SLOT = struct.Struct("<QQQI4x")


def v1_segment_bytes(lines: list[str]) -> bytes:
    """A v1 segment's content: what appends of these lines left in it."""
    return "".join(line + "\n" for line in lines).encode("utf-8")


def v1_ack_slot(generation: int, segment: int, offset: int) -> bytes:
    body = struct.pack("<QQQ", generation, segment, offset)
    return V1_ACK_SLOT.pack(generation, segment, offset, zlib.crc32(body))


def write_v1_spool(
    directory: Path,
    segments: dict[int, list[str]],
    ack: tuple[int, int] | None = None,
    *,
    generation: int = 1,
    previous: tuple[int, int] | None = None,
) -> None:
    """Write a v1 spool: ``segments`` {id: lines}; ``ack`` (segment, byte offset) as
    generation ``generation``; ``previous`` as the other slot's older generation."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "lock").touch()
    for seg, seg_lines in segments.items():
        (directory / f"{seg:020d}.seg").write_bytes(v1_segment_bytes(seg_lines))
    slots = [b"", b""]
    if ack is not None:
        slots[generation % 2] = v1_ack_slot(generation, *ack)
        if previous is not None and generation > 1:
            slots[(generation - 1) % 2] = v1_ack_slot(generation - 1, *previous)
    content = slots[0].ljust(V1_ACK_SLOT.size, b"\0") + slots[1] if slots[1] else slots[0]
    (directory / "ack").write_bytes(content)


def v1_offset(lines: list[str], n: int) -> int:
    """The byte offset after the first n lines of a v1 segment (an ack position)."""
    return len(v1_segment_bytes(lines[:n]))
