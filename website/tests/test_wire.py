"""The wire contract reaches every user of it: schema, forms, tokens and the chat page."""

import json
import re

from sqlalchemy import CheckConstraint, Table

from tests.utils import Browser, unique_room
from website import wire
from website.models import Room
from website.rooms import HTML_NAME_PATTERN

_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)


def test_the_schema_checks_the_contracts_room_name_pattern() -> None:
    table = Room.__table__
    assert isinstance(table, Table)
    (check,) = [c for c in table.constraints if c.name == "ck_rooms_name_format"]
    assert isinstance(check, CheckConstraint)
    assert wire.ROOM_NAME_PATTERN in str(check.sqltext)


def test_the_forms_pattern_accepts_exactly_what_the_contract_does() -> None:
    html = re.compile(HTML_NAME_PATTERN)
    contract = re.compile(wire.ROOM_NAME_PATTERN)
    for name in ["abc", "a-b", "a" * 32, "a" * 33, "ab", "-ab", "ab-", "AB", "a_b", "a--b"]:
        assert bool(html.fullmatch(name)) == bool(contract.fullmatch(name)), name


async def test_the_chat_page_gets_the_contract_as_data_not_script(user: Browser) -> None:
    room = unique_room()
    await user.create_room(room)
    page = (await user.http.get(f"/rooms/{room}")).text
    scripts = _SCRIPT.findall(page)
    (data,) = [body for attrs, body in scripts if 'id="parley-wire"' in attrs]
    for attrs, _ in scripts:  # nothing inline that a browser would run
        assert 'src="' in attrs or 'type="application/json"' in attrs, attrs
    assert json.loads(data) == {
        "SUBPROTOCOL": "parley.v1",
        "BEARER_PREFIX": "bearer.",
        "MAX_TEXT_CHARS": 2000,
        "CLOSE_GOING_AWAY": 1001,
        "CLOSE_POLICY_VIOLATION": 1008,
        "CLOSE_SLOW_CONSUMER": 4008,
        "CLOSE_SESSION_ENDED": 4401,
        "CLOSE_ROOM_DELETED": 4404,
        "CLOSE_TOO_MANY_CONNECTIONS": 4429,
    }
    # No maxlength on the textarea: it counts UTF-16 units, the chat code points (the page's
    # counter uses MAX_TEXT_CHARS from the data block instead).
    assert '<textarea id="message-input"' in page and "maxlength" not in page.split("<textarea")[1]
    assert "onsubmit=" not in page and "onclick=" not in page
