"""The per-user connection cap through nginx (MAX_CONNECTIONS_PER_USER, default 16): the 17th
socket of a user, in any room or tab, is closed with 4429 right after the upgrade, before
welcome and without a join; held, and released once one of the user's sockets closes.
(The per-node cap, 20000 by default, is proven in the chat's own tests.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from support import WAIT, Client, Peer, Settings, ws_connect

CAP = 16
CLOSE_TOO_MANY_CONNECTIONS = 4429
CHAT_METRICS = "http://chat:9100/metrics"


async def user_cap_closes() -> float:
    async with httpx.AsyncClient(trust_env=False, timeout=WAIT) as http:
        text = (await http.get(CHAT_METRICS)).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "chat_user_cap_closes_total":
                return sample.value
    raise AssertionError("chat_user_cap_closes_total not exported")


async def first_event(ws: ClientConnection) -> int | str:
    """The close code if the server closes before any frame, else the first frame's type."""
    try:
        async with asyncio.timeout(WAIT):
            frame = json.loads(await ws.recv())
    except ConnectionClosed as exc:
        if exc.rcvd is None:
            raise AssertionError("closed without a close frame") from exc
        return exc.rcvd.code
    kind: str = frame["type"]
    return kind


@contextlib.asynccontextmanager
async def sockets(settings: Settings, client: Client, rooms: list[str],
                  mode: str = "subprotocol") -> AsyncIterator[list[ClientConnection]]:  # fmt: skip
    opened: list[ClientConnection] = []
    try:
        for room in rooms:
            token = await client.token(room)
            opened.append(await ws_connect(settings, token["token"], token["ws_url"], mode=mode))
        yield opened
    finally:
        for ws in opened:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await ws.close()


@pytest.fixture
async def two_rooms(alice: Client) -> tuple[str, str]:
    return (await alice.create_room())[0], (await alice.create_room())[0]


def at_cap(
    settings: Settings, alice: Client, rooms: tuple[str, str]
) -> contextlib.AbstractAsyncContextManager[list[ClientConnection]]:
    """CAP of alice's sockets, half in each room (the cap counts across rooms and tabs)."""
    return sockets(settings, alice, [rooms[i % 2] for i in range(CAP)])


@pytest.mark.parametrize("mode", ["subprotocol", "bearer"])
@pytest.mark.parametrize("which", [0, 1], ids=["in a room with tabs open", "in the other room"])
async def test_the_17th_socket_is_closed_4429_before_welcome(
    alice: Client, two_rooms: tuple[str, str], settings: Settings, mode: str, which: int
) -> None:
    async with at_cap(settings, alice, two_rooms) as tabs:
        assert [await first_event(ws) for ws in tabs] == ["welcome"] * CAP
        before = await user_cap_closes()
        async with sockets(settings, alice, [two_rooms[which]], mode) as [extra]:
            assert await first_event(extra) == CLOSE_TOO_MANY_CONNECTIONS
            assert extra.close_reason == "too many connections"
        assert await user_cap_closes() == before + 1


async def test_no_join_is_broadcast_for_a_capped_socket(
    alice: Client, bob: Client, two_rooms: tuple[str, str], settings: Settings
) -> None:
    room = two_rooms[0]
    token = await bob.token(room)
    watcher = Peer(await ws_connect(settings, token["token"], token["ws_url"]), "bob")
    try:
        assert (await watcher.recv())["type"] == "welcome"
        async with at_cap(settings, alice, two_rooms) as tabs:
            assert [await first_event(ws) for ws in tabs] == ["welcome"] * CAP
            joined, _ = await watcher.recv_until(lambda f: f["type"] == "presence")
            assert [u["name"] for u in joined["joined"]] == [alice.name], joined
            async with sockets(settings, alice, [room]) as [extra]:
                assert await first_event(extra) == CLOSE_TOO_MANY_CONNECTIONS
            marker = await watcher.say("marker after the capped socket")
            frame = await watcher.recv()
            assert (frame["type"], frame.get("client_id")) == ("message", marker), frame
    finally:
        await watcher.close()


async def test_the_cap_is_released_when_a_socket_closes(
    alice: Client, two_rooms: tuple[str, str], settings: Settings
) -> None:
    async with at_cap(settings, alice, two_rooms) as tabs:
        assert [await first_event(ws) for ws in tabs] == ["welcome"] * CAP
        await tabs[0].close()
        # The chat releases the place once its side of the socket is closed: bounded retries.
        async with asyncio.timeout(WAIT):
            while True:
                async with sockets(settings, alice, [two_rooms[1]]) as [again]:
                    if await first_event(again) == "welcome":
                        break
                await asyncio.sleep(0.1)


async def test_another_user_is_not_capped_by_alices_sockets(
    alice: Client, bob: Client, two_rooms: tuple[str, str], settings: Settings
) -> None:
    async with at_cap(settings, alice, two_rooms) as tabs:
        assert [await first_event(ws) for ws in tabs] == ["welcome"] * CAP
        async with sockets(settings, bob, [two_rooms[0]]) as [bobs]:
            assert await first_event(bobs) == "welcome"
