"""The website's room-deletion notice closes the room's sockets with 4404, and nothing else."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers import DROP, Chat, FakeWebsite, recv_type


def notify(chat: Chat, room: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{chat.port}/internal/rooms/{room}/deleted")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def notice(website: FakeWebsite, room: str, **overrides: object) -> str:
    claims = {"sub": "parley-website", "purpose": "room_deleted", "name": DROP, **overrides}
    return website.mint(room, **claims)  # type: ignore[arg-type]


async def call(chat: Chat, room: str, token: str | None) -> tuple[int, str]:
    return await asyncio.to_thread(notify, chat, room, token)


async def test_notice_closes_every_socket_of_the_room_with_4404(
    chat: Chat, website: FakeWebsite
) -> None:
    async with (
        chat.join("doomed", "u1", "Alice") as a1,
        chat.join("doomed", "u1", "Alice") as a2,
        chat.join("doomed", "u2", "Bob") as b,
        chat.join("other", "u3", "Cy") as c,
    ):
        for ws in (a1, a2, b, c):
            await recv_type(ws, "welcome")
        status, body = await call(chat, "doomed", notice(website, "doomed"))
        assert (status, body) == (200, "closed 3\n")
        for ws in (a1, a2, b):
            with pytest.raises(ConnectionClosed) as info:
                async with asyncio.timeout(3):
                    while True:
                        await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4404
        await c.send('{"type": "message", "text": "still here"}')
        assert (await recv_type(c, "message"))["text"] == "still here"


async def test_notice_needs_the_websites_signed_purpose(chat: Chat, website: FakeWebsite) -> None:
    async with chat.join("kept", "u1", "Alice") as ws:
        await recv_type(ws, "welcome")
        assert (await call(chat, "kept", None))[0] == 401
        # A user's own chat token cannot close a room.
        assert (await call(chat, "kept", website.mint("kept")))[0] == 403
        assert (await call(chat, "kept", notice(website, "elsewhere")))[0] == 403
        forged = notice(website, "kept", key=Ed25519PrivateKey.generate())
        assert (await call(chat, "kept", forged))[0] == 401
        await ws.send('{"type": "message", "text": "still open"}')
        assert (await recv_type(ws, "message"))["text"] == "still open"


async def test_a_notice_cannot_open_a_socket(chat: Chat, website: FakeWebsite) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with chat.connect("room", notice(website, "room", name="Website")):
            pass
    assert info.value.response.status_code == 401
