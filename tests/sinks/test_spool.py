"""The spool on its own: record framing, order, durability across reopen, torn
tails, the size cap, and the upgrade of a v1 (raw text) spool directory."""

from __future__ import annotations

import asyncio
import gzip
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from collector.sinks.base import Encoded, gunzip
from collector.sinks.spool import (
    HEADER_BYTES,
    OFFLOAD_LINES,
    Spool,
    SpoolLockedError,
    encode_record,
    split_lines,
)
from tests.sinks.v1spool import v1_ack_slot, v1_offset, v1_segment_bytes, write_v1_spool

# The record header as documented in the spool's docstring, spelled out here so a
# change of the on-disk format shows up as a failing test.
HEADER = struct.Struct("<4sIIIII")  # magic, payload bytes, raw bytes, lines, crc32(payload), crc32(header)


def lines(start: int, n: int, pad: int = 0) -> list[str]:
    """n distinct lines of equal length (unless padded)."""
    extra = f',s="{"x" * pad}"' if pad else ""
    return [f"m,device=d{i % 7} v={i:06d}.0{extra} {1_700_000_000 + i}" for i in range(start, start + n)]


def raw(chunk: list[str]) -> bytes:
    return "".join(x + "\n" for x in chunk).encode()


def drain(spool: Spool, max_lines: int = 5000) -> list[str]:
    out: list[str] = []
    while (batch := spool.peek(max_lines)) is not None:
        out.extend(batch.lines())
        spool.ack(batch)
    return out


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def records(path: Path) -> list[tuple[int, int, int, bytes]]:
    """(offset, lines, raw bytes, payload) of every record in a segment file."""
    data = path.read_bytes()
    out = []
    pos = 0
    while pos < len(data):
        magic, plen, rlen, n, pcrc, hcrc = HEADER.unpack_from(data, pos)
        assert magic == b"\xffSP2" and hcrc == zlib.crc32(data[pos : pos + 20])
        payload = data[pos + HEADER.size : pos + HEADER.size + plen]
        assert zlib.crc32(payload) == pcrc
        out.append((pos, n, rlen, payload))
        pos += HEADER.size + plen
    return out


def record_size(chunk: list[str]) -> int:
    return len(encode_record(raw(chunk), len(chunk)))


# ------------------------------------------------------------------ framing


def test_an_append_is_one_record_a_gzip_member_of_its_lines(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    spool.append(lines(0, 3))
    [seg] = segments(tmp_path / "s")
    [(offset, n, rlen, payload)] = records(seg)
    assert (offset, n, rlen) == (0, 3, len(raw(lines(0, 3))))
    assert HEADER.size == HEADER_BYTES
    assert payload[:2] == b"\x1f\x8b" and gzip.decompress(payload) == raw(lines(0, 3))
    assert spool.pending == 3 and spool.pending_bytes == seg.stat().st_size


def test_a_big_append_is_a_few_records_in_one_write_and_one_fdatasync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000, record_lines=5)
    spool.append(lines(0, 1))  # the segment exists: what follows is the append alone
    calls: list[str] = []
    real_write, real_sync = os.write, os.fdatasync

    def write(fd: int, data: bytes) -> int:
        calls.append("write")
        return real_write(fd, data)

    def fdatasync(fd: int) -> None:
        calls.append("fdatasync")
        real_sync(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    spool.append(lines(1, 12))
    assert calls == ["write", "fdatasync"]
    monkeypatch.undo()
    assert [n for _, n, _, _ in records(segments(tmp_path / "s")[0])] == [1, 5, 5, 2]
    assert drain(spool) == lines(0, 13)


def test_append_async_compresses_a_big_append_in_a_thread_and_is_durable_on_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real = asyncio.to_thread

    async def to_thread(func, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(len(args[0]))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)

    async def main() -> None:
        spool = Spool(tmp_path / "s", max_bytes=10_000_000)
        await spool.append_async(lines(0, 3))  # small: compressed on the loop
        await spool.append_async(lines(3, OFFLOAD_LINES))
        with pytest.raises(ValueError):
            await spool.append_async(["m v=1 1", ""] * OFFLOAD_LINES)
        spool.close()

    asyncio.run(main())
    assert threads == [OFFLOAD_LINES, 2 * OFFLOAD_LINES]
    assert drain(Spool(tmp_path / "s", max_bytes=10_000_000)) == lines(0, 3 + OFFLOAD_LINES)


def test_split_lines_bounds_lines_and_raw_bytes_and_a_long_line_runs_alone() -> None:
    data = raw([*lines(0, 7), *lines(7, 1, pad=500), *lines(8, 3)])
    runs = [(bytes(v), n) for v, n in split_lines(data, 11, 4, 200)]
    assert b"".join(v for v, _ in runs) == data
    assert all(v.count(b"\n") == n for v, n in runs)
    assert [n for _, n in runs] == [4, 3, 1, 3]  # 4 lines; 3 (the 4th would pass 200 B); the long one
    assert [(bytes(v), n) for v, n in split_lines(data, 11, 100, 10_000)] == [(data, 11)]


def test_gunzip_reads_every_member_and_refuses_a_truncated_stream() -> None:
    members = [gzip.compress(raw(lines(k * 100, 100)), 1) for k in range(3)]
    stream = b"".join(members)
    assert gunzip(stream) == raw(lines(0, 300)) == gzip.decompress(stream)
    assert gunzip(b"") == b""
    with pytest.raises(zlib.error):
        gunzip(stream[:-3])
    lazy = Encoded(None, stream, 300, "gzip")  # a batch posted as it is inflates only when asked
    assert lazy.raw == raw(lines(0, 300))


# ------------------------------------------------------------ order and peek


def test_lines_come_out_in_order_across_segments_and_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000, segment_bytes=2048)
    expected: list[str] = []
    for k in range(50):
        chunk = lines(k * 37, 37)
        spool.append(chunk)
        expected += chunk
    assert spool.pending == len(expected)
    assert len(segments(tmp_path / "s")) > 5
    assert drain(spool, max_lines=100) == expected
    assert spool.pending == 0 and spool.pending_bytes == 0
    # fully read segments are deleted (the last one stays as the append target)
    assert len(segments(tmp_path / "s")) <= 1


def test_peek_takes_whole_records_within_max_lines_and_max_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    for k in range(10):
        spool.append(lines(k * 100, 100))
    batch = spool.peek(max_lines=300)
    assert batch is not None and batch.count == 300 and batch.lines() == lines(0, 300)
    assert batch.nbytes == len(batch.data) == len(raw(lines(0, 300)))
    assert gzip.decompress(batch.gzip) == batch.data  # a valid multi-member gzip stream
    short = spool.peek(max_lines=299)
    assert short is not None and short.count == 200  # the third record would pass max_lines
    alone = spool.peek(max_lines=50)
    assert alone is not None and alone.count == 100  # a record larger than the limit comes alone
    small = spool.peek(max_lines=5000, max_bytes=2 * len(raw(lines(0, 100))) + 10)
    assert small is not None and small.count == 200 and small.nbytes <= 2 * len(raw(lines(0, 100))) + 10
    assert [b.start for b in (batch, short, alone, small)] == [(1, 0)] * 4


def test_a_record_longer_than_max_bytes_comes_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    spool.append(lines(0, 1, pad=2000))
    spool.append(lines(1, 2))
    batch = spool.peek(max_bytes=100)
    assert batch is not None and batch.count == 1 and len(batch.data) > 2000
    spool.ack(batch)
    assert drain(spool) == lines(1, 2)


def test_peek_after_a_batch_prepares_the_next_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000, segment_bytes=1024)
    for k in range(6):
        spool.append(lines(k * 40, 40))
    first = spool.peek(max_lines=80)
    assert first is not None
    second = spool.peek(max_lines=80, after=first)
    assert second is not None and second.lines() == lines(80, 80)
    assert spool.is_head(first) and not spool.is_head(second)
    spool.ack(first)
    assert spool.is_head(second)
    spool.ack(second)
    assert drain(spool) == lines(160, 80)


def test_a_batch_runs_across_segments_and_its_ack_deletes_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000, segment_bytes=64)  # one record per segment
    for k in range(5):
        spool.append(lines(k * 10, 10))
    assert len(segments(tmp_path / "s")) == 5
    batch = spool.peek(max_lines=35)
    assert batch is not None and batch.count == 30 and len(batch.pieces) == 3
    assert gzip.decompress(batch.gzip) == raw(lines(0, 30))
    spool.ack(batch)
    assert spool.pending == 20 and len(segments(tmp_path / "s")) == 2
    spool.close()
    again = Spool(tmp_path / "s", max_bytes=10_000_000, segment_bytes=64)
    assert again.pending == 20 and drain(again) == lines(30, 20)


def test_reopen_keeps_unacked_lines_and_forgets_acked_ones(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000, segment_bytes=2048)
    for k in range(10):
        spool.append(lines(k * 20, 20))
    first = spool.peek(max_lines=120)
    assert first is not None and first.count == 120
    spool.ack(first)
    pending_bytes = spool.pending_bytes
    spool.close()  # a clean close is not required: see the SIGKILL tests

    again = Spool(tmp_path / "s", max_bytes=10_000_000, segment_bytes=2048)
    assert again.pending == 80 and again.pending_bytes == pending_bytes
    again.append(lines(200, 10))
    assert drain(again) == lines(120, 90)


# ----------------------------------------------------------------- torn tails


def _mid_header(seg: Path, last: int) -> None:
    os.truncate(seg, last + 10)


def _mid_payload(seg: Path, last: int) -> None:
    os.truncate(seg, last + HEADER_BYTES + 20)


def _bad_crc(seg: Path, last: int) -> None:
    with open(seg, "r+b") as f:
        f.seek(last + HEADER_BYTES + 15)
        byte = f.read(1)
        f.seek(last + HEADER_BYTES + 15)
        f.write(bytes([byte[0] ^ 0x55]))


def _zeroed_record(seg: Path, last: int) -> None:
    size = seg.stat().st_size
    with open(seg, "r+b") as f:  # power loss: the last record's blocks read back as zeros
        f.seek(last)
        f.write(b"\0" * (size - last))


def _zero_tail(seg: Path, last: int) -> None:
    with open(seg, "ab") as f:  # power loss: a zero-filled block after the last good record
        f.write(b"\0" * 4096)


@pytest.mark.parametrize(
    ("damage", "reason", "lost"),
    [
        (_mid_header, "incomplete record header", True),
        (_mid_payload, "incomplete record", True),
        (_bad_crc, "record crc mismatch", True),
        (_zeroed_record, "zero-filled tail", True),
        (_zero_tail, "zero-filled tail", False),
    ],
)
def test_a_torn_tail_is_cut_at_the_first_bad_record_and_logged(
    tmp_path: Path, damage: Callable[[Path, int], None], reason: str, lost: bool
) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    spool.append(lines(0, 10))
    spool.append(lines(10, 10))  # the record an interrupted append would have left
    spool.close()
    [seg] = segments(tmp_path / "s")
    last = records(seg)[-1][0]
    damage(seg, last)
    damaged = seg.stat().st_size
    with capture_logs() as logs:
        again = Spool(tmp_path / "s", max_bytes=10_000_000)
    [torn] = [e for e in logs if e["event"] == "spool.torn_tail"]
    keep = last if lost else damaged - 4096
    assert torn["reason"] == reason
    assert (torn["kept_bytes"], torn["discarded_bytes"]) == (keep, damaged - keep)
    assert seg.stat().st_size == keep
    survivors = lines(0, 10) if lost else lines(0, 20)
    assert again.pending == len(survivors)
    again.append(lines(20, 2))  # new records do not follow the torn one
    assert drain(again) == [*survivors, *lines(20, 2)]


def test_a_torn_ack_slot_falls_back_to_the_older_position(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    for k in range(3):
        spool.append(lines(k * 10, 10))
    for _ in range(3):
        batch = spool.peek(max_lines=10)
        assert batch is not None
        spool.ack(batch)
    spool.close()
    # Corrupt the newest slot (generation 3 lives in slot 1): the older one says 20 acked.
    with open(tmp_path / "s" / "ack", "r+b") as f:
        f.seek(32 + 16)  # the offset field of slot 1
        f.write(b"\xff\xff")
    again = Spool(tmp_path / "s", max_bytes=10_000_000)
    assert drain(again) == lines(20, 10)  # at-least-once: 10 lines sent again, none lost


def test_an_ack_inside_a_record_is_rewound_to_its_start(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    spool.append(lines(0, 10))
    spool.append(lines(10, 10))
    spool.close()
    second = records(segments(tmp_path / "s")[0])[1][0]
    # The ack slots kept their v1 format; generation 7 (slot 1) points inside record 2.
    (tmp_path / "s" / "ack").write_bytes(b"\0" * 32 + v1_ack_slot(7, 1, second + 5))
    with capture_logs() as logs:
        again = Spool(tmp_path / "s", max_bytes=10_000_000)
    assert any(e["event"] == "spool.ack_misaligned" for e in logs)
    assert drain(again) == lines(10, 10)


# ------------------------------------------------------------------------ cap


def test_over_the_cap_the_oldest_records_are_dropped_and_counted(tmp_path: Path) -> None:
    size = record_size(lines(0, 10))  # every 10-line chunk here compresses to about this
    cap = 10 * size + size // 2
    spool = Spool(tmp_path / "s", max_bytes=cap, segment_bytes=4 * size)
    for k in range(10):
        spool.append(lines(k * 10, 10))
    assert spool.dropped == 0 and spool.pending == 100
    for k in range(10, 13):
        spool.append(lines(k * 10, 10))
    assert spool.pending_bytes <= cap
    assert spool.dropped == 30 and spool.pending == 100  # three whole records
    assert drain(spool) == lines(30, 100)
    # disk use stays near the cap: at most the cap plus one segment (and one record)
    on_disk = sum(p.stat().st_size for p in segments(tmp_path / "s"))
    assert on_disk <= cap + 5 * size


def test_an_append_larger_than_the_cap_keeps_its_newest_records(tmp_path: Path) -> None:
    chunks = [lines(k * 5, 5) for k in range(5)]
    cap = record_size(chunks[3]) + record_size(chunks[4])
    spool = Spool(tmp_path / "s", max_bytes=cap, record_lines=5)
    spool.append(lines(0, 25))  # five records of five
    assert spool.dropped == 15 and spool.pending_bytes == cap
    assert drain(spool) == lines(15, 10)


def test_a_batch_overtaken_by_drops_acks_only_what_is_left(tmp_path: Path) -> None:
    chunks = [lines(k * 5, 5) for k in range(4)]
    sizes = [record_size(c) for c in [*chunks, lines(20, 5)]]
    spool = Spool(tmp_path / "s", max_bytes=max(sum(sizes[:4]), sum(sizes[1:])))  # room for 4 of the 5
    for chunk in chunks:
        spool.append(chunk)
    inflight = spool.peek(max_lines=10)
    assert inflight is not None and inflight.count == 10
    spool.append(lines(20, 5))  # drops the record of lines 0..4 while 0..9 are being written
    assert spool.dropped == 5
    spool.ack(inflight)
    assert spool.pending == 15
    assert drain(spool) == lines(10, 15)


# --------------------------------------------------------------------- checks


def test_lines_with_newlines_or_empty_lines_are_refused_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1_000_000)
    with pytest.raises(ValueError):
        spool.append(["m v=1 1", "m v=2\nm v=3 3"])
    with pytest.raises(ValueError):
        spool.append(["m v=1 1", ""])
    assert spool.pending == 0 and spool.peek() is None


def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1_000_000)
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path / "s", max_bytes=1_000_000)
    spool.close()
    Spool(tmp_path / "s", max_bytes=1_000_000).close()


def test_append_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    spool = Spool(tmp_path / "s", max_bytes=1_000_000)
    spool.append(lines(0, 3))
    assert synced, "append returned without fdatasync"


# ---------------------------------------------------------------- v1 upgrade


def test_a_v1_spool_opens_and_delivers_every_pending_line(tmp_path: Path) -> None:
    d = tmp_path / "s"
    seg1, seg2, seg3 = lines(0, 40), lines(40, 40), lines(80, 15)
    # 25 lines of segment 1 acked (generation 4), the previous ack at 10 lines.
    write_v1_spool(
        d,
        {1: seg1, 2: seg2, 3: seg3},
        (1, v1_offset(seg1, 25)),
        generation=4,
        previous=(1, v1_offset(seg1, 10)),
    )
    v1_bytes = sum(p.stat().st_size for p in segments(d))
    with capture_logs() as logs:
        spool = Spool(d, max_bytes=10_000_000, record_lines=20)
    upgraded = [e for e in logs if e["event"] == "spool.upgraded"]
    assert [e["lines"] for e in upgraded] == [15, 40, 15]
    assert spool.pending == 70
    for seg in segments(d):  # every segment is records now, no temp file left
        assert seg.read_bytes()[:4] == b"\xffSP2"
    assert not list(d.glob("*.v2"))
    assert sum(p.stat().st_size for p in segments(d)) < v1_bytes
    spool.append(lines(95, 5))  # appends go after the upgraded lines
    assert drain(spool, max_lines=30) == lines(25, 75)
    spool.close()
    assert Spool(d, max_bytes=10_000_000).pending == 0


def test_a_v1_spool_with_a_torn_last_line_keeps_the_whole_ones(tmp_path: Path) -> None:
    d = tmp_path / "s"
    write_v1_spool(d, {7: lines(0, 10)})  # never acked: an empty ack file
    with open(d / f"{7:020d}.seg", "ab") as f:  # what a SIGKILL in the middle of write() left
        f.write(b"m,device=d1 v=99.0 9")
    with capture_logs() as logs:
        spool = Spool(d, max_bytes=10_000_000)
    [torn] = [e for e in logs if e["event"] == "spool.torn_tail"]
    assert torn["discarded_bytes"] == len(b"m,device=d1 v=99.0 9")
    assert spool.pending == 10 and drain(spool) == lines(0, 10)


def test_a_v1_spool_whose_head_segment_is_fully_read(tmp_path: Path) -> None:
    d = tmp_path / "s"
    seg1, seg2 = lines(0, 10), lines(10, 10)
    write_v1_spool(d, {1: seg1, 2: seg2}, (1, v1_offset(seg1, 10)), generation=9)
    spool = Spool(d, max_bytes=10_000_000)
    assert spool.pending == 10 and drain(spool) == seg2


def test_an_upgrade_interrupted_after_the_ack_resends_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "s"
    seg1 = lines(0, 30)
    write_v1_spool(d, {1: seg1}, (1, v1_offset(seg1, 20)), generation=2)

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)  # dies after the temp file and the ack, before the rename
    with pytest.raises(OSError):
        Spool(d, max_bytes=10_000_000)
    monkeypatch.undo()
    assert (d / f"{1:020d}.seg").read_bytes() == v1_segment_bytes(seg1)  # the v1 file is untouched
    assert list(d.glob("*.v2"))  # the temp file a crash leaves
    spool = Spool(d, max_bytes=10_000_000)  # the failed open released the lock
    assert not list(d.glob("*.v2"))
    # The ack already said (1, 0): the 20 acked lines come again (at-least-once), none is lost.
    assert drain(spool) == seg1


def test_a_leftover_temp_file_of_an_upgrade_is_ignored(tmp_path: Path) -> None:
    d = tmp_path / "s"
    seg1 = lines(0, 30)
    write_v1_spool(d, {1: seg1}, (1, v1_offset(seg1, 5)), generation=1)
    (d / f"{1:020d}.seg.v2").write_bytes(b"\xffSP2 half a record")  # a crash mid-write of the temp file
    spool = Spool(d, max_bytes=10_000_000)
    assert drain(spool) == lines(5, 25)
