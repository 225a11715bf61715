"""Hostile upgrade requests through nginx: odd Origin headers, tokens in odd places or twice,
odd subprotocol and Authorization values, oversized headers. Each gets its exact answer
before any upgrade, never a 5xx (docs/design.md §5, "Handshake")."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from support import Client, Settings, raw_upgrade

Headers = list[tuple[str, str]]

ORIGINS: dict[str, Callable[[Settings], Headers]] = {
    "unparseable IPv6": lambda s: [("Origin", "http://[::1")],
    "null": lambda s: [("Origin", "null")],
    "empty": lambda s: [("Origin", "")],
    "repeated, both ours": lambda s: [("Origin", s.origin)] * 2,
    "non-ASCII host": lambda s: [("Origin", "http://exämple.test")],
    "ours plus a combining accent": lambda s: [("Origin", s.origin + "\u0301")],
    "javascript scheme": lambda s: [("Origin", "javascript:alert(1)")],
    "ws scheme": lambda s: [("Origin", s.origin.replace("http", "ws", 1))],
    "with userinfo": lambda s: [("Origin", s.origin.replace("://", "://evil@", 1))],
    "port out of range": lambda s: [("Origin", s.origin + ":99999")],
    "foreign": lambda s: [("Origin", "https://evil.example")],
}


@pytest.mark.parametrize("case", ORIGINS)
async def test_odd_origin_is_403(alice: Client, room: str, settings: Settings, case: str) -> None:
    token = (await alice.token(room))["token"]
    headers = [*ORIGINS[case](settings), ("Authorization", f"Bearer {token}")]
    status, head = await raw_upgrade(settings, f"/ws/rooms/{room}", headers)
    assert status == 403, head


async def test_our_own_origin_in_capitals_is_101(
    alice: Client, room: str, settings: Settings
) -> None:
    token = (await alice.token(room))["token"]
    headers = [("Origin", settings.origin.upper() + "/"), ("Authorization", f"Bearer {token}")]
    status, head = await raw_upgrade(settings, f"/ws/rooms/{room}", headers)
    assert status == 101, head


TOKENS: dict[str, Callable[[str], Headers]] = {
    "same token in both places": lambda t: [
        ("Sec-WebSocket-Protocol", f"parley.v1, bearer.{t}"), ("Authorization", f"Bearer {t}")],
    "different tokens in both places": lambda t: [
        ("Sec-WebSocket-Protocol", f"parley.v1, bearer.{t}"), ("Authorization", "Bearer x.y.z")],
    "two bearer subprotocols": lambda t: [
        ("Sec-WebSocket-Protocol", f"parley.v1, bearer.{t}, bearer.{t}")],
    "bearer subprotocols in two headers": lambda t: [
        ("Sec-WebSocket-Protocol", f"parley.v1, bearer.{t}"),
        ("Sec-WebSocket-Protocol", f"bearer.{t}")],
    "empty bearer subprotocol": lambda t: [("Sec-WebSocket-Protocol", "parley.v1, bearer.")],
    "Authorization scheme only": lambda t: [("Authorization", "Bearer")],
    "Authorization with trailing words": lambda t: [("Authorization", f"Bearer {t} extra")],
    "Authorization Basic": lambda t: [("Authorization", "Basic dXNlcjpwYXNz")],
    "non-ASCII token": lambda t: [("Authorization", "Bearer ëÿ.ü.ö")],
    "6 KiB of junk": lambda t: [("Authorization", "Bearer " + "A" * 6144)],
    "JWT header that is a JSON list": lambda t: [("Authorization", "Bearer WzFd.e30.c2ln")],
    "JWT header that is not UTF-8": lambda t: [("Authorization", "Bearer _-8.e30.c2ln")],
    "only parley.v1 offered": lambda t: [("Sec-WebSocket-Protocol", "parley.v1")],
}


@pytest.mark.parametrize("case", TOKENS)
async def test_token_in_odd_places_is_401(
    alice: Client, room: str, settings: Settings, case: str
) -> None:
    token = (await alice.token(room))["token"]
    status, head = await raw_upgrade(settings, f"/ws/rooms/{room}", TOKENS[case](token))
    assert status == 401, head


async def test_two_authorization_headers_are_nginxs_400(
    alice: Client, room: str, settings: Settings
) -> None:
    """nginx refuses a duplicate Authorization line itself (the chat would answer 401)."""
    token = (await alice.token(room))["token"]
    headers = [("Authorization", f"Bearer {token}")] * 2
    status, head = await raw_upgrade(settings, f"/ws/rooms/{room}", headers)
    assert status == 400 and b"Server: nginx" in head, head


async def test_token_in_the_query_string_is_ignored_401(
    alice: Client, room: str, settings: Settings
) -> None:
    token = (await alice.token(room))["token"]
    status, head = await raw_upgrade(settings, f"/ws/rooms/{room}?token={token}", [])
    assert status == 401, head


async def test_lowercase_bearer_scheme_is_101(alice: Client, room: str, settings: Settings) -> None:
    token = (await alice.token(room))["token"]
    status, head = await raw_upgrade(settings, f"/ws/rooms/{room}",
                                     [("Authorization", f"bearer {token}")])  # fmt: skip
    assert status == 101, head


@pytest.mark.parametrize(
    ("protocols", "status", "selected"),
    [("a b", 400, None), (",", 400, None), ("parley.v1,,", 101, b"parley.v1"),
     ("parley.v2", 101, None)],
    ids=["space inside an item", "only a comma", "empty items", "unknown protocol"],
)  # fmt: skip
async def test_odd_subprotocol_header_is_answered(
    alice: Client, room: str, settings: Settings, protocols: str, status: int,
    selected: bytes | None,
) -> None:  # fmt: skip
    """With the token in Authorization: an unparseable list is the chat's 400, an unknown
    protocol is simply not selected, empty list items are skipped."""
    token = (await alice.token(room))["token"]
    headers = [("Sec-WebSocket-Protocol", protocols), ("Authorization", f"Bearer {token}")]
    got, head = await raw_upgrade(settings, f"/ws/rooms/{room}", headers)
    assert got == status, head
    answered = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-protocol:")]  # fmt: skip
    assert answered == ([selected] if selected else []), head


@pytest.mark.parametrize(
    ("headers", "status"),
    [([("X-Big", "b" * 9000)], 431), ([(f"X-H{i}", "v") for i in range(130)], 431)],
    ids=["one header over 8 KiB (nginx)", "130 headers (the chat)"],
)
async def test_oversized_headers_are_refused(
    room: str, settings: Settings, headers: Headers, status: int
) -> None:
    got, head = await raw_upgrade(settings, f"/ws/rooms/{room}", headers)
    assert got == status, head
