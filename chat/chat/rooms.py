"""In-memory rooms: who is connected where. A room exists while someone is in it."""

from __future__ import annotations

from collections.abc import Hashable, Set
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .protocol import User

C = TypeVar("C", bound=Hashable)


@dataclass(slots=True)
class _Member(Generic[C]):
    user: User
    tabs: set[C] = field(default_factory=set)


@dataclass(slots=True)
class _Room(Generic[C]):
    members: dict[str, _Member[C]] = field(default_factory=dict)  # by user id, in join order
    connections: set[C] = field(default_factory=set)  # flat, ready for broadcast()


class Rooms(Generic[C]):
    def __init__(self) -> None:
        self._rooms: dict[str, _Room[C]] = {}
        # Every connection of a user, all rooms and tabs: what a revocation closes.
        self._users: dict[str, set[C]] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def join(self, room: str, user: User, conn: C) -> bool:
        """Add a connection; True if it is the user's first in the room."""
        r = self._rooms.setdefault(room, _Room())
        member = r.members.get(user.id)
        first = member is None
        if member is None:
            member = r.members[user.id] = _Member(user)
        member.tabs.add(conn)
        r.connections.add(conn)
        self._users.setdefault(user.id, set()).add(conn)
        return first

    def leave(self, room: str, user_id: str, conn: C) -> bool:
        """Remove a connection; True if it was the user's last in the room."""
        r = self._rooms.get(room)
        member = r.members.get(user_id) if r else None
        if r is None or member is None or conn not in member.tabs:
            return False
        member.tabs.discard(conn)
        r.connections.discard(conn)
        user_conns = self._users[user_id]
        user_conns.discard(conn)
        if not user_conns:
            del self._users[user_id]
        if member.tabs:
            return False
        del r.members[user_id]
        if not r.members:
            del self._rooms[room]
        return True

    def names(self) -> list[str]:
        """The rooms with someone in them."""
        return list(self._rooms)

    def user_in(self, room: str, user_id: str) -> bool:
        r = self._rooms.get(room)
        return r is not None and user_id in r.members

    def members(self, room: str) -> list[User]:
        r = self._rooms.get(room)
        return [m.user for m in r.members.values()] if r else []

    def connections(self, room: str) -> Set[C]:
        r = self._rooms.get(room)
        return r.connections if r else frozenset()

    def user_connections(self, user_id: str) -> Set[C]:
        """The user's connections in every room."""
        return self._users.get(user_id, frozenset())
