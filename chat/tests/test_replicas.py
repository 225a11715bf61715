"""Replicas on one bus: two or three chat servers in this process (and one as a real process,
to be killed), sharing a real Redis. Cross-replica delivery in order, presence once per user
across replicas and tabs, a crashed replica's users leaving, control on every replica, and a
Redis outage: local delivery goes on, /readyz says 503, and everything comes back alone."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection, connect

from chat import bus, wire
from tests.conftest import StartChat
from tests.helpers import (
    TIMEOUT_S,
    FakeWebsite,
    MemberList,
    http_get,
    recv_json,
    recv_type,
    until,
)
from tests.redis_server import RedisServer
from tests.test_control import close_code
from tests.test_process import chat_env, free_port, until_ready

ROOT = Path(__file__).resolve().parent.parent


async def say(ws: ClientConnection, text: str) -> None:
    await ws.send(json.dumps({"type": wire.FRAME_MESSAGE, "text": text}))


async def next_of(ws: ClientConnection, kind: str, within_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The next frame of this kind; any other kind on the way fails the test."""
    async with asyncio.timeout(within_s):
        frame: dict[str, Any] = json.loads(await ws.recv())
    assert frame["type"] == kind, frame
    return frame


async def nothing_more(ws: ClientConnection, within_s: float = 0.5) -> None:
    """Nothing arrives for a while (a duplicate join or leave would)."""
    try:
        async with asyncio.timeout(within_s):
            frame = await ws.recv()
    except TimeoutError:
        return
    raise AssertionError(f"unexpected frame: {frame!r}")


def names(welcome: dict[str, Any]) -> set[str]:
    return {m["id"] for m in welcome["members"]}


def joined(presence: dict[str, Any]) -> list[dict[str, str]]:
    assert presence["left"] == [], presence
    users: list[dict[str, str]] = presence["joined"]
    return users


def left(presence: dict[str, Any]) -> list[dict[str, str]]:
    assert presence["joined"] == [], presence
    users: list[dict[str, str]] = presence["left"]
    return users


def ids(users: list[dict[str, str]]) -> list[str]:
    return [u["id"] for u in users]


async def test_messages_cross_replicas_in_order_once(
    start_chat: StartChat, redis: RedisServer
) -> None:
    fast = {"rate_per_s": 1000.0, "rate_burst": 1000}  # 100 messages at once, no rate limit
    a, b, c = await start_chat(**fast), await start_chat(**fast), await start_chat(**fast)
    async with (
        a.join("lobby", "u1", "Alice") as alice,
        b.join("lobby", "u2", "Bob") as bob,
        c.join("lobby", "u3", "Cy") as cy,
        a.join("lobby", "u4", "Di") as di,  # Alice's neighbour on her own replica
    ):
        sockets = (alice, bob, cy, di)
        lists = [MemberList(await recv_type(ws, wire.FRAME_WELCOME)) for ws in sockets]
        for ws, seen in zip(sockets, lists, strict=True):  # presence frames first, then talk
            await seen.follow(ws, lambda s: set(s.members) == {"u1", "u2", "u3", "u4"})
        texts = [f"n{i}" for i in range(100)]
        for text in texts:
            await say(alice, text)
        for ws in (alice, bob, cy, di):
            got: list[str] = []
            async with asyncio.timeout(TIMEOUT_S):
                while len(got) < len(texts):
                    frame = await recv_json(ws)
                    if frame["type"] == wire.FRAME_MESSAGE:
                        assert frame["from"] == {"id": "u1", "name": "Alice"}
                        got.append(frame["text"])
            assert got == texts  # every one, once, in the order she sent them
        await nothing_more(bob, 0.3)
        # Nothing is stored but who is where: one presence hash for the room.
        assert redis.client().keys("*") == [b"parley:presence:lobby"]


async def test_a_full_redis_refuses_presence_writes_and_messages_still_cross(
    start_chat: StartChat, redis: RedisServer, log_output: io.StringIO
) -> None:
    """Out of memory (noeviction, as ops/redis runs it), Redis refuses a join's presence entry:
    the replica says so and counts it, its bus stays up, and the join (queued right after the
    refused write) and a message (PUBLISH is never refused for memory) still reach the other
    replica, which has no presence entry to learn Bob from."""
    a, b = await start_chat(), await start_chat()
    admin = redis.client()
    async with AsyncExitStack() as stack:
        alice = await stack.enter_async_context(b.join("room", "u1", "Alice"))
        await recv_type(alice, wire.FRAME_WELCOME)
        dropped = REGISTRY.get_sample_value("chat_bus_dropped_total") or 0.0
        sessions = REGISTRY.get_sample_value("chat_bus_connects_total")
        admin.config_set("maxmemory", 1)
        try:
            bob = await stack.enter_async_context(a.join("room", "u2", "Bob"))
            assert names(await recv_type(bob, wire.FRAME_WELCOME)) == {"u1", "u2"}
            bob_joined = joined(await next_of(alice, wire.FRAME_PRESENCE))
            assert bob_joined == [{"id": "u2", "name": "Bob"}]
            await until(lambda: (REGISTRY.get_sample_value("chat_bus_dropped_total") or 0.0)
                        > dropped, "the refused write to be counted")  # fmt: skip
            assert not admin.hexists("parley:presence:room", f"{a.node}:u2")
            await say(bob, "still here")
            frame = await next_of(alice, wire.FRAME_MESSAGE)
            assert frame["text"] == "still here"
            # The same sessions all along: a refusal is not a broken link.
            assert a.servers.bus.up
            assert REGISTRY.get_sample_value("chat_bus_connects_total") == sessions
        finally:
            admin.config_set("maxmemory", 0)
    refusals = [json.loads(line) for line in log_output.getvalue().splitlines()
                if '"bus write refused"' in line]  # fmt: skip
    assert refusals and "maxmemory" in refusals[0]["error"], refusals


async def test_delivery_latency_across_replicas(start_chat: StartChat) -> None:
    """Not a speed target (those live in ops/bench): the figure, printed for the record."""
    fast = {"rate_per_s": 1000.0, "rate_burst": 1000}
    a, b = await start_chat(**fast), await start_chat(**fast)
    async with a.join("lat", "u1", "Alice") as alice, b.join("lat", "u2", "Bob") as bob:
        await recv_type(alice, wire.FRAME_WELCOME)
        bobs = await recv_type(bob, wire.FRAME_WELCOME)
        await next_of(alice, wire.FRAME_PRESENCE)
        if "u1" not in names(bobs):  # b had not yet heard of Alice: a presence frame follows
            await next_of(bob, wire.FRAME_PRESENCE)
        samples = []
        for i in range(200):
            sent = time.perf_counter()
            await say(alice, f"ping {i}")
            await next_of(bob, wire.FRAME_MESSAGE)
            samples.append(time.perf_counter() - sent)
            await next_of(alice, wire.FRAME_MESSAGE)
        samples.sort()
        p50, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
        print(f"\ncross-replica delivery, client to client: p50 {p50 * 1000:.2f} ms, "
              f"p99 {p99 * 1000:.2f} ms, max {samples[-1] * 1000:.2f} ms")  # fmt: skip
        assert p99 < 1.0  # a sanity bound, not a target


async def test_welcome_join_and_leave_once_per_user_across_replicas(
    start_chat: StartChat,
) -> None:
    a, b = await start_chat(), await start_chat()
    async with AsyncExitStack() as stack:
        alice = await stack.enter_async_context(a.join("room", "u1", "Alice"))
        assert names(await recv_type(alice, wire.FRAME_WELCOME)) == {"u1"}
        bob_b = await stack.enter_async_context(b.join("room", "u2", "Bob"))
        welcome = await recv_type(bob_b, wire.FRAME_WELCOME)
        assert welcome["members"] == [{"id": "u2", "name": "Bob"}, {"id": "u1", "name": "Alice"}]
        assert joined(await next_of(alice, wire.FRAME_PRESENCE)) == [{"id": "u2", "name": "Bob"}]

        # Bob's second tab, on Alice's replica: nobody hears a join, its welcome lists both.
        async with a.join("room", "u2", "Bob") as bob_a:
            assert names(await recv_type(bob_a, wire.FRAME_WELCOME)) == {"u1", "u2"}
            await nothing_more(alice)
            await nothing_more(bob_b, 0.1)
            # His first tab goes: he is still in the room (on A), so no leave anywhere.
            await bob_b.close()
            await nothing_more(alice)
            await nothing_more(bob_a, 0.1)
        # His last tab goes: one leave.
        assert ids(left(await next_of(alice, wire.FRAME_PRESENCE))) == ["u2"]
        await nothing_more(alice)
        await until(lambda: b.servers.relay.members("room") == [], "B to leave the room")
        await until(lambda: [u.id for u in a.servers.relay.members("room")] == ["u1"],
                    "A to see Alice alone")  # fmt: skip


def bus_connections(redis: RedisServer, node: str) -> int:
    """How many connections this replica's bus holds open to Redis."""
    clients = redis.client().client_list()
    return sum(1 for c in clients if c["name"] == f"chat-{node}")


async def test_a_storm_into_new_rooms_reads_presence_on_few_connections(
    start_chat: StartChat, redis: RedisServer
) -> None:
    """80 sockets open at once on A, each into a room new to A where someone is already, on
    B: every welcome lists that member (A read every room's presence hash), and A held at
    most bus.CONNECTIONS connections to Redis, one read serving many rooms (redis-py's own
    pool has no bound: read one room at a time, this storm opened dozens)."""
    a, b = await start_chat(), await start_chat()
    rooms = [f"storm-{n}" for n in range(80)]
    async with AsyncExitStack() as stack:
        for n, room in enumerate(rooms):
            there = await stack.enter_async_context(b.join(room, f"b{n}", f"Bee {n}"))
            await recv_type(there, wire.FRAME_WELCOME)
        hashes = redis.client()
        await until(lambda: all(hashes.exists(f"parley:presence:{r}") for r in rooms),
                    "B's presence fields")  # fmt: skip
        before = bus_connections(redis, a.node)
        arriving = [a.join(room, f"a{n}", f"Ay {n}") for n, room in enumerate(rooms)]
        sockets = await asyncio.gather(*(stack.enter_async_context(c) for c in arriving))
        welcomes = await asyncio.gather(*(recv_type(ws, wire.FRAME_WELCOME) for ws in sockets))
        for n, welcome in enumerate(welcomes):
            assert names(welcome) == {f"a{n}", f"b{n}"}, welcome
        held = bus_connections(redis, a.node)
        assert held <= bus.CONNECTIONS, (before, held)
        # Connections are kept once opened. The storm's presence reads took one; the pinger
        # and the sweep may each open theirs during it too, depending on when they first ran
        # (a run saw 3 new, when the writer still took one per round trip; it now holds its
        # own from the session's start). Read one room at a time, they would fill the bound.
        assert held - before <= 4, (before, held)


async def test_the_bus_holds_at_most_its_bound_of_connections(
    start_chat: StartChat, redis: RedisServer
) -> None:
    """Twice as many commands at once as the bus has connections, each holding one for 0.1 s:
    several run side by side, the rest wait for a free connection, and every one succeeds."""
    a = await start_chat()

    async def hold(r: Any) -> Any:
        return await r.blpop(["parley:test:nothing"], timeout=0.1)

    results = await asyncio.gather(*(a.servers.bus.call(hold) for _ in range(2 * bus.CONNECTIONS)))
    assert results == [None] * (2 * bus.CONNECTIONS)  # each timed out in Redis, none failed
    held = bus_connections(redis, a.node)
    assert 2 < held <= bus.CONNECTIONS, held


async def test_a_crashed_replicas_users_leave(
    start_chat: StartChat, website: FakeWebsite, redis: RedisServer
) -> None:
    """A real process, SIGKILLed: nobody tells anyone; its presence entries expire."""
    ttl_s = 2.0
    a = await start_chat(presence_ttl_s=ttl_s)
    port = free_port()
    env = chat_env(redis, website)
    env.update({"CHAT_PORT": str(port), "METRICS_PORT": str(free_port()),
                "PRESENCE_TTL_S": str(ttl_s), "PRESENCE_HEARTBEAT_S": "0.5",
                "PRESENCE_SWEEP_S": "0.5", "LOG_LEVEL": "WARNING"})  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await until_ready(port)
        token = website.mint("room", "u2", "Bob")
        async with (
            a.join("room", "u1", "Alice") as alice,
            connect(f"ws://127.0.0.1:{port}/ws/rooms/room", proxy=None,
                    additional_headers={"Authorization": f"Bearer {token}"}) as bob,
        ):  # fmt: skip
            await recv_type(alice, wire.FRAME_WELCOME)
            assert names(await recv_type(bob, wire.FRAME_WELCOME)) == {"u1", "u2"}
            assert ids(joined(await next_of(alice, wire.FRAME_PRESENCE))) == ["u2"]
            before = REGISTRY.get_sample_value("chat_presence_expired_total") or 0.0
            proc.send_signal(signal.SIGKILL)
            crashed = time.monotonic()
            leave = await next_of(alice, wire.FRAME_PRESENCE, within_s=ttl_s + 5)
            took = time.monotonic() - crashed
            assert ids(left(leave)) == ["u2"] and took <= ttl_s + 2, took
            assert REGISTRY.get_sample_value("chat_presence_expired_total") == before + 1
            await nothing_more(alice)
            await bob.close()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_control_acts_on_every_replica(start_chat: StartChat, website: FakeWebsite) -> None:
    a, b = await start_chat(), await start_chat()
    async with (
        a.join("doomed", "u1", "Alice") as doomed_a,
        b.join("doomed", "u2", "Bob") as doomed_b,
        a.join("lobby", "u3", "Cy") as revoked_a,
        b.join("other", "u3", "Cy") as revoked_b,
        b.join("other", "u4", "Di") as kept,
    ):
        for ws in (doomed_a, doomed_b, revoked_a, revoked_b, kept):
            await recv_type(ws, wire.FRAME_WELCOME)
        started = time.monotonic()
        # Published once, heard by both replicas.
        assert await a.notify(website.notice(wire.NOTICE_ROOM_DELETED, room="doomed")) == 1
        assert await close_code(doomed_a) == wire.CLOSE_ROOM_DELETED
        assert await close_code(doomed_b) == wire.CLOSE_ROOM_DELETED
        assert await b.notify(website.notice(wire.NOTICE_USER_REVOKED, user="u3")) == 1
        assert await close_code(revoked_a) == wire.CLOSE_SESSION_ENDED
        assert await close_code(revoked_b) == wire.CLOSE_SESSION_ENDED
        assert time.monotonic() - started < 5  # the contract: every replica within 5 s
        # Both remember the revocation: Cy's older token is refused on either.
        assert len(a.revocations) == 1 and len(b.revocations) == 1
        await say(kept, "still here")
        frame, _ = await _message(kept)
        assert frame["text"] == "still here"


async def _message(ws: ClientConnection) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    skipped = []
    while (frame := await recv_json(ws))["type"] != wire.FRAME_MESSAGE:
        skipped.append(frame)
    return frame, skipped


async def test_redis_outage_local_delivery_goes_on_and_all_recovers_alone(
    start_chat: StartChat, tmp_path: Path
) -> None:
    own = RedisServer(tmp_path)  # this test's own Redis, to stop and start again
    own.start()
    try:
        a = await start_chat(redis_server=own)
        b = await start_chat(redis_server=own)
        async with (
            a.join("room", "u1", "Alice") as alice,
            a.join("room", "u2", "Bob") as bob,
            b.join("room", "u3", "Cy") as cy,
        ):
            for ws in (alice, bob, cy):
                await recv_type(ws, wire.FRAME_WELCOME)
            await until(lambda: len(a.servers.relay.members("room")) == 3, "A to see Cy")
            for port in (a.port, b.port):
                assert await http_get(port, wire.READYZ_PATH) == (200, "ready\n")

            own.stop(kill=True)
            await until(lambda: not a.servers.bus.up and not b.servers.bus.up, "the bus down")
            assert REGISTRY.get_sample_value("chat_bus_up") == 0
            for port in (a.port, b.port):
                assert await http_get(port, wire.READYZ_PATH) == (503, "bus down\n")
                assert await http_get(port, wire.HEALTHZ_PATH) == (200, "ok\n")
            # Local delivery goes on: Alice and Bob share a replica.
            await say(alice, "while down")
            for ws in (alice, bob):
                assert (await _message(ws))[0]["text"] == "while down"
            # And a newcomer on A still gets in, welcomed with what A knows.
            async with a.join("room", "u5", "Eve") as eve:
                assert names(await recv_type(eve, wire.FRAME_WELCOME)) >= {"u1", "u2", "u5"}

            own.start()  # empty: Redis keeps nothing, presence comes back from the replicas
            await until(lambda: a.servers.bus.up and b.servers.bus.up, "the bus back",
                        within_s=10)  # fmt: skip
            for port in (a.port, b.port):
                assert await http_get(port, wire.READYZ_PATH) == (200, "ready\n")
            assert REGISTRY.get_sample_value("chat_bus_up") == 1
            # Cross-replica delivery resumed, with no restart, both ways.
            await say(alice, "after")
            assert (await _message(cy))[0]["text"] == "after"
            assert (await _message(alice))[0]["text"] == "after"
            await say(cy, "back")
            assert (await _message(alice))[0]["text"] == "back"
            # Presence is rebuilt in Redis by the heartbeats.
            await until(lambda: len(own.client().hkeys("parley:presence:room")) == 3,
                        "the presence entries to be back")  # fmt: skip
    finally:
        own.stop()


async def test_redis_down_at_start_then_up(start_chat: StartChat, tmp_path: Path) -> None:
    own = RedisServer(tmp_path)
    own.start()
    own.stop()
    try:
        a = await start_chat(redis_server=own, wait_bus=False)
        async with a.join("room", "u1", "Alice") as alice:
            assert names(await recv_type(alice, wire.FRAME_WELCOME)) == {"u1"}
            assert await http_get(a.port, wire.READYZ_PATH) == (503, "bus down\n")
            own.start()
            await until(lambda: a.servers.bus.up, "the bus up", within_s=10)
            assert await http_get(a.port, wire.READYZ_PATH) == (200, "ready\n")
            await until(lambda: own.client().hkeys("parley:presence:room") != [],
                        "Alice's presence entry")  # fmt: skip
            # The room she joined while the bus was away is subscribed now: Bob, on another
            # replica, is welcomed with her, she hears him join and speak.
            b = await start_chat(redis_server=own)
            async with b.join("room", "u2", "Bob") as bob:
                assert names(await recv_type(bob, wire.FRAME_WELCOME)) == {"u1", "u2"}
                assert ids(joined(await next_of(alice, wire.FRAME_PRESENCE))) == ["u2"]
                await say(bob, "hello")
                assert (await _message(alice))[0]["text"] == "hello"
    finally:
        own.stop()

