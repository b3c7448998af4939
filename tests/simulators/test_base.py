"""The simulator framework's building blocks: sliding-window limits, injections, value mutation."""

from __future__ import annotations

from typing import Any

from collector.simulators.base import (
    Charge,
    Injection,
    Injector,
    Limit,
    LimitEngine,
    ManualClock,
    mutate_values,
)


def test_sliding_window_per_key() -> None:
    clock = ManualClock(1000.0)
    engine = LimitEngine(clock)
    per_s = Limit("per_s", 1, 1.0)
    assert engine.acquire([Charge(per_s, "a")]) is None
    assert engine.acquire([Charge(per_s, "b")]) is None  # another key
    refused = engine.acquire([Charge(per_s, "a")])
    assert refused is not None and refused.limit is per_s
    clock.advance(0.999)
    assert engine.acquire([Charge(per_s, "a")]) is not None
    clock.advance(0.001)  # exactly one window after the first call
    assert engine.acquire([Charge(per_s, "a")]) is None


def test_costs_and_refused_calls_that_still_count() -> None:
    clock = ManualClock(0.0)
    engine = LimitEngine(clock)
    day = Limit("day", 5, 86400.0)
    per_s = Limit("per_s", 1, 1.0)
    assert engine.acquire([Charge(day, "acct", 3), Charge(per_s, "x")]) is None
    assert engine.used(day, "acct") == 3
    # refused by the per-second limit, but the daily charge is still recorded
    refused = engine.acquire([Charge(day, "acct", 1, when_refused=True), Charge(per_s, "x")])
    assert refused is not None and refused.limit is per_s
    assert engine.remaining(day, "acct") == 1
    clock.advance(1)
    assert engine.acquire([Charge(day, "acct", 2)]) is not None  # would exceed: nothing recorded
    assert engine.remaining(day, "acct") == 1
    clock.advance(86400)
    assert engine.remaining(day, "acct") == 5


def test_injector_consumes_in_order_specific_before_any() -> None:
    injector = Injector()
    injector.add("*", Injection.http(503))
    injector.add("/a", Injection.errno(41200), count=2)
    assert injector.pending() == 3
    assert injector.take("/a") == Injection.errno(41200)
    assert injector.take("/a") == Injection.errno(41200)
    assert injector.take("/a") == Injection.http(503)
    assert injector.take("/a") is None


def test_mutate_values_only_touches_value_keys() -> None:
    body: dict[str, Any] = {
        "errno": 0,
        "result": [
            {
                "datas": [{"variable": "pvPower", "value": 1.5, "unit": "kW"}],
                "values": [1, 2.5, None],
                "count": 3,
                "flag": True,
            }
        ],
    }
    keys = frozenset({"value", "values"})
    nulls = mutate_values(body, keys, "nulls")
    assert nulls["errno"] == 0
    assert nulls["result"][0]["datas"][0] == {"variable": "pvPower", "value": None, "unit": "kW"}
    assert nulls["result"][0]["values"] == [None, None, None]
    assert nulls["result"][0]["count"] == 3 and nulls["result"][0]["flag"] is True
    strings = mutate_values(body, keys, "strings")
    assert strings["result"][0]["datas"][0]["value"] == "1.5"
    assert strings["result"][0]["values"] == ["1", "2.5", None]
    assert mutate_values(body, keys, "empty")["result"][0]["datas"][0]["value"] == ""
    assert body["result"][0]["datas"][0]["value"] == 1.5  # the original is untouched
