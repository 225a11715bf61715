"""One connection's life: join the room, relay its messages, leave."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence, Set

import structlog
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from . import metrics, protocol, telemetry, wire
from .config import Settings
from .handshake import ChatConnection
from .protocol import ChatMessage, FrameError, User
from .ratelimit import FloodGuard, TokenBucket
from .rooms import Rooms

log = structlog.get_logger()
_tracer = telemetry.tracer
_ROOT: Context = telemetry.ROOT

class ChatHandler:
    def __init__(self, rooms: Rooms[ServerConnection], settings: Settings) -> None:
        self._rooms = rooms
        self._settings = settings

    async def __call__(self, ws: ServerConnection) -> None:
        assert isinstance(ws, ChatConnection) and ws.handshake_trace is not None
        identity, ht = ws.identity, ws.handshake_trace
        room, user = identity.room, User(identity.user_id, identity.name)
        opened = time.monotonic()

        # Still inside the handshake span (current in this task): the join is part of it.
        try:
            first_tab = self._rooms.join(room, user, ws)
            metrics.CONNECTIONS_ACTIVE.inc()
            metrics.ROOMS_ACTIVE.set(len(self._rooms))
            # broadcast() writes synchronously: nothing can be sent to this socket between
            # joining the room and the welcome frame, so welcome is always the first frame.
            broadcast([ws], protocol.welcome(room, user, self._rooms.members(room)))
            if first_tab:
                others = self._rooms.connections(room) - {ws}
                join = protocol.presence(wire.FRAME_JOIN, user)
                _broadcast(room, wire.FRAME_JOIN, others, join, None)
            log.info("connection opened", first_tab=first_tab)
        finally:
            ht.end(101)
        try:
            await self._relay(ws, room, user, ht.links)
        finally:
            if self._rooms.leave(room, user.id, ws):
                leave = protocol.presence(wire.FRAME_LEAVE, user)
                _broadcast(room, wire.FRAME_LEAVE, self._rooms.connections(room), leave, ht.links)
            metrics.CONNECTIONS_ACTIVE.dec()
            metrics.ROOMS_ACTIVE.set(len(self._rooms))
            duration = time.monotonic() - opened
            metrics.CONNECTION_DURATION.observe(duration)
            code = ws.close_code
            log.info("connection closed", duration_s=round(duration, 3),
                     close_code=None if code is None else int(code))  # fmt: skip

    async def _relay(
        self, ws: ServerConnection, room: str, user: User, links: Sequence[Link]
    ) -> None:
        s = self._settings
        bucket = TokenBucket(s.rate_per_s, s.rate_burst)
        flood = FloodGuard(s.flood_rejections, s.flood_window_s)
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
                if isinstance(msg, FrameError):
                    await ws.send(protocol.error(msg.code, msg.detail, msg.client_id))
                    continue
                metrics.MESSAGES_RECEIVED.inc()
                recipients = self._rooms.connections(room)
                # One JSON encoding per message; broadcast() encodes the str to UTF-8 once too.
                frame = protocol.message(room, user, msg)
                _broadcast(room, wire.FRAME_MESSAGE, recipients, frame, links)
                metrics.MESSAGES_DELIVERED.inc(len(recipients))
                metrics.BROADCAST_DURATION.observe(time.perf_counter() - arrived)
        except ConnectionClosed:
            return


def _broadcast(
    room: str, kind: str, recipients: Set[ServerConnection], frame: str,
    links: Sequence[Link] | None,
) -> None:  # fmt: skip
    """broadcast() in a `chat.broadcast` span: one span per frame, never one per recipient.
    With `links`, a root span linked to the sender's handshake (a connection lives for hours;
    its messages are traces of their own); without, a child of the current span."""
    if not recipients:  # the last one out of a room
        return
    span = _tracer.start_span(
        "chat.broadcast",
        context=_ROOT if links is not None else None,
        links=links,
        attributes={telemetry.ROOM: room, telemetry.FRAME_TYPE: kind,
                    telemetry.RECIPIENTS: len(recipients)},
    )  # fmt: skip
    # Current while writing, so anything logged meanwhile (websockets' write errors) carries
    # the span's ids.
    token = context.attach(trace.set_span_in_context(span, _ROOT))
    try:
        broadcast(recipients, frame)
    finally:
        context.detach(token)
        span.end()


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
