"""InfluxSink against real servers (influxd 1.x: v1 API; VictoriaMetrics: v2 API),
and against a scripted peer for the statuses real servers cannot be made to return.
One status code per test, as Telegraf tests its output (stack.md §9 B1)."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import time
import zlib
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from collector.errors import SinkAuthError, SinkRetryableError
from collector.schema.point import Point
from collector.sinks.base import EncodedSink, Sink, WriteReport
from collector.sinks.influxdb import InfluxSink, parse_go_duration, parse_retry_after
from collector.sinks.spool import Batch, Spool
from tests.servers import InfluxServer, VictoriaServer, free_port
from tests.sinks.conftest import ADMIN, AUTH_MAX_BODY, READER, Peer, Reply, Request, run

T0 = 1_700_000_000


def inverter_lines(
    n: int, *, device: str = "INV 1", t0: int = T0, measurement: str = "inverter"
) -> list[str]:
    return [
        Point(
            measurement,
            {"vendor": "foxess", "site": "home,roof", "device": device},
            {"pv_power_w": float(i * 10), "battery_soc_pct": 50.5, "status_code": i % 3, "state": 'run "ok"'},
            t0 + 300 * i,
        ).to_line()
        for i in range(n)
    ]


async def write(sink: InfluxSink, lines: list[str]) -> WriteReport:
    await sink.open(None)
    try:
        return await sink.write(lines)
    finally:
        await sink.close()


# ------------------------------------------------------------------ real servers


def test_v1_write_lands_in_influxd_with_tags_values_and_second_timestamps(
    influxd: InfluxServer, influx_db: str
) -> None:
    sink = InfluxSink(influxd.url, "v1", database=influx_db)
    assert isinstance(sink, Sink) and isinstance(sink, EncodedSink)
    report = run(write(sink, inverter_lines(3)))
    assert report == WriteReport(3, 0, [])
    rows = influxd.rows('SELECT * FROM "inverter"', db=influx_db)
    assert [r["time"] for r in rows] == [T0, T0 + 300, T0 + 600]
    assert [r["pv_power_w"] for r in rows] == [0.0, 10.0, 20.0]
    assert rows[1]["status_code"] == 1
    assert rows[0]["device"] == "INV 1" and rows[0]["site"] == "home,roof" and rows[0]["vendor"] == "foxess"
    assert rows[0]["state"] == 'run "ok"'


def test_v1_retention_policy_is_used(influxd: InfluxServer, influx_db: str) -> None:
    influxd.influxql(f'CREATE RETENTION POLICY "short" ON "{influx_db}" DURATION 1000d REPLICATION 1')
    sink = InfluxSink(influxd.url, "v1", database=influx_db, retention_policy="short")
    t_recent = int(time.time()) // 60 * 60
    run(write(sink, inverter_lines(2, t0=t_recent)))
    assert len(influxd.rows('SELECT * FROM "short"."inverter"', db=influx_db)) == 2
    assert influxd.rows('SELECT * FROM "autogen"."inverter"', db=influx_db) == []


def test_v2_write_lands_in_victoriametrics(victoria: VictoriaServer, vm_meas: str) -> None:
    sink = InfluxSink(victoria.url, "v2", org="home", bucket="solar", token="t0ken")
    report = run(write(sink, inverter_lines(3, measurement=vm_meas)))
    assert report.written == 3 and report.rejected == 0
    samples = victoria.samples(f'{{__name__=~"{vm_meas}_.*"}}')
    labels = (("device", "INV 1"), ("site", "home,roof"), ("vendor", "foxess"))
    assert samples[(f"{vm_meas}_pv_power_w", labels)] == [(T0, 0.0), (T0 + 300, 10.0), (T0 + 600, 20.0)]
    assert samples[(f"{vm_meas}_battery_soc_pct", labels)][0] == (T0, 50.5)


def test_influxd_type_conflict_drops_only_that_line(influxd: InfluxServer, influx_db: str) -> None:
    sink = InfluxSink(influxd.url, "v1", database=influx_db)
    lines = inverter_lines(10)
    lines[4] = lines[4].replace("pv_power_w=40.0", 'pv_power_w="forty"')  # string where float exists
    run(write(sink, lines[:1]))  # the float type is fixed by the first write
    report = run(write(sink, lines))
    assert (report.written, report.rejected) == (9, 1)
    assert "field type conflict" in report.messages[0]
    rows = influxd.rows('SELECT "pv_power_w" FROM "inverter"', db=influx_db)
    assert [r["time"] for r in rows] == [T0 + 300 * i for i in range(10) if i != 4]


def test_influxd_malformed_line_drops_only_that_line(influxd: InfluxServer, influx_db: str) -> None:
    sink = InfluxSink(influxd.url, "v1", database=influx_db)
    lines = inverter_lines(10)
    lines[7] = "inverter,device=X pv_power_w= 1700000000"
    report = run(write(sink, lines))
    # 1.x answers "partial write: unable to parse ... dropped=0": the parse errors count too.
    assert (report.written, report.rejected) == (9, 1)
    assert "unable to parse" in report.messages[0]
    assert influxd.count("inverter", "pv_power_w", db=influx_db) == 9


def test_victoriametrics_skips_a_malformed_line_and_keeps_the_rest(
    victoria: VictoriaServer, vm_meas: str
) -> None:
    # VictoriaMetrics 1.79 answers 204 and skips a malformed line (it only logs it),
    # so nothing is reported as rejected; what matters: the others all land, once.
    sink = InfluxSink(victoria.url, "v2", bucket="solar")
    lines = inverter_lines(10, measurement=vm_meas)
    lines[3] = f"{vm_meas},device=X pv_power_w= 1700000900"
    report = run(write(sink, lines))
    assert report.written == 10
    samples = victoria.samples(f"{vm_meas}_pv_power_w")
    assert sorted(t for series in samples.values() for t, _ in series) == [
        T0 + 300 * i for i in range(10) if i != 3
    ]


def test_whole_batch_400_is_bisected_so_only_the_bad_line_is_dropped(
    victoria: VictoriaServer, vm_meas: str
) -> None:
    """InfluxDB 2.x OSS refuses a whole batch for one malformed line; emulated by a peer
    that forwards batches without a bad line to the real VictoriaMetrics."""
    bad = f"{vm_meas},device=X pv_power_w=oops 1700000000"
    forwarded: list[int] = []

    def strict(req: Request) -> Reply:
        if bad in req.lines:
            message = f"unable to parse '{bad}': invalid number"
            return Reply(400, json.dumps({"code": "invalid", "message": message}))
        forwarded.append(len(req.lines))
        return Reply(204)

    async def main() -> WriteReport:
        async with Peer(strict) as peer:
            sink = InfluxSink(peer.url, "v2", bucket="solar")
            lines = inverter_lines(1000, measurement=vm_meas)
            lines[617] = bad
            report = await write(sink, lines)
            real = InfluxSink(victoria.url, "v2", bucket="solar")
            assert (await write(real, peer.landed)).written == 999
            return report

    report = run(main())
    assert (report.written, report.rejected) == (999, 1)
    assert "invalid number" in report.messages[0]
    assert sum(forwarded) == 999 and len(forwarded) <= 12  # log2(1000) halves, not 999 requests
    samples = victoria.samples(f"{vm_meas}_pv_power_w")
    assert sum(len(s) for s in samples.values()) == 999


def gzip_members(stream: bytes) -> int:
    """How many gzip members follow each other in a stream."""
    count = 0
    while stream:
        member = zlib.decompressobj(31)
        member.decompress(stream)
        assert member.eof
        stream = member.unused_data
        count += 1
    return count


def spool_batch(tmp_path: Path, lines: list[str], *, append: int, record_lines: int) -> Batch:
    """The spool's first batch after appending ``lines`` ``append`` at a time: many records."""
    spool = Spool(tmp_path / "spool", 10_000_000, record_lines=record_lines)
    for k in range(0, len(lines), append):
        spool.append(lines[k : k + append])
    batch = spool.peek(max_lines=len(lines))
    spool.close()
    assert batch is not None and batch.count == len(lines)
    return batch


async def write_batch(sink: InfluxSink, batch: Batch) -> WriteReport:
    encoded = sink.encode_gzip(batch.gzip, batch.count)
    assert encoded is not None and encoded.body is batch.gzip  # posted as it is, not recompressed
    await sink.open(None)
    try:
        return await sink.write_encoded(encoded)
    finally:
        await sink.close()


def test_a_multi_record_spool_batch_posted_as_gzip_lands_whole_in_influxd(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    batch = spool_batch(tmp_path, inverter_lines(600), append=90, record_lines=40)
    assert gzip_members(batch.gzip) == 20  # 6 appends of 90 (40 + 40 + 10) and one of 60 (40 + 20)
    report = run(write_batch(InfluxSink(influxd.url, "v1", database=influx_db), batch))
    assert report == WriteReport(600, 0, [])
    # Every member was read: a server stopping after the first would hold 40.
    assert influxd.count("inverter", "pv_power_w", db=influx_db) == 600


def test_a_multi_record_spool_batch_posted_as_gzip_lands_whole_in_victoriametrics(
    tmp_path: Path, victoria: VictoriaServer, vm_meas: str
) -> None:
    batch = spool_batch(tmp_path, inverter_lines(600, measurement=vm_meas), append=90, record_lines=40)
    assert gzip_members(batch.gzip) == 20
    sink = InfluxSink(victoria.url, "v2", org="home", bucket="solar")
    assert run(write_batch(sink, batch)).written == 600
    assert victoria.count(f"{vm_meas}_pv_power_w") == 600


def test_a_spool_batch_over_the_body_limit_is_inflated_and_halved(
    tmp_path: Path, influxd_auth: InfluxServer
) -> None:
    user, password = ADMIN
    sink = InfluxSink(influxd_auth.url, "v1", database="solar", username=user, password=password)
    batch = spool_batch(tmp_path, inverter_lines(3000, device="spooled"), append=500, record_lines=500)
    assert len(batch.gzip) > AUTH_MAX_BODY  # 413 from the real server, then halves of the raw lines
    assert run(write_batch(sink, batch)) == WriteReport(3000, 0, [])
    rows = influxd_auth.rows('SELECT "pv_power_w" FROM "inverter" WHERE device = \'spooled\'', db="solar")
    assert len(rows) == 3000


def test_401_holds_and_never_shows_the_password(influxd_auth: InfluxServer) -> None:
    sink = InfluxSink(influxd_auth.url, "v1", database="solar", username="admin", password="wrong-S3cret")
    with pytest.raises(SinkAuthError) as info:
        run(write(sink, inverter_lines(2)))
    assert info.value.status == 401
    assert "wrong-S3cret" not in str(info.value) and "wrong-S3cret" not in repr(sink)
    assert "credentials refused" in str(info.value)


def test_403_holds(influxd_auth: InfluxServer) -> None:
    sink = InfluxSink(influxd_auth.url, "v1", database="solar", username=READER[0], password=READER[1])
    with pytest.raises(SinkAuthError) as info:
        run(write(sink, inverter_lines(2)))
    assert info.value.status == 403


def test_404_missing_database_holds_and_says_so(influxd: InfluxServer) -> None:
    sink = InfluxSink(influxd.url, "v1", database="no_such_db")
    with pytest.raises(SinkAuthError) as info:
        run(write(sink, inverter_lines(2)))
    assert info.value.status == 404
    assert "database 'no_such_db' does not exist" in str(info.value)


def test_413_splits_the_batch_until_it_fits(influxd_auth: InfluxServer) -> None:
    user, password = ADMIN
    sink = InfluxSink(
        influxd_auth.url, "v1", database="solar", username=user, password=password, gzip_level=0
    )
    lines = inverter_lines(1000, device="big")
    assert sum(len(x) + 1 for x in lines) > 4 * AUTH_MAX_BODY
    report = run(write(sink, lines))
    assert report == WriteReport(1000, 0, [])
    rows = influxd_auth.rows('SELECT "pv_power_w" FROM "inverter" WHERE device = \'big\'', db="solar")
    assert len(rows) == 1000


def test_an_unreachable_server_is_retryable() -> None:
    from tests.servers import free_port

    sink = InfluxSink(f"http://127.0.0.1:{free_port()}", "v1", database="x")
    with pytest.raises(SinkRetryableError) as info:
        run(write(sink, inverter_lines(1)))
    assert not isinstance(info.value, SinkAuthError)
    assert info.value.status is None


# ------------------------------------------------------- scripted peer statuses


def peer_write(
    reply: Reply, lines: list[str] | None = None, **kw: object
) -> tuple[Peer, WriteReport | Exception]:
    async def main() -> tuple[Peer, WriteReport | Exception]:
        async with Peer([reply]) as peer:
            sink = InfluxSink(peer.url, "v2", bucket="b", org="o", token="T0KEN-secret", **kw)  # type: ignore[arg-type]
            try:
                return peer, await write(sink, lines or inverter_lines(4))
            except Exception as err:
                return peer, err

    return run(main())


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_reported(status: int) -> None:
    _, result = peer_write(Reply(status, "busy", {"Retry-After": "17"}))
    assert isinstance(result, SinkRetryableError) and not isinstance(result, SinkAuthError)
    assert (result.status, result.retry_after) == (status, 17.0)


def test_retry_after_http_date_is_reported() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    _, result = peer_write(Reply(429, "", {"Retry-After": when}))
    assert isinstance(result, SinkRetryableError)
    assert result.retry_after is not None and 100 <= result.retry_after <= 121


@pytest.mark.parametrize(("header", "expected"), [("99999", 600.0), ("soon", 10.0), ("-5", 0.0)])
def test_retry_after_is_capped_and_garbage_counts_as_ten_seconds(header: str, expected: float) -> None:
    _, result = peer_write(Reply(503, "", {"Retry-After": header}))
    assert isinstance(result, SinkRetryableError) and result.retry_after == expected


@pytest.mark.parametrize("status", [500, 502, 504, 408])
def test_server_errors_are_retryable(status: int) -> None:
    _, result = peer_write(Reply(status, '{"message":"oops"}'))
    assert isinstance(result, SinkRetryableError) and not isinstance(result, SinkAuthError)
    assert result.status == status and result.retry_after is None and "oops" in str(result)


def test_an_unexpected_4xx_holds_rather_than_drops() -> None:
    _, result = peer_write(Reply(405, "method not allowed"))
    assert isinstance(result, SinkAuthError) and result.status == 405


def test_422_partial_write_counts_the_dropped_points() -> None:
    msg = (
        '{"code":"unprocessable entity","message":"partial write: points beyond retention policy dropped=2"}'
    )
    _, result = peer_write(Reply(422, msg))
    assert result == WriteReport(2, 2, ["partial write: points beyond retention policy dropped=2"])


def test_a_timeout_is_retryable() -> None:
    _, result = peer_write(Reply(204, delay=2.0), timeout=0.2)
    assert isinstance(result, SinkRetryableError) and "within 0.2 s" in str(result)


def test_v2_request_shape_gzip_token_precision() -> None:
    peer, result = peer_write(Reply(204))
    assert result == WriteReport(4, 0, [])
    req = peer.requests[0]
    assert req.path == "/api/v2/write"
    assert req.query == {"bucket": "b", "org": "o", "precision": "s"}
    assert req.headers["Authorization"] == "Token T0KEN-secret"
    assert req.headers["Content-Encoding"] == "gzip"
    assert req.lines == inverter_lines(4)


def test_v1_request_shape_basic_auth_and_rp() -> None:
    async def main() -> Request:
        async with Peer([Reply(204)]) as peer:
            sink = InfluxSink(
                peer.url, "v1", database="solar", retention_policy="autogen", username="u", password="p4ss"
            )
            await write(sink, inverter_lines(1))
            return peer.requests[0]

    req = run(main())
    assert req.path == "/write" and req.query == {"db": "solar", "rp": "autogen", "precision": "s"}
    assert req.headers["Authorization"] == aiohttp.encode_basic_auth("u", "p4ss")


def test_repr_and_errors_hide_credentials() -> None:
    sink = InfluxSink("http://h:8086", "v2", org="o", bucket="b", token="T0KEN-secret")
    assert "T0KEN-secret" not in repr(sink) and "***" in repr(sink)
    _, result = peer_write(Reply(401, "unauthorized access"))
    assert isinstance(result, SinkAuthError) and "T0KEN-secret" not in str(result)
    _, echoed = peer_write(Reply(401, "bad token T0KEN-secret"))  # a server that echoes it
    assert isinstance(echoed, SinkAuthError) and "T0KEN-secret" not in str(echoed) and "***" in str(echoed)
    embedded = InfluxSink("http://user:pw-in-url@h:8086", "v1", database="d", password="x")
    assert "pw-in-url" not in repr(embedded)


def test_gzip_level_zero_sends_plain_text_and_levels_round_trip() -> None:
    raw = ("\n".join(inverter_lines(50)) + "\n").encode()
    for level in (1, 6, 9):
        enc = InfluxSink("http://h", "v1", database="d", gzip_level=level).encode(raw, 50)
        assert gzip.decompress(enc.body) == raw and enc.content_encoding == "gzip"
    plain = InfluxSink("http://h", "v1", database="d", gzip_level=0).encode(raw, 50)
    assert plain.body == raw and plain.content_encoding is None


def test_spool_members_are_posted_as_they_are_at_any_level_but_zero() -> None:
    raw = ("\n".join(inverter_lines(50)) + "\n").encode()
    members = gzip.compress(raw[:2000], 1) + gzip.compress(raw[2000:], 1)
    for level in (1, 6, 9):
        enc = InfluxSink("http://h", "v1", database="d", gzip_level=level).encode_gzip(members, 50)
        assert enc is not None and enc.body is members and enc.content_encoding == "gzip"
        assert enc.plain is None and enc.raw == raw  # inflated only when asked (400, 413)
    assert InfluxSink("http://h", "v1", database="d", gzip_level=0).encode_gzip(members, 50) is None


def test_parse_retry_after_rules() -> None:
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after("2.5", 0) == 2.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 30) == 30.0
    assert parse_retry_after("nan", 0) == 10.0


def test_the_sink_does_not_hold_the_loop_between_writes() -> None:
    # open(None) makes its own session and close() releases it (no unclosed-session warning).
    async def main() -> None:
        sink = InfluxSink("http://127.0.0.1:9", "v1", database="d")
        await sink.open(None)
        await sink.close()
        await sink.close()
        await asyncio.sleep(0)

    run(main())


# ------------------------------------------------------------------ retention


async def ask_retention(sink: InfluxSink) -> float | None:
    await sink.open(None)
    try:
        return await sink.retention()
    finally:
        await sink.close()


def test_v1_retention_is_the_default_policy_and_asked_once(influxd: InfluxServer, influx_db: str) -> None:
    influxd.influxql(f'CREATE RETENTION POLICY "short" ON "{influx_db}" DURATION 2d REPLICATION 1 DEFAULT')
    sink = InfluxSink(influxd.url, "v1", database=influx_db)

    async def twice() -> tuple[float | None, float | None]:
        await sink.open(None)
        try:
            first = await sink.retention()
            # changed on the server: the sink does not ask again in this process
            influxd.influxql(f'ALTER RETENTION POLICY "short" ON "{influx_db}" DURATION 3d')
            return first, await sink.retention()
        finally:
            await sink.close()

    assert run(twice()) == (2 * 86400, 2 * 86400)


def test_v1_retention_follows_the_configured_policy(influxd: InfluxServer, influx_db: str) -> None:
    influxd.influxql(f'CREATE RETENTION POLICY "week" ON "{influx_db}" DURATION 7d REPLICATION 1')
    assert run(ask_retention(InfluxSink(influxd.url, "v1", database=influx_db, retention_policy="week"))) == (
        7 * 86400
    )
    # autogen (the default here) is infinite ("0s"): nothing to clamp to
    assert run(ask_retention(InfluxSink(influxd.url, "v1", database=influx_db))) is None
    assert (
        run(ask_retention(InfluxSink(influxd.url, "v1", database=influx_db, retention_policy="nope"))) is None
    )


def test_v1_retention_of_a_missing_database_is_unknown(influxd: InfluxServer) -> None:
    assert run(ask_retention(InfluxSink(influxd.url, "v1", database="no_such_db"))) is None


def test_v1_retention_uses_the_writers_credentials_and_never_logs_them(influxd_auth: InfluxServer) -> None:
    influxd_auth.influxql('CREATE RETENTION POLICY "auth_rp" ON "solar" DURATION 3h REPLICATION 1')
    user, password = ADMIN
    ok = InfluxSink(
        influxd_auth.url, "v1", database="solar", retention_policy="auth_rp", username=user, password=password
    )
    assert run(ask_retention(ok)) == 3 * 3600
    refused = InfluxSink(
        influxd_auth.url,
        "v1",
        database="solar",
        retention_policy="auth_rp",
        username=user,
        password="wrong-S3cret",
    )
    with capture_logs() as logs:
        assert run(ask_retention(refused)) is None  # 401: go on unclamped
    assert [e["status"] for e in logs if e["event"] == "sink.retention_unknown"] == [401]
    assert "wrong-S3cret" not in repr(logs)


def test_victoriametrics_has_no_retention_endpoint(victoria: VictoriaServer) -> None:
    assert (
        run(ask_retention(InfluxSink(victoria.url, "v2", org="home", bucket="solar", token="t0ken"))) is None
    )
    assert run(ask_retention(InfluxSink(victoria.url, "v1", database="solar"))) is None  # /query: no policies


def test_an_unreachable_server_has_no_retention() -> None:
    from tests.servers import free_port

    assert run(ask_retention(InfluxSink(f"http://127.0.0.1:{free_port()}", "v1", database="x"))) is None


def test_v2_retention_from_the_bucket_with_the_token() -> None:
    """InfluxDB 2.x's answer shape (docs: GET /api/v2/buckets), from a scripted server."""
    seen: list[tuple[str, dict[str, str], str | None]] = []

    async def buckets(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.query), request.headers.get("Authorization")))
        every = {"solar": 259200, "forever": 0}.get(request.query["name"])
        if every is None:
            return web.json_response({"code": "not found", "message": "bucket not found"}, status=404)
        rules = [{"type": "expire", "everySeconds": every, "shardGroupDurationSeconds": 86400}]
        return web.json_response(
            {"buckets": [{"id": "b1", "name": request.query["name"], "retentionRules": rules}]}
        )

    async def scenario() -> list[float | None]:
        app = web.Application()
        app.router.add_get("/api/v2/buckets", buckets)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            url = f"http://127.0.0.1:{port}"
            return [
                await ask_retention(InfluxSink(url, "v2", org="home", bucket=b, token="t0ken"))
                for b in ("solar", "forever", "missing")
            ]
        finally:
            await runner.cleanup()

    assert run(scenario()) == [3 * 86400, None, None]
    assert seen[0] == ("/api/v2/buckets", {"name": "solar", "org": "home"}, "Token t0ken")


def test_go_durations() -> None:
    assert parse_go_duration("48h0m0s") == 172800
    assert parse_go_duration("0s") == 0
    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("forever") is None
