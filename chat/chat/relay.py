"""Rooms across replicas (docs/design.md §5, "Bus" and "Presence").

A replica holding members of a room is linked to it: subscribed to the room's channel, with a
view of the room's members on other replicas. What a local member says is written to the local
members by the handler first, then published here once; what other replicas publish is written
to the local members here, encoded once per replica, and this replica's own publications are
ignored. A user's first tab on this replica puts an entry (node:user_id, with a TTL) in the
room's presence hash and publishes a join; their last tab deletes it and publishes a leave. A
heartbeat rewrites this replica's entries (so they survive, and come back after Redis lost
them), and a sweep reads the hashes of the linked rooms: entries whose replica stopped
refreshing them (it crashed) have expired, and their users leave.

Every replica turns changes of its own view (local members plus the remote view) into joins
and leaves for its local members, so each user joins and leaves once, however many replicas and
tabs they use; `presence` (chat/presence_batch.py) coalesces them into one frame per tick."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from itertools import chain
from typing import Any

import structlog

from . import channels, fanout, metrics, protocol, typing_indicator, wire
from .bus import Bus, BusDown, Command
from .channels import Envelope
from .connection import ChatConnection
from .keepalive import Watchdog
from .presence import Entry, RoomView
from .presence_batch import PresenceBatch
from .presence_reads import PresenceReads, read_hashes
from .protocol import User
from .rooms import Rooms

log = structlog.get_logger(__name__)

_KIND_LABELS = {
    channels.MESSAGE: "message",
    channels.JOIN: "join",
    channels.LEAVE: "leave",
    channels.TYPING: "typing",
}


class Relay:
    def __init__(
        self,
        bus: Bus,
        rooms: Rooms[ChatConnection],
        watchdog: Watchdog,
        *,
        presence_ttl_s: float,
        heartbeat_s: float,
        sweep_s: float,
        link_timeout_s: float,
        presence_coalesce_s: float,
        presence_frames_per_s: int,
    ) -> None:
        self._bus = bus
        self._node = bus.node
        self._rooms = rooms
        self._watchdog = watchdog
        self._ttl_ms = max(1, int(presence_ttl_s * 1000))
        self._ttl_s = presence_ttl_s
        self._heartbeat_s = heartbeat_s
        self._sweep_s = sweep_s
        self._link_timeout = link_timeout_s
        self._refs: dict[str, int] = {}  # room -> handlers using it (joined or joining)
        self._views: dict[str, RoomView] = {}
        self._links: dict[str, asyncio.Task[None]] = {}
        self._bus_back = asyncio.Event()
        self._reads = PresenceReads(bus)
        # The room's joins and leaves as local members see them, local users' and remote ones'.
        self.presence = PresenceBatch(rooms, watchdog, presence_coalesce_s, presence_frames_per_s)
        bus.on_up(self._bus_back.set)

    # --- for the handler ---------------------------------------------------------------------

    async def acquire(self, room: str) -> None:
        """Links this replica to the room for as long as a handler holds it. The first one
        waits (at most the bus timeout) for the subscription and a snapshot of the room's
        members, so that its welcome lists the members on other replicas."""
        self._refs[room] = self._refs.get(room, 0) + 1
        if room not in self._views:
            self._views[room] = RoomView()
            self._links[room] = asyncio.create_task(self._link(room))
        link = self._links.get(room)
        if link is not None and not link.done() and self._bus.up:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._link_timeout):
                    await asyncio.shield(link)

    def release(self, room: str) -> None:
        refs = self._refs.get(room, 0) - 1
        if refs > 0:
            self._refs[room] = refs
            return
        self._refs.pop(room, None)
        self._views.pop(room, None)
        self._links.pop(room, None)
        self.presence.forget(room)
        self._bus.unsubscribe(channels.room_channel(room))

    def elsewhere(self, room: str, user_id: str) -> bool:
        """True if the user has a socket in the room on another replica."""
        view = self._views.get(room)
        return view is not None and view.has(user_id)

    def members(self, room: str) -> list[User]:
        """Everyone in the room: this replica's members, then the others'."""
        local = self._rooms.members(room)
        view = self._views.get(room)
        others = view.users() if view is not None else []
        if not others:  # no one elsewhere: no set of the local ids (a welcome in a big room)
            return local
        here = {u.id for u in local}
        return local + [u for u in others if u.id not in here]

    def joined(self, room: str, user: User) -> None:
        """The user's first tab in the room on this replica."""
        field = channels.presence_field(self._node, user.id)
        key = channels.presence_key(room)
        self._bus.write(self._entries_write(key, {field: user.name}))
        self._publish(room, channels.JOIN, user.encoded)

    def left(self, room: str, user: User) -> None:
        """The user's last tab in the room on this replica is gone."""
        field = channels.presence_field(self._node, user.id)
        key = channels.presence_key(room)
        self._bus.write(("HDEL", key, field))
        self._publish(room, channels.LEAVE, user.encoded)

    def message(self, room: str, frame: str) -> None:
        """A message frame, already written to the local members, for the other replicas."""
        self._publish(room, channels.MESSAGE, frame)

    def typing(self, room: str, user: User) -> None:
        """A member is typing (already told to the local members), for the other replicas."""
        self._publish(room, channels.TYPING, user.encoded)

    def _publish(self, room: str, kind: str, payload: str) -> None:
        envelope = Envelope(self._node, kind, time.time(), payload)
        self._bus.publish(channels.room_channel(room), envelope.encode())

    # --- from the bus ------------------------------------------------------------------------

    def receive(self, channel: str, data: bytes) -> None:
        """An envelope on a room channel (called by the bus's reader, in publication order)."""
        room = channels.room_of(channel)
        envelope = Envelope.decode(data)
        if room is None or envelope is None:
            log.warning("bus message ignored", channel=channel[:100])
            return
        view = self._views.get(room)
        if envelope.node == self._node or view is None:
            return  # our own, or a room we left meanwhile
        metrics.BUS_RECEIVED.labels(_KIND_LABELS[envelope.kind]).inc()
        if envelope.kind == channels.MESSAGE:
            recipients = self._rooms.connections(room)
            written = fanout.broadcast(self._watchdog, room, wire.FRAME_MESSAGE, recipients,
                                       envelope.payload, ())  # fmt: skip
            metrics.MESSAGES_DELIVERED.inc(written)
            metrics.BUS_LATENCY.observe(max(0.0, time.time() - envelope.sent_at))
            return
        user = envelope.user()
        if user is None:
            log.warning("bus presence ignored", channel=channel[:100])
            return
        if envelope.kind == channels.TYPING:  # never to the typing user's own tabs here
            others = typing_indicator.recipients(self._rooms, room, user.id)
            frame = protocol.typing(user)
            fanout.broadcast(self._watchdog, room, wire.FRAME_TYPING, others, frame, ())
            return
        now = time.monotonic()
        if envelope.kind == channels.JOIN:
            if view.add(envelope.node, user, now):
                self._presence(room, user, present=True)
        elif (gone := view.remove(envelope.node, user.id, now)) is not None:
            self._presence(room, gone, present=False)

    def _presence(self, room: str, user: User, *, present: bool) -> None:
        """A remote user appeared in or vanished from the view: local members hear of it,
        unless the user is here too (then nothing changed for them)."""
        if self._rooms.user_in(room, user.id):
            return
        if present:
            self.presence.joined(room, user)
        else:
            self.presence.left(room, user)

    # --- links, heartbeat, sweep -------------------------------------------------------------

    async def _link(self, room: str) -> None:
        try:
            await self._bus.subscribe(channels.room_channel(room))
            if room not in self._refs:  # released meanwhile: do not stay subscribed
                self._bus.unsubscribe(channels.room_channel(room))
                return
            started = time.monotonic()
            snapshot = await self._reads.read(room)
            self._apply(room, snapshot, started, may_remove=False)
        except BusDown:
            pass  # the sweep fills the view once the bus is back
        except Exception as exc:
            log.debug("room link failed", room=room, error=type(exc).__name__)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Relay]:
        tasks = [asyncio.create_task(self._heartbeats(), name="presence-heartbeat"),
                 asyncio.create_task(self._sweeps(), name="presence-sweep")]  # fmt: skip
        try:
            yield self
        finally:
            self.presence.flush_all()  # whatever is still pending, to whoever is still here
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._reads.aclose()

    async def _heartbeats(self) -> None:
        while True:
            try:
                self.heartbeat()
            except Exception:
                log.exception("presence heartbeat failed")
            await asyncio.sleep(self._heartbeat_s)

    def heartbeat(self) -> None:
        """Rewrites this replica's entries with a fresh TTL: one HSETEX per room."""
        if not self._bus.up:
            return
        for room in self._rooms.names():
            entries = {channels.presence_field(self._node, u.id): u.name
                       for u in self._rooms.members(room)}  # fmt: skip
            self._bus.write(self._entries_write(channels.presence_key(room), entries))

    def _entries_write(self, key: str, entries: Mapping[str, str]) -> Command:
        """HSETEX: the fields, each to expire a TTL from now."""
        return ("HSETEX", key, "PX", self._ttl_ms, "FIELDS", len(entries),
                *chain.from_iterable(entries.items()))  # fmt: skip

    async def _sweeps(self) -> None:
        while True:
            # Right away when the bus comes back: rewrite our entries, refresh every view.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sweep_s):
                    await self._bus_back.wait()
                    self._bus_back.clear()
                    self.heartbeat()
            try:
                await self.sweep()
            except BusDown:
                pass
            except Exception as exc:
                log.debug("presence sweep failed", error=type(exc).__name__)

    async def sweep(self) -> None:
        """Reads the presence hash of every linked room in one round trip and applies it.
        Removals wait until the bus has been up for a TTL: after an outage (Redis may have
        restarted empty) every live replica rewrites its entries first."""
        rooms = list(self._views)
        if not rooms or not self._bus.up:
            return
        started = time.monotonic()
        snapshots = await read_hashes(self._bus, rooms)
        may_remove = self._bus.up_for() >= self._ttl_s
        for room, snapshot in zip(rooms, snapshots, strict=True):
            self._apply(room, snapshot, started, may_remove)

    def _apply(self, room: str, raw: dict[Any, Any], started: float, may_remove: bool) -> None:
        view = self._views.get(room)
        if view is None:
            return
        snapshot: dict[Entry, User] = {}
        for field, name in raw.items():
            entry = channels.split_field(field.decode(errors="replace"))
            if entry is None or entry[0] == self._node:
                continue
            snapshot[entry] = User(entry[1], name.decode(errors="replace"))
        appeared, vanished = view.reconcile(snapshot, started, may_remove)
        for user in appeared:
            self._presence(room, user, present=True)
        for user in vanished:
            metrics.PRESENCE_EXPIRED.inc()
            log.info("remote member expired", room=room, user_id=user.id)
            self._presence(room, user, present=False)

