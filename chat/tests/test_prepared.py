"""Prepared frames (chat/prepared.py): one serialisation per broadcast, written as is to every
recipient. The bytes must be exactly what websockets writes per recipient, valid for a strict
client, and never reach a recipient that is closing or closed; the frames queued until a
recipient's turn reach it in one write, a message broadcast mid-flush joins the pass under
way, and nothing websockets writes overtakes them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.protocol import State
from websockets.server import ServerProtocol

from chat import prepared, wire
from chat.connection import ChatConnection
from chat.keepalive import Watchdog
from tests.conftest import StartChat
from tests.helpers import (
    TIMEOUT_S,
    Chat,
    MemberList,
    RawClient,
    recv_type,
    server_frames,
    until,
)
from tests.test_slow_consumers import say, server_side


@contextlib.asynccontextmanager
async def three_in_a_room(chat: Chat) -> AsyncIterator[tuple[Any, Any, Any]]:
    """Users a, b and c in one room, each past its welcome and the others' joins, so that
    the next frame any of them reads is whatever the test broadcasts."""
    async with chat.join(sub="a") as a, chat.join(sub="b") as b, chat.join(sub="c") as c:
        for ws in (a, b, c):  # whoever joined after a welcome is in a presence frame after it
            members = MemberList(await recv_type(ws, wire.FRAME_WELCOME))
            await members.follow(ws, lambda m: set(m.members) == {"a", "b", "c"})
        yield a, b, c


def websockets_frame(payload: bytes) -> bytes:
    """What websockets itself writes for send_text(payload) on an open server connection."""
    protocol = ServerProtocol()
    protocol.state = State.OPEN
    protocol.send_text(payload)
    [data] = protocol.data_to_send()
    return data


@pytest.mark.parametrize("text", ["hi", "ü€😀 " * 30, "x" * 70000])  # 7-, 16-, 64-bit lengths
def test_prepared_frame_is_what_websockets_writes(text: str) -> None:
    frame = prepared.prepare(text).frame
    assert frame == websockets_frame(text.encode())
    # And RFC 6455 by hand: FIN + text opcode, no mask bit, the length, the UTF-8 payload.
    payload = text.encode()
    n = len(payload)
    head = (struct.pack("!BB", 0x81, n) if n < 126 else struct.pack("!BBH", 0x81, 126, n)
            if n < 65536 else struct.pack("!BBQ", 0x81, 127, n))  # fmt: skip
    assert frame == head + payload


def record_writes(conn: ChatConnection) -> list[bytes]:
    """Every write to the connection's transport from now on, in order (still written)."""
    writes: list[bytes] = []
    original = conn.transport.write

    def record(data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        original(data)

    conn.transport.write = record  # type: ignore[method-assign]
    return writes


def _has_message(data: bytes) -> bool:
    return any(p.startswith(b'{"type":"message"') for _, p in server_frames(data))


async def read_frames(client: RawClient, count: int | None) -> list[tuple[bytes, bytes]]:
    """The first `count` whole frames the server sent (None: up to the first message frame,
    however many presence frames came before it): (raw bytes, payload) each."""
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(TIMEOUT_S):
        while not _has_message(data) if count is None else len(server_frames(data)) < count:
            chunk = await loop.sock_recv(client.sock, 65536)
            assert chunk, "closed early"
            data += chunk
    frames, i = [], 0
    if count is None:
        found = [p for _, p in server_frames(data)]
        count = next(i for i, p in enumerate(found) if p.startswith(b'{"type":"message"')) + 1
    for _opcode, payload in server_frames(data)[:count]:
        start = data.index(payload, i) if payload else i + 2
        header_len = 2 if len(payload) < 126 else 4 if len(payload) < 65536 else 10
        frames.append((data[start - header_len : start + len(payload)], payload))
        i = start + len(payload)
    return frames


async def test_recipients_get_byte_identical_valid_frames(start_chat: StartChat) -> None:
    chat = await start_chat()
    raws = [await RawClient.open(chat.port, chat.website.mint(sub=f"r{i}")) for i in range(2)]
    try:
        async with chat.join(sub="s1", name="Sender") as sender:
            await recv_type(sender, wire.FRAME_WELCOME)
            text = "prepared ü€😀 " + "x" * 150  # non-ASCII, over 125 bytes: a 16-bit length
            await say(sender, text)
            echoed = await recv_type(sender, wire.FRAME_MESSAGE)  # a strict client parsed it
            # Each raw client: its welcome, presence frames (coalesced: how many depends on
            # the ticks), then the message.
            got = [await read_frames(raws[0], None), await read_frames(raws[1], None)]
    finally:
        for raw in raws:
            raw.close()
    (first, first_payload), (second, _) = got[0][-1], got[1][-1]
    assert first == second  # the same bytes for every recipient
    assert first == prepared.prepare(first_payload.decode()).frame == websockets_frame(
        first_payload
    )
    assert first[0] == 0x81 and not first[1] & 0x80  # FIN + text, unmasked
    message: dict[str, Any] = json.loads(first_payload)
    assert message == echoed and message["text"] == text.strip()


async def test_closing_and_closed_recipients_are_skipped(start_chat: StartChat) -> None:
    chat = await start_chat()
    watchdog = Watchdog(10, 15, 64 * 1024)
    async with three_in_a_room(chat) as (a, _b, c):
        conn_a, conn_b, conn_c = (server_side(chat, u) for u in "abc")
        # b: our close frame is under way (CLOSING), not one more data frame may follow it.
        conn_b.protocol.send_close(wire.CLOSE_GOING_AWAY)
        assert conn_b.protocol.state is State.CLOSING
        writes_to_b = record_writes(conn_b)
        # c: gone altogether (CLOSED), still in the set a broadcast was handed.
        await c.close()
        await until(lambda: conn_c.protocol.state is State.CLOSED, "c to be closed")
        frame = json.dumps({"type": wire.FRAME_MESSAGE, "text": "only a"})
        assert watchdog.broadcast([conn_a, conn_b, conn_c], frame) == 1
        assert json.loads(await a.recv()) == json.loads(frame)
        assert writes_to_b == []
        conn_b.send_data()  # let b's close frame out, so the context manager closes cleanly


async def test_one_iterations_frames_reach_a_recipient_in_one_write(
    start_chat: StartChat,
) -> None:
    chat = await start_chat()
    watchdog = Watchdog(10, 15, 64 * 1024)
    async with chat.join(sub="a") as a:
        await recv_type(a, wire.FRAME_WELCOME)
        conn = server_side(chat, "a")
        writes = record_writes(conn)
        frames = [json.dumps({"type": wire.FRAME_MESSAGE, "text": t}) for t in ("one", "two")]
        for frame in frames:  # two broadcasts in one loop iteration
            assert watchdog.broadcast([conn], frame) == 1
        assert writes == []  # queued, not yet written
        assert conn.unsent_bytes() == sum(len(prepared.prepare(f).frame) for f in frames)
        assert [json.loads(await a.recv()) for _ in frames] == [json.loads(f) for f in frames]
        assert writes == [b"".join(prepared.prepare(f).frame for f in frames)]


async def test_a_message_read_mid_flush_joins_the_pass_under_way(
    start_chat: StartChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush writes FLUSH_SLICE connections, then lets the loop run: a message broadcast
    meanwhile goes out with the first to everyone not yet written, and after it (in order)
    to whoever was, instead of waiting for the whole pass to end."""
    monkeypatch.setattr(prepared, "FLUSH_SLICE", 1)
    chat = await start_chat()
    watchdog = Watchdog(10, 15, 64 * 1024)
    async with three_in_a_room(chat) as (a, b, c):
        conns = [server_side(chat, u) for u in "abc"]
        writes = {user: record_writes(conn) for user, conn in zip("abc", conns, strict=True)}
        first, second = (json.dumps({"type": wire.FRAME_MESSAGE, "text": t})
                         for t in ("first", "second"))  # fmt: skip
        one, two = prepared.prepare(first).frame, prepared.prepare(second).frame
        assert watchdog.broadcast(conns, first) == 3  # queues the flush: a's slice runs next
        # Runs after the first slice (a written), while b and c wait for their turn.
        asyncio.get_running_loop().call_soon(watchdog.broadcast, conns, second)
        for ws in (a, b, c):
            assert [json.loads(await ws.recv()) for _ in "12"] == [json.loads(first),
                                                                  json.loads(second)]
        assert writes == {"a": [one, two], "b": [one + two], "c": [one + two]}


async def test_websockets_own_writes_never_overtake_queued_frames(start_chat: StartChat) -> None:
    chat = await start_chat()
    watchdog = Watchdog(10, 15, 64 * 1024)
    async with chat.join(sub="a") as a:
        await recv_type(a, wire.FRAME_WELCOME)
        conn = server_side(chat, "a")
        frame = json.dumps({"type": wire.FRAME_MESSAGE, "text": "before the close"})
        assert watchdog.broadcast([conn], frame) == 1
        conn.protocol.send_close(wire.CLOSE_GOING_AWAY)  # in the same iteration, queued first
        conn.send_data()
        assert json.loads(await a.recv()) == json.loads(frame)
        with pytest.raises(ConnectionClosedOK):
            await a.recv()
        assert a.close_code == wire.CLOSE_GOING_AWAY


async def test_upgrade_and_welcome_leave_in_one_write(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a room already linked, the 101 waits for the welcome queued in the same loop
    iteration and both go out in one write (ChatConnection._hold_response)."""
    writes: list[bytes] = []
    made = ChatConnection.connection_made

    def counting(self: ChatConnection, transport: asyncio.BaseTransport) -> None:
        made(self, transport)
        write = transport.write  # type: ignore[attr-defined]

        def record(data: bytes) -> None:
            writes.append(bytes(data))
            write(data)

        transport.write = record  # type: ignore[attr-defined]

    async with chat.join(sub="first") as first:  # links the room
        await recv_type(first, wire.FRAME_WELCOME)
        monkeypatch.setattr(ChatConnection, "connection_made", counting)
        async with chat.join(sub="second") as second:
            await recv_type(second, wire.FRAME_WELCOME)
            assert writes[0].startswith(b"HTTP/1.1 101"), writes[:1]
            assert b'"type":"welcome"' in writes[0], writes[:2]
