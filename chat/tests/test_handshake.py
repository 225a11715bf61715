"""Everything decided before the upgrade: routing, Origin, token, subprotocol, keys."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chat import wire
from chat.handshake import SUBPROTOCOL
from chat.keys import KeyStore
from tests.conftest import StartChat
from tests.helpers import DROP, Chat, FakeWebsite, recv_type


def rejections(reason: str) -> float:
    value = REGISTRY.get_sample_value("chat_handshake_rejections_total", {"reason": reason})
    return value or 0.0


async def status_of(client: connect) -> int:
    """The HTTP status of a refused upgrade (fails the test if the upgrade succeeds)."""
    with pytest.raises(InvalidStatus) as info:
        async with client:
            pass
    return info.value.response.status_code


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged(website: FakeWebsite, alg: str) -> str:
    """A token with a forged header: `none` (unsigned) or HS256 keyed with the public key."""
    kid = website.keys[0][0]
    signing_input = f"{b64({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64(website.claims())}"
    if alg == "none":
        return signing_input + "."
    public = website.jwks()["keys"][0]["x"].encode()
    sig = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


TOKEN_CASES: dict[str, Callable[[FakeWebsite], str]] = {
    "malformed": lambda w: "not-a-jwt",
    # The header is read alone first, to pick the key: whatever it holds is a 401, and junk
    # after a good header is still caught by the whole token's check.
    "header not JSON": lambda w: f"{b64(b'{nope')}.{w.mint().partition('.')[2]}",
    "header a list": lambda w: f"{b64(b'[1]')}.{w.mint().partition('.')[2]}",
    "junk in the payload": lambda w: w.mint().replace(".", ".!", 1),
    "wrong signature": lambda w: w.mint(key=Ed25519PrivateKey.generate()),
    "expired": lambda w: w.mint(iat=int(time.time()) - 90, nbf=int(time.time()) - 90,
                                exp=int(time.time()) - 30),
    "not yet valid": lambda w: w.mint(nbf=int(time.time()) + 60, exp=int(time.time()) + 100),
    "issued in the future": lambda w: w.mint(iat=int(time.time()) + 60,
                                             exp=int(time.time()) + 100),
    "lifetime over 120 s": lambda w: w.mint(exp=int(time.time()) + 121),
    "exp as string": lambda w: w.mint(exp=str(int(time.time()) + 60)),
    "wrong audience": lambda w: w.mint(aud="someone-else"),
    "wrong issuer": lambda w: w.mint(iss="evil"),
    "no exp": lambda w: w.mint(exp=DROP),
    "no iat": lambda w: w.mint(iat=DROP),
    "no sub": lambda w: w.mint(sub=DROP),
    "no room": lambda w: w.mint(room=DROP),
    "no aud": lambda w: w.mint(aud=DROP),
    "no name": lambda w: w.mint(name=DROP),
    "unknown kid": lambda w: w.mint(kid="nope"),
    "alg none": lambda w: forged(w, "none"),
    "HS256 forgery": lambda w: forged(w, "HS256"),
}  # fmt: skip


@pytest.mark.parametrize("case", TOKEN_CASES)
@pytest.mark.parametrize("header", [False, True], ids=["subprotocol", "authorization"])
async def test_bad_token_is_401(chat: Chat, website: FakeWebsite, case: str, header: bool) -> None:
    reason = "expired_token" if case == "expired" else "invalid_token"
    before = rejections(reason)
    token = TOKEN_CASES[case](website)
    assert await status_of(chat.connect("lobby", token, header=header)) == 401
    assert rejections(reason) == before + 1


async def test_the_valid_token_of_those_cases_is_accepted(chat: Chat, website: FakeWebsite) -> None:
    # Guards the cases above: they fail because of their one defect, not the fixture.
    async with chat.connect("lobby", website.mint()) as ws:
        await recv_type(ws, wire.FRAME_WELCOME)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dTpw"}, {"Authorization": "Bearer "}],
    ids=["none", "basic", "empty bearer"],
)
async def test_missing_or_malformed_credentials_401(chat: Chat, headers: dict[str, str]) -> None:
    reason = "missing_token" if not headers else "invalid_token"
    before = rejections(reason)
    assert await status_of(chat.connect("lobby", additional_headers=headers)) == 401
    assert rejections(reason) == before + 1


async def test_offering_only_parley_v1_is_missing_token(chat: Chat) -> None:
    assert await status_of(chat.connect("lobby", subprotocols=[SUBPROTOCOL])) == 401


async def test_token_for_another_room_403(chat: Chat, website: FakeWebsite) -> None:
    before = rejections("wrong_room")
    assert await status_of(chat.connect("lobby", website.mint(room="other"))) == 403
    assert rejections("wrong_room") == before + 1


@pytest.mark.parametrize(
    "path", ["/", "/ws/rooms/", "/ws/rooms/ab", "/ws/rooms/Lobby", "/ws/rooms/-abc",
             "/ws/rooms/lobby/x", "/ws/lobby", "/ws/rooms/" + "a" * 33],
)  # fmt: skip
async def test_unknown_path_404(chat: Chat, website: FakeWebsite, path: str) -> None:
    before = rejections("not_found")
    assert await status_of(chat.connect(token=website.mint(), path=path)) == 404
    assert rejections("not_found") == before + 1


async def test_longest_and_shortest_room_names_accepted(chat: Chat) -> None:
    for room in ("a-b", "a" * 32):
        async with chat.join(room) as ws:
            assert (await recv_type(ws, wire.FRAME_WELCOME))["room"] == room


async def test_foreign_origin_403(chat: Chat, website: FakeWebsite) -> None:
    before = rejections("bad_origin")
    for origin in ("http://evil.test", "null", f"http://127.0.0.1:{chat.port + 1}"):
        client = chat.connect("lobby", website.mint(), origin=origin)
        assert await status_of(client) == 403
    assert rejections("bad_origin") == before + 3


async def test_same_origin_and_allowed_origins_accepted(
    start_chat: StartChat, website: FakeWebsite
) -> None:
    chat = await start_chat(allowed_origins=frozenset({"https://parley.example"}))
    for origin in (f"http://127.0.0.1:{chat.port}", "https://parley.example"):
        async with chat.connect("lobby", website.mint(), origin=origin) as ws:
            await recv_type(ws, wire.FRAME_WELCOME)


async def test_subprotocol_answer_is_parley_v1_never_the_token(
    chat: Chat, website: FakeWebsite
) -> None:
    token = website.mint()
    async with chat.connect("lobby", token) as ws:
        assert ws.response is not None
        assert ws.subprotocol == wire.SUBPROTOCOL
        assert ws.response.headers.get_all("Sec-WebSocket-Protocol") == [wire.SUBPROTOCOL]
        assert all(token not in value for _, value in ws.response.headers.raw_items())
        await recv_type(ws, wire.FRAME_WELCOME)


async def test_authorization_header_without_subprotocol(chat: Chat, website: FakeWebsite) -> None:
    async with chat.connect("lobby", website.mint(), header=True) as ws:
        assert ws.subprotocol is None and ws.response is not None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
        welcome = await recv_type(ws, wire.FRAME_WELCOME)
        assert welcome["you"] == {"id": "u1", "name": "Alice"}


async def test_healthz_is_plain_http(chat: Chat) -> None:
    status, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{chat.port}/healthz")
    assert (status, body) == (200, "ok\n")
    status, _ = await asyncio.to_thread(http_get, f"http://127.0.0.1:{chat.port}/nope")
    assert status == 404


async def test_jwks_unreachable_503(start_chat: StartChat, website: FakeWebsite) -> None:
    before = rejections("keys_unavailable")
    chat = await start_chat(jwks_url="http://127.0.0.1:9/.well-known/jwks.json")
    assert await status_of(chat.connect("lobby", website.mint())) == 503
    assert rejections("keys_unavailable") == before + 1


async def test_unknown_kid_refreshes_once_per_interval(
    start_chat: StartChat, website: FakeWebsite
) -> None:
    now = [1000.0]
    keys = KeyStore(website.jwks_url, min_refresh_s=10, clock=lambda: now[0])
    chat = await start_chat(keys=keys)

    async with chat.join() as ws:  # first use: one fetch, then served from cache
        await recv_type(ws, wire.FRAME_WELCOME)
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
    assert website.requests == 1

    new_kid = website.rotate()
    now[0] += 11
    async with chat.connect("lobby", website.mint(kid=new_kid)) as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
    assert website.requests == 2

    # Junk kids right after a fetch are refused from the cache, without asking the website.
    now[0] += 1
    assert await status_of(chat.connect("lobby", website.mint(kid="junk-1"))) == 401
    assert await status_of(chat.connect("lobby", website.mint(kid="junk-2"))) == 401
    assert website.requests == 2
    now[0] += 10
    assert await status_of(chat.connect("lobby", website.mint(kid="junk-3"))) == 401
    assert website.requests == 3


async def test_jwks_refetched_after_ttl(start_chat: StartChat, website: FakeWebsite) -> None:
    now = [0.0]
    keys = KeyStore(website.jwks_url, ttl_s=300, clock=lambda: now[0])
    chat = await start_chat(keys=keys)
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
    now[0] += 301
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
    assert website.requests == 2
