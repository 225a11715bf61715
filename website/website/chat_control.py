"""The chat's control client: tells the chat to close a deleted room's or a revoked user's sockets.

The chat answers these on its internal control port only; each call carries a short-lived
notice signed with the website's key, so nothing else can close anyone's sockets.
"""

import uuid

import httpx

from website.logging import get_logger
from website.tokens import TokenIssuer

log = get_logger(__name__)


class ChatControl:
    """Best effort: if the chat is unreachable, its clients learn on their next token request."""

    def __init__(self, http: httpx.AsyncClient, issuer: TokenIssuer, base_url: str) -> None:
        self._http = http
        self._issuer = issuer
        self._base_url = base_url.rstrip("/")

    async def room_deleted(self, room: str) -> None:
        """The room's sockets close with 4404."""
        notice = self._issuer.issue_room_deleted(room)
        await self._notify(f"/rooms/{room}/deleted", notice, "room deletion", room=room)

    async def user_revoked(self, user_id: uuid.UUID, sid: str | None = None) -> None:
        """The user's sockets close with 4401: all of them, or with `sid` that session's."""
        notice = self._issuer.issue_user_revoked(user_id, sid)
        path = f"/users/{user_id}/revoked"
        fields = {"user_id": str(user_id)} | ({"sid": sid} if sid else {})
        await self._notify(path, notice, "user revocation", **fields)

    async def _notify(self, path: str, notice: str, what: str, **fields: str) -> None:
        headers = {"Authorization": f"Bearer {notice}"}
        try:
            # GET: the control port is served by the websockets server, which parses GET only.
            response = await self._http.get(f"{self._base_url}{path}", headers=headers)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning(f"chat not told of {what}", error=type(exc).__name__, **fields)
