"""Pure parts: rate limiting, room bookkeeping, settings, log rendering."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from functools import partial

import pytest
import structlog

from chat import channels, paths
from chat.bus import Bus
from chat.channels import Envelope
from chat.config import Settings, load_settings
from chat.log import BatchedStreamHandler
from chat.presence import RoomView
from chat.protocol import User, now_rfc3339, presence, typing, welcome
from chat.ratelimit import FloodGuard, TokenBucket
from chat.rooms import Rooms
from tests.helpers import service_logs


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
    "CHAT_HOST", "CHAT_PORT", "METRICS_PORT", "REDIS_HOST", "REDIS_PORT", "NODE_ID",
    "PRESENCE_TTL_S", "PRESENCE_HEARTBEAT_S", "PRESENCE_SWEEP_S", "BUS_TIMEOUT_S",
    "BUS_BACKOFF_MAX_S", "REDIS_PASSWORD_FILE", "JWKS_URL", "ALLOWED_ORIGINS",
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


# Names the encoder must escape or keep as they are: quotes, backslashes, non-ASCII, emoji.
ODD_USERS = [User("u1", 'Al "the" ice'), User("u2", "B\\ob</script>"), User("u3", "Zoë 😀"),
             User("u4", "\u2028 line")]  # fmt: skip


def test_spliced_frames_are_what_json_gives_for_the_whole_frame() -> None:
    # The welcome, presence and typing frames are spliced from each user's own encoding.
    dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))
    members = [u.as_json() for u in ODD_USERS]
    assert welcome('r"1', ODD_USERS[0], ODD_USERS) == dumps(
        {"type": "welcome", "room": 'r"1', "you": members[0], "members": members})
    assert welcome("lobby", ODD_USERS[0], []) == dumps(
        {"type": "welcome", "room": "lobby", "you": members[0], "members": []})
    frame = presence(ODD_USERS[:3], ODD_USERS[3:])
    ts = json.loads(frame)["ts"]
    assert frame == dumps(
        {"type": "presence", "joined": members[:3], "left": members[3:], "ts": ts})
    empty = presence([], [])
    assert empty == dumps(
        {"type": "presence", "joined": [], "left": [], "ts": json.loads(empty)["ts"]})
    for user, as_json in zip(ODD_USERS, members, strict=True):
        assert typing(user) == dumps({"type": "typing", "user": as_json})


def test_settings_from_env(env: pytest.MonkeyPatch) -> None:
    env.setenv("NODE_ID", "n1")  # otherwise a fresh one per Settings()
    assert load_settings() == Settings()
    assert (Settings().port, Settings().redis_host, Settings().redis_port) == (8001, "redis", 6379)
    for name, value in {"CHAT_PORT": "9000", "ALLOWED_ORIGINS": " https://A.example/ ,, ",
                        "RATE_LIMIT_BURST": "5", "LOG_LEVEL": "debug", "REDIS_PORT": "6380",
                        "JWKS_TTL_S": "", "FLOOD_WINDOW_S": "2.5"}.items():  # fmt: skip
        env.setenv(name, value)
    s = load_settings()
    assert (s.port, s.redis_port, s.rate_burst, s.log_level) == (9000, 6380, 5, "DEBUG")
    assert s.allowed_origins == frozenset({"https://a.example"})
    assert (s.jwks_ttl_s, s.flood_window_s) == (300.0, 2.5)  # empty: the default


def test_bounds_settings_defaults_and_env(env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (s.ping_interval_s, s.ping_timeout_s, s.send_buffer_bytes) == (10.0, 15.0, 65536)
    assert (s.max_connections_per_user, s.max_connections) == (16, 20000)
    assert s.revocation_memory_s == 125.0  # TOKEN_MAX_LIFETIME_S + the 5 s leeway
    assert s.listen_backlog == 4096
    for name, value in {"PING_INTERVAL_S": "5", "PING_TIMEOUT_S": "7.5",
                        "SEND_BUFFER_BYTES": "131072", "MAX_CONNECTIONS_PER_USER": "4",
                        "MAX_CONNECTIONS": "100", "REVOCATION_MEMORY_S": "60",
                        "LISTEN_BACKLOG": "512"}.items():  # fmt: skip
        env.setenv(name, value)
    s = load_settings()
    assert (s.ping_interval_s, s.ping_timeout_s, s.send_buffer_bytes) == (5.0, 7.5, 131072)
    assert (s.max_connections_per_user, s.max_connections, s.revocation_memory_s) == (4, 100, 60)
    assert s.listen_backlog == 512


def test_settings_by_name_in_tests(env: pytest.MonkeyPatch) -> None:
    s = Settings(port=0, allowed_origins=frozenset({"HTTPS://B.example/"}))
    assert (s.port, s.allowed_origins) == (0, frozenset({"https://b.example"}))
    assert Settings().node_id != Settings().node_id  # a fresh node id per start


@pytest.mark.parametrize(
    ("name", "value"),
    [("CHAT_PORT", "eighty"), ("REDIS_PORT", "70000"), ("LOG_LEVEL", "loud"),
     ("RATE_LIMIT_PER_S", "0"), ("RATE_LIMIT_BURST", "-1"), ("METRICS_PORT", "8001"),
     ("NODE_ID", "a:b"), ("PRESENCE_HEARTBEAT_S", "15"), ("PRESENCE_TTL_S", "0"),
     ("PING_INTERVAL_S", "0"), ("PING_TIMEOUT_S", "-1"), ("SEND_BUFFER_BYTES", "100"),
     ("MAX_CONNECTIONS_PER_USER", "0"), ("MAX_CONNECTIONS", "many"),
     ("LISTEN_BACKLOG", "0"), ("LISTEN_BACKLOG", "70000"),
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


def test_envelopes_round_trip_and_junk_is_refused() -> None:
    frame = '{"type":"message","text":"a\\nb ünï"}'
    envelope = Envelope("n1", channels.MESSAGE, 12.5, frame)
    assert Envelope.decode(envelope.encode()) == envelope
    join = Envelope("n1", channels.JOIN, 1.0, User("u1", "Al\nice").encoded)
    assert Envelope.decode(join.encode()).user() == User("u1", "Al\nice")  # type: ignore[union-attr]
    for junk in (b"", b"n1\nm\n1.0", b"n1\nx\n1.0\n{}", b"\nm\n1.0\n{}", b"n1\nm\nnow\n{}",
                 b"\xff\nm\n1\n{}"):  # fmt: skip
        assert Envelope.decode(junk) is None, junk
    assert Envelope("n1", channels.JOIN, 1.0, "[]").user() is None
    assert channels.split_field("n1:u1") == ("n1", "u1")
    assert channels.split_field("n1") is None and channels.split_field(":u1") is None
    assert channels.room_of(channels.room_channel("lobby")) == "lobby"
    assert channels.room_of(channels.CONTROL) is None


def test_room_view_counts_a_user_once_across_nodes() -> None:
    view, alice = RoomView(), User("u1", "Alice")
    assert view.add("n1", alice, 1.0) is True
    assert view.add("n2", alice, 1.0) is False  # a second replica: no second join
    assert view.users() == [alice]
    assert view.remove("n1", "u1", 2.0) is None  # still on n2
    assert view.remove("n2", "u1", 2.0) == alice and not view.has("u1")
    assert view.remove("n2", "u1", 2.0) is None  # a repeated leave changes nothing


def test_room_view_reconcile_respects_what_envelopes_said_meanwhile() -> None:
    view, alice, bob = RoomView(), User("u1", "Alice"), User("u2", "Bob")
    view.add("n1", alice, 5.0)  # learned from an envelope after the read began at 4.0
    view.add("n1", bob, 1.0)
    view.remove("n2", "u3", 4.5)  # a leave that overtook the snapshot
    snapshot = {("n2", "u3"): User("u3", "Cy"), ("n3", "u4"): User("u4", "Di")}
    appeared, vanished = view.reconcile(snapshot, started=4.0, may_remove=True)
    assert appeared == [User("u4", "Di")]  # Cy's leave is newer than the read
    assert vanished == [bob]  # Alice is newer than the read: kept
    assert {u.id for u in view.users()} == {"u1", "u4"}
    # After an outage removals wait: nothing vanishes, what is new still appears.
    appeared, vanished = view.reconcile({}, started=10.0, may_remove=False)
    assert (appeared, vanished) == ([], [])
    assert {u.id for u in view.users()} == {"u1", "u4"}


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


class _Writes(io.RawIOBase):
    """A raw stream that records each write it is given: what the process's stdout (and
    Docker's daemons behind it) would see."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]
        self.writes.append(chunk)
        return len(chunk)


@pytest.fixture
def batched() -> Iterator[tuple[logging.Logger, _Writes, BatchedStreamHandler]]:
    raw = _Writes()
    stream = io.TextIOWrapper(io.BufferedWriter(raw, 64 * 1024), encoding="utf-8")
    handler = BatchedStreamHandler(stream, interval_s=0.05)
    logger = logging.getLogger("tests.batched")
    logger.handlers[:], logger.propagate, logger.level = [handler], False, logging.INFO
    yield logger, raw, handler
    handler.close()
    logger.handlers.clear()


def test_log_lines_reach_stdout_in_one_write_per_interval(
    batched: tuple[logging.Logger, _Writes, BatchedStreamHandler],
) -> None:
    logger, raw, _ = batched
    for n in range(20):
        logger.info("line %d", n)
    lines = b"".join(f"line {n}\n".encode() for n in range(20))
    deadline = time.monotonic() + 5  # the flush thread runs every 0.05 s
    while b"".join(raw.writes) != lines and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b"".join(raw.writes) == lines
    # In one write, or two should the thread's flush fall among them: never one per line.
    assert len(raw.writes) <= 2


def test_a_warning_is_written_at_once_after_the_lines_before_it(
    batched: tuple[logging.Logger, _Writes, BatchedStreamHandler],
) -> None:
    logger, raw, handler = batched
    logger.info("opened")
    logger.warning("slow consumer cut")
    # Written before this line runs, whatever the flush thread did meanwhile.
    assert b"".join(raw.writes) == b"opened\nslow consumer cut\n"
    logger.info("closed")
    handler.close()  # as logging.shutdown() at exit: nothing buffered is left behind
    assert b"".join(raw.writes) == b"opened\nslow consumer cut\nclosed\n"
    handler.flusher.join(timeout=5)
    assert not handler.flusher.is_alive()


def test_the_chat_s_own_lines_are_batched_and_a_warning_is_written_at_once() -> None:
    # The chat's events skip stdlib logging (chat/log.py, EventLines): same handler, same rules.
    raw = _Writes()
    with service_logs(io.TextIOWrapper(io.BufferedWriter(raw, 64 * 1024), encoding="utf-8")):
        log = structlog.get_logger("chat.keepalive")
        log.info("connection opened", first_tab=True)
        log.warning("slow consumer cut", reason="buffer")
        written = [json.loads(line) for line in b"".join(raw.writes).splitlines()]
        assert [(r["event"], r["level"], r["logger"], r["service"]) for r in written] == [
            ("connection opened", "info", "chat.keepalive", "chat"),
            ("slow consumer cut", "warning", "chat.keepalive", "chat"),
        ]
        log.debug("below the level")
        log.info("connection closed")
    # The exit (logging.shutdown() in the process) writes what was buffered, and only that.
    written = [json.loads(line)["event"] for line in b"".join(raw.writes).splitlines()]
    assert written == ["connection opened", "slow consumer cut", "connection closed"]


async def test_a_bus_with_no_channel_refuses_to_run() -> None:
    # SUBSCRIBE needs a channel: started without one, every session would be refused and the
    # bus would reconnect forever. The chat subscribes to the control channel first.
    bus = Bus(host="127.0.0.1", port=1, password="", node="n1", timeout_s=1.0,
              backoff_max_s=1.0, on_message=lambda channel, data: None)  # fmt: skip
    with pytest.raises(ValueError, match="subscribe"):
        async with bus.running():
            pass
