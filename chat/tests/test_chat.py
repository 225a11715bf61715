"""Rooms, presence, messages, errors, limits and metrics, through real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from chat import wire
from tests.conftest import StartChat
from tests.helpers import Chat, recv_join, recv_json, recv_leave, recv_type

MAX_TEXT = wire.MAX_TEXT_CHARS  # 2000
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ALICE = {"id": "u1", "name": "Alice"}
BOB = {"id": "u2", "name": "Bob"}


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def say(ws: ClientConnection, text: str, client_id: str | None = None) -> None:
    frame = {"type": wire.FRAME_MESSAGE, "text": text}
    if client_id is not None:
        frame["client_id"] = client_id
    await ws.send(json.dumps(frame))


async def closed_with(ws: ClientConnection) -> int | None:
    """Drains frames until the server closes; returns the close code it sent."""
    async with asyncio.timeout(5):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code


async def test_welcome_join_leave_once_per_user(chat: Chat) -> None:
    async with chat.join(sub="u1", name="Alice") as alice:
        welcome = await recv_type(alice, wire.FRAME_WELCOME)
        assert welcome == {"type": wire.FRAME_WELCOME, "room": "lobby", "you": ALICE,
                           "members": [ALICE]}  # fmt: skip

        async with chat.join(sub="u2", name="Bob") as bob1:
            welcome = await recv_type(bob1, wire.FRAME_WELCOME)
            assert welcome["you"] == BOB
            assert welcome["members"] == [ALICE, BOB]
            join = await recv_type(alice, wire.FRAME_PRESENCE)
            assert (join["joined"], join["left"]) == ([BOB], []) and TS.fullmatch(join["ts"])

            async with chat.join(sub="u2", name="Bob") as bob2:
                welcome = await recv_type(bob2, wire.FRAME_WELCOME)
                assert welcome["members"] == [ALICE, BOB]  # unique by user
            # Bob's second tab came and went: Alice's next frame is this marker, no join/leave.
            await say(bob1, "marker")
            assert (await recv_type(alice, wire.FRAME_MESSAGE))["text"] == "marker"
            assert (await recv_type(bob1, wire.FRAME_MESSAGE))["text"] == "marker"

        leave = await recv_type(alice, wire.FRAME_PRESENCE)
        assert (leave["joined"], leave["left"]) == ([], [BOB]) and TS.fullmatch(leave["ts"])
        assert "email" not in json.dumps([welcome, join, leave])


async def test_messages_both_ways_and_rooms_are_isolated(chat: Chat) -> None:
    async with (
        chat.join("lobby", "u1", "Alice") as alice,
        chat.join("lobby", "u2", "Bob") as bob,
        chat.join("elsewhere", "u3", "Carol") as carol,
    ):
        await recv_type(alice, wire.FRAME_WELCOME)
        await recv_join(alice, "u2")
        await recv_type(bob, wire.FRAME_WELCOME)
        await recv_type(carol, wire.FRAME_WELCOME)

        await say(alice, "  hello bob  ", client_id="c-1")
        for ws in (alice, bob):
            msg = await recv_type(ws, wire.FRAME_MESSAGE)
            assert msg["text"] == "hello bob"  # trimmed
            assert msg["from"] == ALICE and msg["room"] == "lobby"
            assert re.fullmatch(r"[0-9a-f]{32}", msg["id"]) and TS.fullmatch(msg["ts"])
            assert msg["client_id"] == "c-1"  # the sender matches it to its pending message

        await say(bob, "hi alice")
        for ws in (alice, bob):
            msg = await recv_type(ws, wire.FRAME_MESSAGE)
            assert (msg["text"], msg["from"]) == ("hi alice", BOB)
            assert "client_id" not in msg

        # Carol's first frame since her welcome is her own message: nothing leaked across rooms.
        await say(carol, "anyone?")
        msg = await recv_type(carol, wire.FRAME_MESSAGE)
        assert (msg["text"], msg["room"], msg["from"]["id"]) == ("anyone?", "elsewhere", "u3")


async def test_senders_other_tabs_receive_its_messages(chat: Chat) -> None:
    async with chat.join() as tab1, chat.join() as tab2:
        await recv_type(tab1, wire.FRAME_WELCOME)
        await recv_type(tab2, wire.FRAME_WELCOME)
        await say(tab1, "from tab 1", client_id="x")
        assert (await recv_type(tab1, wire.FRAME_MESSAGE))["client_id"] == "x"
        assert (await recv_type(tab2, wire.FRAME_MESSAGE))["text"] == "from tab 1"


# Frames as a client would write them: raw text, so the literals are the point.
BAD_FRAMES: dict[str, str | bytes] = {
    "not json": "hello",
    "array": "[1, 2]",
    "string": '"message"',
    "unknown type": '{"type": "shout", "text": "x"}',
    "no type": '{"text": "x"}',
    "no text": '{"type": "message"}',
    "text not a string": '{"type": "message", "text": 5}',
    "blank text": '{"type": "message", "text": " \\n\\t "}',
    "empty text": '{"type": "message", "text": ""}',
    "client_id not a string": '{"type": "message", "text": "x", "client_id": 5}',
    "client_id too long": json.dumps(
        {"type": "message", "text": "x", "client_id": "c" * (wire.MAX_CLIENT_ID_CHARS + 1)}
    ),
    "deeply nested": "[" * 5000 + "]" * 5000,
    "binary frame": b'{"type": "message", "text": "x"}',
}


@pytest.mark.parametrize("case", BAD_FRAMES)
async def test_bad_frames_get_an_error_and_the_connection_stays_open(chat: Chat, case: str) -> None:
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        await ws.send(BAD_FRAMES[case])
        error = await recv_type(ws, wire.FRAME_ERROR)
        assert error["code"] == wire.ERROR_BAD_MESSAGE and error["detail"]
        await say(ws, "still here")
        assert (await recv_type(ws, wire.FRAME_MESSAGE))["text"] == "still here"


async def test_errors_echo_a_valid_client_id(chat: Chat) -> None:
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        await say(ws, "   ", client_id="c-9")
        error = await recv_type(ws, wire.FRAME_ERROR)
        assert (error["code"], error["client_id"]) == (wire.ERROR_BAD_MESSAGE, "c-9")


async def test_text_length_limit_is_2000_characters(chat: Chat) -> None:
    async with chat.join("lobby", "u1") as alice, chat.join("lobby", "u2") as bob:
        await recv_type(alice, wire.FRAME_WELCOME)
        await recv_join(alice, "u2")
        await recv_type(bob, wire.FRAME_WELCOME)

        await say(alice, "é" * (MAX_TEXT + 1), client_id="long")
        error = await recv_type(alice, wire.FRAME_ERROR)
        assert (error["code"], error["client_id"]) == (wire.ERROR_TOO_LONG, "long")

        await say(alice, "é" * MAX_TEXT + "   ")  # trimmed before counting
        for ws in (alice, bob):  # Bob never saw the rejected one
            assert (await recv_type(ws, wire.FRAME_MESSAGE))["text"] == "é" * MAX_TEXT


async def test_frame_over_16_kib_closes_1009(chat: Chat) -> None:
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        await ws.send("x" * (wire.MAX_FRAME_BYTES + 1))
        assert await closed_with(ws) == wire.CLOSE_MESSAGE_TOO_BIG


async def test_frame_of_16_kib_is_read(chat: Chat) -> None:
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        await ws.send(" " * wire.MAX_FRAME_BYTES)  # whitespace: valid size, answered as bad JSON
        assert (await recv_type(ws, wire.FRAME_ERROR))["code"] == wire.ERROR_BAD_MESSAGE


async def test_rate_limit_rejects_without_broadcasting(start_chat: StartChat) -> None:
    chat = await start_chat(rate_per_s=0.01, rate_burst=3)
    async with chat.join("lobby", "u1") as alice, chat.join("lobby", "u2") as bob:
        await recv_type(alice, wire.FRAME_WELCOME)
        await recv_join(alice, "u2")
        await recv_type(bob, wire.FRAME_WELCOME)
        for i in range(5):
            await say(alice, f"m{i}", client_id=f"c{i}")
        frames = [await recv_json(alice) for _ in range(5)]
        assert [f["type"] for f in frames] == [wire.FRAME_MESSAGE] * 3 + [wire.FRAME_ERROR] * 2
        assert [f["code"] for f in frames[3:]] == [wire.ERROR_RATE_LIMITED] * 2
        assert [f["client_id"] for f in frames[3:]] == ["c3", "c4"]
        # Bob got exactly the three accepted messages, then his own.
        await say(bob, "bob")
        texts = [(await recv_type(bob, wire.FRAME_MESSAGE))["text"] for _ in range(4)]
        assert texts == ["m0", "m1", "m2", "bob"]


async def test_flooding_closes_1008_with_default_limits(chat: Chat) -> None:
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        # Default: burst 20, then 50 rejections within 10 s close the connection.
        for i in range(100):
            try:
                await say(ws, f"flood {i}")
            except ConnectionClosed:
                break
        types: list[str] = []
        async with asyncio.timeout(5):
            try:
                while True:
                    types.append(json.loads(await ws.recv())["type"])
            except ConnectionClosed:
                pass
        assert ws.close_code == wire.CLOSE_POLICY_VIOLATION
        # The burst, plus what refilled meanwhile.
        assert 20 <= types.count(wire.FRAME_MESSAGE) <= 22
        assert types.count(wire.FRAME_ERROR) == 50


async def test_metrics_follow_connections_and_messages(chat: Chat) -> None:
    connections = metric("chat_connections_active")
    rooms = metric("chat_rooms_active")
    received = metric("chat_messages_received_total")
    delivered = metric("chat_messages_delivered_total")
    broadcasts = metric("chat_broadcast_duration_seconds_count")
    lifetimes = metric("chat_connection_duration_seconds_count")

    async with chat.join("lobby", "u1") as alice, chat.join("lobby", "u2") as bob:
        await recv_type(alice, wire.FRAME_WELCOME)
        await recv_join(alice, "u2")
        await recv_type(bob, wire.FRAME_WELCOME)
        assert metric("chat_connections_active") == connections + 2
        assert metric("chat_rooms_active") == rooms + 1

        before = set(chat.server.handler_tasks)
        async with chat.join("other-room", "u3") as carol:
            await recv_type(carol, wire.FRAME_WELCOME)
            assert metric("chat_connections_active") == connections + 3
            assert metric("chat_rooms_active") == rooms + 2
            (carol_task,) = chat.server.handler_tasks - before
        async with asyncio.timeout(3):
            await carol_task  # the server's side of Carol's close is done
        assert metric("chat_connections_active") == connections + 2
        assert metric("chat_rooms_active") == rooms + 1

        await say(alice, "count me")
        await recv_type(alice, wire.FRAME_MESSAGE)
        await recv_type(bob, wire.FRAME_MESSAGE)
        assert metric("chat_messages_received_total") == received + 1
        assert metric("chat_messages_delivered_total") == delivered + 2
        assert metric("chat_broadcast_duration_seconds_count") == broadcasts + 1

        await bob.close()
        await recv_leave(alice, "u2")  # the gauges were updated before it, at the close
        assert metric("chat_connections_active") == connections + 1

    tasks = set(chat.server.handler_tasks)
    if tasks:
        await asyncio.wait(tasks, timeout=3)
    assert metric("chat_connections_active") == connections
    assert metric("chat_rooms_active") == rooms
    assert metric("chat_connection_duration_seconds_count") == lifetimes + 3


async def test_server_close_sends_1001(start_chat: StartChat) -> None:
    chat = await start_chat()
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        chat.server.close()
        assert await closed_with(ws) == wire.CLOSE_GOING_AWAY
    await chat.server.wait_closed()
