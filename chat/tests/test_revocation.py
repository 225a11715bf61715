"""Revocation: a user_revoked notice closes the user's sockets (only one session's with a
`sid`), and for a while refuses that user's (session's) older tokens with 401 revoked_token;
after the window they are judged on their own again."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from chat import wire
from chat.auth import Identity
from chat.revocations import Revocations
from tests.conftest import StartChat
from tests.helpers import Chat, recv_json, recv_type
from tests.test_control import close_code

USER_REVOKED = wire.NOTICE_USER_REVOKED
SID_A, SID_B = "a1b2c3d4e5f60718", "0f1e2d3c4b5a6978"


def revoked_rejections() -> float:
    labels = {"reason": "revoked_token"}
    return REGISTRY.get_sample_value("chat_handshake_rejections_total", labels) or 0.0


async def revoke(chat: Chat, user: str, **claims: Any) -> int | None:
    """Sockets closed by the notice; None if it was refused."""
    return await chat.notify(chat.website.notice(USER_REVOKED, user=user, **claims))


async def still_open(*sockets: ClientConnection) -> None:
    """Each socket still carries messages (presence frames on the way are skipped)."""
    for ws in sockets:
        await ws.send(json.dumps({"type": wire.FRAME_MESSAGE, "text": "still here"}))
        while (frame := await recv_json(ws))["type"] != wire.FRAME_MESSAGE:
            assert frame["type"] == wire.FRAME_PRESENCE, frame
        assert frame["text"] == "still here"


async def status(chat: Chat, token: str) -> int:
    try:
        async with chat.connect("lobby", token) as ws:
            await recv_type(ws, wire.FRAME_WELCOME)
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_revocation_with_sid_closes_only_that_sessions_sockets(chat: Chat) -> None:
    w = chat.website
    async with (
        chat.connect("lobby", w.mint(sub="u1", sid=SID_A)) as a1,
        chat.connect("other", w.mint("other", sub="u1", sid=SID_A)) as a2,
        chat.connect("lobby", w.mint(sub="u1", sid=SID_B)) as b,
        chat.connect("lobby", w.mint(sub="u1")) as no_sid,  # tokens without a sid still work
        chat.connect("lobby", w.mint(sub="u2", sid=SID_A)) as other_user,
    ):
        for ws in (a1, a2, b, no_sid, other_user):
            await recv_type(ws, wire.FRAME_WELCOME)
        assert await revoke(chat, "u1", sid=SID_A) == 2
        assert await close_code(a1) == wire.CLOSE_SESSION_ENDED
        assert await close_code(a2) == wire.CLOSE_SESSION_ENDED
        await still_open(b, no_sid, other_user)


async def test_revocation_without_sid_closes_every_socket_of_the_user(chat: Chat) -> None:
    w = chat.website
    async with (
        chat.connect("lobby", w.mint(sub="u1", sid=SID_A)) as a,
        chat.connect("other", w.mint("other", sub="u1")) as plain,
        chat.connect("lobby", w.mint(sub="u2")) as other_user,
    ):
        for ws in (a, plain, other_user):
            await recv_type(ws, wire.FRAME_WELCOME)
        assert await revoke(chat, "u1") == 2
        assert await close_code(a) == wire.CLOSE_SESSION_ENDED
        assert await close_code(plain) == wire.CLOSE_SESSION_ENDED
        await still_open(other_user)


async def test_older_tokens_of_the_revoked_session_get_401_revoked_token(chat: Chat) -> None:
    w = chat.website
    now = int(time.time())
    old_a = w.mint(sub="u1", sid=SID_A, iat=now - 1)
    old_b = w.mint(sub="u1", sid=SID_B, iat=now - 1)
    before = revoked_rejections()
    assert (await revoke(chat, "u1", sid=SID_A)) is not None
    assert await status(chat, old_a) == 401
    assert revoked_rejections() == before + 1
    # Held the other way: another session, another user, a token issued after.
    assert await status(chat, old_b) == 101
    assert await status(chat, w.mint(sub="u2", sid=SID_A, iat=now - 1)) == 101
    assert await status(chat, w.mint(sub="u1", sid=SID_A, iat=now + 2, nbf=now)) == 101


async def test_a_user_wide_revocation_refuses_every_older_token_of_the_user(chat: Chat) -> None:
    w = chat.website
    now = int(time.time())
    tokens = [w.mint(sub="u1", sid=SID_A, iat=now - 1), w.mint(sub="u1", iat=now - 1)]
    assert (await revoke(chat, "u1")) is not None
    assert [await status(chat, t) for t in tokens] == [401, 401]
    assert await status(chat, w.mint(sub="u1", iat=now + 2, nbf=now)) == 101


async def test_revocations_are_forgotten_after_the_window(start_chat: StartChat) -> None:
    chat = await start_chat(revocation_memory_s=0.5)
    old = chat.website.mint(sub="u1", sid=SID_A, iat=int(time.time()) - 1)
    assert (await revoke(chat, "u1", sid=SID_A)) is not None
    assert await status(chat, old) == 401
    assert len(chat.revocations) == 1
    await asyncio.sleep(0.6)
    assert len(chat.revocations) == 0
    assert await status(chat, old) == 101


@pytest.mark.parametrize("sid", ["", "x" * 65, "a/b", "ab cd", 12345])
async def test_a_malformed_sid_is_refused_in_tokens_and_notices(chat: Chat, sid: object) -> None:
    assert await status(chat, chat.website.mint(sub="u1", sid=sid)) == 401
    assert (await revoke(chat, "u1", sid=sid)) is None


def test_revocation_memory_by_clock() -> None:
    now = [1000.0]
    memory = Revocations(125, clock=lambda: now[0])
    memory.revoke("u1", "s1")
    memory.revoke("u2")

    def ident(user: str, sid: str | None, iat: float) -> Identity:
        return Identity(user, "N", "lobby", issued_at=iat, sid=sid)

    assert memory.refuses(ident("u1", "s1", 1000))  # issued in the same instant: refused
    assert not memory.refuses(ident("u1", "s1", 1001))
    assert not memory.refuses(ident("u1", "s2", 900))
    assert not memory.refuses(ident("u1", None, 900))
    assert memory.refuses(ident("u2", "any", 999)) and memory.refuses(ident("u2", None, 999))
    now[0] = 1124.0
    assert len(memory) == 2
    now[0] = 1125.5
    assert len(memory) == 0
    assert not memory.refuses(ident("u1", "s1", 900))
