"""Upgrade gate: routing, Origin check and token authentication, all before the upgrade,
so rejected clients get a plain HTTP answer and no socket is ever opened for them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from . import metrics, telemetry
from .auth import AuthError, Identity, TokenVerifier, extract_token

log = structlog.get_logger()

SUBPROTOCOL = Subprotocol("parley.v1")
ROOM_PATH = re.compile(r"/ws/rooms/([a-z0-9][a-z0-9-]{1,30}[a-z0-9])")
DELETED_PATH = re.compile(r"/internal/rooms/([a-z0-9][a-z0-9-]{1,30}[a-z0-9])/deleted")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


class ChatConnection(ServerConnection):
    """A server connection that knows who is on the other end (set by the gate)."""

    identity: Identity
    handshake_trace: telemetry.HandshakeTrace | None = None  # set by the gate, not for /healthz

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().handshake(*args, **kwargs)
        except BaseException as exc:  # open_timeout, cancellation
            if self.handshake_trace is not None:
                self.handshake_trace.end(error=exc)
            raise
        if (ht := self.handshake_trace) is None:
            return
        status = None if self.response is None else self.response.status_code
        if status != HTTPStatus.SWITCHING_PROTOCOLS or self.protocol.state is not State.OPEN:
            # Rejected (by the gate, by websockets, 503 while shutting down) or client gone.
            ht.end(status)
        # Accepted: the handler ends the span once the socket has joined its room.


class Gate:
    def __init__(
        self,
        verifier: TokenVerifier,
        allowed_origins: frozenset[str],
        close_room: Callable[[str], int],
    ) -> None:
        self._verifier = verifier
        self._allowed_origins = allowed_origins
        self._close_room = close_room

    async def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            return conn.respond(HTTPStatus.OK, "ok\n")
        # Bound for the connection's whole life: the handler runs in this same task.
        request_id = _request_id(request.headers)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        deleted = DELETED_PATH.fullmatch(path)
        assert isinstance(conn, ChatConnection)
        conn.handshake_trace = ht = telemetry.HandshakeTrace(
            "chat.room_deleted" if deleted else "ws.handshake", request.headers, path, request_id
        )
        try:
            if deleted:
                ht.span.set_attribute(telemetry.ROOM, deleted[1])
                return await self._room_deleted(conn, request, deleted[1])
            if not (match := ROOM_PATH.fullmatch(path)):
                raise AuthError(HTTPStatus.NOT_FOUND, "not_found", "not found")
            room = match[1]
            structlog.contextvars.bind_contextvars(room=room)
            ht.span.set_attribute(telemetry.ROOM, room)
            if not self._origin_allowed(request.headers):
                raise AuthError(HTTPStatus.FORBIDDEN, "bad_origin", "origin not allowed")
            identity = await self._verifier.verify(extract_token(request.headers))
            if identity.room != room:
                raise AuthError(HTTPStatus.FORBIDDEN, "wrong_room", "token is for another room")
        except AuthError as exc:
            metrics.HANDSHAKE_REJECTIONS.labels(exc.reason).inc()
            ht.span.set_attribute(telemetry.REASON, exc.reason)
            log.info("handshake rejected", reason=exc.reason, status=exc.status.value,
                     path=path[:200])  # fmt: skip
            return conn.respond(exc.status, exc.detail + "\n")
        structlog.contextvars.bind_contextvars(user_id=identity.user_id)
        conn.identity = identity
        return None

    async def _room_deleted(self, conn: ServerConnection, request: Request, room: str) -> Response:
        """The website's notice (unreachable through nginx, which routes only /ws/): close the
        room's sockets with 4404. A plain GET because the websockets server parses only GET."""
        authorization = request.headers.get_all("Authorization")
        scheme, _, token = (authorization[0] if authorization else "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError(HTTPStatus.UNAUTHORIZED, "missing_token", "missing token")
        if await self._verifier.verify_room_deleted(token.strip()) != room:
            raise AuthError(HTTPStatus.FORBIDDEN, "wrong_room", "notice is for another room")
        closed = self._close_room(room)
        assert isinstance(conn, ChatConnection) and conn.handshake_trace is not None
        conn.handshake_trace.span.set_attribute(telemetry.CONNECTIONS_CLOSED, closed)
        log.info("room deleted", connections_closed=closed)
        return conn.respond(HTTPStatus.OK, f"closed {closed}\n")

    @staticmethod
    def select_subprotocol(
        conn: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        # Only ever parley.v1 or nothing: the bearer.<jwt> entry must never be echoed.
        return SUBPROTOCOL if SUBPROTOCOL in offered else None

    def _origin_allowed(self, headers: Headers) -> bool:
        origins = headers.get_all("Origin")
        if not origins:
            return True  # not a browser: Origin only defends against cross-site WebSocket hijacking
        if len(origins) > 1:
            return False
        origin = origins[0].strip().lower().rstrip("/")
        if origin in self._allowed_origins:
            return True
        hosts = headers.get_all("Host")
        parts = urlsplit(origin)
        return (
            parts.scheme in ("http", "https")
            and len(hosts) == 1
            and parts.netloc == hosts[0].strip().lower()
        )


def _request_id(headers: Headers) -> str:
    values = headers.get_all("X-Request-ID")
    if len(values) == 1 and REQUEST_ID.fullmatch(values[0]):
        return values[0]
    return uuid.uuid4().hex  # direct clients (not through nginx) still get correlated lines
