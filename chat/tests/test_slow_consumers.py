"""Slow consumers: a client that stops reading is cut with 4008 (no pong in time, or unsent
bytes over the bound), counted and logged, while the rest of its room carries on; a client
that reads stays, however long it lives."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
from contextlib import AsyncExitStack

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection

from chat import keepalive, wire
from chat.connection import ChatConnection
from chat.keepalive import Watchdog
from tests.conftest import StartChat
from tests.helpers import (
    Chat,
    RawClient,
    close_code_in,
    keep_reading,
    recv_join,
    recv_leave,
    recv_type,
    until,
)

FAST = {"ping_interval_s": 0.2, "ping_timeout_s": 0.4}  # cut within ~0.7 s


def cut(reason: str) -> float:
    return REGISTRY.get_sample_value("chat_slow_consumers_total", {"reason": reason}) or 0.0


def server_side(chat: Chat, user_id: str) -> ChatConnection:
    [conn] = [c for c in chat.server.connections
              if isinstance(c, ChatConnection) and c.identity.user_id == user_id]  # fmt: skip
    return conn


async def say(ws: ClientConnection, text: str) -> None:
    await ws.send(json.dumps({"type": wire.FRAME_MESSAGE, "text": text}))


async def written_or_cut(conn: ChatConnection, unsent: int) -> None:
    """Until the connection's unsent bytes are no longer `unsent`, or it is cut."""
    await until(lambda: conn.unsent_bytes() != unsent or conn.cut_reason is not None,
                "a frame to reach the connection")  # fmt: skip


async def test_unanswered_ping_cuts_with_4008_and_a_reader_stays(
    start_chat: StartChat, log_output: io.StringIO
) -> None:
    chat = await start_chat(**FAST)
    before = cut("pong")
    async with chat.join(sub="reader", name="Reader") as reader:
        await recv_type(reader, wire.FRAME_WELCOME)
        slow = await RawClient.open(chat.port, chat.website.mint(sub="slow", name="Slow"))
        try:
            await recv_join(reader, "slow")
            started = time.monotonic()
            data = await slow.read_all(within_s=3)  # reads only now: the cut already happened
        finally:
            slow.close()
        assert await recv_leave(reader, "slow") == {"id": "slow", "name": "Slow"}
        assert close_code_in(data) == wire.CLOSE_SLOW_CONSUMER
        assert time.monotonic() - started < 2
        assert cut("pong") == before + 1
        # Held the other way: the reader answered every ping for many intervals, and stays.
        await asyncio.sleep(1.0)
        await say(reader, "still here")
        assert (await recv_type(reader, wire.FRAME_MESSAGE))["text"] == "still here"
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    [line] = [r for r in lines if r["event"] == "slow consumer cut"]
    assert (line["reason"], line["user_id"], line["room"]) == ("pong", "slow", "lobby")


async def test_a_keepalive_tick_lets_the_loop_run_between_slices(
    start_chat: StartChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick checks TICK_SLICE connections, then lets other work run (a message to send)
    before the next slice, instead of pinging every due connection in one go."""
    monkeypatch.setattr(keepalive, "TICK_SLICE", 1)
    chat = await start_chat()
    watchdog = Watchdog(0.2, 10, 64 * 1024)  # ticks every 0.05 s
    events: list[str] = []
    ping = watchdog._ping

    def recording_ping(conn: ChatConnection, now: float) -> None:
        events.append("ping")
        if len(events) == 1:  # queued behind the slice under way
            asyncio.get_running_loop().call_soon(events.append, "other work")
        ping(conn, now)

    monkeypatch.setattr(watchdog, "_ping", recording_ping)
    async with chat.join(sub="a") as a, chat.join(sub="b") as b, chat.join(sub="c") as c:
        for ws in (a, b, c):
            await recv_type(ws, wire.FRAME_WELCOME)
        for user in "abc":
            conn = server_side(chat, user)
            watchdog.watch(conn)
            conn.next_ping_at = 0.0  # all three due at the first tick
        async with watchdog.running():
            await until(lambda: events.count("ping") == 3, "a ping to each")
        # Each was pinged once, and answered: the pings were whole frames.
        await until(lambda: all(server_side(chat, u).ping_payload is None for u in "abc"),
                    "three pongs")  # fmt: skip
    assert events == ["ping", "other work", "ping", "ping"]


async def test_buffer_over_the_bound_cuts_with_4008_the_sender_carries_on(
    start_chat: StartChat,
) -> None:
    # Pings far apart: only the buffer bound can cut here.
    chat = await start_chat(send_buffer_bytes=4096, ping_interval_s=60, rate_per_s=1000,
                            rate_burst=1000)  # fmt: skip
    before = cut("buffer")
    async with chat.join(sub="reader", name="Reader") as reader:
        await recv_type(reader, wire.FRAME_WELCOME)
        slow = await RawClient.open(chat.port, chat.website.mint(sub="slow"), rcvbuf=4096)
        try:
            await recv_join(reader, "slow")
            # Small kernel buffers on both ends, so our own transport buffer fills soon.
            sock = server_side(chat, "slow").transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            text = "x" * 1000
            for i in range(400):
                await say(reader, f"{i} {text}")
                frame = await recv_type(reader, wire.FRAME_MESSAGE)  # normal service meanwhile
                assert frame["text"].startswith(f"{i} ")
                if cut("buffer") > before:
                    break
            assert cut("buffer") == before + 1, "never over the bound"
            await recv_leave(reader, "slow")
            data = await slow.read_all()
        finally:
            slow.close()
        # The close frame was queued behind the unread data, then the transport aborted:
        # what reached the client is cut short, and the server did not wait for it.
        assert close_code_in(data) in (None, wire.CLOSE_SLOW_CONSUMER)
        await say(reader, "after")
        assert (await recv_type(reader, wire.FRAME_MESSAGE))["text"] == "after"
    assert cut("pong") >= 0  # exported from 0


async def test_a_burst_queued_at_once_reaches_a_reader_whole(start_chat: StartChat) -> None:
    """Twice the bound queued for a reader in one loop iteration (a backlog read from the bus,
    a presence tick, a busy pass): the frames are bytes shared by the whole room until its
    turn, so they do not count against its bound, and it gets every one. Counted, the fifth
    frame found four over the bound and cut a client that had not yet been sent one."""
    chat = await start_chat()
    bound = 4096
    watchdog = Watchdog(60, 60, bound)
    async with chat.join(sub="a") as a:
        await recv_type(a, wire.FRAME_WELCOME)
        conn = server_side(chat, "a")
        frames = [json.dumps({"type": wire.FRAME_MESSAGE, "text": f"{i} " + "b" * 1000})
                  for i in range(8)]  # fmt: skip
        assert [watchdog.broadcast([conn], f) for f in frames] == [1] * 8
        assert conn.unsent_bytes() > 2 * bound and conn.cut_reason is None
        assert [json.loads(await a.recv()) for _ in frames] == [json.loads(f) for f in frames]


async def test_buffer_under_the_bound_is_not_cut(start_chat: StartChat) -> None:
    """Held the other way: a client that stops reading but whose backlog still fits in the
    kernel's buffers and under the bound stays open (until its ping times out)."""
    chat = await start_chat(send_buffer_bytes=1 << 20, ping_interval_s=60)
    before = cut("buffer")
    async with chat.join(sub="reader") as reader:
        await recv_type(reader, wire.FRAME_WELCOME)
        slow = await RawClient.open(chat.port, chat.website.mint(sub="slow"))
        try:
            await recv_join(reader, "slow")
            for i in range(20):
                await say(reader, f"{i} " + "y" * 1000)
                await recv_type(reader, wire.FRAME_MESSAGE)
            await asyncio.sleep(0.3)
            assert server_side(chat, "slow").cut_reason is None
            assert cut("buffer") == before
        finally:
            slow.close()


async def test_many_stalled_clients_leave_the_room_fast_for_the_reader(
    start_chat: StartChat,
) -> None:
    chat = await start_chat(**FAST, rate_per_s=1000, rate_burst=1000)
    async with chat.join(sub="reader") as reader:
        await recv_type(reader, wire.FRAME_WELCOME)
        stalled = [await RawClient.open(chat.port, chat.website.mint(sub=f"s{i}"))
                   for i in range(10)]  # fmt: skip
        try:
            latencies: list[float] = []
            leaves: set[str] = set()
            deadline = time.monotonic() + 3
            while len(leaves) < 10 and time.monotonic() < deadline:
                sent = time.perf_counter()
                await say(reader, "z" * 1000)
                while True:
                    raw = json.loads(await asyncio.wait_for(reader.recv(), 2))
                    if raw["type"] == wire.FRAME_PRESENCE:
                        leaves.update(u["id"] for u in raw["left"])
                    elif raw["type"] == wire.FRAME_MESSAGE:
                        latencies.append(time.perf_counter() - sent)
                        break
                await asyncio.sleep(0.02)
            assert len(leaves) == 10, leaves
            latencies.sort()
            assert latencies[int(len(latencies) * 0.99) - 1] < 0.1, latencies[-5:]
        finally:
            for s in stalled:
                s.close()


async def test_a_welcome_bigger_than_the_bound_does_not_make_a_slow_consumer(
    start_chat: StartChat,
) -> None:
    """A big room's welcome alone exceeds SEND_BUFFER_BYTES: the joiner may hold it unread on
    top of the bound (not a byte more), so the next frame to it does not cut it."""
    # A long tick: the members' joins reach them in a frame or two, which they hold unread.
    chat = await start_chat(send_buffer_bytes=4096, ping_interval_s=60, presence_coalesce_ms=1000)
    before = cut("buffer")
    async with AsyncExitStack() as stack:
        long_name = "n" * 400  # the chat takes the website's names as they are
        members = await asyncio.gather(*(
            stack.enter_async_context(chat.join(sub=f"m{i}", name=f"{i:03} {long_name}"))
            for i in range(120)
        ))  # fmt: skip
        # Small kernel buffers on both ends (accepted sockets inherit the listener's send
        # buffer): most of the ~50 KB welcome stays in the server's own buffer.
        for listener in chat.server.sockets:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        slow = await RawClient.open(chat.port, chat.website.mint(sub="slow"), rcvbuf=4096)
        try:
            conn = server_side(chat, "slow")
            await until(lambda: conn.unsent_bytes() > 4096, "the welcome to back up")
            await say(members[0], "after the welcome")
            await asyncio.sleep(0.2)
            assert conn.cut_reason is None
            data = await slow.read_until(b"after the welcome")
        finally:
            slow.close()
        assert data.count(b'"type":"welcome"') == 1
    assert cut("buffer") == before


async def test_a_welcome_partly_read_still_does_not_count_against_the_bound(
    start_chat: StartChat,
) -> None:
    """The welcome is allowed on top of the bound until it has all left the chat's buffer,
    not only until the whole backlog fits under the bound: a joiner that read most of a big
    welcome and then stalls holds SEND_BUFFER_BYTES of later frames unread, not a byte more."""
    bound = 16384
    chat = await start_chat(send_buffer_bytes=bound, ping_interval_s=60, presence_coalesce_ms=100)
    async with AsyncExitStack() as stack:
        members: list[ClientConnection] = []
        # 150 members with long names (a ~66 KB welcome), 25 at a time: each tick's presence
        # frame to those already in stays under the bound.
        for batch in range(6):
            joined = await asyncio.gather(*(
                stack.enter_async_context(chat.join(sub=f"m{i}", name=f"{i:03} {'n' * 400}"))
                for i in range(batch * 25, batch * 25 + 25)
            ))  # fmt: skip
            members += joined
            keep_reading(stack, joined)  # as a browser reads
            await asyncio.sleep(0.25)  # their joins are out before the next batch's
        for listener in chat.server.sockets:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        slow = await RawClient.open(chat.port, chat.website.mint(sub="slow"), rcvbuf=4096)
        try:
            conn = server_side(chat, "slow")
            await until(lambda: conn.unsent_bytes() > bound, "the ~66 KB welcome to back up")
            # Read until what is left of the welcome fits under the bound, then stall.
            loop = asyncio.get_running_loop()
            read = b""
            async with asyncio.timeout(10):
                while conn.unsent_bytes() > bound:
                    read += await loop.sock_recv(slow.sock, 1024)
                    await asyncio.sleep(0.02)  # the chat's loop writes what the kernel took
            welcome_left = conn.unsent_bytes()
            # Enough left that a rule dropping the allowance once the backlog fits would cut.
            assert welcome_left > 4096 and read.count(b'"type":"welcome"') == 1
            await asyncio.sleep(0.2)
            assert conn.cut_reason is None and conn.unsent_bytes() == welcome_left
            # Later frames: the bound holds them, whatever is left of the welcome ahead of them.
            later = 0
            for i in range(20):
                await say(members[0], f"{i:02} " + "x" * 1900)
                await written_or_cut(conn, unsent=welcome_left + later)
                if later > bound:  # checked before this message's write
                    assert conn.cut_reason == keepalive.BUFFER, (later, welcome_left)
                    break
                assert conn.cut_reason is None, (later, welcome_left)
                later = conn.unsent_bytes() - welcome_left
            else:
                raise AssertionError(f"never cut: {later} bytes after the welcome")
            # What the chat counted as written (the welcome's position in it) is what came.
            rest = await slow.read_all()
            assert rest.endswith(b"slow consumer")
            assert len(slow.head) + len(read) + len(rest) == conn.bytes_written
        finally:
            slow.close()
