"""Chat tokens and the website's notices: EdDSA-signed JWTs, and the JWKS that verifies them."""

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwt.algorithms import OKPAlgorithm

from website.models import User
from website.sessions import SessionUser
from website.wire import (
    NOTICE_MAX_LIFETIME_S,
    NOTICE_ROOM_DELETED,
    NOTICE_USER_REVOKED,
    TOKEN_ALGORITHM,
    TOKEN_AUDIENCE,
    TOKEN_ISSUER,
)

Claims = dict[str, Any]


class TokenIssuer:
    """Signs chat tokens (a user joins one room) and notices (the website tells the chat)."""

    def __init__(self, private_key: Ed25519PrivateKey, ttl_seconds: int) -> None:
        self._key = private_key
        self.ttl_seconds = ttl_seconds
        self._public_jwk: dict[str, str] = json.loads(OKPAlgorithm.to_jwk(private_key.public_key()))
        self.kid = _thumbprint(self._public_jwk)

    @classmethod
    def from_pem_file(cls, path: Path, ttl_seconds: int) -> "TokenIssuer":
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError("the chat token signing key must be Ed25519")
        return cls(key, ttl_seconds)

    def issue(self, user: User | SessionUser, room: str, sid: str | None = None) -> str:
        """A user's token to join one room's chat (never carries `purpose`).

        `sid` names the website session that asked, so one session's sockets can be revoked.
        """
        claims = {"sub": str(user.id), "email": user.email, "name": user.display_name}
        claims |= {"room": room} | ({"sid": sid} if sid else {})
        return self._sign(claims, self.ttl_seconds)

    def issue_room_deleted(self, room: str) -> str:
        """The notice that a room is gone: the chat closes its sockets with 4404."""
        return self._notice(NOTICE_ROOM_DELETED, {"room": room})

    def issue_user_revoked(self, user_id: uuid.UUID, sid: str | None = None) -> str:
        """The notice that a user's sessions ended: the chat closes their sockets with 4401.

        With `sid`, only the sockets opened with that session's tokens close.
        """
        subject = {"user": str(user_id)} | ({"sid": sid} if sid else {})
        return self._notice(NOTICE_USER_REVOKED, subject)

    def _notice(self, purpose: str, subject: Claims) -> str:
        claims = {"sub": TOKEN_ISSUER, "purpose": purpose} | subject
        return self._sign(claims, NOTICE_MAX_LIFETIME_S)

    def _sign(self, claims: Claims, ttl_seconds: int) -> str:
        now = datetime.now(UTC)
        registered: Claims = {"iss": TOKEN_ISSUER, "aud": TOKEN_AUDIENCE, "iat": now, "nbf": now}
        registered |= {"exp": now + timedelta(seconds=ttl_seconds), "jti": uuid.uuid4().hex}
        return jwt.encode(
            registered | claims, self._key, algorithm=TOKEN_ALGORITHM, headers={"kid": self.kid}
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        key = {**self._public_jwk, "kid": self.kid, "use": "sig", "alg": TOKEN_ALGORITHM}
        return {"keys": [key]}


def _thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint: a stable kid derived from the public key itself."""
    canonical = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
