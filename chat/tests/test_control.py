"""The control port: the website's signed notices close a room's sockets (4404) or a user's
(4401), and nothing else; the client port knows no control path."""

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

from chat import wire
from tests.helpers import DROP, TIMEOUT_S, Chat, FakeWebsite, http_get, recv_type

ROOM_DELETED, USER_REVOKED = wire.NOTICE_ROOM_DELETED, wire.NOTICE_USER_REVOKED


def rejections(reason: str) -> float:
    value = REGISTRY.get_sample_value("chat_control_rejections_total", {"reason": reason})
    return value or 0.0


async def call(chat: Chat, path: str, token: str | None) -> tuple[int, str]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return await http_get(chat.control_port, path, headers)


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
        chat.join("other", "u3", "Cy") as c,
    ):
        for ws in (a1, a2, b, a_elsewhere, c):
            await recv_type(ws, wire.FRAME_WELCOME)
        await recv_type(a_elsewhere, wire.FRAME_JOIN)  # Cy joined after her
        notice = website.notice(ROOM_DELETED, room="doomed")
        assert await call(chat, "/rooms/doomed/deleted", notice) == (200, "closed 3\n")
        for ws in (a1, a2, b):
            assert await close_code(ws) == wire.CLOSE_ROOM_DELETED
        await still_open(a_elsewhere, c)
        # Nobody is left to close: a repeated notice is harmless.
        again = website.notice(ROOM_DELETED, room="doomed")
        assert await call(chat, "/rooms/doomed/deleted", again) == (200, "closed 0\n")


async def test_user_notice_closes_the_users_sockets_everywhere_4401(
    chat: Chat, website: FakeWebsite
) -> None:
    async with (
        chat.join("lobby", "u1", "Alice") as lobby1,
        chat.join("lobby", "u1", "Alice") as lobby2,
        chat.join("games", "u1", "Alice") as games,
        chat.join("lobby", "u2", "Bob") as bob,
        chat.join("games", "u22", "Bobby") as bobby,
    ):
        for ws in (lobby1, lobby2, games, bob, bobby):
            await recv_type(ws, wire.FRAME_WELCOME)
        await recv_type(games, wire.FRAME_JOIN)
        notice = website.notice(USER_REVOKED, user="u1")
        assert await call(chat, "/users/u1/revoked", notice) == (200, "closed 3\n")
        for ws in (lobby1, lobby2, games):
            assert await close_code(ws) == wire.CLOSE_SESSION_ENDED
        # The others see her leave (once per room), and stay.
        for ws in (bob, bobby):
            assert (await recv_type(ws, wire.FRAME_LEAVE))["user"]["id"] == "u1"
        await still_open(bob, bobby)


def _expired(w: FakeWebsite) -> str:
    now = int(time.time())
    return w.notice(ROOM_DELETED, room="kept", iat=now - 60, nbf=now - 60, exp=now - 40)


UNAUTHORIZED: dict[str, Callable[[FakeWebsite], str | None]] = {
    "missing": lambda w: None,
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
FORBIDDEN: dict[str, tuple[str, Callable[[FakeWebsite], str]]] = {
    "user token": ("wrong_purpose", lambda w: w.mint("kept")),
    "user token, website's sub": ("wrong_purpose", lambda w: w.mint("kept", sub="parley-website")),
    "other purpose": ("wrong_purpose", lambda w: w.notice("party", room="kept")),
    "user notice": ("wrong_purpose", lambda w: w.notice(USER_REVOKED, user="u1")),
    "another room": ("wrong_room", lambda w: w.notice(ROOM_DELETED, room="elsewhere")),
    "notice with a user's sub": ("wrong_purpose",
                                 lambda w: w.notice(ROOM_DELETED, room="kept", sub="u1")),
}  # fmt: skip


@pytest.mark.parametrize("case", UNAUTHORIZED)
async def test_bad_notice_401_closes_nothing(chat: Chat, website: FakeWebsite, case: str) -> None:
    async with chat.join("kept", "u1") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        assert (await call(chat, "/rooms/kept/deleted", UNAUTHORIZED[case](website)))[0] == 401
        await still_open(ws)


@pytest.mark.parametrize("case", FORBIDDEN)
async def test_valid_token_of_another_kind_403(
    chat: Chat, website: FakeWebsite, case: str
) -> None:
    reason, token = FORBIDDEN[case]
    before = rejections(reason)
    async with chat.join("kept", "u1") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        assert (await call(chat, "/rooms/kept/deleted", token(website)))[0] == 403
        await still_open(ws)
    assert rejections(reason) == before + 1


async def test_user_path_needs_that_users_notice(chat: Chat, website: FakeWebsite) -> None:
    before = rejections("wrong_user")
    async with chat.join("kept", "u1") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        for token, status in [
            (None, 401),
            (website.notice(USER_REVOKED), 401),  # no `user`
            (website.notice(USER_REVOKED, user="u2"), 403),
            (website.notice(ROOM_DELETED, room="kept"), 403),
            (website.mint("kept", sub="u1"), 403),  # Alice's own token
        ]:
            assert (await call(chat, "/users/u1/revoked", token))[0] == status
        await still_open(ws)
    assert rejections("wrong_user") == before + 1


@pytest.mark.parametrize(
    "path",
    ["/", "/healthz", "/rooms/kept", "/rooms/kept/deleted/", "/rooms/x/deleted",
     "//rooms/kept/deleted", "/rooms/../rooms/kept/deleted", "/rooms/%6bept/deleted",
     "/internal/rooms/kept/deleted", "/ws/rooms/kept", "/users/u1/revoked/x"],
)  # fmt: skip
async def test_unknown_control_path_404_closes_nothing(
    chat: Chat, website: FakeWebsite, path: str
) -> None:
    before = rejections("not_found")
    async with chat.join("kept", "u1") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        notice = website.notice(ROOM_DELETED, room="kept")
        assert await call(chat, path, notice) == (404, "not found\n")
        await still_open(ws)
    assert rejections("not_found") == before + 1


async def test_the_control_port_never_upgrades(chat: Chat, website: FakeWebsite) -> None:
    headers = {"Authorization": f"Bearer {website.mint('lobby')}"}
    for path in ("/ws/rooms/lobby", "/rooms/lobby/deleted"):
        status, _ = await http_get(chat.control_port, path, headers, upgrade=True)
        assert status in (403, 404)


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
        headers = {"Authorization": f"Bearer {website.notice(ROOM_DELETED, room='doomed')}",
                   "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
                   "X-Request-ID": "req-9"}  # fmt: skip
        assert await http_get(chat.control_port, "/rooms/doomed/deleted", headers) == (
            200, "closed 1\n")  # fmt: skip
        assert await close_code(ws) == wire.CLOSE_ROOM_DELETED

    [request] = [s for s in spans.get_finished_spans() if s.name == "control.request"]
    [command] = [s for s in spans.get_finished_spans() if s.name == "chat.control"]
    assert f"{request.context.trace_id:032x}" == trace_id
    assert command.parent is not None and command.parent.span_id == request.context.span_id
    assert dict(command.attributes or {}) == {
        "chat.control.command": "room_deleted", "chat.room": "doomed",
        "chat.connections_closed": 1,
    }  # fmt: skip
    attrs = dict(request.attributes or {})
    assert (attrs["http.response.status_code"], attrs["chat.request_id"]) == (200, "req-9")
    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    [deleted] = [r for r in records if r["event"] == "room deleted"]
    assert (deleted["room"], deleted["connections_closed"]) == ("doomed", 1)
    assert deleted["request_id"] == "req-9" and deleted["trace_id"] == trace_id
    assert "Bearer" not in log_output.getvalue()


async def test_user_revocation_is_logged(
    chat: Chat, website: FakeWebsite, log_output: io.StringIO
) -> None:
    async with chat.join("lobby", "u7") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        notice = website.notice(USER_REVOKED, user="u7")
        assert await call(chat, "/users/u7/revoked", notice) == (200, "closed 1\n")
        assert await close_code(ws) == wire.CLOSE_SESSION_ENDED
    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    [revoked] = [r for r in records if r["event"] == "user revoked"]
    assert (revoked["user_id"], revoked["connections_closed"]) == ("u7", 1)


def _auth(token: str, header: bool) -> dict[str, str]:
    if header:
        return {"Authorization": f"Bearer {token}"}
    return {"Sec-WebSocket-Protocol": f"{wire.SUBPROTOCOL}, {wire.BEARER_PREFIX}{token}"}
