"""The durable on-disk buffer between the pollers and the sink: "no data lost".

Layout of a spool directory::

    00000000000000000001.seg   append-only segments of raw line protocol,
    00000000000000000002.seg   one line per b"\\n", oldest first
    ack                        the read position: two 32-byte slots
    lock                       flock'ed while open (one process per spool)

Why this design (compared with one record-framed WAL file, or SQLite):

* **Raw line-protocol text.** A line already carries its own framing (the
  newline; Point.to_line turns newlines inside values into spaces), so an
  append is one ``"\\n".join`` + one ``write`` + one ``fdatasync``, and a batch
  is one ``pread`` that can be posted as it is: no per-line Python work on
  either side (the benchmark pushes 1M lines through it).
* **Append is durable when it returns** (``fdatasync`` of the segment; a new
  segment's directory entry is fsync'd before the first line goes into it),
  because callers advance vendor cursors right after (stack.md §9 B3).
* **The ack position is the only mutable state**: (segment, byte offset) in a
  tiny file with two checksummed slots written alternately with ``pwrite`` +
  ``fdatasync``. A torn slot write leaves the other slot valid, i.e. an older
  position: at worst an already-written batch is sent again, which InfluxDB
  turns into an overwrite of identical points (stack.md §2.2, at-least-once).
  Acking writes the position first and deletes a fully-read segment second;
  leftovers from a crash in between are deleted on open.
* **Torn tail recovery.** A SIGKILL (or ENOSPC) mid-``write`` can leave a
  partial last line; power loss on some file systems leaves NUL bytes. On open
  every segment is cut back to its last complete line before any NUL, and the
  discarded byte count is logged. Lines from an append that had not returned
  may survive whole: harmless, they are at-least-once duplicates at worst.
* **Bounded.** Past ``max_bytes`` of pending data the *oldest* lines are
  dropped (moved past, line-exact) and counted in ``dropped``, like Telegraf's
  buffer (stack.md §1.2, §9 B2); the caller logs it. Disk use stays below
  ``max_bytes`` plus one segment (the partly-read head segment).
* **Order.** One writer, one reader, FIFO by (segment, offset).

Sync file I/O, used from the event loop in small bursts; not thread-safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog

log = structlog.get_logger(__name__)

_SEG_SUFFIX = ".seg"
_ACK_SLOT = struct.Struct("<QQQI4x")  # generation, segment, offset, crc32 of the first 24 bytes
_ACK_BODY = struct.Struct("<QQQ")
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
_READ_CHUNK = 1 << 20


class SpoolLockedError(RuntimeError):
    """Another process has this spool directory open."""


@dataclass(frozen=True, slots=True)
class Batch:
    """The oldest un-acked lines: raw newline-terminated bytes and where they lie.

    ``pieces``: (segment, start offset, end offset) per segment the batch spans,
    in order; a batch may run across segment boundaries (every segment ends on a
    line boundary).
    """

    pieces: tuple[tuple[int, int, int], ...]
    count: int
    data: bytes

    @property
    def start(self) -> tuple[int, int]:
        """(segment, offset) of the first line."""
        seg, start, _ = self.pieces[0]
        return seg, start

    @property
    def end(self) -> tuple[int, int]:
        """(segment, offset) just past the last line."""
        seg, _, end = self.pieces[-1]
        return seg, end

    def lines(self) -> list[str]:
        """The lines as strings, without their newlines."""
        return self.data.decode("utf-8", errors="replace").split("\n")[:-1]

    @property
    def nbytes(self) -> int:
        return len(self.data)


def _seg_name(seg: int) -> str:
    return f"{seg:020d}{_SEG_SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    """pread exactly `size` bytes (fewer only at end of file)."""
    parts: list[bytes] = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class Spool:
    """A bounded, durable FIFO of line-protocol lines (see the module docstring).

    ``append`` is durable on return; ``peek`` returns the oldest un-acked lines;
    ``ack`` removes them durably. Over ``max_bytes`` of pending data the oldest
    lines are dropped and counted in ``dropped``.
    """

    def __init__(self, directory: Path, max_bytes: int, *, segment_bytes: int | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or min(DEFAULT_SEGMENT_BYTES, max(64 * 1024, max_bytes // 8))
        self._sizes: dict[int, int] = {}  # segment id -> valid bytes, ascending ids
        self._fds: dict[int, int] = {}
        self._head_seg = 1
        self._head_off = 0
        self._wseg: int | None = None  # segment open for appending
        self._pending_lines = 0
        self._pending_bytes = 0
        self._dropped = 0
        self._ack_gen = 0
        self._closed = False
        self._open()

    # ------------------------------------------------------------------ state

    @property
    def pending(self) -> int:
        """Lines appended and neither acked nor dropped."""
        return self._pending_lines

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def dropped(self) -> int:
        """Lines dropped to stay under max_bytes since this Spool was opened."""
        return self._dropped

    def __repr__(self) -> str:
        return (
            f"Spool({str(self.directory)!r}, pending={self._pending_lines}, "
            f"pending_bytes={self._pending_bytes}, dropped={self._dropped})"
        )

    # ------------------------------------------------------------------- open

    def _open(self) -> None:
        created = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        if created:
            _fsync_dir(self.directory.parent)
        self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            os.close(self._lock_fd)
            raise SpoolLockedError(f"spool {self.directory} is in use by another process") from err

        ack_path = self.directory / "ack"
        ack_new = not ack_path.exists()
        self._ack_fd = os.open(ack_path, os.O_RDWR | os.O_CREAT, 0o600)
        if ack_new:
            _fsync_dir(self.directory)
        head = self._read_ack()

        segs = sorted(
            int(p.name[: -len(_SEG_SUFFIX)])
            for p in self.directory.iterdir()
            if p.name.endswith(_SEG_SUFFIX) and p.name[: -len(_SEG_SUFFIX)].isdigit()
        )
        if head is not None:
            self._head_seg, self._head_off = head
        elif segs:
            self._head_seg, self._head_off = segs[0], 0
        # Segments before the head were fully acked; a crash came before their unlink.
        for seg in [s for s in segs if s < self._head_seg]:
            os.unlink(self.directory / _seg_name(seg))
            segs.remove(seg)
        if segs and segs[0] != self._head_seg:
            # The head segment itself was deleted after its last ack.
            self._head_seg, self._head_off = segs[0], 0
        elif not segs:
            self._head_off = 0

        for seg in segs:
            fd = os.open(self.directory / _seg_name(seg), os.O_RDWR | os.O_APPEND)
            self._fds[seg] = fd
            self._sizes[seg] = self._recover_segment(seg, fd)
        if segs and self._head_off > self._sizes[self._head_seg]:
            log.warning("spool.ack_past_end", segment=self._head_seg)
            self._head_off = self._sizes[self._head_seg]
        if segs and self._head_off > 0:
            prev = os.pread(self._fds[self._head_seg], 1, self._head_off - 1)
            if prev != b"\n":  # not on a line boundary: only corruption does this
                data = _pread_all(self._fds[self._head_seg], self._sizes[self._head_seg], 0)
                nl = data.rfind(b"\n", 0, self._head_off)
                log.warning("spool.ack_misaligned", segment=self._head_seg, note="rewound to a line start")
                self._head_off = nl + 1

        self._skip_exhausted_head()
        for seg in self._sizes:
            start = self._head_off if seg == self._head_seg else 0
            self._pending_bytes += self._sizes[seg] - start
            self._pending_lines += self._count_lines(seg, start, self._sizes[seg])
        if self._sizes:
            self._wseg = max(self._sizes)
        if self._pending_lines:
            log.info(
                "spool.reopened",
                directory=str(self.directory),
                pending=self._pending_lines,
                pending_bytes=self._pending_bytes,
            )
        self._enforce_cap()

    def _read_ack(self) -> tuple[int, int] | None:
        raw = os.pread(self._ack_fd, 2 * _ACK_SLOT.size, 0)
        best: tuple[int, int, int] | None = None
        for slot in range(2):
            rec = raw[slot * _ACK_SLOT.size : (slot + 1) * _ACK_SLOT.size]
            if len(rec) < _ACK_SLOT.size:
                continue
            gen, seg, off, crc = _ACK_SLOT.unpack(rec)
            if crc != zlib.crc32(rec[: _ACK_BODY.size]) or gen == 0:
                continue
            if best is None or gen > best[0]:
                best = (gen, seg, off)
        if best is None:
            return None
        self._ack_gen = best[0]
        return best[1], best[2]

    def _write_ack(self) -> None:
        self._ack_gen += 1
        body = _ACK_BODY.pack(self._ack_gen, self._head_seg, self._head_off)
        rec = _ACK_SLOT.pack(self._ack_gen, self._head_seg, self._head_off, zlib.crc32(body))
        os.pwrite(self._ack_fd, rec, (self._ack_gen % 2) * _ACK_SLOT.size)
        os.fdatasync(self._ack_fd)

    def _recover_segment(self, seg: int, fd: int) -> int:
        """Cut a segment back to its last complete line before any NUL; return its size."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        data = _pread_all(fd, size, 0)
        nul = data.find(b"\0")  # power loss on some file systems leaves zero-filled blocks
        limit = nul if nul >= 0 else size
        good = size if nul < 0 and data.endswith(b"\n") else data.rfind(b"\n", 0, limit) + 1
        if good != size:
            log.warning(
                "spool.torn_tail",
                segment=_seg_name(seg),
                kept_bytes=good,
                discarded_bytes=size - good,
                note="an interrupted append left an incomplete last record; discarded",
            )
            os.ftruncate(fd, good)
            os.fsync(fd)
        return good

    def _count_lines(self, seg: int, start: int, end: int) -> int:
        fd = self._fds[seg]
        count = 0
        pos = start
        while pos < end:
            n = min(end - pos, 8 * _READ_CHUNK)
            count += _pread_all(fd, n, pos).count(b"\n")
            pos += n
        return count

    # ----------------------------------------------------------------- append

    def append(self, lines: Sequence[str]) -> None:
        """Append lines (without newlines); durable on disk when this returns.

        Raises ValueError, writing nothing, if a line is empty or contains a newline.
        May drop the oldest pending lines to stay under max_bytes (see ``dropped``).
        """
        self._check_open()
        if not lines:
            return
        text = "\n".join(lines) + "\n"
        if "\0" in text:
            # NUL marks a zero-filled (torn) block on recovery, so it never goes in.
            log.warning("spool.nul_stripped", note="NUL characters removed from line protocol")
            text = text.replace("\0", "")
        data = text.encode("utf-8")
        # C-speed checks over the whole buffer instead of a loop over lines.
        if data.count(b"\n") != len(lines) or data.startswith(b"\n") or b"\n\n" in data:
            raise ValueError("spool lines must be non-empty and must not contain newlines")
        if self._wseg is None or self._sizes[self._wseg] >= self.segment_bytes:
            self._new_segment()
        assert self._wseg is not None
        fd = self._fds[self._wseg]
        before = self._sizes[self._wseg]
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fdatasync(fd)
        except BaseException:
            # Never leave a partial line for the next append to glue onto.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
            raise
        self._sizes[self._wseg] = before + len(data)
        self._pending_bytes += len(data)
        self._pending_lines += len(lines)
        if self._pending_bytes > self.max_bytes:
            self._enforce_cap()

    def _new_segment(self) -> None:
        seg = max(self._sizes, default=self._head_seg - 1) + 1
        if not self._sizes:
            self._head_seg, self._head_off = seg, 0
        fd = os.open(self.directory / _seg_name(seg), os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        _fsync_dir(self.directory)  # the new name must survive before lines in it claim durability
        self._fds[seg] = fd
        self._sizes[seg] = 0
        self._wseg = seg

    # --------------------------------------------------------------- cap/drop

    def _enforce_cap(self) -> None:
        dropped = 0
        while self._pending_bytes > self.max_bytes:
            excess = self._pending_bytes - self.max_bytes
            seg, off = self._head_seg, self._head_off
            size = self._sizes[seg]
            remaining = size - off
            if remaining <= excess:
                dropped += self._count_lines(seg, off, size)
                self._pending_bytes -= remaining
                self._advance_past(seg, size)
                continue
            # Drop part of the head segment, up to the end of the line covering `excess`.
            fd = self._fds[seg]
            cut = -1
            pos = off + excess - 1
            while cut < 0:
                chunk = _pread_all(fd, min(_READ_CHUNK, size - pos), pos)
                idx = chunk.find(b"\n")
                if idx >= 0:
                    cut = pos + idx + 1
                else:
                    pos += len(chunk)
            dropped += self._count_lines(seg, off, cut)
            self._pending_bytes -= cut - off
            self._advance_past(seg, cut)
        if dropped:
            self._pending_lines -= dropped
            self._dropped += dropped
            self._write_ack()

    def _advance_past(self, seg: int, end: int) -> None:
        """Move the head to (seg, end); delete the segment when it is fully read and closed."""
        self._head_seg, self._head_off = seg, end
        if end < self._sizes[seg]:
            return
        if seg == self._wseg and self._sizes[seg] < self.segment_bytes:
            return  # still the append target; keep it
        later = [s for s in self._sizes if s > seg]
        if later:
            self._head_seg, self._head_off = later[0], 0
        else:
            self._head_seg, self._head_off = seg + 1, 0
        self._delete_segment(seg)

    def _skip_exhausted_head(self) -> None:
        """A fully-read head segment with later ones behind it is done: delete it."""
        while self._head_seg in self._sizes and self._head_off >= self._sizes[self._head_seg]:
            later = [s for s in self._sizes if s > self._head_seg]
            if not later:
                return
            done = self._head_seg
            self._head_seg, self._head_off = later[0], 0
            self._write_ack()
            self._delete_segment(done)

    def _delete_segment(self, seg: int) -> None:
        fd = self._fds.pop(seg)
        os.close(fd)
        del self._sizes[seg]
        if self._wseg == seg:
            self._wseg = None
        os.unlink(self.directory / _seg_name(seg))

    # -------------------------------------------------------------- peek/ack

    def peek(
        self, max_lines: int = 5000, max_bytes: int = 5_000_000, *, after: Batch | None = None
    ) -> Batch | None:
        """The oldest un-acked lines (at most max_lines / max_bytes; a longer single
        line comes alone), or None when nothing is pending.

        With ``after``, the lines following that batch (to prepare the next batch
        while ``after`` is being written); falls back to the head if ``after`` is stale.
        """
        self._check_open()
        pos = (self._head_seg, self._head_off)
        if after is not None and after.end > pos and after.end[0] in self._sizes:
            pos = after.end
        # Read about what max_lines needs (average pending line size, +5 %), not all of max_bytes.
        avg = self._pending_bytes / self._pending_lines if self._pending_lines else 1024.0
        want = min(max_bytes, int(avg * max_lines * 1.05) + 4096)
        pieces, chunks = self._read_from(pos, want)
        if not chunks:
            return None
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        last = data.rfind(b"\n")
        if last < 0 and want < max_bytes:  # long lines: the estimate fell short
            pieces, chunks = self._read_from(pos, max_bytes)
            data = b"".join(chunks)
            last = data.rfind(b"\n")
        if last < 0:
            # One line longer than max_bytes: send it alone rather than stall.
            seg, off = pieces[0][0], pieces[0][1]
            fd = self._fds[seg]
            size = self._sizes[seg]
            nxt = -1
            cur = off + len(data) if len(pieces) == 1 else off
            while nxt < 0:
                chunk = _pread_all(fd, min(_READ_CHUNK, size - cur), cur)
                idx = chunk.find(b"\n")
                if idx >= 0:
                    nxt = cur + idx
                cur += len(chunk)
            return Batch(((seg, off, nxt + 1),), 1, _pread_all(fd, nxt + 1 - off, off))
        count = data.count(b"\n", 0, last + 1)
        if count > max_lines:
            # Walk back from the end over the surplus (a few hundred lines, not max_lines).
            for _ in range(count - max_lines):
                last = data.rfind(b"\n", 0, last)
            count = max_lines
        cut = last + 1
        if cut < len(data):
            data = data[:cut]
        # Trim the pieces to the cut.
        kept: list[tuple[int, int, int]] = []
        taken = 0
        for seg, a, b in pieces:
            if taken >= cut:
                break
            n = min(b - a, cut - taken)
            kept.append((seg, a, a + n))
            taken += n
        return Batch(tuple(kept), count, data)

    def _read_from(self, pos: tuple[int, int], want: int) -> tuple[list[tuple[int, int, int]], list[bytes]]:
        """Up to ``want`` bytes from pos on, across segments: (pieces, chunks)."""
        seg, off = pos
        pieces: list[tuple[int, int, int]] = []
        chunks: list[bytes] = []
        for s in sorted(x for x in self._sizes if x >= seg):
            start = off if s == seg else 0
            size = self._sizes[s]
            if start >= size:
                continue
            n = min(size - start, want)
            chunk = _pread_all(self._fds[s], n, start)
            pieces.append((s, start, start + len(chunk)))
            chunks.append(chunk)
            want -= len(chunk)
            if want <= 0:
                break
        return pieces, chunks

    def is_head(self, batch: Batch) -> bool:
        """True if ``batch`` starts at the oldest un-acked line (it is next to send)."""
        if batch.start == (self._head_seg, self._head_off):
            return True
        # The head may sit at the end of a fully-read segment that is still kept.
        return (
            batch.start[1] == 0
            and self._head_off == self._sizes.get(self._head_seg, -1)
            and batch.start[0] == min((s for s in self._sizes if s > self._head_seg), default=-1)
        )

    def ack(self, batch: Batch) -> None:
        """Remove a batch returned by peek, durably. Stale batches (already acked,
        or overtaken by drops) are ignored or acked only for their remaining part."""
        self._check_open()
        if batch.start[0] > self._head_seg:
            self._skip_exhausted_head()
        head = (self._head_seg, self._head_off)
        if batch.end <= head:
            return
        if batch.start > head and not self.is_head(batch):
            raise ValueError("ack out of order: a batch must be acked after the ones before it")
        # Where the head lies inside the batch (drops may have overtaken its start).
        index = 0
        for seg, a, b in batch.pieces:
            if (seg, b) <= head:
                index += b - a
            elif seg == head[0] and a < head[1]:
                index += head[1] - a
                break
            else:
                break
        lines = batch.count if index == 0 else batch.data.count(b"\n", index)
        self._pending_lines -= lines
        self._pending_bytes -= len(batch.data) - index
        for seg, _, b in batch.pieces:
            if (seg, b) > (self._head_seg, self._head_off) and seg in self._sizes:
                self._advance_past(seg, b)
        self._write_ack()

    # ------------------------------------------------------------------ close

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("spool is closed")

    def close(self) -> None:
        """Close files and release the directory lock. Everything appended stays on disk."""
        if self._closed:
            return
        self._closed = True
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        os.close(self._ack_fd)
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
