"""Test doubles and helpers: a fake website (JWKS + token minting) and client helpers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server

JWKS_PATH = "/.well-known/jwks.json"
DROP = object()  # claim value meaning "leave this claim out"


@dataclass
class FakeWebsite:
    """Publishes a JWKS like the website does and mints tokens like it does."""

    port: int = 0
    keys: list[tuple[str, Ed25519PrivateKey]] = field(default_factory=list)
    requests: int = 0

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{JWKS_PATH}"

    def rotate(self) -> str:
        """Adds a new current key (old ones stay published) and returns its kid."""
        kid = uuid.uuid4().hex[:16]
        self.keys.insert(0, (kid, Ed25519PrivateKey.generate()))
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys:
            jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"})
        return {"keys": keys}

    def claims(self, room: str = "lobby", sub: str = "u1", name: str = "Alice",
               **overrides: Any) -> dict[str, Any]:  # fmt: skip
        now = int(time.time())
        claims = {
            "iss": "parley-website", "aud": "parley-chat", "sub": sub, "email": f"{sub}@x.test",
            "name": name, "room": room, "iat": now, "nbf": now, "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }  # fmt: skip
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not DROP}

    def mint(self, room: str = "lobby", sub: str = "u1", name: str = "Alice", *,
             kid: str | None = None, key: Ed25519PrivateKey | None = None,
             **overrides: Any) -> str:  # fmt: skip
        current_kid, current_key = self.keys[0]
        return jwt.encode(
            self.claims(room, sub, name, **overrides),
            key or current_key,
            algorithm="EdDSA",
            headers={"kid": kid or current_kid},
        )


@dataclass
class Chat:
    server: Server
    website: FakeWebsite

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    def connect(self, room: str = "lobby", token: str | None = None, *, header: bool = False,
                path: str | None = None, **kwargs: Any) -> connect:  # fmt: skip
        """Like a browser (token as subprotocol) or, with header=True, like other clients."""
        if token is not None and header:
            kwargs.setdefault("additional_headers", {})["Authorization"] = f"Bearer {token}"
        elif token is not None:
            kwargs.setdefault("subprotocols", ["parley.v1", f"bearer.{token}"])
        uri = f"ws://127.0.0.1:{self.port}{path or f'/ws/rooms/{room}'}"
        return connect(uri, proxy=None, open_timeout=5, **kwargs)

    def join(self, room: str = "lobby", sub: str = "u1", name: str = "Alice",
             **kwargs: Any) -> connect:  # fmt: skip
        return self.connect(room, self.website.mint(room, sub, name), **kwargs)


TIMEOUT_S = 3  # generous bound on every wait: a hang fails the test instead of the suite


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT_S):
        return json.loads(await ws.recv())


async def recv_type(ws: ClientConnection, kind: str) -> dict[str, Any]:
    frame = await recv_json(ws)
    assert frame["type"] == kind, frame
    return frame
