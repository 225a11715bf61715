"""Tells the chat service that a room was deleted, so it closes the room's sockets (4404)."""

import httpx

from website.config import get_settings
from website.logging import get_logger
from website.tokens import get_issuer

log = get_logger(__name__)


async def announce_room_deleted(room: str) -> None:
    """Best effort: if the chat is unreachable, its clients learn on their next token (404)."""
    url = f"{get_settings().chat_internal_url}/internal/rooms/{room}/deleted"
    headers = {"Authorization": f"Bearer {get_issuer().issue_room_deleted(room)}"}
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            response = await client.get(url, headers=headers)
            response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("chat not told of room deletion", room=room, error=type(exc).__name__)
