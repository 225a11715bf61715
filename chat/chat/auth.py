"""Chat token extraction (from the upgrade request's headers) and verification."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

import jwt
from websockets.datastructures import Headers

from .keys import KeyStore, KeysUnavailable

ISSUER = "parley-website"
AUDIENCE = "parley-chat"
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "sub", "room"]
MAX_LIFETIME_S = 120
# Tolerates small clock differences should website and chat ever run on different hosts.
LEEWAY_S = 5
BEARER_SUBPROTOCOL_PREFIX = "bearer."
# The `purpose` of the website's room-deletion notices (user tokens have no purpose).
ROOM_DELETED = "room_deleted"


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    name: str
    room: str


class AuthError(Exception):
    """A handshake rejection: HTTP status, metric reason, short text for the response body."""

    def __init__(self, status: HTTPStatus, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


def unauthorized(detail: str, reason: str = "invalid_token") -> AuthError:
    return AuthError(HTTPStatus.UNAUTHORIZED, reason, detail)


def extract_token(headers: Headers) -> str:
    """Browsers cannot set headers on a WebSocket, so they offer the token as a
    `bearer.<jwt>` subprotocol; other clients send `Authorization: Bearer <jwt>`."""
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        for item in value.split(","):
            item = item.strip()
            if item.startswith(BEARER_SUBPROTOCOL_PREFIX):
                return item.removeprefix(BEARER_SUBPROTOCOL_PREFIX)
    authorization = headers.get_all("Authorization")
    if not authorization:
        raise unauthorized("missing token", "missing_token")
    scheme, _, token = authorization[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("malformed Authorization header")
    return token.strip()


class TokenVerifier:
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    async def _decode(self, token: str) -> dict:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise unauthorized("malformed token") from None
        # Checked before any key lookup so forged headers cannot trigger JWKS refreshes.
        if header.get("alg") != ALGORITHM:
            raise unauthorized("unsupported token algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise unauthorized("token has no key id")
        try:
            key = await self._keys.get(kid)
        except KeysUnavailable:
            raise AuthError(
                HTTPStatus.SERVICE_UNAVAILABLE, "keys_unavailable", "signing keys unavailable"
            ) from None
        if key is None:
            raise unauthorized("unknown signing key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                audience=AUDIENCE,
                leeway=LEEWAY_S,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired", "expired_token") from None
        except jwt.InvalidTokenError:
            raise unauthorized("invalid token") from None
        # PyJWT accepts numeric strings for exp/iat; we insist on JSON numbers.
        exp, iat = claims["exp"], claims["iat"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat)):
            raise unauthorized("invalid token claims")
        # A leaked token must not live long, whatever the issuer chose.
        if exp - iat > MAX_LIFETIME_S:
            raise unauthorized("token lifetime too long")
        return claims

    async def verify(self, token: str) -> Identity:
        """A user's token to join a room."""
        claims = await self._decode(token)
        if "purpose" in claims:  # the website's own notices never open a socket
            raise unauthorized("not a user token")
        sub, room, name = claims["sub"], claims["room"], claims.get("name")
        if not all(isinstance(v, str) and v for v in (sub, room, name)):
            raise unauthorized("invalid token claims")
        return Identity(user_id=sub, name=name, room=room)

    async def verify_room_deleted(self, token: str) -> str:
        """The website's notice that a room was deleted; returns the room's name."""
        claims = await self._decode(token)
        if claims.get("purpose") != ROOM_DELETED or claims["sub"] != ISSUER:
            raise AuthError(HTTPStatus.FORBIDDEN, "wrong_purpose", "not a room notice")
        room = claims["room"]
        if not isinstance(room, str) or not room:
            raise unauthorized("invalid token claims")
        return room
