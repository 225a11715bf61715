"""Only room sockets reach the chat through nginx: no spelling of a path reaches the chat's
control commands or anything else on it (docs/design.md, sections 2 and 5)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import pytest

from support import WAIT, Client, Peer, Settings

Join = Callable[[Client, str], Awaitable[Peer]]

# {room} is filled in with a room that has a member connected.
ODD_PATHS = [
    "//ws/internal/rooms/{room}/deleted",
    "/ws/internal/rooms/{room}/deleted",
    "/ws/../internal/rooms/{room}/deleted",
    "/ws/%2e%2e/internal/rooms/{room}/deleted",
    "/ws/%2E%2E/internal/rooms/{room}/deleted",
    "/ws/rooms/../../internal/rooms/{room}/deleted",
    "/ws/rooms/%2e%2e/%2e%2e/internal/rooms/{room}/deleted",
    "/ws/rooms/{room}/deleted",
    "/ws/rooms/{room}%2fdeleted",
    "/internal/rooms/{room}/deleted",
    "/rooms/{room}/deleted",
    "/ws/users/u/revoked",
    "/users/u/revoked",
]


async def raw_get(settings: Settings, path: str, token: str) -> int:
    """The status of a GET sent exactly as written (HTTP clients would normalise the path)."""
    parts = urlsplit(settings.base_url)
    host, port = parts.hostname or "nginx", parts.port or 80
    async with asyncio.timeout(WAIT):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                (
                    f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
    return int(status_line.split()[1])


@pytest.mark.parametrize("template", ODD_PATHS)
async def test_odd_paths_never_reach_the_chat(
    template: str, alice: Client, bob: Client, room: str, join: Join, settings: Settings
) -> None:
    member = await join(bob, room)
    token = (await alice.token(room))["token"]
    path = template.format(room=room)
    assert await raw_get(settings, path, token) == 404, path
    # The room is untouched: its member still hears the others.
    speaker = await join(alice, room)
    client_id = await speaker.say(f"still here after {path}")
    got, _ = await member.recv_until(lambda frame: frame.get("type") == "message")
    assert got["client_id"] == client_id, got
