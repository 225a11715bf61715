"""Connection caps, held and released: per user across rooms and tabs (4429 right after the
upgrade, before welcome, no join) and per node (503 node_full with Retry-After, before the
upgrade)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from contextlib import AsyncExitStack
from typing import Any

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat import wire
from tests.conftest import StartChat
from tests.helpers import TIMEOUT_S, Chat, recv_join, recv_type, until


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def first_event(ws: ClientConnection) -> int | str:
    """The close code if the server closes before any frame, else the first frame's type."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            frame = json.loads(await ws.recv())
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code
    kind: str = frame["type"]
    return kind


async def open_tabs(stack: AsyncExitStack, chat: Chat, rooms: list[str],
                    sub: str = "u1") -> list[ClientConnection]:  # fmt: skip
    tabs = []
    for room in rooms:
        ws = await stack.enter_async_context(chat.join(room, sub))
        await recv_type(ws, wire.FRAME_WELCOME)
        tabs.append(ws)
    return tabs


async def test_user_over_the_cap_is_closed_4429_before_welcome_without_join(
    start_chat: StartChat,
) -> None:
    chat = await start_chat(max_connections_per_user=3)
    before = metric("chat_user_cap_closes_total")
    async with AsyncExitStack() as stack:
        watcher = await stack.enter_async_context(chat.join("lobby", "w", "Watcher"))
        await recv_type(watcher, wire.FRAME_WELCOME)
        # Across rooms and tabs: two in another room, one in the watcher's.
        tabs = await open_tabs(stack, chat, ["other", "other", "lobby"])
        await recv_join(watcher, "u1")
        for room in ("lobby", "third"):
            async with chat.join(room, "u1") as fourth:
                assert await first_event(fourth) == wire.CLOSE_TOO_MANY_CONNECTIONS
                assert fourth.close_reason == "too many connections"
        assert metric("chat_user_cap_closes_total") == before + 2
        # Another user is not capped by u1's sockets.
        async with chat.join("lobby", "u2") as other_user:
            assert await first_event(other_user) == wire.FRAME_WELCOME
        # No join and no leave for the refused sockets: only u2 came and went (a join and a
        # leave, or nothing at all when both fell within one presence tick).
        frames: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                while True:
                    frames.append(await recv_type(watcher, wire.FRAME_PRESENCE))
        named = [u["id"] for f in frames for u in f["joined"] + f["left"]]
        assert named in ([], ["u2", "u2"]), frames

        # Released: once one of u1's sockets closes, u1 may open one again.
        await tabs[0].close()
        await until(lambda: len(chat.server.connections) == 3, "the close to land")
        async with chat.join("lobby", "u1") as again:
            assert await first_event(again) == wire.FRAME_WELCOME


async def test_simultaneous_tabs_never_exceed_the_user_cap(start_chat: StartChat) -> None:
    chat = await start_chat(max_connections_per_user=4)
    async with AsyncExitStack() as stack:
        clients = await asyncio.gather(
            *(stack.enter_async_context(chat.join(f"r{i % 3}aa", "u1")) for i in range(10))
        )
        outcomes = await asyncio.gather(*(first_event(ws) for ws in clients))
    assert sorted(outcomes, key=str) == [wire.CLOSE_TOO_MANY_CONNECTIONS] * 6 + ["welcome"] * 4


async def test_node_full_is_503_with_retry_after_and_released_on_close(
    start_chat: StartChat,
) -> None:
    chat = await start_chat(max_connections=2)
    before = metric("chat_handshake_rejections_total", reason="node_full")
    async with chat.join(sub="a") as a, chat.join(sub="b") as b:
        await recv_type(a, wire.FRAME_WELCOME)
        await recv_type(b, wire.FRAME_WELCOME)
        assert chat.node_cap.count == 2
        with pytest.raises(InvalidStatus) as info:
            async with chat.join(sub="c"):
                pass
        response = info.value.response
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "10"
        assert metric("chat_handshake_rejections_total", reason="node_full") == before + 1
        await b.close()
        await until(lambda: chat.node_cap.count == 1, "the place to be released")
        async with chat.join(sub="c") as c:
            await recv_type(c, wire.FRAME_WELCOME)
    await until(lambda: chat.node_cap.count == 0, "every place to be released")


async def test_refused_and_failed_upgrades_take_no_place(start_chat: StartChat) -> None:
    chat = await start_chat(max_connections=1)
    for _ in range(3):
        with pytest.raises(InvalidStatus):  # 401: never admitted
            async with chat.connect("lobby", "junk"):
                pass
    # Admitted by the gate, then refused by websockets (a malformed subprotocol header).
    token = chat.website.mint()
    with pytest.raises(InvalidStatus) as info:
        async with chat.connect(header=True, token=token,
                                additional_headers={"Sec-WebSocket-Protocol": "a b"}):  # fmt: skip
            pass
    assert info.value.response.status_code == 400
    await until(lambda: chat.node_cap.count == 0, "the failed upgrade's place to be released")
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)


async def test_user_cap_closes_leave_the_node_count_right(start_chat: StartChat) -> None:
    chat = await start_chat(max_connections_per_user=1, max_connections=5)
    async with chat.join(sub="u1") as first:
        await recv_type(first, wire.FRAME_WELCOME)
        for _ in range(4):
            async with chat.join(sub="u1") as extra:
                assert await first_event(extra) == wire.CLOSE_TOO_MANY_CONNECTIONS
        await until(lambda: chat.node_cap.count == 1, "refused sockets' places to be released")
