"""The durable on-disk buffer between the pollers and the sink: "no data lost".

Layout of a spool directory::

    00000000000000000001.seg   append-only segments of framed, gzip'd records
    00000000000000000002.seg   of line protocol, oldest first
    ack                        the read position: two 32-byte slots
    lock                       flock'ed while open (one process per spool)

A record (format v2) is a 24-byte header and a payload::

    magic b"\\xffSP2" | payload bytes | raw bytes | lines | crc32(payload) | crc32(the 20 bytes before)
    payload: the record's newline-terminated lines as one complete gzip member (zlib level 1)

Why this design (compared with raw text segments, one record-framed WAL file,
or SQLite):

* **One record per append, compressed once.** Line protocol compresses ~6× at
  zlib level 1, so the bytes written (and fsync'd) per poll round shrink by as
  much, and ``max_bytes`` (bytes on disk) holds ~6× more points. An append is
  one ``"\\n".join`` + one compress + one ``write`` + one ``fdatasync``; a big
  append is cut into a few records (≤ ``record_lines`` lines, ≤ 4 MiB raw each)
  so batches stay bounded, still one write. ``append_async`` compresses a big
  append in a worker thread, so the event loop keeps serving the forwarder.
* **A batch is posted as it lies.** Each payload is a whole gzip member, and
  consecutive members are a valid multi-member gzip stream (RFC 1952 §2.2), so a
  batch of records is one ``pread`` per segment and the payloads joined: the sink
  posts that with ``Content-Encoding: gzip`` without recompressing (influxd and
  VictoriaMetrics read every member). ``Batch.data`` inflates only for the sinks
  that want text (local store, stdout, ``gzip_level: 0``).
* **Append is durable when it returns** (``fdatasync`` of the segment; a new
  segment's directory entry is fsync'd before the first record goes into it),
  because callers advance vendor cursors right after (stack.md §9 B3).
* **The ack position is the only mutable state**: (segment, byte offset of a
  record boundary) in a tiny file with two checksummed slots written
  alternately with ``pwrite`` + ``fdatasync``. A torn slot write leaves the
  other slot valid, i.e. an older position: at worst an already-written batch
  is sent again, which InfluxDB turns into an overwrite of identical points
  (stack.md §2.2, at-least-once). Acking writes the position first and deletes
  a fully-read segment second; leftovers from a crash in between are deleted on
  open.
* **Torn tail recovery.** A SIGKILL (or ENOSPC) mid-``write`` can leave a
  partial last record; power loss on some file systems leaves NUL bytes. On
  open every segment is checked record by record (header crc, length, payload
  crc) and cut at the first incomplete, corrupt or zero-filled record; the
  discarded byte count is logged (``spool.torn_tail``). Records of an append
  that had not returned may survive whole: harmless, at-least-once duplicates
  at worst.
* **Bounded.** Past ``max_bytes`` of pending records on disk the *oldest*
  records are dropped (moved past, record-exact) and their lines counted in
  ``dropped``, like Telegraf's buffer (stack.md §1.2, §9 B2); the caller logs
  it. Disk use stays below ``max_bytes`` plus one segment (the partly-read head
  segment).
* **Order.** One writer, one reader, FIFO by (segment, offset).
* **Upgrade from v1** (raw text segments, before records): a segment that does
  not start with the magic (0xFF never occurs in UTF-8 text) is converted on
  open: its pending lines are written as records to ``<segment>.v2``, fsync'd,
  the ack moved to (segment, 0) for the head segment, then the file renamed over
  the segment and the directory fsync'd. A crash in between re-converts from
  the v1 file; only between the ack and the rename can it re-send lines already
  acked (at-least-once), never lose one.

Sync file I/O, used from the event loop in small bursts; not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog

from collector.sinks.base import gunzip

log = structlog.get_logger(__name__)

_SEG_SUFFIX = ".seg"
_UPGRADE_SUFFIX = ".v2"  # <segment>.seg.v2: a v1 segment being converted
_ACK_SLOT = struct.Struct("<QQQI4x")  # generation, segment, offset, crc32 of the first 24 bytes
_ACK_BODY = struct.Struct("<QQQ")
_MAGIC = b"\xffSP2"
_HEAD = struct.Struct("<4sIIII")  # magic, payload bytes, raw bytes, lines, crc32(payload)
_HEAD_CRC = struct.Struct("<I")  # crc32 of _HEAD's bytes
HEADER_BYTES = _HEAD.size + _HEAD_CRC.size
GZIP_LEVEL = 1
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
RECORD_LINES = 5000
RECORD_RAW_BYTES = 4 * 1024 * 1024
OFFLOAD_LINES = 200  # ~0.2 MB of line protocol, ~1 ms of zlib: more than a thread hop costs


class SpoolLockedError(RuntimeError):
    """Another process has this spool directory open."""


@dataclass(frozen=True, slots=True)
class Batch:
    """The oldest un-acked records: their lines as one gzip stream, and where they lie.

    ``pieces``: (segment, start offset, end offset) on disk per segment the batch
    spans, in order, whole records; a batch may run across segment boundaries.
    ``gzip``: the records' payloads joined, a multi-member gzip stream of the
    newline-terminated lines; ``nbytes``: the size of those lines inflated.
    """

    pieces: tuple[tuple[int, int, int], ...]
    count: int
    gzip: bytes
    nbytes: int

    @property
    def start(self) -> tuple[int, int]:
        """(segment, offset) of the first record."""
        seg, start, _ = self.pieces[0]
        return seg, start

    @property
    def end(self) -> tuple[int, int]:
        """(segment, offset) just past the last record."""
        seg, _, end = self.pieces[-1]
        return seg, end

    @property
    def data(self) -> bytes:
        """The raw newline-terminated lines, inflated on each access (keep the result)."""
        return gunzip(self.gzip)

    def lines(self) -> list[str]:
        """The lines as strings, without their newlines."""
        return self.data.decode("utf-8", errors="replace").split("\n")[:-1]


@dataclass(frozen=True, slots=True)
class Frame:
    """The records of one append, ready to write: their bytes, (on-disk length, lines,
    raw bytes) per record, and the line count (``Spool.encode``)."""

    data: bytes
    records: tuple[tuple[int, int, int], ...]
    lines: int


class _Records:
    """A segment's record index: cumulative end offset, lines and raw bytes per record."""

    __slots__ = ("ends", "lines", "raw")

    def __init__(self) -> None:
        self.ends = array("q")
        self.lines = array("q")
        self.raw = array("q")

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def size(self) -> int:
        return self.ends[-1] if self.ends else 0

    def add(self, length: int, lines: int, raw: int) -> None:
        if self.ends:
            self.ends.append(self.ends[-1] + length)
            self.lines.append(self.lines[-1] + lines)
            self.raw.append(self.raw[-1] + raw)
        else:
            self.ends.append(length)
            self.lines.append(lines)
            self.raw.append(raw)

    def at(self, offset: int) -> int:
        """How many records end at or before ``offset`` (the index of the record starting there)."""
        return bisect_right(self.ends, offset)

    def start_of(self, k: int) -> int:
        return self.ends[k - 1] if k else 0

    def lines_before(self, k: int) -> int:
        return self.lines[k - 1] if k else 0

    def raw_before(self, k: int) -> int:
        return self.raw[k - 1] if k else 0

    def is_boundary(self, offset: int) -> bool:
        k = bisect_left(self.ends, offset)
        return offset == 0 or (k < len(self.ends) and self.ends[k] == offset)

    def lines_between(self, a: int, b: int) -> int:
        """Lines of the records from offset a to offset b (record boundaries)."""
        return self.lines_before(self.at(b)) - self.lines_before(self.at(a))


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def encode_record(raw: bytes | memoryview, lines: int) -> bytes:
    """One record: header + ``raw`` (newline-terminated lines) as a gzip member at GZIP_LEVEL."""
    comp = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    payload = comp.compress(raw) + comp.flush()
    head = _HEAD.pack(_MAGIC, len(payload), len(raw), lines, zlib.crc32(payload))
    return b"".join((head, _HEAD_CRC.pack(zlib.crc32(head)), payload))


def split_lines(data: bytes, count: int, max_lines: int, max_raw: int) -> Iterator[tuple[memoryview, int]]:
    """Cut newline-terminated lines into runs of ≤ max_lines lines and ≤ max_raw bytes
    (a longer line runs alone): (bytes, lines) each."""
    view = memoryview(data)
    if count <= max_lines and len(data) <= max_raw:
        yield view, count
        return
    pos, size = 0, len(data)
    while pos < size:
        end, n, limit = pos, 0, min(size, pos + max_raw)
        while n < max_lines:
            nl = data.find(b"\n", end, limit)
            if nl < 0:
                break
            end, n = nl + 1, n + 1
        if n == 0:  # one line longer than max_raw
            end, n = data.find(b"\n", pos) + 1, 1
        yield view[pos:end], n
        pos = end


def _scan(data: bytes) -> tuple[_Records, str | None]:
    """The index of a v2 segment's valid records, and why the rest (if any) is not valid."""
    recs = _Records()
    view = memoryview(data)
    pos, size = 0, len(data)
    while pos < size:
        if size - pos < HEADER_BYTES:
            return recs, "incomplete record header"
        magic, plen, rlen, lines, pcrc = _HEAD.unpack_from(data, pos)
        (hcrc,) = _HEAD_CRC.unpack_from(data, pos + _HEAD.size)
        if magic != _MAGIC or hcrc != zlib.crc32(view[pos : pos + _HEAD.size]) or lines == 0:
            zeros = not view[pos : pos + HEADER_BYTES].tobytes().strip(b"\0")
            return recs, "zero-filled tail" if zeros else "corrupt record header"
        end = pos + HEADER_BYTES + plen
        if end > size:
            return recs, "incomplete record"
        if zlib.crc32(view[pos + HEADER_BYTES : end]) != pcrc:
            return recs, "record crc mismatch"
        recs.add(end - pos, lines, rlen)
        pos = end
    return recs, None


def _v1_valid_end(data: bytes) -> int:
    """A v1 (raw text) segment's valid length: up to its last complete line before any NUL."""
    nul = data.find(b"\0")  # power loss on some file systems leaves zero-filled blocks
    if nul < 0 and data.endswith(b"\n"):
        return len(data)
    return data.rfind(b"\n", 0, nul if nul >= 0 else len(data)) + 1


class Spool:
    """A bounded, durable FIFO of line-protocol lines (see the module docstring).

    ``append`` is durable on return; ``peek`` returns the oldest un-acked records;
    ``ack`` removes them durably. Over ``max_bytes`` of pending records on disk the
    oldest records are dropped and their lines counted in ``dropped``.
    ``record_lines`` bounds the lines per record (so a batch of ``batch_size``
    lines holds whole records); it applies to appends, whatever wrote the spool.
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        *,
        segment_bytes: int | None = None,
        record_lines: int = RECORD_LINES,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if record_lines <= 0:
            raise ValueError("record_lines must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or min(DEFAULT_SEGMENT_BYTES, max(64 * 1024, max_bytes // 8))
        self.record_lines = record_lines
        self._segs: dict[int, _Records] = {}  # segment id -> its records, ascending ids
        self._fds: dict[int, int] = {}
        self._head_seg = 1
        self._head_off = 0
        self._wseg: int | None = None  # segment open for appending
        self._pending_lines = 0
        self._pending_bytes = 0
        self._dropped = 0
        self._ack_gen = 0
        self._closed = False
        self._lock_fd = self._ack_fd = -1
        try:
            self._open()
        except BaseException:
            self.close()  # an open that failed (an upgrade on a full disk) keeps no fd, no lock
            raise

    # ------------------------------------------------------------------ state

    @property
    def pending(self) -> int:
        """Lines appended and neither acked nor dropped."""
        return self._pending_lines

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk of the pending records (compressed, headers included)."""
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
            self._lock_fd = -1
            raise SpoolLockedError(f"spool {self.directory} is in use by another process") from err

        ack_path = self.directory / "ack"
        ack_new = not ack_path.exists()
        self._ack_fd = os.open(ack_path, os.O_RDWR | os.O_CREAT, 0o600)
        if ack_new:
            _fsync_dir(self.directory)
        head = self._read_ack()

        segs: list[int] = []
        for p in self.directory.iterdir():
            if p.name.endswith(_SEG_SUFFIX + _UPGRADE_SUFFIX):
                p.unlink()  # an upgrade interrupted before its rename: the v1 segment is still there
            elif p.name.endswith(_SEG_SUFFIX) and p.name[: -len(_SEG_SUFFIX)].isdigit():
                segs.append(int(p.name[: -len(_SEG_SUFFIX)]))
        segs.sort()
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
            path = self.directory / _seg_name(seg)
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
            first = os.pread(fd, 1, 0)
            if first and first not in (_MAGIC[:1], b"\0"):  # text: a v1 segment
                try:
                    self._upgrade_v1(seg, fd)
                finally:
                    os.close(fd)
                fd = os.open(path, os.O_RDWR | os.O_APPEND)
            self._fds[seg] = fd
            self._segs[seg] = self._recover_segment(seg, fd)
        if segs:
            recs = self._segs[self._head_seg]
            if self._head_off > recs.size:
                log.warning("spool.ack_past_end", segment=self._head_seg)
                self._head_off = recs.size
            elif not recs.is_boundary(self._head_off):  # only corruption does this
                log.warning("spool.ack_misaligned", segment=self._head_seg, note="rewound to a record start")
                self._head_off = recs.start_of(recs.at(self._head_off))

        self._skip_exhausted_head()
        for seg, recs in self._segs.items():
            start = self._head_off if seg == self._head_seg else 0
            self._pending_bytes += recs.size - start
            self._pending_lines += recs.lines_between(start, recs.size)
        if self._segs:
            self._wseg = max(self._segs)
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

    def _recover_segment(self, seg: int, fd: int) -> _Records:
        """Index a segment's records, cutting it at the first invalid one (see the module docstring)."""
        size = os.fstat(fd).st_size
        if size == 0:
            return _Records()
        recs, reason = _scan(_pread_all(fd, size, 0))
        if recs.size != size:
            log.warning(
                "spool.torn_tail",
                segment=_seg_name(seg),
                kept_bytes=recs.size,
                discarded_bytes=size - recs.size,
                reason=reason,
                note="an interrupted append left an incomplete last record; discarded",
            )
            os.ftruncate(fd, recs.size)
            os.fsync(fd)
        return recs

    def _upgrade_v1(self, seg: int, fd: int) -> None:
        """Rewrite a v1 (raw text) segment's pending lines as records, crash-safely
        (the steps and what a crash between them does: the module docstring)."""
        name = _seg_name(seg)
        data = _pread_all(fd, os.fstat(fd).st_size, 0)
        good = _v1_valid_end(data)
        if good != len(data):
            log.warning(
                "spool.torn_tail",
                segment=name,
                kept_bytes=good,
                discarded_bytes=len(data) - good,
                reason="incomplete v1 line",
                note="an interrupted append left an incomplete last line; discarded",
            )
        start = 0
        if seg == self._head_seg:
            start = min(self._head_off, good)
            if start > 0 and data[start - 1 : start] != b"\n":  # not on a line boundary: corruption
                log.warning("spool.ack_misaligned", segment=seg, note="rewound to a line start")
                start = data.rfind(b"\n", 0, start) + 1
        body = data[start:good]
        count = body.count(b"\n")
        frame = b"".join(encode_record(raw, n) for raw, n in self._split(body, count))
        tmp = self.directory / (name + _UPGRADE_SUFFIX)
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(out, frame)
            os.fsync(out)
        finally:
            os.close(out)
        if seg == self._head_seg and self._head_off != 0:
            # From here until the rename a crash re-reads the v1 file from 0: acked
            # lines are sent again (at-least-once), none is lost.
            self._head_off = 0
            self._write_ack()
        os.replace(tmp, self.directory / name)
        _fsync_dir(self.directory)
        log.info(
            "spool.upgraded",
            segment=name,
            lines=count,
            v1_bytes=len(body),
            v2_bytes=len(frame),
            note="a segment of the raw-text spool format rewritten as compressed records",
        )

    def _split(self, data: bytes, count: int) -> Iterator[tuple[memoryview, int]]:
        return split_lines(data, count, self.record_lines, RECORD_RAW_BYTES)

    # ----------------------------------------------------------------- append

    def append(self, lines: Sequence[str]) -> None:
        """Append lines (without newlines); durable on disk when this returns.

        Raises ValueError, writing nothing, if a line is empty or contains a newline.
        May drop the oldest pending records to stay under max_bytes (see ``dropped``).
        ``encode`` + ``append_frame`` is the same in two steps, the first one for a
        worker thread.
        """
        self._check_open()
        if lines:
            self.append_frame(self.encode(lines))

    async def append_async(self, lines: Sequence[str]) -> None:
        """``append`` for a coroutine: a large append (≥ OFFLOAD_LINES lines) is compressed
        in a worker thread, so the event loop (the forwarder's POSTs) runs meanwhile; the
        write and fdatasync stay on the loop. Durable when it returns."""
        self._check_open()
        if not lines:
            return
        if len(lines) >= OFFLOAD_LINES:
            frame = await asyncio.to_thread(self.encode, lines)
        else:
            frame = self.encode(lines)
        self.append_frame(frame)

    def encode(self, lines: Sequence[str]) -> Frame:
        """Compress lines (without newlines) into the records of one append. Pure CPU,
        touches no spool state: safe in a worker thread (zlib releases the GIL).

        Raises ValueError if a line is empty or contains a newline.
        """
        text = "\n".join(lines) + "\n"
        if "\0" in text:
            # Kept out of line protocol as in the raw-text format (servers refuse it anyway).
            log.warning("spool.nul_stripped", note="NUL characters removed from line protocol")
            text = text.replace("\0", "")
        data = text.encode("utf-8")
        # C-speed checks over the whole buffer instead of a loop over lines.
        if not lines or data.count(b"\n") != len(lines) or data.startswith(b"\n") or b"\n\n" in data:
            raise ValueError("spool lines must be non-empty and must not contain newlines")
        parts = list(self._split(data, len(lines)))
        records = [encode_record(raw, n) for raw, n in parts]
        return Frame(
            records[0] if len(records) == 1 else b"".join(records),
            tuple((len(rec), n, len(raw)) for rec, (raw, n) in zip(records, parts, strict=True)),
            len(lines),
        )

    def append_frame(self, frame: Frame) -> None:
        """Append the records ``encode`` made: one write + one fdatasync; durable on return."""
        self._check_open()
        if self._wseg is None or self._segs[self._wseg].size >= self.segment_bytes:
            self._new_segment()
        assert self._wseg is not None
        fd = self._fds[self._wseg]
        recs = self._segs[self._wseg]
        before = recs.size
        try:
            _write_all(fd, frame.data)
            os.fdatasync(fd)
        except BaseException:
            # Never leave a partial record for the next append to follow.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
            raise
        for length, n, raw in frame.records:
            recs.add(length, n, raw)
        self._pending_bytes += len(frame.data)
        self._pending_lines += frame.lines
        if self._pending_bytes > self.max_bytes:
            self._enforce_cap()

    def _new_segment(self) -> None:
        seg = max(self._segs, default=self._head_seg - 1) + 1
        if not self._segs:
            self._head_seg, self._head_off = seg, 0
        fd = os.open(self.directory / _seg_name(seg), os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        _fsync_dir(self.directory)  # the new name must survive before records in it claim durability
        self._fds[seg] = fd
        self._segs[seg] = _Records()
        self._wseg = seg

    # --------------------------------------------------------------- cap/drop

    def _enforce_cap(self) -> None:
        dropped = 0
        while self._pending_bytes > self.max_bytes:
            excess = self._pending_bytes - self.max_bytes
            seg, off = self._head_seg, self._head_off
            recs = self._segs[seg]
            # Up to the end of the record covering `excess`, or the whole rest of the segment.
            cut = recs.size if recs.size - off <= excess else recs.ends[bisect_left(recs.ends, off + excess)]
            dropped += recs.lines_between(off, cut)
            self._pending_bytes -= cut - off
            self._advance_past(seg, cut)
        if dropped:
            self._pending_lines -= dropped
            self._dropped += dropped
            self._write_ack()

    def _advance_past(self, seg: int, end: int) -> None:
        """Move the head to (seg, end); delete the segment when it is fully read and closed."""
        self._head_seg, self._head_off = seg, end
        size = self._segs[seg].size
        if end < size:
            return
        if seg == self._wseg and size < self.segment_bytes:
            return  # still the append target; keep it
        later = [s for s in self._segs if s > seg]
        if later:
            self._head_seg, self._head_off = later[0], 0
        else:
            self._head_seg, self._head_off = seg + 1, 0
        self._delete_segment(seg)

    def _skip_exhausted_head(self) -> None:
        """A fully-read head segment with later ones behind it is done: delete it."""
        while self._head_seg in self._segs and self._head_off >= self._segs[self._head_seg].size:
            later = [s for s in self._segs if s > self._head_seg]
            if not later:
                return
            done = self._head_seg
            self._head_seg, self._head_off = later[0], 0
            self._write_ack()
            self._delete_segment(done)

    def _delete_segment(self, seg: int) -> None:
        fd = self._fds.pop(seg)
        os.close(fd)
        del self._segs[seg]
        if self._wseg == seg:
            self._wseg = None
        os.unlink(self.directory / _seg_name(seg))

    # -------------------------------------------------------------- peek/ack

    def peek(
        self, max_lines: int = 5000, max_bytes: int = 5_000_000, *, after: Batch | None = None
    ) -> Batch | None:
        """The oldest un-acked records, as many as fit in max_lines lines and max_bytes
        bytes of line protocol (a record larger than that comes alone), or None when
        nothing is pending.

        With ``after``, the records following that batch (to prepare the next batch
        while ``after`` is being written); falls back to the head if ``after`` is stale.
        """
        self._check_open()
        pos = (self._head_seg, self._head_off)
        if after is not None and after.end > pos and after.end[0] in self._segs:
            pos = after.end
        spans: list[tuple[int, int, int]] = []  # (segment, first record, end record)
        count = nbytes = 0
        for seg in sorted(s for s in self._segs if s >= pos[0]):
            recs = self._segs[seg]
            k = recs.at(pos[1]) if seg == pos[0] else 0
            if k >= len(recs):
                continue
            base_lines, base_raw = recs.lines_before(k), recs.raw_before(k)
            j = min(
                bisect_right(recs.lines, base_lines + max_lines - count),
                bisect_right(recs.raw, base_raw + max_bytes - nbytes),
            )
            if j <= k:
                if spans:
                    break
                j = k + 1  # one record larger than the limits: alone rather than stall
            spans.append((seg, k, j))
            count += recs.lines_before(j) - base_lines
            nbytes += recs.raw_before(j) - base_raw
            if j < len(recs):
                break
        if not spans:
            return None
        pieces: list[tuple[int, int, int]] = []
        payloads: list[memoryview] = []
        for seg, k, j in spans:
            recs = self._segs[seg]
            start, end = recs.start_of(k), recs.ends[j - 1]
            view = memoryview(_pread_all(self._fds[seg], end - start, start))
            for r in range(k, j):
                payloads.append(view[recs.start_of(r) - start + HEADER_BYTES : recs.ends[r] - start])
            pieces.append((seg, start, end))
        body = payloads[0].tobytes() if len(payloads) == 1 else b"".join(payloads)
        return Batch(tuple(pieces), count, body, nbytes)

    def is_head(self, batch: Batch) -> bool:
        """True if ``batch`` starts at the oldest un-acked record (it is next to send)."""
        if batch.start == (self._head_seg, self._head_off):
            return True
        # The head may sit at the end of a fully-read segment that is still kept.
        head = self._segs.get(self._head_seg)
        return (
            batch.start[1] == 0
            and head is not None
            and self._head_off == head.size
            and batch.start[0] == min((s for s in self._segs if s > self._head_seg), default=-1)
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
        if batch.start >= head:
            lines, nbytes = batch.count, sum(b - a for _, a, b in batch.pieces)
        else:  # drops overtook the batch's start: only what follows the head is still pending
            lines = nbytes = 0
            for seg, a, b in batch.pieces:
                if (seg, b) <= head or seg not in self._segs:
                    continue
                a = max(a, head[1]) if seg == head[0] else a
                lines += self._segs[seg].lines_between(a, b)
                nbytes += b - a
        self._pending_lines -= lines
        self._pending_bytes -= nbytes
        for seg, _, b in batch.pieces:
            if (seg, b) > (self._head_seg, self._head_off) and seg in self._segs:
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
        if self._ack_fd >= 0:
            os.close(self._ack_fd)
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
