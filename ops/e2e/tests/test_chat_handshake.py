"""How the token reaches the chat service, and the handshakes it must refuse (plain HTTP
statuses before any upgrade)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.exceptions import InvalidStatus

from support import Client, Peer, Settings, b64url_decode, b64url_encode, describe, ws_connect

REQUIRED_CLAIMS = ["iss", "aud", "sub", "email", "name", "room", "iat", "nbf", "exp", "jti"]


async def assert_rejected(
    settings: Settings, token: str | None, path: str, status: int, **kwargs: Any
) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws = await ws_connect(settings, token, path, **kwargs)
        await ws.close()  # only reached when the server wrongly accepted
    got = info.value.response.status_code
    assert got == status, f"expected HTTP {status} before the upgrade, got {got}"


async def test_token_in_subprotocol_is_answered_with_parley_v1_only(
    alice: Client, room: str, settings: Settings
) -> None:
    token = await alice.token(room)
    ws = await ws_connect(settings, token["token"], token["ws_url"], mode="subprotocol")
    try:
        assert ws.subprotocol == "parley.v1"
        assert ws.response is not None, "no handshake response"
        offered = ws.response.headers.get_all("Sec-WebSocket-Protocol")
        assert offered == ["parley.v1"], f"server answered {offered}"
        for _name, value in ws.response.headers.raw_items():
            assert token["token"] not in value, "the token was echoed in the handshake"
        welcome = await Peer(ws, "alice").recv()
        assert welcome["type"] == "welcome" and welcome["you"]["name"] == alice.name
    finally:
        await ws.close()


async def test_token_in_authorization_header_works(
    alice: Client, room: str, settings: Settings
) -> None:
    token = await alice.token(room)
    # A non-browser client: no Origin header, no subprotocol.
    ws = await ws_connect(settings, token["token"], token["ws_url"], mode="bearer", origin=None)
    try:
        welcome = await Peer(ws, "alice").recv()
        assert welcome["type"] == "welcome" and welcome["room"] == room, welcome
    finally:
        await ws.close()


async def test_missing_and_malformed_tokens_get_401(
    alice: Client, room: str, settings: Settings
) -> None:
    path = f"/ws/rooms/{room}"
    await assert_rejected(settings, None, path, 401)
    await assert_rejected(settings, "not-a-jwt", path, 401, mode="bearer")
    await assert_rejected(settings, "not-a-jwt", path, 401, mode="subprotocol")
    await assert_rejected(settings, "a.b.c", path, 401, mode="bearer")


async def test_token_signed_by_another_key_gets_401(
    alice: Client, room: str, settings: Settings
) -> None:
    real = (await alice.token(room))["token"]
    header = jwt.get_unverified_header(real)
    claims = jwt.decode(real, options={"verify_signature": False})
    forged = jwt.encode(
        claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": header["kid"]}
    )
    await assert_rejected(settings, forged, f"/ws/rooms/{room}", 401)


async def test_tampered_payload_gets_401(alice: Client, room: str, settings: Settings) -> None:
    real = (await alice.token(room))["token"]
    head, payload, signature = real.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["name"] = "Mallory"
    tampered = ".".join([head, b64url_encode(json.dumps(claims).encode()), signature])
    await assert_rejected(settings, tampered, f"/ws/rooms/{room}", 401)


async def test_token_for_another_room_gets_403(
    alice: Client, room: str, settings: Settings
) -> None:
    other, _ = await alice.create_room()
    token = (await alice.token(room))["token"]
    await assert_rejected(settings, token, f"/ws/rooms/{other}", 403)


async def test_foreign_origin_gets_403(alice: Client, room: str, settings: Settings) -> None:
    token = await alice.token(room)
    await assert_rejected(
        settings, token["token"], token["ws_url"], 403, origin="http://evil.example"
    )


async def test_unknown_path_gets_404(alice: Client, room: str, settings: Settings) -> None:
    token = (await alice.token(room))["token"]
    await assert_rejected(settings, token, "/ws/nope", 404)


async def test_token_claims_verify_against_the_published_jwks(alice: Client, room: str) -> None:
    body = await alice.token(room)
    token = body["token"]
    header = jwt.get_unverified_header(token)
    assert header.get("alg") == "EdDSA", header
    assert header.get("kid"), header

    response = await alice.get("/.well-known/jwks.json")
    assert response.status_code == 200, describe(response)
    keys = response.json()["keys"]
    for key in keys:
        assert "d" not in key, "the JWKS publishes private key material"
    matching = [k for k in keys if k.get("kid") == header["kid"]]
    assert len(matching) == 1, f"kid {header['kid']} not (uniquely) in JWKS {keys}"
    assert matching[0].get("kty") == "OKP" and matching[0].get("crv") == "Ed25519", matching[0]
    public = jwt.PyJWK(matching[0]).key

    claims = jwt.decode(
        token,
        public,
        algorithms=["EdDSA"],
        audience="parley-chat",
        issuer="parley-website",
        options={"require": REQUIRED_CLAIMS},
        leeway=5,
    )
    assert claims["email"] == alice.email
    assert claims["name"] == alice.name
    assert claims["room"] == room
    assert claims["sub"] and claims["jti"]
    assert 0 < claims["exp"] - claims["iat"] <= 120, claims
    assert claims["nbf"] <= time.time() + 5 and claims["exp"] > time.time(), claims
    assert 0 < body["expires_in"] <= 120, body
    # Each token is distinct.
    again = await alice.token(room)
    assert jwt.decode(again["token"], options={"verify_signature": False})["jti"] != claims["jti"]
