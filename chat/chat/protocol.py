"""Client frame parsing/validation and server frame builders: the JSON text frames of
docs/design.md §5."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import text as textrules
from . import wire
from .wire import ERROR_BAD_MESSAGE, ERROR_TOO_LONG, MAX_CLIENT_ID_CHARS, MAX_TEXT_CHARS


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str

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


def _encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def welcome(room: str, you: User, members: Iterable[User]) -> str:
    return _encode(
        {
            "type": wire.FRAME_WELCOME,
            "room": room,
            "you": you.as_json(),
            "members": [m.as_json() for m in members],
        }
    )


def presence(joined: Iterable[User], left: Iterable[User]) -> str:
    """Who joined and who left the room since the last presence frame."""
    return _encode(
        {
            "type": wire.FRAME_PRESENCE,
            "joined": [u.as_json() for u in joined],
            "left": [u.as_json() for u in left],
            "ts": now_rfc3339(),
        }
    )


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
