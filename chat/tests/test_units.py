"""Pure parts: rate limiting, room bookkeeping, settings, log rendering."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from chat.config import Settings
from chat.protocol import User, now_rfc3339
from chat.ratelimit import FloodGuard, TokenBucket
from chat.rooms import Rooms


class Clock:
    def __init__(self) -> None:
        self.now = 64.0  # binary fractions below keep the arithmetic exact

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_then_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=20, clock=clock)
    assert [bucket.take() for _ in range(21)] == [True] * 20 + [False]
    clock.now += 0.25  # 2.5 tokens back
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 60  # refills, but never beyond the burst
    assert sum(bucket.take() for _ in range(30)) == 20


def test_flood_guard_trips_on_limit_within_window() -> None:
    clock = Clock()
    guard = FloodGuard(limit=3, window_s=10, clock=clock)
    assert [guard.record(), guard.record()] == [False, False]
    clock.now += 11
    assert guard.record() is False  # the first two fell out of the window
    clock.now += 1
    assert [guard.record(), guard.record()] == [False, True]


def test_rooms_track_users_not_tabs() -> None:
    rooms: Rooms[str] = Rooms()
    alice, bob = User("1", "Alice"), User("2", "Bob")
    assert rooms.join("r", alice, "a1") is True
    assert rooms.join("r", alice, "a2") is False
    assert rooms.join("r", bob, "b1") is True
    assert rooms.members("r") == [alice, bob]
    assert set(rooms.connections("r")) == {"a1", "a2", "b1"}
    assert rooms.leave("r", alice.id, "a1") is False
    assert rooms.leave("r", alice.id, "a1") is False  # idempotent
    assert rooms.leave("r", alice.id, "a2") is True
    assert rooms.leave("r", bob.id, "b1") is True
    assert len(rooms) == 0 and rooms.members("r") == [] and not rooms.connections("r")


def test_timestamps_are_rfc3339_utc_millis() -> None:
    ts = now_rfc3339()
    assert len(ts) == 24 and ts.endswith("Z") and ts[19] == "."


def test_settings_from_env() -> None:
    s = Settings.from_env({"CHAT_PORT": "9000", "ALLOWED_ORIGINS": " https://A.example/ ,, ",
                           "RATE_LIMIT_BURST": "5", "LOG_LEVEL": "debug"})  # fmt: skip
    assert (s.port, s.rate_burst, s.log_level) == (9000, 5, "DEBUG")
    assert s.allowed_origins == frozenset({"https://a.example"})
    assert Settings.from_env({}) == Settings()
    with pytest.raises(SystemExit):
        Settings.from_env({"CHAT_PORT": "eighty"})


def test_exceptions_are_structured_without_locals(log_output: io.StringIO) -> None:
    def fail(token: str) -> None:
        raise ValueError("boom")

    try:
        fail("s3cret-token")
    except ValueError:
        structlog.get_logger().exception("handler failed")
        logging.getLogger("websockets.server").error("stdlib failure", exc_info=True)
    logging.getLogger("websockets.server").info("connection open")  # below WARNING: dropped

    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["handler failed", "stdlib failure"]
    for record in records:
        assert record["service"] == "chat" and record["level"] == "error"
        assert record["exception"][0]["exc_type"] == "ValueError"
    assert "s3cret-token" not in log_output.getvalue()
    assert '"locals"' not in log_output.getvalue()
