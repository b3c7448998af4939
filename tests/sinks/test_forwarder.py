"""The forwarder: order, retry waits (fake clock), holds, outages against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from collector.sinks.base import WriteReport
from collector.sinks.forwarder import Forwarder
from collector.sinks.influxdb import InfluxSink
from collector.sinks.spool import Spool
from tests.servers import InfluxServer
from tests.sinks.conftest import (
    ADMIN,
    FakeTime,
    Peer,
    Reply,
    Request,
    make_influxd,
    make_victoria,
    run,
    unique,
    wait_until,
)

T0 = 1_700_000_000


def lines(start: int, n: int, measurement: str = "inverter") -> list[str]:
    return [
        f"{measurement},device=d{i % 5},site=home pv_power_w={float(i)},seq={i}i {T0 + 300 * i}"
        for i in range(start, start + n)
    ]


class Recording:
    """Wraps a sink and records the lines of every successful write, in order."""

    def __init__(self, inner: InfluxSink) -> None:
        self.inner = inner
        self.name = inner.name
        self.delivered: list[str] = []

    async def open(self, session: object) -> None:
        await self.inner.open(None)

    async def write(self, batch: Sequence[str]) -> WriteReport:
        report = await self.inner.write(batch)
        self.delivered.extend(batch)
        return report

    async def close(self) -> None:
        await self.inner.close()


def forwarder(spool: Spool, sink: object, fake: FakeTime | None = None, **kw: object) -> Forwarder:
    if fake is not None:
        kw.setdefault("clock", fake.clock)
        kw.setdefault("sleep", fake.sleep)
    kw.setdefault("rng", lambda: 1.0)  # no jitter: deterministic waits
    return Forwarder(spool, sink, **kw)  # type: ignore[arg-type]


async def with_peer(
    tmp_path: Path, script: list[Reply], n: int = 10, timeout: float = 10_000, **kw: object
) -> tuple[Peer, Forwarder, FakeTime, bool]:
    fake = FakeTime()
    async with Peer(script) as peer:
        sink = InfluxSink(peer.url, "v2", bucket="b")
        await sink.open(None)
        spool = Spool(tmp_path / "spool", 10_000_000)
        spool.append(lines(0, n))
        fwd = forwarder(spool, sink, fake, **kw)
        ok = await fwd.flush(timeout)
        await sink.close()
        spool.close()
    return peer, fwd, fake, ok


# ---------------------------------------------------------------- retry rules


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(tmp_path: Path, status: int) -> None:
    peer, fwd, fake, ok = run(with_peer(tmp_path, [Reply(status, "", {"Retry-After": "42"}), Reply(204)]))
    assert ok and fake.sleeps == [42.0]  # Retry-After beats the 2 s backoff
    assert peer.landed == lines(0, 10) and fwd.written == 10 and fwd.write_errors == 1
    assert fwd.last_success == fake.now


def test_backoff_grows_exponentially_and_is_capped_at_60s(tmp_path: Path) -> None:
    _, fwd, fake, ok = run(with_peer(tmp_path, [Reply(503)] * 8 + [Reply(204)]))
    assert ok and fake.sleeps == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert fwd.write_errors == 8 and fwd.written == 10


def test_backoff_has_full_jitter(tmp_path: Path) -> None:
    _, _, fake, _ = run(with_peer(tmp_path, [Reply(502)] * 3 + [Reply(204)], rng=lambda: 0.25))
    assert fake.sleeps == [0.5, 1.0, 2.0]


def test_a_long_retry_after_is_capped_at_600s(tmp_path: Path) -> None:
    _, _, fake, ok = run(with_peer(tmp_path, [Reply(429, "", {"Retry-After": "86400"}), Reply(204)]))
    assert ok and fake.sleeps == [600.0]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_is_retried_until_it_lands(tmp_path: Path, status: int) -> None:
    peer, fwd, _, ok = run(with_peer(tmp_path, [Reply(status), Reply(status), Reply(204)]))
    assert ok and peer.landed == lines(0, 10) and fwd.write_errors == 2


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_missing_bucket_hold_the_points_and_retry_every_minute(tmp_path: Path, status: int) -> None:
    peer, fwd, fake, ok = run(with_peer(tmp_path, [Reply(status, '{"message":"no"}')] * 3 + [Reply(204)]))
    assert ok and fake.sleeps == pytest.approx([66.0, 66.0, 66.0])  # ~60 s (+10 % jitter at rng=1)
    assert peer.landed == lines(0, 10) and fwd.rejected == 0 and fwd.dropped == 0


def test_held_points_stay_in_the_spool_when_flush_gives_up(tmp_path: Path) -> None:
    _, fwd, fake, ok = run(_held(tmp_path))
    assert not ok and fwd.pending == 10 and fwd.written == 0 and fwd.write_errors >= 3
    assert fake.now - 1_700_000_000 <= 200 + 1e-6
    again = Spool(tmp_path / "spool", 10_000_000)
    assert again.pending == 10  # still there for the next start


async def _held(tmp_path: Path) -> tuple[Peer, Forwarder, FakeTime, bool]:
    fake = FakeTime()
    async with Peer([], default=Reply(401, "unauthorized")) as peer:
        sink = InfluxSink(peer.url, "v2", bucket="b", token="bad")
        await sink.open(None)
        spool = Spool(tmp_path / "spool", 10_000_000)
        spool.append(lines(0, 10))
        fwd = forwarder(spool, sink, fake)
        ok = await fwd.flush(200)
        await sink.close()
        spool.close()
    return peer, fwd, fake, ok


def test_rejected_lines_are_counted_and_not_retried(tmp_path: Path) -> None:
    bad = "inverter,device=X pv_power_w=oops 1"

    def strict(req: Request) -> Reply:
        return Reply(400, '{"message":"unable to parse"}') if bad in req.lines else Reply(204)

    async def main() -> tuple[Peer, Forwarder]:
        async with Peer(strict) as peer:
            sink = InfluxSink(peer.url, "v2", bucket="b")
            await sink.open(None)
            spool = Spool(tmp_path / "spool", 10_000_000)
            spool.append([*lines(0, 5), bad, *lines(5, 5)])
            fwd = forwarder(spool, sink, FakeTime())
            assert await fwd.flush(10)
            await sink.close()
            return peer, fwd

    peer, fwd = run(main())
    assert (fwd.written, fwd.rejected, fwd.pending) == (10, 1, 0)
    assert sorted(peer.landed) == sorted(lines(0, 10))


# ------------------------------------------------------------ order and flow


def test_one_request_in_flight_and_lines_arrive_in_append_order(tmp_path: Path) -> None:
    in_flight = 0
    peak = 0

    async def main() -> tuple[Peer, Forwarder]:
        nonlocal in_flight, peak

        class Slow(Peer):
            async def _handle(self, request):  # type: ignore[no-untyped-def]
                nonlocal in_flight, peak
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.01)
                try:
                    return await super()._handle(request)
                finally:
                    in_flight -= 1

        async with Slow() as peer:
            sink = InfluxSink(peer.url, "v2", bucket="b")
            await sink.open(None)
            # A batch is whole records; records of at most batch_lines lines, as the app opens it.
            spool = Spool(tmp_path / "spool", 10_000_000, record_lines=7)
            fwd = Forwarder(spool, sink, batch_lines=7)
            task = asyncio.create_task(fwd.run())
            for k in range(20):
                spool.append(lines(k * 10, 10))
                fwd.wake()
                await asyncio.sleep(0)
            assert await fwd.flush(10)
            fwd.stop()
            await task
            await sink.close()
            return peer, fwd

    peer, fwd = run(main())
    assert peak == 1
    assert peer.landed == lines(0, 200) and fwd.written == 200
    assert all(len(r.lines) <= 7 for r in peer.requests)


def test_run_waits_for_wake_without_polling_and_stops_promptly(tmp_path: Path) -> None:
    async def main() -> Peer:
        async with Peer() as peer:
            sink = InfluxSink(peer.url, "v2", bucket="b")
            await sink.open(None)
            spool = Spool(tmp_path / "spool", 10_000_000)
            fake = FakeTime()
            fwd = forwarder(spool, sink, fake)
            task = asyncio.create_task(fwd.run())
            for _ in range(50):  # let the loop run: idle means no requests and no timed sleeps
                await asyncio.sleep(0)
            assert peer.requests == [] and fake.sleeps == []
            spool.append(lines(0, 3))
            fwd.wake()
            await wait_until(lambda: fwd.pending == 0, what="delivery after wake")
            fwd.stop()
            await asyncio.wait_for(task, 5)
            await sink.close()
            return peer

    peer = run(main())
    assert peer.landed == lines(0, 3)


def test_flush_during_a_backoff_tries_again_at_once(tmp_path: Path) -> None:
    async def main() -> tuple[Peer, bool]:
        async with Peer([Reply(503)]) as peer:
            sink = InfluxSink(peer.url, "v2", bucket="b")
            await sink.open(None)
            spool = Spool(tmp_path / "spool", 10_000_000)
            spool.append(lines(0, 4))
            fwd = Forwarder(spool, sink, rng=lambda: 1.0, backoff_base=1000, backoff_cap=3600)  # 2000 s
            task = asyncio.create_task(fwd.run())
            await wait_until(lambda: fwd.write_errors == 1, what="first failure")
            ok = await fwd.flush(5)  # shutdown: must not wait out the backoff
            fwd.stop()
            await asyncio.wait_for(task, 5)
            await sink.close()
            return peer, ok

    peer, ok = run(main())
    assert ok and peer.landed == lines(0, 4)


@pytest.mark.parametrize("level", [1, 6, 0])
def test_spool_records_go_out_as_they_are_and_only_plain_text_costs_a_thread(
    tmp_path: Path, level: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = 0
    real = asyncio.to_thread

    async def to_thread(func, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal threads
        threads += 1
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)

    async def main() -> Peer:
        async with Peer() as peer:
            sink = InfluxSink(peer.url, "v2", bucket="b", gzip_level=level)
            await sink.open(None)
            spool = Spool(tmp_path / "spool", 10_000_000, record_lines=10)
            for k in range(6):
                spool.append(lines(k * 30, 30))
            fwd = Forwarder(spool, sink, batch_lines=50)
            assert await fwd.flush(10)
            await sink.close()
            return peer

    peer = run(main())
    assert peer.landed == lines(0, 180)
    assert [len(r.lines) for r in peer.requests] == [50] * 3 + [30]  # whole 10-line records
    encodings = {r.headers.get("Content-Encoding") for r in peer.requests}
    assert encodings == ({None} if level == 0 else {"gzip"})
    assert (threads > 0) == (level == 0)  # gzip members need no work; plain text is inflated


# ------------------------------------------------------- real server outages


def test_influxd_down_mid_run_then_back_everything_arrives_in_order(tmp_path: Path) -> None:
    server = make_influxd(tmp_path / "influxd", database="solar")
    server.start()
    try:

        async def main() -> Recording:
            sink = Recording(InfluxSink(server.url, "v1", database="solar", timeout=2))
            await sink.open(None)
            spool = Spool(tmp_path / "spool", 50_000_000)
            fwd = Forwarder(spool, sink, batch_lines=50, backoff_cap=0.2)
            task = asyncio.create_task(fwd.run())
            spool.append(lines(0, 100))
            fwd.wake()
            await wait_until(lambda: fwd.pending == 0, what="first delivery")
            server.stop(kill=True)
            for k in range(1, 11):  # ten polls during the outage
                spool.append(lines(k * 100, 100))
                fwd.wake()
                await asyncio.sleep(0)
            await wait_until(lambda: fwd.write_errors > 0, what="a failed write")
            assert fwd.pending > 0 and fwd.dropped == 0
            server.start()
            assert await fwd.flush(20)
            fwd.stop()
            await task
            await sink.close()
            spool.close()
            return sink

        sink = run(main())
        assert sink.delivered == lines(0, 1100)  # in order, each batch once after it succeeded
        rows = server.rows('SELECT "seq" FROM "inverter"', db="solar")
        assert sorted(r["seq"] for r in rows) == list(range(1100))
    finally:
        server.stop()


def test_victoriametrics_restart_on_the_same_data_dir_keeps_old_and_gets_new(
    tmp_path: Path, vm_meas: str
) -> None:
    server = make_victoria(tmp_path / "vm")
    server.start()
    try:

        async def main() -> Forwarder:
            sink = InfluxSink(server.url, "v2", bucket="solar", org="home", timeout=2)
            await sink.open(None)
            spool = Spool(tmp_path / "spool", 50_000_000)
            fwd = Forwarder(spool, sink, backoff_cap=0.2)
            task = asyncio.create_task(fwd.run())
            spool.append(lines(0, 50, vm_meas))
            fwd.wake()
            await wait_until(lambda: fwd.pending == 0, what="first delivery")
            server.stop()
            spool.append(lines(50, 50, vm_meas))
            fwd.wake()
            await wait_until(lambda: fwd.write_errors > 0, what="a failed write")
            server.start()
            assert await fwd.flush(20)
            fwd.stop()
            await task
            await sink.close()
            return fwd

        fwd = run(main())
        assert fwd.written >= 100
        samples = server.samples(f"{vm_meas}_seq")
        assert sorted({v for s in samples.values() for _, v in s}) == [float(i) for i in range(100)]
    finally:
        server.stop()


def test_missing_database_holds_until_it_is_created_then_delivers(
    tmp_path: Path, influxd: InfluxServer
) -> None:
    db = unique("later")

    async def main() -> tuple[bool, bool, Forwarder, FakeTime]:
        fake = FakeTime()
        sink = InfluxSink(influxd.url, "v1", database=db)
        await sink.open(None)
        spool = Spool(tmp_path / "spool", 10_000_000)
        spool.append(lines(0, 30))
        fwd = forwarder(spool, sink, fake)
        held = await fwd.flush(200)  # 404 from the real server, retried about every minute
        assert fwd.pending == 30 and fwd.dropped == 0 and fwd.written == 0
        influxd.create_database(db)
        delivered = await fwd.flush(200)
        await sink.close()
        return held, delivered, fwd, fake

    held, delivered, fwd, fake = run(main())
    assert not held and delivered
    assert fwd.write_errors >= 3 and fake.sleeps[:3] == pytest.approx([66.0] * 3)  # ~1 a minute
    assert influxd.count("inverter", "seq", db=db) == 30


def test_refused_credentials_hold_the_points_for_a_fixed_config(
    tmp_path: Path, influxd_auth: InfluxServer
) -> None:
    async def attempt(password: str) -> tuple[bool, Forwarder]:
        sink = InfluxSink(influxd_auth.url, "v1", database="solar", username=ADMIN[0], password=password)
        await sink.open(None)
        spool = Spool(tmp_path / "spool", 10_000_000)
        if password == "wrong":
            spool.append(lines(0, 20, "authtest"))
        fwd = forwarder(spool, sink, FakeTime())
        ok = await fwd.flush(150)
        await sink.close()
        spool.close()
        return ok, fwd

    ok, fwd = run(attempt("wrong"))  # 401 from the real server
    assert not ok and fwd.pending == 20 and fwd.write_errors >= 2
    ok, fwd = run(attempt(ADMIN[1]))  # restarted with the right password: the spool delivers
    assert ok and fwd.written == 20
    assert len(influxd_auth.rows('SELECT "seq" FROM "authtest"', db="solar")) == 20
