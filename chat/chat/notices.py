"""The website's signed notices (docs/design.md §4): verified, they become control commands."""

from __future__ import annotations

import re
from typing import Any

from . import wire
from .auth import TokenDecoder, forbidden, unauthorized
from .control import CloseRoom, Command, RevokeUser

TOKEN_CLAIMS = ("iss", "aud", "exp", "iat", "sub")
NOTICE_PURPOSES = (wire.NOTICE_ROOM_DELETED, wire.NOTICE_USER_REVOKED)
_ROOM = re.compile(wire.ROOM_NAME_PATTERN)
_USER_ID = re.compile(wire.USER_ID_PATTERN)
_SID = re.compile(wire.SID_PATTERN)


class NoticeVerifier:
    """A notice is a website token with sub="parley-website", a `purpose`, a lifetime of at
    most 30 s, and the `room` (room_deleted) or `user` (user_revoked, with an optional `sid`:
    only that website session's sockets) it is about.
    401 for a bad token, 403 for a valid token that is not a notice (a user's chat token)."""

    def __init__(self, decoder: TokenDecoder) -> None:
        self._decoder = decoder

    async def verify(self, token: str) -> Command:
        # Any website token first (user tokens live up to 120 s), so that a valid token of
        # the wrong kind is told apart (403) from a bad one (401).
        claims = await self._decoder.decode(
            token, required=TOKEN_CLAIMS, max_lifetime_s=wire.TOKEN_MAX_LIFETIME_S
        )
        purpose = claims.get("purpose")
        if claims["sub"] != wire.NOTICE_SUBJECT or purpose not in NOTICE_PURPOSES:
            raise forbidden("not a notice", "wrong_purpose")
        if claims["exp"] - claims["iat"] > wire.NOTICE_MAX_LIFETIME_S:
            raise unauthorized("notice lifetime too long")
        if "nbf" not in claims or not isinstance(claims.get("jti"), str):
            raise unauthorized("invalid notice claims")
        if purpose == wire.NOTICE_ROOM_DELETED:
            return CloseRoom(_claim(claims, "room", _ROOM))
        sid = _claim(claims, "sid", _SID) if "sid" in claims else None
        return RevokeUser(_claim(claims, "user", _USER_ID), sid)


def _claim(claims: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise unauthorized("invalid notice claims")
    return value
