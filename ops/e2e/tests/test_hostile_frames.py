"""Hostile frames and text through nginx: each gets its exact answer (delivery unchanged, an
error frame with its code while the socket stays open, or a close code), never a 1011
(docs/design.md §5, "Frames" and "Text")."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed

from support import Client, Join, Peer

BAD, LONG = "bad_message", "too_long"

# The JSON spelling of a message's "text" → the error code, or None: delivered unchanged.
TEXTS: dict[str, tuple[str, str | None]] = {
    "lone high surrogate": (r'"a\ud800b"', BAD),
    "lone low surrogate": (r'"\udfff"', BAD),
    "reversed surrogate pair": (r'"\ude00\ud83d"', BAD),
    "escaped surrogate pair (emoji)": (r'"\ud83d\ude00"', None),
    "NUL": (r'"a\u0000b"', BAD),
    "bell": (r'"ding\u0007"', BAD),
    "ANSI escape": (r'"\u001b[31mred"', BAD),
    "carriage return": (r'"a\rb"', BAD),
    "DEL": (r'"a\u007fb"', BAD),
    "C1 next line": (r'"a\u0085b"', BAD),
    "newline and tab": (r'"line one\nline\ttwo"', None),
    "noncharacter U+FFFF": (r'"a\uffffb"', BAD),
    "noncharacter U+FDD0": (r'"a\ufdd0b"', BAD),
    "noncharacter U+10FFFF": (r'"a\udbff\udfffb"', BAD),
    "right-to-left override": (r'"invoice\u202efdp.exe"', BAD),
    "left-to-right embedding": (r'"a\u202ab"', BAD),
    "first strong isolate": (r'"a\u2068b"', BAD),
    "right-to-left mark": (r'"\u05e9\u05dc\u05d5\u05dd\u200f!"', None),
    "zero-width joiner family emoji": (r'"\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67"', None),
    "zero-width space inside a word": (r'"zero\u200bwidth"', None),
    "only zero-width spaces": (r'"\u200b\u200b"', BAD),
    "only a BOM between spaces": (r'" \ufeff "', BAD),
    "2000 emoji (code points)": ('"' + "\U0001f600" * 2000 + '"', None),
    "2001 emoji": ('"' + "\U0001f600" * 2001 + '"', LONG),
    "text is a number": ("42", BAD),
    "text is null": ("null", BAD),
    "text is an object": ('{"a": 1}', BAD),
}


async def two_tabs(join: Join, alice: Client, room: str) -> tuple[Peer, Peer]:
    return await join(alice, room), await join(alice, room, mode="bearer")


@pytest.mark.parametrize("case", TEXTS)
async def test_message_text(alice: Client, room: str, join: Join, case: str) -> None:
    literal, code = TEXTS[case]
    sender, other = await two_tabs(join, alice, room)
    await sender.send_raw(f'{{"type": "message", "text": {literal}, "client_id": "c1"}}')
    if code is None:
        frame, _ = await other.recv_until(lambda f: f["type"] == "message")
        assert frame["text"] == json.loads(literal).strip(), case
        return
    error = await sender.recv()
    assert (error["type"], error["code"], error["client_id"]) == ("error", code, "c1"), error
    await sender.say("still open")
    frame, skipped = await other.recv_until(lambda f: f["type"] == "message")
    assert frame["text"] == "still open" and skipped == [], "a refused text was delivered"


@pytest.mark.parametrize(
    "client_id",
    [r'"\ud800"', r'"a\u0000"', r'"\u001b[2J"', f'"{"x" * 65}"', "7", "[]"],
    ids=["lone surrogate", "NUL", "ANSI escape", "65 characters", "a number", "a list"],
)
async def test_bad_client_id_is_refused_and_never_echoed(
    alice: Client, room: str, join: Join, client_id: str
) -> None:
    peer = await join(alice, room)
    await peer.send_raw(f'{{"type": "message", "text": "hi", "client_id": {client_id}}}')
    error = await peer.recv()
    assert (error["type"], error["code"]) == ("error", BAD), error
    assert "client_id" not in error, error


@pytest.mark.parametrize(
    "raw",
    ["[" * 5000 + "]" * 5000, "1" * 5000, '{"type": "message", "text": 1e999}', "NaN",
     '"\\ud800"', "not json", "[]", '{"type": "shout", "text": "hi"}', '{"text": "hi"}'],
    ids=["deeply nested", "5000-digit number", "infinite number", "NaN",
         "a bare string with a surrogate", "not JSON", "an array", "unknown type", "no type"],
)  # fmt: skip
async def test_odd_frame_is_bad_message_and_the_socket_stays(
    alice: Client, room: str, join: Join, raw: str
) -> None:
    peer = await join(alice, room)
    await peer.send_raw(raw)
    error = await peer.recv()
    assert (error["type"], error["code"]) == ("error", BAD), error
    await peer.say("after")
    frame, _ = await peer.recv_until(lambda f: f["type"] == "message")
    assert frame["text"] == "after"


async def test_binary_frame_is_bad_message(alice: Client, room: str, join: Join) -> None:
    peer = await join(alice, room)
    await peer.send_raw(b'{"type": "message", "text": "hi"}')
    error = await peer.recv()
    assert (error["type"], error["code"]) == ("error", BAD), error


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b'{"type": "message", "text": "\xed\xa0\x80"}', 1007),
     (b'{"type": "message", "text": "\xff"}', 1007)],
    ids=["UTF-8 encoded surrogate", "byte 0xFF"],
)  # fmt: skip
async def test_invalid_utf8_in_a_text_frame_closes_1007(
    alice: Client, room: str, join: Join, payload: bytes, code: int
) -> None:
    """Not a 1011: websockets itself refuses the frame (invalid frame payload data)."""
    peer = await join(alice, room)
    await peer.ws.send(payload, text=True)
    with pytest.raises(ConnectionClosed) as info:
        await peer.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == code


async def test_frame_over_16_kib_closes_1009(alice: Client, room: str, join: Join) -> None:
    peer = await join(alice, room)
    await peer.send_raw(json.dumps({"type": "message", "text": "x" * 17000}))
    with pytest.raises(ConnectionClosed) as info:
        await peer.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
