"""Website-signed JWTs: bearer extraction, signature and claim checks, and user tokens."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeGuard

import jwt
from websockets.datastructures import Headers

from . import text, wire
from .keys import KeyStore, KeysUnavailable

# Tolerates small clock differences should website and chat ever run on different hosts.
LEEWAY_S = 5
USER_TOKEN_CLAIMS = ("iss", "aud", "exp", "iat", "sub", "room")


_SID = re.compile(wire.SID_PATTERN)


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    name: str
    room: str
    issued_at: float = 0.0  # the token's `iat`: what a revocation compares with
    sid: str | None = None  # the website session that asked for the token, if it said


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


def _bearer(headers: Headers) -> str | None:
    """The token of `Authorization: Bearer <jwt>`, None without the header."""
    authorization = headers.get_all("Authorization")
    if not authorization:
        return None
    if len(authorization) > 1:
        raise unauthorized("several Authorization headers")
    scheme, _, token = authorization[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("malformed Authorization header")
    return token.strip()


def extract_bearer(headers: Headers) -> str:
    """The token of `Authorization: Bearer <jwt>` (non-browser clients)."""
    token = _bearer(headers)
    if token is None:
        raise unauthorized("missing token", "missing_token")
    return token


def extract_token(headers: Headers) -> str:
    """Browsers cannot set headers on a WebSocket, so they offer the token as a
    `bearer.<jwt>` subprotocol; other clients send `Authorization: Bearer <jwt>`. Exactly one
    token, in one place: two, even equal, are refused, so no rule ever picks between them."""
    offered = [
        item.strip().removeprefix(wire.BEARER_PREFIX)
        for value in headers.get_all("Sec-WebSocket-Protocol")
        for item in value.split(",")
        if item.strip().startswith(wire.BEARER_PREFIX)
    ]
    bearer = _bearer(headers)
    tokens = [*offered, *([bearer] if bearer is not None else [])]
    if not tokens:
        raise unauthorized("missing token", "missing_token")
    if len(tokens) > 1:
        raise unauthorized("more than one token")
    return tokens[0]


class TokenDecoder:
    """Checks what every website token shares: EdDSA signature by a JWKS key, issuer,
    audience, validity window and a bounded lifetime. Returns the claims."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    async def decode(
        self, token: str, *, required: tuple[str, ...], max_lifetime_s: int
    ) -> dict[str, Any]:
        header = _unverified_header(token)
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
        except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError):
            # Not only PyJWT's own errors: a signed but odd claim (`"exp": 1e999`) makes
            # int() raise. Whatever a token holds, the answer is a 401, never a 500.
            raise unauthorized("invalid token") from None
        # PyJWT accepts numeric strings for exp/iat; we insist on JSON numbers.
        exp, iat = claims["exp"], claims["iat"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat)):
            raise unauthorized("invalid token claims")
        # A leaked token must not live long, whatever the issuer chose.
        if exp - iat > max_lifetime_s:
            raise unauthorized("token lifetime too long")
        return claims


def _unverified_header(token: str) -> dict[str, Any]:
    """The token's header alone, to pick its key. PyJWT's get_unverified_header decodes and
    checks all three segments, and decode() then does it all again: 17 of the 190 µs a token
    took. Nothing read here is trusted: decode() checks the whole token, this header
    included, against the key it picks."""
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # bad base64, UTF-8 or JSON, however deep
        raise unauthorized("malformed token") from None
    if not isinstance(header, dict):
        raise unauthorized("malformed token")
    return header


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
        if text.unsendable(sub) or text.unsendable(name):  # would break every frame naming them
            raise unauthorized("invalid token claims")
        sid = claims.get("sid")
        if sid is not None and not (isinstance(sid, str) and _SID.fullmatch(sid)):
            raise unauthorized("invalid token claims")
        return Identity(user_id=sub, name=name, room=room, issued_at=float(claims["iat"]), sid=sid)


def _nonempty_str(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)
