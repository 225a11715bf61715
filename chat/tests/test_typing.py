"""The typing indicator: relayed to the others in the room, never echoed, at most one per
sender connection every 2 s, never answered with an error (docs/design.md §5)."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import ClientConnection

from chat import wire
from chat.typing_indicator import TYPING_INTERVAL_S, TypingGate, is_typing
from tests.helpers import Chat, recv_join, recv_json, recv_type

TYPING = json.dumps({"type": wire.FRAME_TYPING})


async def nothing_within(ws: ClientConnection, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            frame = await ws.recv()
    except TimeoutError:
        return
    raise AssertionError(f"unexpected frame: {frame!r}")


async def test_typing_reaches_the_others_once_per_interval_and_never_the_sender(
    chat: Chat,
) -> None:
    async with chat.join(sub="u1", name="Ann") as ann, chat.join(sub="u1", name="Ann") as ann2:
        await recv_type(ann, wire.FRAME_WELCOME)
        await recv_type(ann2, wire.FRAME_WELCOME)
        async with chat.join(sub="u2", name="Bob") as bob:
            await recv_type(bob, wire.FRAME_WELCOME)
            for ws in (ann, ann2):
                await recv_join(ws, "u2")

            for _ in range(5):  # a burst: one goes through, the rest are dropped silently
                await ann.send(TYPING)
            assert await recv_json(bob) == {
                "type": wire.FRAME_TYPING, "user": {"id": "u1", "name": "Ann"}
            }  # fmt: skip
            await nothing_within(bob, 0.5)
            await nothing_within(ann, 0.1)  # never echoed, never an error
            await nothing_within(ann2, 0.1)  # nor shown in the sender's other tab

            # The socket stays usable, and the next typing frame after the interval passes.
            await asyncio.sleep(TYPING_INTERVAL_S)
            await ann.send(TYPING)
            assert (await recv_type(bob, wire.FRAME_TYPING))["user"]["id"] == "u1"


async def test_typing_from_the_only_member_goes_nowhere(chat: Chat) -> None:
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        await ws.send(TYPING)
        await ws.send(json.dumps({"type": wire.FRAME_MESSAGE, "text": "after typing"}))
        assert (await recv_type(ws, wire.FRAME_MESSAGE))["text"] == "after typing"


def test_typing_gate_allows_one_per_interval() -> None:
    now = [100.0]
    gate = TypingGate(2.0, clock=lambda: now[0])
    assert gate.allow()
    now[0] += 1.9
    assert not gate.allow()
    now[0] += 0.2
    assert gate.allow()


def test_only_typing_frames_are_typing() -> None:
    assert is_typing('{"type": "typing"}')
    for raw in ('{"type": "shout"}', "typing", "[]", b'{"type": "typing"}',
                '{"type": "typing", "pad": "' + "x" * 300 + '"}'):  # fmt: skip
        assert not is_typing(raw)
