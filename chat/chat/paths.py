"""Request targets, parsed strictly: no decoding, no normalisation, no urlsplit().

urlsplit() would read `//ws/rooms/x` as host "ws" and path "/rooms/x"; decoding or collapsing
dot segments would turn `/ws/rooms/%2e%2e/x` or `/ws/rooms/../x` into other routes. Here a path
is the target up to its first "?", and a name is one whole segment matching its pattern."""

from __future__ import annotations

import re

from . import wire

_ROOM = re.compile(wire.ROOM_NAME_PATTERN)


def path_of(target: str) -> str:
    """The request target without its query."""
    return target.partition("?")[0]


def name_in(path: str, prefix: str, suffix: str, pattern: re.Pattern[str]) -> str | None:
    """`name` if the path is exactly prefix + name + suffix and name matches the pattern."""
    if not (path.startswith(prefix) and path.endswith(suffix)):
        return None
    name = path[len(prefix) : len(path) - len(suffix)]
    return name if pattern.fullmatch(name) else None


def room_of(path: str) -> str | None:
    """The room of `/ws/rooms/{room}`, or None for any other path."""
    return name_in(path, wire.WS_PATH_PREFIX, "", _ROOM)
