"""The control channel: the website's signed notices, published on the bus, close a room's
sockets (4404) or a user's (4401), and nothing else; the client port knows no control path."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from chat import channels, wire
from tests.helpers import (
    DROP,
    TIMEOUT_S,
    Chat,
    FakeWebsite,
    MemberList,
    http_get,
    publish,
    recv_join,
    recv_leave,
    recv_type,
    until,
)

ROOM_DELETED, USER_REVOKED = wire.NOTICE_ROOM_DELETED, wire.NOTICE_USER_REVOKED


def rejections(reason: str) -> float:
    value = REGISTRY.get_sample_value("chat_control_rejections_total", {"reason": reason})
    return value or 0.0




async def close_code(ws: ClientConnection) -> int:
    """The code the server closed with (drains frames until then)."""
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                await ws.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def still_open(*sockets: ClientConnection) -> None:
    for ws in sockets:
        await ws.send(json.dumps({"type": wire.FRAME_MESSAGE, "text": "still here"}))
        frame = await recv_type(ws, wire.FRAME_MESSAGE)
        assert frame["text"] == "still here"


async def test_room_notice_closes_that_rooms_sockets_4404_and_nothing_else(
    chat: Chat, website: FakeWebsite
) -> None:
    async with (
        chat.join("doomed", "u1", "Alice") as a1,
        chat.join("doomed", "u1", "Alice") as a2,
        chat.join("doomed", "u2", "Bob") as b,
        chat.join("other", "u1", "Alice") as a_elsewhere,
    ):
        for ws in (a1, a2, b, a_elsewhere):
            await recv_type(ws, wire.FRAME_WELCOME)
        # Alice's welcome came before Cy arrives, so she hears his join (else it could list him).
        async with chat.join("other", "u3", "Cy") as c:
            await recv_type(c, wire.FRAME_WELCOME)
            await recv_join(a_elsewhere, "u3")
            notice = website.notice(ROOM_DELETED, room="doomed")
            assert await chat.notify(notice) == 3
            for ws in (a1, a2, b):
                assert await close_code(ws) == wire.CLOSE_ROOM_DELETED
            await still_open(a_elsewhere, c)
            # Nobody is left to close: a repeated notice is harmless.
            assert await chat.notify(website.notice(ROOM_DELETED, room="doomed")) == 0


async def test_user_notice_closes_the_users_sockets_everywhere_4401(
    chat: Chat, website: FakeWebsite
) -> None:
    async with (
        chat.join("lobby", "u1", "Alice") as lobby1,
        chat.join("lobby", "u1", "Alice") as lobby2,
        chat.join("games", "u1", "Alice") as games,
        chat.join("lobby", "u2", "Bob") as bob,
    ):
        for ws in (lobby1, lobby2, games):
            await recv_type(ws, wire.FRAME_WELCOME)
        # The four handlers run side by side: Bob may be welcomed before Alice has joined, and
        # then hears of her in a presence frame. Either way, his next frame is hers to come.
        bobs = MemberList(await recv_type(bob, wire.FRAME_WELCOME))
        await bobs.follow(bob, lambda seen: "u1" in seen.members)
        # Alice is in "games" (her welcome came) before Bobby arrives, so she hears his join.
        async with chat.join("games", "u22", "Bobby") as bobby:
            assert "u1" in MemberList(await recv_type(bobby, wire.FRAME_WELCOME)).members
            await recv_join(games, "u22")
            await _revoke_alice_everywhere(chat, website, (lobby1, lobby2, games), (bob, bobby))


async def _revoke_alice_everywhere(
    chat: Chat, website: FakeWebsite, hers: tuple[ClientConnection, ...],
    others: tuple[ClientConnection, ...],
) -> None:  # fmt: skip
    assert await chat.notify(website.notice(USER_REVOKED, user="u1")) == 3
    for ws in hers:
        assert await close_code(ws) == wire.CLOSE_SESSION_ENDED
    # The others see her leave (once per room), and stay.
    for ws in others:
        await recv_leave(ws, "u1")
    await still_open(*others)


def _expired(w: FakeWebsite) -> str:
    now = int(time.time())
    return w.notice(ROOM_DELETED, room="kept", iat=now - 60, nbf=now - 60, exp=now - 40)


UNAUTHORIZED: dict[str, Callable[[FakeWebsite], str | None]] = {
    "missing": lambda w: None,
    "empty": lambda w: "",
    "malformed": lambda w: "not-a-jwt",
    "forged": lambda w: w.notice(ROOM_DELETED, room="kept", key=Ed25519PrivateKey.generate()),
    "expired": _expired,
    "lifetime over 30 s": lambda w: w.notice(ROOM_DELETED, room="kept",
                                             exp=int(time.time()) + 31),
    "no jti": lambda w: w.notice(ROOM_DELETED, room="kept", jti=DROP),
    "no nbf": lambda w: w.notice(ROOM_DELETED, room="kept", nbf=DROP),
    "no room": lambda w: w.notice(ROOM_DELETED),
    "wrong audience": lambda w: w.notice(ROOM_DELETED, room="kept", aud="someone-else"),
}  # fmt: skip
FORBIDDEN: dict[str, Callable[[FakeWebsite], str]] = {
    "user token": lambda w: w.mint("kept"),
    "user token, website's sub": lambda w: w.mint("kept", sub="parley-website"),
    "other purpose": lambda w: w.notice("party", room="kept"),
    "notice with a user's sub": lambda w: w.notice(ROOM_DELETED, room="kept", sub="u1"),
}


@pytest.mark.parametrize("case", UNAUTHORIZED)
async def test_bad_notice_is_refused_and_closes_nothing(
    chat: Chat, website: FakeWebsite, case: str
) -> None:
    async with chat.join("kept", "u1") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        assert await chat.notify(UNAUTHORIZED[case](website)) is None
        await still_open(ws)


@pytest.mark.parametrize("case", FORBIDDEN)
async def test_valid_token_of_another_kind_is_refused_wrong_purpose(
    chat: Chat, website: FakeWebsite, case: str
) -> None:
    before = rejections("wrong_purpose")
    async with chat.join("kept", "u1") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        assert await chat.notify(FORBIDDEN[case](website)) is None
        await still_open(ws)
    assert rejections("wrong_purpose") == before + 1


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"[]", b'"a string"', b'{"notice": 42}', b"\xff\xfe",
             b'{"notice": "' + b"x" * 9000 + b'"}'],
)  # fmt: skip
async def test_junk_on_the_control_channel_closes_nothing(chat: Chat, data: bytes) -> None:
    before = rejections("missing_token") + rejections("invalid_token")
    async with chat.join("kept", "u1") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        handled = chat.servers.control.handled
        assert await publish(chat.redis, channels.CONTROL, data) == 1
        await until(lambda: chat.servers.control.handled > handled, "the message to be handled")
        assert chat.servers.control.last is None
        await still_open(ws)
    assert rejections("missing_token") + rejections("invalid_token") == before + 1


@pytest.mark.parametrize("purpose", [ROOM_DELETED, USER_REVOKED])
async def test_a_notice_cannot_open_a_socket(
    chat: Chat, website: FakeWebsite, purpose: str
) -> None:
    notice = website.notice(purpose, room="lobby", user="u1", name="Website")
    for header in (False, True):
        headers = _auth(notice, header)
        assert (await http_get(chat.port, "/ws/rooms/lobby", headers, upgrade=True))[0] == 401


@pytest.mark.parametrize(
    "path",
    ["/internal/rooms/kept/deleted", "//ws/rooms/kept", "/ws/rooms/../internal/rooms/kept/deleted",
     "/ws/rooms/%2e%2e/kept", "/rooms/kept/deleted", "/users/u1/revoked", "//ws/ws/rooms/kept",
     "//x/internal/rooms/kept/deleted"],
)  # fmt: skip
async def test_the_client_port_has_no_control_path(
    chat: Chat, website: FakeWebsite, path: str
) -> None:
    before = REGISTRY.get_sample_value("chat_handshake_rejections_total", {"reason": "not_found"})
    async with chat.join("kept", "u1") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        for token in (website.notice(ROOM_DELETED, room="kept"), website.mint("kept")):
            for upgrade in (False, True):
                status, _ = await http_get(chat.port, path, _auth(token, True), upgrade=upgrade)
                assert status == 404
        await still_open(ws)
    after = REGISTRY.get_sample_value("chat_handshake_rejections_total", {"reason": "not_found"})
    assert after == (before or 0) + 4


async def test_control_call_is_traced_and_logged(
    chat: Chat, website: FakeWebsite, spans: InMemorySpanExporter, log_output: io.StringIO
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with chat.join("doomed", "u1") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        spans.clear()
        notice = website.notice(ROOM_DELETED, room="doomed")
        closed = await chat.notify(notice, traceparent=f"00-{trace_id}-00f067aa0ba902b7-01",
                                   request_id="req-9")  # fmt: skip
        assert closed == 1
        assert await close_code(ws) == wire.CLOSE_ROOM_DELETED

    [request] = [s for s in spans.get_finished_spans() if s.name == "control.message"]
    [command] = [s for s in spans.get_finished_spans() if s.name == "chat.control"]
    assert f"{request.context.trace_id:032x}" == trace_id
    assert command.parent is not None and command.parent.span_id == request.context.span_id
    assert dict(command.attributes or {}) == {
        "chat.control.command": "room_deleted", "chat.room": "doomed",
        "chat.connections_closed": 1,
    }  # fmt: skip
    assert dict(request.attributes or {})["chat.request_id"] == "req-9"
    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    [deleted] = [r for r in records if r["event"] == "room deleted"]
    assert (deleted["room"], deleted["connections_closed"]) == ("doomed", 1)
    assert deleted["request_id"] == "req-9" and deleted["trace_id"] == trace_id
    assert notice not in log_output.getvalue()


async def test_user_revocation_is_logged(
    chat: Chat, website: FakeWebsite, log_output: io.StringIO
) -> None:
    async with chat.join("lobby", "u7") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        assert await chat.notify(website.notice(USER_REVOKED, user="u7")) == 1
        assert await close_code(ws) == wire.CLOSE_SESSION_ENDED
    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    [revoked] = [r for r in records if r["event"] == "user revoked"]
    assert (revoked["user_id"], revoked["connections_closed"]) == ("u7", 1)


def _auth(token: str, header: bool) -> dict[str, str]:
    if header:
        return {"Authorization": f"Bearer {token}"}
    return {"Sec-WebSocket-Protocol": f"{wire.SUBPROTOCOL}, {wire.BEARER_PREFIX}{token}"}
