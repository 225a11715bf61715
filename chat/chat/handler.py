"""One connection's life: join the room, relay its messages, leave. Local members are always
written to first; the relay then carries the same frame to the other replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence, Set

import structlog
from opentelemetry.trace import Link
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from . import fanout, metrics, protocol, telemetry, typing_indicator, wire
from .caps import user_over_cap
from .config import Settings
from .connection import ChatConnection
from .keepalive import Watchdog
from .protocol import ChatMessage, FrameError, User
from .ratelimit import FloodGuard, TokenBucket
from .relay import Relay
from .revocations import Revocations
from .rooms import Rooms

log = structlog.get_logger(__name__)

class ChatHandler:
    def __init__(
        self,
        rooms: Rooms[ChatConnection],
        settings: Settings,
        watchdog: Watchdog,
        revocations: Revocations,
        relay: Relay,
    ) -> None:
        self._rooms = rooms
        self._settings = settings
        self._watchdog = watchdog
        self._revocations = revocations
        self._relay = relay

    async def __call__(self, ws: ServerConnection) -> None:
        assert isinstance(ws, ChatConnection) and ws.handshake_trace is not None
        identity, ht = ws.identity, ws.handshake_trace
        room, user = identity.room, User(identity.user_id, identity.name)
        opened = time.monotonic()
        # Linked to the room before joining it: the welcome lists members on every replica.
        try:
            await self._relay.acquire(room)
        except BaseException as exc:
            self._relay.release(room)
            ht.end(error=exc)
            raise
        try:
            await self._live(ws, room, user, opened)
        finally:
            self._relay.release(room)

    async def _live(self, ws: ChatConnection, room: str, user: User, opened: float) -> None:
        identity, ht = ws.identity, ws.handshake_trace
        assert ht is not None
        # Still inside the handshake span (current in this task): the join is part of it.
        # From the refusal check to the join nothing awaits, so two tabs opening at once
        # cannot both take the user's last place.
        try:
            refusal = self._refusal(identity.user_id, ws)
            if refusal is None:
                self._join(ws, room, user)
            else:
                code, label, text = refusal
                ht.span.set_attribute(telemetry.REASON, label)
                log.info("connection refused", reason=label, close_code=code)
        finally:
            ht.end(101)
        if refusal is not None:
            await ws.close(code, text)  # waits at most close_timeout for the client
            return
        ws.forget_handshake()
        try:
            await self._messages(ws, room, user, ht.links)
        finally:
            self._watchdog.unwatch(ws)
            if self._rooms.leave(room, user.id, ws):
                self._relay.left(room, user)
                if not self._relay.elsewhere(room, user.id):  # else still in the room
                    self._relay.presence.left(room, user)
            metrics.CONNECTIONS_ACTIVE.dec()
            metrics.ROOMS_ACTIVE.set(len(self._rooms))
            duration = time.monotonic() - opened
            metrics.CONNECTION_DURATION.observe(duration)
            closed = ws.close_code
            cut = {} if ws.cut_reason is None else {"slow_consumer": ws.cut_reason}
            log.info("connection closed", duration_s=round(duration, 3),
                     close_code=None if closed is None else int(closed), **cut)  # fmt: skip

    def _join(self, ws: ChatConnection, room: str, user: User) -> None:
        first_tab = self._rooms.join(room, user, ws)
        self._watchdog.watch(ws)
        metrics.CONNECTIONS_ACTIVE.inc()
        metrics.ROOMS_ACTIVE.set(len(self._rooms))
        if first_tab:
            self._relay.joined(room, user)
            if not self._relay.elsewhere(room, user.id):  # else already in the room
                self._relay.presence.joined(room, user)  # told to the others at the next tick
        # Written synchronously: nothing can be sent to this socket between joining the room
        # and the welcome frame, so welcome is always the first frame. Its own join is pending
        # already, so the batch knows this welcome showed it.
        self._relay.presence.welcomed(room, ws)
        self._watchdog.welcome(ws, protocol.welcome(room, user, self._relay.members(room)))
        log.info("connection opened", first_tab=first_tab)

    def _refusal(self, user_id: str, ws: ChatConnection) -> tuple[int, str, str] | None:
        """Why this upgraded socket may not join: (close code, reason label, close reason)."""
        if self._revocations.refuses(ws.identity):  # revoked while its handshake was verified
            return wire.CLOSE_SESSION_ENDED, "revoked_token", "session ended"
        if user_over_cap(self._rooms.user_connections(user_id),
                         self._settings.max_connections_per_user):  # fmt: skip
            metrics.USER_CAP_CLOSES.inc()
            return wire.CLOSE_TOO_MANY_CONNECTIONS, "too_many_connections", "too many connections"
        return None

    async def _messages(
        self, ws: ChatConnection, room: str, user: User, links: Sequence[Link]
    ) -> None:
        s = self._settings
        bucket = TokenBucket(s.rate_per_s, s.rate_burst)
        flood = FloodGuard(s.flood_rejections, s.flood_window_s)
        typing_gate = typing_indicator.TypingGate()
        limited = False
        try:
            while True:
                raw = await ws.recv()
                arrived = time.perf_counter()
                try:
                    msg: ChatMessage | FrameError = protocol.parse_client_frame(raw)
                except FrameError as exc:
                    msg = exc
                # Every frame costs a token, invalid ones too: answering them is work as well.
                if not bucket.take():
                    if not limited:  # one line per burst, not per frame
                        log.warning("rate limited")
                    limited = True
                    error = protocol.error(wire.ERROR_RATE_LIMITED, "slow down", msg.client_id)
                    await ws.send(error)
                    if flood.record():
                        log.warning("closing flooding connection")
                        await _close_draining(ws, wire.CLOSE_POLICY_VIOLATION, "flooding")
                        return
                    continue
                limited = False
                if isinstance(msg, FrameError) and typing_indicator.is_typing(raw):  # not answered
                    if typing_gate.allow():
                        others = typing_indicator.recipients(self._rooms, room, user.id)
                        typing = protocol.typing(user)
                        self._broadcast(room, wire.FRAME_TYPING, others, typing, links)
                        self._relay.typing(room, user)
                    continue
                if isinstance(msg, FrameError):
                    await ws.send(protocol.error(msg.code, msg.detail, msg.client_id))
                    continue
                metrics.MESSAGES_RECEIVED.inc()
                recipients = self._rooms.connections(room)
                # One JSON encoding per message; the broadcast encodes the str to UTF-8 once too.
                frame = protocol.message(room, user, msg)
                written = self._broadcast(room, wire.FRAME_MESSAGE, recipients, frame, links)
                metrics.MESSAGES_DELIVERED.inc(written)
                metrics.BROADCAST_DURATION.observe(time.perf_counter() - arrived)
                self._relay.message(room, frame)  # after the local writes: never in their way
        except ConnectionClosed:
            return

    def _broadcast(
        self, room: str, kind: str, recipients: Set[ChatConnection], frame: str,
        links: Sequence[Link] | None,
    ) -> int:  # fmt: skip
        return fanout.broadcast(self._watchdog, room, kind, recipients, frame, links)


async def _close_draining(ws: ServerConnection, code: int, reason: str) -> None:
    """Closes while still reading: a flooder's unread frames fill our receive queue, which
    stops reading the socket, so its close reply would wait behind them until close_timeout."""
    closing = asyncio.create_task(ws.close(code, reason))
    try:
        while True:
            await ws.recv()
    except ConnectionClosed:
        pass
    await closing
