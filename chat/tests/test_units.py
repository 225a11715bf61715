"""Pure parts: rate limiting, room bookkeeping, settings, log rendering."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from chat import control_http, paths
from chat.config import Settings, load_settings
from chat.control import CloseRoom, RevokeUser
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


ENV_NAMES = (
    "CHAT_HOST", "CHAT_PORT", "CONTROL_PORT", "METRICS_PORT", "JWKS_URL", "ALLOWED_ORIGINS",
    "LOG_LEVEL", "JWKS_TTL_S", "JWKS_MIN_REFRESH_S", "JWKS_TIMEOUT_S", "RATE_LIMIT_PER_S",
    "RATE_LIMIT_BURST", "FLOOD_REJECTIONS", "FLOOD_WINDOW_S", "PING_INTERVAL_S",
    "PING_TIMEOUT_S", "SEND_BUFFER_BYTES", "MAX_CONNECTIONS_PER_USER", "MAX_CONNECTIONS",
    "REVOCATION_MEMORY_S",
)  # fmt: skip


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_from_env(env: pytest.MonkeyPatch) -> None:
    assert load_settings() == Settings()
    assert (Settings().port, Settings().control_port) == (8001, 8002)
    for name, value in {"CHAT_PORT": "9000", "ALLOWED_ORIGINS": " https://A.example/ ,, ",
                        "RATE_LIMIT_BURST": "5", "LOG_LEVEL": "debug", "CONTROL_PORT": "9002",
                        "JWKS_TTL_S": "", "FLOOD_WINDOW_S": "2.5"}.items():  # fmt: skip
        env.setenv(name, value)
    s = load_settings()
    assert (s.port, s.control_port, s.rate_burst, s.log_level) == (9000, 9002, 5, "DEBUG")
    assert s.allowed_origins == frozenset({"https://a.example"})
    assert (s.jwks_ttl_s, s.flood_window_s) == (300.0, 2.5)  # empty: the default


def test_bounds_settings_defaults_and_env(env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (s.ping_interval_s, s.ping_timeout_s, s.send_buffer_bytes) == (10.0, 15.0, 65536)
    assert (s.max_connections_per_user, s.max_connections) == (16, 20000)
    assert s.revocation_memory_s == 125.0  # TOKEN_MAX_LIFETIME_S + the 5 s leeway
    for name, value in {"PING_INTERVAL_S": "5", "PING_TIMEOUT_S": "7.5",
                        "SEND_BUFFER_BYTES": "131072", "MAX_CONNECTIONS_PER_USER": "4",
                        "MAX_CONNECTIONS": "100", "REVOCATION_MEMORY_S": "60"}.items():  # fmt: skip
        env.setenv(name, value)
    s = load_settings()
    assert (s.ping_interval_s, s.ping_timeout_s, s.send_buffer_bytes) == (5.0, 7.5, 131072)
    assert (s.max_connections_per_user, s.max_connections, s.revocation_memory_s) == (4, 100, 60)


def test_settings_by_name_in_tests(env: pytest.MonkeyPatch) -> None:
    s = Settings(port=0, control_port=0, allowed_origins=frozenset({"HTTPS://B.example/"}))
    assert (s.port, s.control_port, s.allowed_origins) == (0, 0, frozenset({"https://b.example"}))


@pytest.mark.parametrize(
    ("name", "value"),
    [("CHAT_PORT", "eighty"), ("CONTROL_PORT", "70000"), ("LOG_LEVEL", "loud"),
     ("RATE_LIMIT_PER_S", "0"), ("RATE_LIMIT_BURST", "-1"), ("CONTROL_PORT", "8001"),
     ("PING_INTERVAL_S", "0"), ("PING_TIMEOUT_S", "-1"), ("SEND_BUFFER_BYTES", "100"),
     ("MAX_CONNECTIONS_PER_USER", "0"), ("MAX_CONNECTIONS", "many"),
     ("REVOCATION_MEMORY_S", "0")],
)  # fmt: skip
def test_invalid_settings_stop_the_start(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(SystemExit) as info:
        load_settings()
    message = str(info.value.code)
    assert message.startswith("invalid chat settings:")
    assert name in message or "must differ" in message


def test_rooms_index_connections_by_user() -> None:
    rooms: Rooms[str] = Rooms()
    alice, bob = User("1", "Alice"), User("2", "Bob")
    rooms.join("r", alice, "a1")
    rooms.join("s", alice, "a2")
    rooms.join("s", bob, "b1")
    assert set(rooms.user_connections("1")) == {"a1", "a2"}
    assert set(rooms.user_connections("2")) == {"b1"}
    rooms.leave("r", alice.id, "a1")
    assert set(rooms.user_connections("1")) == {"a2"}
    rooms.leave("s", alice.id, "a2")
    assert not rooms.user_connections("1") and not rooms.user_connections("nobody")


@pytest.mark.parametrize(
    ("target", "room"),
    [("/ws/rooms/lobby", "lobby"), ("/ws/rooms/lobby?x=1", "lobby"), ("//ws/rooms/lobby", None),
     ("//host/ws/rooms/lobby", None), ("http://host/ws/rooms/lobby", None),
     ("/ws/rooms/../lobby", None), ("/ws/rooms/%2e%2e/lobby", None), ("/ws/rooms/lobby/", None),
     ("/ws/rooms/lobby#x", None), ("/internal/rooms/lobby/deleted", None),
     ("/ws/rooms/lobby%0a", None), ("/ws/rooms/lobby\n", None)],
)  # fmt: skip
def test_paths_are_parsed_strictly(target: str, room: str | None) -> None:
    assert paths.room_of(paths.path_of(target)) == room


def test_control_routes() -> None:
    assert control_http.route("/rooms/lobby/deleted") == CloseRoom("lobby")
    assert control_http.route("/users/3f2b-9c/revoked") == RevokeUser("3f2b-9c")
    for path in ("/rooms/x/deleted", "/rooms/../deleted", "/users/../revoked", "/users//revoked",
                 "//rooms/lobby/deleted", "/rooms/lobby/deleted/", "/users/a/b/revoked",
                 "/internal/rooms/lobby/deleted", "/ws/rooms/lobby", "/"):  # fmt: skip
        assert control_http.route(path) is None, path


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
