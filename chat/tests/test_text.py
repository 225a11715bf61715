"""The text rules (chat/text.py): every frame gets a clear answer, delivery or an error frame,
and the socket stays open; nothing a client sends can make the server fail (1011)."""

from __future__ import annotations

import json

import pytest

from chat import wire
from chat.protocol import FrameError, parse_client_frame
from tests.helpers import Chat, recv_join, recv_type

# (JSON text of the "text" value, the error code or None when delivered as is)
CASES: dict[str, tuple[str, str | None]] = {
    "lone high surrogate": (r'"a\ud800b"', wire.ERROR_BAD_MESSAGE),
    "lone low surrogate": (r'"\udfff"', wire.ERROR_BAD_MESSAGE),
    "reversed surrogate pair": (r'"\ude00\ud83d"', wire.ERROR_BAD_MESSAGE),
    "valid surrogate pair (emoji)": (r'"\ud83d\ude00"', None),
    "NUL": (r'"a\u0000b"', wire.ERROR_BAD_MESSAGE),
    "bell": (r'"ding\u0007"', wire.ERROR_BAD_MESSAGE),
    "ANSI escape": (r'"\u001b[31mred"', wire.ERROR_BAD_MESSAGE),
    "carriage return": (r'"a\rb"', wire.ERROR_BAD_MESSAGE),
    "DEL": (r'"a\u007fb"', wire.ERROR_BAD_MESSAGE),
    "C1 next line": (r'"a\u0085b"', wire.ERROR_BAD_MESSAGE),
    "newline and tab": (r'"a\nb\tc"', None),
    "noncharacter U+FFFF": (r'"a\uffffb"', wire.ERROR_BAD_MESSAGE),
    "noncharacter U+FDD0": (r'"a\ufdd0b"', wire.ERROR_BAD_MESSAGE),
    "noncharacter U+10FFFF": (r'"a\udbff\udfffb"', wire.ERROR_BAD_MESSAGE),
    "right-to-left override": (r'"abc\u202egnp.exe"', wire.ERROR_BAD_MESSAGE),
    "first strong isolate": (r'"a\u2068b"', wire.ERROR_BAD_MESSAGE),
    "right-to-left mark": (r'"\u05e9\u05dc\u05d5\u05dd\u200f!"', None),
    "zero-width joiner emoji": (r'"\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67"', None),
    "zero-width space inside": (r'"a\u200bb"', None),
    "only zero-width spaces": (r'"\u200b\u200b"', wire.ERROR_BAD_MESSAGE),
    "only a BOM and spaces": (r'" \ufeff "', wire.ERROR_BAD_MESSAGE),
    "2000 astral characters": ('"' + "\U0001f600" * 2000 + '"', None),
    "2001 astral characters": ('"' + "\U0001f600" * 2001 + '"', wire.ERROR_TOO_LONG),
}


@pytest.mark.parametrize("case", CASES)
def test_text_rules(case: str) -> None:
    literal, code = CASES[case]
    raw = f'{{"type": "message", "text": {literal}, "client_id": "c1"}}'
    if code is None:
        assert parse_client_frame(raw).text == json.loads(literal).strip()
    else:
        with pytest.raises(FrameError) as info:
            parse_client_frame(raw)
        assert (info.value.code, info.value.client_id) == (code, "c1")


@pytest.mark.parametrize("client_id", [r'"\ud800"', r'"a\u0000"', r'"\u001b"', f'"{"x" * 65}"'])
def test_client_ids_that_could_not_be_echoed_are_bad_and_not_echoed(client_id: str) -> None:
    with pytest.raises(FrameError) as info:
        parse_client_frame(f'{{"type": "message", "text": "hi", "client_id": {client_id}}}')
    assert (info.value.code, info.value.client_id) == (wire.ERROR_BAD_MESSAGE, None)


@pytest.mark.parametrize(
    "raw",
    ["[" * 5000 + "]" * 5000, "1" * 5000, '{"type": "message", "text": 1e999}', "NaN",
     '{"type": "message", "text": "a", "text": null}', '"\\ud800"'],
    ids=["deep nesting", "5000-digit number", "infinite number", "NaN", "duplicate key",
         "bare string with a surrogate"],
)  # fmt: skip
def test_odd_json_is_bad_message(raw: str) -> None:
    with pytest.raises(FrameError) as info:
        parse_client_frame(raw)
    assert info.value.code == wire.ERROR_BAD_MESSAGE


@pytest.mark.parametrize("case", [c for c, (_, code) in CASES.items() if code is not None])
async def test_refused_text_over_a_socket_keeps_it_open(chat: Chat, case: str) -> None:
    literal, code = CASES[case]
    async with chat.join(sub="u1") as alice, chat.join(sub="u2") as bob:
        await recv_type(alice, wire.FRAME_WELCOME)
        await recv_type(bob, wire.FRAME_WELCOME)
        await recv_join(alice, "u2")
        await alice.send(f'{{"type": "message", "text": {literal}, "client_id": "c1"}}')
        error = await recv_type(alice, wire.FRAME_ERROR)
        assert (error["code"], error["client_id"]) == (code, "c1")
        await alice.send(json.dumps({"type": "message", "text": "after"}))
        assert (await recv_type(bob, wire.FRAME_MESSAGE))["text"] == "after"  # none before
        assert (await recv_type(alice, wire.FRAME_MESSAGE))["text"] == "after"


async def test_accepted_odd_text_reaches_the_others_unchanged(chat: Chat) -> None:
    async with chat.join(sub="u1") as alice, chat.join(sub="u2") as bob:
        await recv_type(alice, wire.FRAME_WELCOME)
        await recv_type(bob, wire.FRAME_WELCOME)
        for case, (literal, code) in CASES.items():
            if code is None:
                await alice.send(f'{{"type": "message", "text": {literal}}}')
                frame = await recv_type(bob, wire.FRAME_MESSAGE)
                assert frame["text"] == json.loads(literal), case
