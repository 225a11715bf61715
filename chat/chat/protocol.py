"""Client frame parsing/validation and server frame builders: the JSON text frames of
docs/design.md §5."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import text as textrules
from . import wire
from .wire import ERROR_BAD_MESSAGE, ERROR_TOO_LONG, MAX_CLIENT_ID_CHARS, MAX_TEXT_CHARS


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    # The user as a JSON object, encoded once: a welcome lists every member, and a join storm
    # into one room encoded the same members again for every joiner (docs/design.md §11).
    encoded: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoded", _encode(self.as_json()))

    def as_json(self) -> dict[str, str]:
        # Only id and name ever leave the server: never the email.
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class ChatMessage:
    text: str
    client_id: str | None


class FrameError(Exception):
    """An invalid client frame; answered with an error frame, the connection stays open."""

    def __init__(self, code: str, detail: str, client_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id = client_id


def parse_client_frame(raw: str | bytes) -> ChatMessage:
    if not isinstance(raw, str):
        raise FrameError(ERROR_BAD_MESSAGE, "binary frames are not supported")
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
        raise FrameError(ERROR_BAD_MESSAGE, "frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise FrameError(ERROR_BAD_MESSAGE, "frame must be a JSON object")
    client_id = frame.get("client_id")
    if client_id is not None and (
        not isinstance(client_id, str)
        or len(client_id) > MAX_CLIENT_ID_CHARS
        or textrules.unsendable(client_id)  # it is echoed: it must encode
    ):
        raise FrameError(
            ERROR_BAD_MESSAGE,
            f"client_id must be a string of at most {MAX_CLIENT_ID_CHARS} characters,"
            " without control characters",
        )
    if frame.get("type") != wire.FRAME_MESSAGE:
        raise FrameError(ERROR_BAD_MESSAGE, "unknown frame type", client_id)
    text = frame.get("text")
    if not isinstance(text, str) or not (text := text.strip()):
        raise FrameError(ERROR_BAD_MESSAGE, "text must be a non-blank string", client_id)
    # Characters are code points: an emoji outside the BMP counts once, as in Python.
    if len(text) > MAX_TEXT_CHARS:
        raise FrameError(ERROR_TOO_LONG, f"text exceeds {MAX_TEXT_CHARS} characters", client_id)
    if (problem := textrules.problem(text)) is not None:
        raise FrameError(ERROR_BAD_MESSAGE, problem, client_id)
    return ChatMessage(text=text, client_id=client_id)


def now_rfc3339() -> str:
    """UTC with milliseconds and a Z, e.g. 2026-11-24T22:51:39.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _users(users: Iterable[User]) -> str:
    """A JSON array of users, spliced from their own encodings."""
    return "[" + ",".join(u.encoded for u in users) + "]"


# The welcome and presence frames are spliced from encoded parts, each part json's own
# output; the result is what json.dumps of the whole frame gives, byte for byte (tests).


def welcome(room: str, you: User, members: Iterable[User]) -> str:
    return (f'{{"type":"{wire.FRAME_WELCOME}","room":{_encode(room)},"you":{you.encoded},'
            f'"members":{_users(members)}}}')  # fmt: skip


def presence(joined: Iterable[User], left: Iterable[User]) -> str:
    """Who joined and who left the room since the last presence frame."""
    return (f'{{"type":"{wire.FRAME_PRESENCE}","joined":{_users(joined)},'
            f'"left":{_users(left)},"ts":"{now_rfc3339()}"}}')  # fmt: skip


def typing(user: User) -> str:
    """A member is typing (to the room's other connections)."""
    return f'{{"type":"{wire.FRAME_TYPING}","user":{user.encoded}}}'


def message(room: str, sender: User, msg: ChatMessage) -> str:
    frame: dict[str, Any] = {
        "type": wire.FRAME_MESSAGE,
        "id": uuid.uuid4().hex,
        "room": room,
        "from": sender.as_json(),
        "text": msg.text,
        "ts": now_rfc3339(),
    }
    if msg.client_id is not None:
        frame["client_id"] = msg.client_id
    return _encode(frame)


def error(code: str, detail: str, client_id: str | None = None) -> str:
    frame = {"type": wire.FRAME_ERROR, "code": code, "detail": detail}
    if client_id is not None:
        frame["client_id"] = client_id
    return _encode(frame)
