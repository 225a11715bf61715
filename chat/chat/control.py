"""Control commands from the website — close a deleted room, end a revoked user's sessions —
and what they do to the open sockets. Knows no transport: control_bus.ControlChannel hands
it each verified notice from the bus, on every replica. The contract: docs/design.md §5,
"Control"."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from . import telemetry, wire
from .connection import ChatConnection
from .revocations import Revocations
from .rooms import Rooms

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CloseRoom:
    """The room was deleted: its sockets close with 4404."""

    room: str


@dataclass(frozen=True, slots=True)
class RevokeUser:
    """The user's sessions ended: their sockets, in every room and tab, close with 4401 —
    only those of one website session when `sid` is given. Older tokens are refused for a
    while (revocations.Revocations)."""

    user_id: str
    sid: str | None = None


Command = CloseRoom | RevokeUser


class Control:
    def __init__(self, rooms: Rooms[ChatConnection], revocations: Revocations) -> None:
        self._rooms = rooms
        self._revocations = revocations
        self._closing: set[asyncio.Task[None]] = set()  # strong refs until each close is done

    def apply(self, command: Command) -> int:
        """Starts closing the command's sockets; returns how many. Runs in a `chat.control`
        span, a child of the transport's (`control.message`: the website's trace, over the bus)."""
        match command:
            case CloseRoom(room):
                kind, target = wire.NOTICE_ROOM_DELETED, {telemetry.ROOM: room}
                conns = list(self._rooms.connections(room))
                code, reason, event = wire.CLOSE_ROOM_DELETED, "room deleted", "room deleted"
                fields: dict[str, str | bool] = {"room": room}
            case RevokeUser(user_id, sid):
                # Remembered first: a handshake verified meanwhile is refused at its join.
                self._revocations.revoke(user_id, sid)
                kind, target = wire.NOTICE_USER_REVOKED, {telemetry.USER_ID: user_id}
                conns = [
                    c for c in self._rooms.user_connections(user_id)
                    if sid is None or c.identity.sid == sid
                ]  # fmt: skip
                code, reason, event = wire.CLOSE_SESSION_ENDED, "session ended", "user revoked"
                fields = {"user_id": user_id, "session_scoped": sid is not None}
        attributes: dict[str, str | int] = {
            telemetry.CONTROL_COMMAND: kind, **target, telemetry.CONNECTIONS_CLOSED: len(conns)
        }
        with telemetry.tracer.start_as_current_span("chat.control", attributes=attributes):
            for ws in conns:
                # Closing waits for the client's answer: never hold the caller for it.
                task = asyncio.create_task(ws.close(code, reason))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            log.info(event, connections_closed=len(conns), **fields)
        return len(conns)
