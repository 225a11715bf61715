"""Website-signed JWTs: bearer extraction, signature and claim checks, and user tokens."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeGuard

import jwt
from websockets.datastructures import Headers

from . import wire
from .keys import KeyStore, KeysUnavailable

# Tolerates small clock differences should website and chat ever run on different hosts.
LEEWAY_S = 5
USER_TOKEN_CLAIMS = ("iss", "aud", "exp", "iat", "sub", "room")


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    name: str
    room: str


class AuthError(Exception):
    """A rejected request: HTTP status, metric reason, short text for the response body."""

    def __init__(self, status: HTTPStatus, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


def unauthorized(detail: str, reason: str = "invalid_token") -> AuthError:
    return AuthError(HTTPStatus.UNAUTHORIZED, reason, detail)


def forbidden(detail: str, reason: str) -> AuthError:
    return AuthError(HTTPStatus.FORBIDDEN, reason, detail)


def extract_bearer(headers: Headers) -> str:
    """The token of `Authorization: Bearer <jwt>`."""
    authorization = headers.get_all("Authorization")
    if not authorization:
        raise unauthorized("missing token", "missing_token")
    scheme, _, token = authorization[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("malformed Authorization header")
    return token.strip()


def extract_token(headers: Headers) -> str:
    """Browsers cannot set headers on a WebSocket, so they offer the token as a
    `bearer.<jwt>` subprotocol; other clients send `Authorization: Bearer <jwt>`."""
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        for item in value.split(","):
            item = item.strip()
            if item.startswith(wire.BEARER_PREFIX):
                return item.removeprefix(wire.BEARER_PREFIX)
    return extract_bearer(headers)


class TokenDecoder:
    """Checks what every website token shares: EdDSA signature by a JWKS key, issuer,
    audience, validity window and a bounded lifetime. Returns the claims."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    async def decode(
        self, token: str, *, required: tuple[str, ...], max_lifetime_s: int
    ) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise unauthorized("malformed token") from None
        # Checked before any key lookup so forged headers cannot trigger JWKS refreshes.
        if header.get("alg") != wire.TOKEN_ALGORITHM:
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
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[wire.TOKEN_ALGORITHM],
                issuer=wire.TOKEN_ISSUER,
                audience=wire.TOKEN_AUDIENCE,
                leeway=LEEWAY_S,
                options={"require": list(required)},
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
        if exp - iat > max_lifetime_s:
            raise unauthorized("token lifetime too long")
        return claims


class TokenVerifier:
    """A user's token to join a room."""

    def __init__(self, decoder: TokenDecoder) -> None:
        self._decoder = decoder

    async def verify(self, token: str) -> Identity:
        claims = await self._decoder.decode(
            token, required=USER_TOKEN_CLAIMS, max_lifetime_s=wire.TOKEN_MAX_LIFETIME_S
        )
        if "purpose" in claims:  # the website's own notices never open a socket
            raise unauthorized("not a user token")
        sub, room, name = claims["sub"], claims["room"], claims.get("name")
        if not (_nonempty_str(sub) and _nonempty_str(room) and _nonempty_str(name)):
            raise unauthorized("invalid token claims")
        return Identity(user_id=sub, name=name, room=room)


def _nonempty_str(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)
