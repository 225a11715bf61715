"""Chat tokens: EdDSA-signed JWTs for the chat service, and the JWKS it verifies them with."""

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwt.algorithms import OKPAlgorithm

from website.config import get_settings
from website.models import Room, User

ISSUER = "parley-website"
AUDIENCE = "parley-chat"
ROOM_DELETED = "room_deleted"
NOTICE_TTL_SECONDS = 30


class TokenIssuer:
    def __init__(self, private_key: Ed25519PrivateKey, ttl_seconds: int) -> None:
        self._key = private_key
        self.ttl_seconds = ttl_seconds
        self._public_jwk = json.loads(OKPAlgorithm.to_jwk(private_key.public_key()))
        self.kid = _thumbprint(self._public_jwk)

    def issue(self, user: User, room: Room) -> str:
        """A user's token to join one room's chat."""
        claims = {"sub": str(user.id), "email": user.email, "name": user.display_name}
        return self._sign(claims, room.name, self.ttl_seconds)

    def issue_room_deleted(self, room: str) -> str:
        """The website's signed notice that a room is gone (never valid to join a room)."""
        return self._sign({"sub": ISSUER, "purpose": ROOM_DELETED}, room, NOTICE_TTL_SECONDS)

    def _sign(self, claims: dict, room: str, ttl_seconds: int) -> str:
        now = datetime.now(UTC)
        registered = {"iss": ISSUER, "aud": AUDIENCE, "room": room, "iat": now, "nbf": now}
        registered |= {"exp": now + timedelta(seconds=ttl_seconds), "jti": uuid.uuid4().hex}
        return jwt.encode(
            registered | claims, self._key, algorithm="EdDSA", headers={"kid": self.kid}
        )

    def jwks(self) -> dict:
        return {"keys": [{**self._public_jwk, "kid": self.kid, "use": "sig", "alg": "EdDSA"}]}


def _thumbprint(jwk: dict) -> str:
    """RFC 7638 thumbprint: a stable kid derived from the public key itself."""
    canonical = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@lru_cache
def get_issuer() -> TokenIssuer:
    settings = get_settings()
    key = load_pem_private_key(settings.jwt_signing_key_file.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError("the chat token signing key must be Ed25519")
    return TokenIssuer(key, settings.chat_token_ttl_seconds)
