"""The typing indicator: a client's {"type": "typing"} relayed to the room's other members.

Never echoed to the sender (none of its tabs), at most one per sender connection every
TYPING_INTERVAL_S (extra ones are dropped silently, not answered), and stored nowhere: the
page hides the indicator by itself a few seconds after the last frame (docs/design.md §5).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable, Set
from typing import Any, TypeVar

from . import wire
from .rooms import Rooms

TYPING_INTERVAL_S = 2.0
# A typing frame is {"type": "typing"}; anything much longer is not one worth parsing again.
_MAX_TYPING_FRAME_CHARS = 256

C = TypeVar("C", bound=Hashable)


def is_typing(raw: str | bytes) -> bool:
    """Whether a frame the message parser refused is a typing frame."""
    if not isinstance(raw, str) or len(raw) > _MAX_TYPING_FRAME_CHARS:
        return False
    try:
        frame: Any = json.loads(raw)
    except ValueError:
        return False
    return isinstance(frame, dict) and frame.get("type") == wire.FRAME_TYPING


class TypingGate:
    """One per connection: lets a typing frame through at most once per interval."""

    __slots__ = ("_clock", "_interval", "_last")

    def __init__(
        self, interval_s: float = TYPING_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last: float | None = None

    def allow(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True


def recipients(rooms: Rooms[C], room: str, user_id: str) -> Set[C]:
    """The room's connections but the sender's own (every tab of theirs)."""
    return rooms.connections(room) - rooms.user_connections(user_id)

