"""Connection caps: per node (refused before the upgrade, 503 node_full) and per user across
all rooms and tabs (closed with 4429 right after the upgrade, before welcome)."""

from __future__ import annotations

from collections.abc import Set

from .connection import ChatConnection


class NodeCap:
    """Counts admitted connections from the gate's yes until their TCP connection is gone,
    so handshakes in flight count too and a refused or failed upgrade never leaks a place."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def full(self) -> bool:
        return self.count >= self.limit

    def admit(self, conn: ChatConnection) -> bool:
        """Takes a place for `conn` until it is lost; False if there is none."""
        if self.full():
            return False
        self.count += 1
        conn.on_lost = self._release
        return True

    def _release(self) -> None:
        self.count -= 1


def user_over_cap(user_connections: Set[ChatConnection], limit: int) -> bool:
    """True if one more socket would take the user over the cap (checked and followed by the
    join without an await in between, so concurrent tabs cannot both slip through)."""
    return len(user_connections) >= limit
