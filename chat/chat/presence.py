"""What one replica knows of a room's members on the other replicas (docs/design.md §5,
"Presence"): entries (node, user) learned from their join/leave envelopes and from snapshots of
the room's presence hash, which the sweep reads to catch what no envelope said (a crashed
replica's users, whose entries expired; anything missed while the bus was down).

Pure bookkeeping, no I/O: every change returns whether the *user* appeared in or vanished
from the remote view, and the relay turns those into join/leave frames for local members."""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import User

Entry = tuple[str, str]  # (node, user id)
FORGET_GONE_S = 60.0  # how long a leave envelope keeps a snapshot from resurrecting its entry


@dataclass(slots=True)
class _Seen:
    user: User
    at: float  # monotonic: when this replica learned it


@dataclass(slots=True)
class RoomView:
    _users: dict[str, dict[str, _Seen]] = field(default_factory=dict)  # user id -> node -> seen
    _gone: dict[Entry, float] = field(default_factory=dict)  # removed by an envelope, when

    def has(self, user_id: str) -> bool:
        return user_id in self._users

    def users(self) -> list[User]:
        """One per user, in the order they first appeared."""
        return [next(iter(nodes.values())).user for nodes in self._users.values()]

    def add(self, node: str, user: User, at: float) -> bool:
        """True if the user was on no other replica before."""
        nodes = self._users.get(user.id)
        new = nodes is None
        if nodes is None:
            nodes = self._users[user.id] = {}
        nodes[node] = _Seen(user, at)
        self._gone.pop((node, user.id), None)
        return new

    def remove(self, node: str, user_id: str, at: float) -> User | None:
        """The user, if this was their last replica."""
        self._gone[(node, user_id)] = at
        nodes = self._users.get(user_id)
        seen = nodes.pop(node, None) if nodes is not None else None
        if nodes is None or seen is None or nodes:
            return None
        del self._users[user_id]
        return seen.user

    def reconcile(
        self, snapshot: dict[Entry, User], started: float, may_remove: bool
    ) -> tuple[list[User], list[User]]:
        """Applies a snapshot of the presence hash read from `started` on (other replicas'
        entries only): what it has and we lack is added, unless an envelope removed it since;
        what we have and it lacks is removed, unless we learned it since (an envelope can
        overtake the snapshot's answer, which travels on another connection). Returns the
        users who appeared and those who vanished."""
        appeared: list[User] = []
        vanished: list[User] = []
        for (node, user_id), user in snapshot.items():
            nodes = self._users.get(user_id)
            if nodes is not None and node in nodes:
                continue
            if self._gone.get((node, user_id), float("-inf")) >= started:
                continue
            if self.add(node, user, started):
                appeared.append(user)
        if may_remove:
            stale = [
                (node, user_id)
                for user_id, nodes in self._users.items()
                for node, seen in nodes.items()
                if (node, user_id) not in snapshot and seen.at < started
            ]  # fmt: skip
            for node, user_id in stale:
                if (gone := self.remove(node, user_id, started)) is not None:
                    vanished.append(gone)
        horizon = started - FORGET_GONE_S
        self._gone = {entry: at for entry, at in self._gone.items() if at > horizon}
        return appeared, vanished
