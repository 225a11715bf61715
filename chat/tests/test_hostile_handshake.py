"""Hostile upgrade requests get a clear 4xx before any upgrade, never a 500: odd Origin
headers, tokens in odd places or twice, odd subprotocol and Authorization values, oversized
headers. Sent as raw bytes, so nothing on the client side tidies them up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from chat import wire
from tests.helpers import TIMEOUT_S, Chat, FakeWebsite

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def rejections(reason: str) -> float:
    value = REGISTRY.get_sample_value("chat_handshake_rejections_total", {"reason": reason})
    return value or 0.0


async def raw_status(port: int, headers: list[tuple[str, str]], room: str = "lobby",
                     host: str | None = None) -> int:  # fmt: skip
    """Status of an upgrade request with exactly these extra header lines (UTF-8 bytes)."""
    lines = [f"GET {wire.WS_PATH_PREFIX}{room} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}",
             "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
             f"Sec-WebSocket-Key: {KEY}"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in headers]
    async with asyncio.timeout(TIMEOUT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            status_line = await reader.readline()
        finally:
            writer.close()
    return int(status_line.split(b" ", 2)[1])


ORIGINS = {
    "unparseable IPv6": [("Origin", "http://[::1")],
    "null": [("Origin", "null")],
    "empty": [("Origin", "")],
    "repeated, both ours": [("Origin", "http://127.0.0.1:{port}")] * 2,
    "non-ASCII host": [("Origin", "http://exämple.test")],
    "non-ASCII, our host spelled with a homoglyph": [("Origin", "http://127.0.0.1:{port}\u0301")],
    "javascript scheme": [("Origin", "javascript:alert(1)")],
    "ws scheme": [("Origin", "ws://127.0.0.1:{port}")],
    "with userinfo": [("Origin", "http://evil@127.0.0.1:{port}")],
    "port out of range": [("Origin", "http://127.0.0.1:99999")],
    "foreign": [("Origin", "https://evil.example")],
}


@pytest.mark.parametrize("case", ORIGINS)
async def test_odd_origins_are_403(chat: Chat, website: FakeWebsite, case: str) -> None:
    token = ("Authorization", f"Bearer {website.mint()}")
    headers = [(n, v.format(port=chat.port)) for n, v in ORIGINS[case]] + [token]
    before = rejections("bad_origin")
    assert await raw_status(chat.port, headers) == 403
    assert rejections("bad_origin") == before + 1


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "HTTP://127.0.0.1:{port}/"])
async def test_our_own_origin_is_accepted(chat: Chat, website: FakeWebsite, origin: str) -> None:
    headers = [("Origin", origin.format(port=chat.port)),
               ("Authorization", f"Bearer {website.mint()}")]  # fmt: skip
    assert await raw_status(chat.port, headers) == 101


TOKENS: dict[str, Callable[[str], list[tuple[str, str]]]] = {
    "same token in both places": lambda t: [
        ("Sec-WebSocket-Protocol", f"parley.v1, bearer.{t}"), ("Authorization", f"Bearer {t}")],
    "different tokens in both places": lambda t: [
        ("Sec-WebSocket-Protocol", f"parley.v1, bearer.{t}"), ("Authorization", "Bearer x.y.z")],
    "two bearer subprotocols": lambda t: [
        ("Sec-WebSocket-Protocol", f"parley.v1, bearer.{t}, bearer.{t}")],
    "bearer subprotocols in two headers": lambda t: [
        ("Sec-WebSocket-Protocol", f"parley.v1, bearer.{t}"),
        ("Sec-WebSocket-Protocol", f"bearer.{t}")],
    "two Authorization headers": lambda t: [("Authorization", f"Bearer {t}")] * 2,
    "empty bearer subprotocol": lambda t: [("Sec-WebSocket-Protocol", "parley.v1, bearer.")],
    "Authorization scheme only": lambda t: [("Authorization", "Bearer")],
    "Authorization with trailing words": lambda t: [("Authorization", f"Bearer {t} extra")],
    "Authorization Basic": lambda t: [("Authorization", "Basic dXNlcjpwYXNz")],
    "non-ASCII token": lambda t: [("Authorization", "Bearer ëÿ.ü.ö")],
    "token of 6 KiB junk": lambda t: [("Authorization", "Bearer " + "A" * 6144)],
    "token with a JSON header that is a list": lambda t: [
        ("Authorization", "Bearer WzFd.e30.c2ln")],
    "token with a non-UTF-8 header": lambda t: [("Authorization", "Bearer _-8.e30.c2ln")],
}


@pytest.mark.parametrize("case", TOKENS)
async def test_tokens_in_odd_places_are_401(chat: Chat, website: FakeWebsite, case: str) -> None:
    assert await raw_status(chat.port, TOKENS[case](website.mint())) == 401


async def test_lowercase_bearer_scheme_is_accepted(chat: Chat, website: FakeWebsite) -> None:
    assert await raw_status(chat.port, [("Authorization", f"bearer {website.mint()}")]) == 101


@pytest.mark.parametrize(
    ("protocols", "status"),
    [("a b", 400), ("parley.v1,,", 101), (",", 400), ("parley.v2", 101), ("parley.v1", 101)],
    ids=["space inside", "empty items", "only a comma", "unknown", "parley.v1 only"],
)
async def test_odd_subprotocol_headers_are_answered(
    chat: Chat, website: FakeWebsite, protocols: str, status: int
) -> None:
    """The token in Authorization; websockets itself refuses an unparseable list (400)."""
    headers = [("Sec-WebSocket-Protocol", protocols), ("Authorization", f"Bearer {website.mint()}")]
    assert await raw_status(chat.port, headers) == status


@pytest.mark.parametrize(
    ("headers", "status"),
    [([("X-Big", "b" * 9000)], 431), ([(f"X-H{i}", "v") for i in range(130)], 431)],
    ids=["one header over 8 KiB", "130 headers"],
)
async def test_oversized_headers_are_431(
    chat: Chat, headers: list[tuple[str, str]], status: int
) -> None:
    assert await raw_status(chat.port, headers) == status
