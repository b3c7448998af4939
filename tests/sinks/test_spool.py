"""The spool on its own: order, durability across reopen, torn tails, the size cap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.sinks.spool import Spool, SpoolLockedError


def lines(start: int, n: int, pad: int = 0) -> list[str]:
    """n distinct lines of equal length (unless padded)."""
    extra = f',s="{"x" * pad}"' if pad else ""
    return [f"m,device=d{i % 7} v={i:06d}.0{extra} {1_700_000_000 + i}" for i in range(start, start + n)]


def drain(spool: Spool, max_lines: int = 5000) -> list[str]:
    out: list[str] = []
    while (batch := spool.peek(max_lines)) is not None:
        out.extend(batch.lines())
        spool.ack(batch)
    return out


def test_lines_come_out_in_order_across_segments_and_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000, segment_bytes=4096)
    expected: list[str] = []
    for k in range(50):
        chunk = lines(k * 37, 37)
        spool.append(chunk)
        expected += chunk
    assert spool.pending == len(expected)
    assert len(list((tmp_path / "s").glob("*.seg"))) > 5
    assert drain(spool, max_lines=100) == expected
    assert spool.pending == 0 and spool.pending_bytes == 0
    # fully read segments are deleted (the last one stays as the append target)
    assert len(list((tmp_path / "s").glob("*.seg"))) <= 1


def test_peek_respects_max_lines_and_max_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    spool.append(lines(0, 1000))
    batch = spool.peek(max_lines=300)
    assert batch is not None and batch.count == 300 and len(batch.lines()) == 300
    small = spool.peek(max_lines=5000, max_bytes=500)
    assert small is not None and small.nbytes <= 500 and small.count == len(small.lines()) > 0
    assert small.lines() == batch.lines()[: small.count]


def test_a_line_longer_than_max_bytes_comes_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    spool.append([*lines(0, 1, pad=2000), *lines(1, 2)])
    batch = spool.peek(max_bytes=100)
    assert batch is not None and batch.count == 1 and len(batch.data) > 2000
    spool.ack(batch)
    assert drain(spool) == lines(1, 2)


def test_reopen_keeps_unacked_lines_and_forgets_acked_ones(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000, segment_bytes=2048)
    spool.append(lines(0, 200))
    first = spool.peek(max_lines=120)
    assert first is not None
    spool.ack(first)
    spool.close()  # a clean close is not required: see the SIGKILL tests

    again = Spool(tmp_path / "s", max_bytes=10_000_000, segment_bytes=2048)
    assert again.pending == 80
    again.append(lines(200, 10))
    assert drain(again) == lines(120, 90)


def test_a_torn_last_record_is_cut_back_to_the_last_whole_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    spool.append(lines(0, 10))
    spool.close()
    seg = sorted((tmp_path / "s").glob("*.seg"))[-1]
    with open(seg, "ab") as f:  # what a SIGKILL in the middle of write() leaves
        f.write(b"m,device=d1 v=99.0 9")
    again = Spool(tmp_path / "s", max_bytes=10_000_000)
    assert again.pending == 10
    again.append(lines(10, 2))  # new lines are not glued onto the torn one
    assert drain(again) == lines(0, 12)


def test_zero_filled_tail_after_power_loss_is_discarded(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    spool.append(lines(0, 5))
    spool.close()
    seg = sorted((tmp_path / "s").glob("*.seg"))[-1]
    with open(seg, "ab") as f:
        f.write(b"m,device=d1 v=5.0 5\n" + b"\0" * 4096)
    again = Spool(tmp_path / "s", max_bytes=10_000_000)
    assert drain(again) == [*lines(0, 5), "m,device=d1 v=5.0 5"]


def test_a_torn_ack_slot_falls_back_to_the_older_position(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000_000)
    spool.append(lines(0, 30))
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


def test_over_the_cap_the_oldest_lines_are_dropped_and_counted(tmp_path: Path) -> None:
    line_bytes = len(lines(0, 1)[0]) + 1
    spool = Spool(tmp_path / "s", max_bytes=100 * line_bytes, segment_bytes=16 * line_bytes)
    spool.append(lines(0, 100))
    assert spool.dropped == 0
    spool.append(lines(100, 30))
    assert spool.pending_bytes <= 100 * line_bytes
    assert spool.dropped == 30
    assert spool.pending == 100
    assert drain(spool) == lines(30, 100)
    # disk use stays near the cap: at most the cap plus one segment
    on_disk = sum(p.stat().st_size for p in (tmp_path / "s").glob("*.seg"))
    assert on_disk <= 100 * line_bytes + 16 * line_bytes


def test_an_append_larger_than_the_cap_keeps_its_newest_lines(tmp_path: Path) -> None:
    line_bytes = len(lines(0, 1)[0]) + 1
    spool = Spool(tmp_path / "s", max_bytes=10 * line_bytes)
    spool.append(lines(0, 25))
    assert spool.dropped == 15
    assert drain(spool) == lines(15, 10)


def test_a_batch_overtaken_by_drops_acks_only_what_is_left(tmp_path: Path) -> None:
    line_bytes = len(lines(0, 1)[0]) + 1
    spool = Spool(tmp_path / "s", max_bytes=20 * line_bytes)
    spool.append(lines(0, 20))
    inflight = spool.peek(max_lines=10)
    assert inflight is not None
    spool.append(lines(20, 5))  # drops lines 0..4 while 0..9 are being written
    assert spool.dropped == 5
    spool.ack(inflight)
    assert spool.pending == 15
    assert drain(spool) == lines(10, 15)


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
