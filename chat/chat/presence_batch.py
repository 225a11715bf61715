"""Presence coalesced per room (docs/design.md §5, "Presence frames").

Every change of a room's member list as this replica's members see it (a local user's first or
last tab, a remote user appearing in or vanishing from the relay's view) is collected here and
flushed once per tick as one `presence` frame to every local member, so a join storm costs
O(members) frames per tick instead of O(members x joiners). Messages and typing never wait.

Each socket hears what changed since what it was shown. Members from before the tick get the
tick's net changes, one frame shared by all of them: a join and a leave of one user within the
tick cancel out (so do a leave and a join, unless the name changed). A socket welcomed during
the tick saw the changes up to its welcome, so it gets only the net changes after it (sockets
welcomed at the same point share a frame; one welcomed after the tick's last change gets none,
so a joiner never hears of its own join). A tick names users worth at most
TICK_SHARE_OF_BOUND of a member's send-buffer bound; the rest goes on in the next tick. The
server's ticks share a frame budget: a room whose frame to every member each base tick would
cost more than its part of it ticks longer (`tick_seconds`, `PresenceBatch._share`). The page
applies `joined` as set-add and `left` as set-remove, idempotently, so even a repeated name
could not break its list."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator, Set
from dataclasses import dataclass, field

from . import fanout, metrics, protocol, wire
from .connection import ChatConnection
from .keepalive import Watchdog
from .protocol import User
from .rooms import Rooms

# Users per frame (joined and left together): ~100 bytes each (a 50-character name, a UUID)
# keeps a frame near 10 KiB, 25 KiB at worst (4-byte characters).
# A bigger batch goes out as several frames in the same tick.
MAX_USERS_PER_FRAME = 100
# A tick's changes, in bytes of the users they name, as a share of SEND_BUFFER_BYTES: a
# tick's frames reach a member in one write, and a big change (a crashed replica's thousands
# of users in a room) would otherwise be megabytes at once in every member's transport, over
# its bound. The changes past it wait for the next tick, in order.
TICK_SHARE_OF_BOUND = 0.5
# The longest tick, however big the room: a join still shows within a second.
MAX_TICK_S = 1.0


Event = tuple[str, User, bool]  # (user id, the user, present after it)


def tick_seconds(sockets: int, base_s: float, frames_per_s: float) -> float:
    """How long a room's tick collects changes: the base tick, or, in a room whose sockets
    would get more than `frames_per_s` frames a second from it, long enough that they do not
    (up to MAX_TICK_S). Each frame is a write to one socket: at 50 ms, the benchmark's join
    storm into a room of 2,000 took 112,000-137,000 of them and fell behind its joiners."""
    return max(base_s, min(sockets / frames_per_s, MAX_TICK_S))


@dataclass(slots=True)
class _Tick:
    timer: asyncio.TimerHandle
    cost: float  # frames a second: the room's sockets at the start / the tick's length
    # What the members from before the tick know: user id -> the user, None if absent.
    before: dict[str, User | None] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # Sockets welcomed during the tick -> how many events their welcome showed.
    welcomed: dict[ChatConnection, int] = field(default_factory=dict)

    def split(self, budget: int) -> tuple[list[Event], dict[str, User | None]] | None:
        """Keeps the first events whose users fit in `budget` bytes (at least one) and returns
        the rest, with what the members from before the tick will know of the rest's users
        once this tick is out; None if all fit."""
        size = 0
        for cut, (_, user, _) in enumerate(self.events):
            size += len(user.encoded.encode()) + 1
            if size > budget and cut:
                break
        else:
            return None
        rest, self.events = self.events[cut:], self.events[:cut]
        seen = dict(self.before)
        for user_id, user, present in self.events:
            seen[user_id] = user if present else None
        return rest, {user_id: seen[user_id] for user_id, _, _ in rest}

    def since(self, shown: int) -> list[tuple[bool, User]]:
        """The net changes for a socket that was shown the first `shown` events: (joined, user)
        for each user touched after them, in order, whose state differs at the end."""
        seen = dict(self.before)
        for user_id, user, present in self.events[:shown]:
            seen[user_id] = user if present else None
        final: dict[str, User | None] = {}
        latest: dict[str, User] = {}
        for user_id, user, present in self.events[shown:]:
            final[user_id] = user if present else None
            latest[user_id] = user
        said: list[tuple[bool, User]] = []
        for user_id, now in final.items():
            was = seen[user_id]
            if now is None and was is not None:
                said.append((False, latest[user_id]))
            elif now is not None and (was is None or was.name != now.name):
                said.append((True, now))
        return said


class PresenceBatch:
    def __init__(self, rooms: Rooms[ChatConnection], watchdog: Watchdog, tick_s: float,
                 frames_per_s: int) -> None:  # fmt: skip
        self._rooms = rooms
        self._watchdog = watchdog
        self._tick_s = tick_s
        self._frames_per_s = frames_per_s
        self._budget = int(watchdog.bound * TICK_SHARE_OF_BOUND)
        self._ticks: dict[str, _Tick] = {}  # rooms with changes pending
        # The pending ticks' costs, in frames a second: kept as they start and end rather than
        # summed at each start, which would walk every pending tick (hundreds in a storm over
        # many rooms, each restarting every base tick).
        self._committed = 0.0

    def joined(self, room: str, user: User) -> None:
        """The user is now in the room, for this replica's members."""
        self._change(room, user, present=True)

    def left(self, room: str, user: User) -> None:
        """The user is no longer in the room, for this replica's members."""
        self._change(room, user, present=False)

    def welcomed(self, room: str, ws: ChatConnection) -> None:
        """A socket is being welcomed with the room's members as they are now."""
        if (tick := self._ticks.get(room)) is not None:
            tick.welcomed[ws] = len(tick.events)
        # else: no tick pending, it will hear exactly the changes after its welcome

    def forget(self, room: str) -> None:
        """No local member is left in the room: nobody to tell."""
        if (tick := self._end(room)) is not None:
            tick.timer.cancel()

    def flush_all(self) -> None:
        """Sends everything pending now (at shutdown), a tick's share at a time."""
        while self._ticks:
            for room in list(self._ticks):
                self._flush(room)

    def _share(self) -> float:
        """A starting tick's part of PRESENCE_FRAMES_PER_S: what the pending ticks left of it,
        and never less than an equal share among them and it, so that a storm in one big room
        does not slow every small room's presence to MAX_TICK_S. A room that starts ticking
        while the others spend the whole budget takes its equal share on top: the ticks cost
        more than the budget until those rooms' next ticks, which take only what is left."""
        budget = self._frames_per_s
        return max(budget - self._committed, budget / (len(self._ticks) + 1))

    def _start_tick(self, room: str) -> _Tick:
        sockets = len(self._rooms.connections(room))
        delay = tick_seconds(sockets, self._tick_s, self._share())
        # An empty context: the flush is nobody's request (no request_id, no parent span).
        timer = asyncio.get_running_loop().call_later(
            delay, self._flush, room, context=contextvars.Context()
        )
        tick = self._ticks[room] = _Tick(timer, sockets / delay)
        self._committed += tick.cost
        return tick

    def _end(self, room: str) -> _Tick | None:
        tick = self._ticks.pop(room, None)
        if tick is not None:
            # Back to exactly 0 when nothing is pending: float sums never drift for long.
            self._committed = self._committed - tick.cost if self._ticks else 0.0
        return tick

    def _change(self, room: str, user: User, *, present: bool) -> None:
        tick = self._ticks.get(room) or self._start_tick(room)
        if user.id not in tick.before:
            tick.before[user.id] = None if present else user
        tick.events.append((user.id, user, present))

    def _flush(self, room: str) -> None:
        tick = self._end(room)
        if tick is None:
            return
        tick.timer.cancel()
        if (split := tick.split(self._budget)) is not None:
            rest = self._start_tick(room)  # the next tick goes on from the cut
            rest.events, rest.before = split
            cut = len(tick.events)
            for ws, shown in tick.welcomed.items():  # welcomed past the cut: nothing now
                if shown > cut:
                    rest.welcomed[ws] = shown - cut
                    tick.welcomed[ws] = cut
        everyone = self._rooms.connections(room)
        # Who was shown how much: the members from before the tick none of its events.
        later: dict[int, set[ChatConnection]] = {}
        for ws, shown in tick.welcomed.items():
            if ws in everyone:  # else closed since
                later.setdefault(shown, set()).add(ws)
        old = {ws for ws in everyone if ws not in tick.welcomed} if tick.welcomed else everyone
        batches: list[tuple[int, Set[ChatConnection]]] = [(0, old), *sorted(later.items())]
        for shown, recipients in batches:
            if not recipients or shown == len(tick.events):
                continue
            for frame in frames(tick.since(shown)):
                written = fanout.broadcast(self._watchdog, room, wire.FRAME_PRESENCE,
                                           recipients, frame, ())  # fmt: skip
                metrics.PRESENCE_FRAMES.inc(written)


def frames(said: list[tuple[bool, User]]) -> Iterator[str]:
    """Presence frames for these changes, at most MAX_USERS_PER_FRAME users each."""
    for i in range(0, len(said), MAX_USERS_PER_FRAME):
        chunk = said[i : i + MAX_USERS_PER_FRAME]
        yield protocol.presence([u for j, u in chunk if j], [u for j, u in chunk if not j])
