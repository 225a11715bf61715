"""Upgrade gate of the client port: routing, Origin check and token authentication, all before
the upgrade, so rejected clients get a plain HTTP answer and no socket is opened for them
(docs/design.md §5, "Handshake")."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from . import metrics, paths, telemetry, wire
from .auth import AuthError, Identity, TokenVerifier, extract_token

log = structlog.get_logger()

SUBPROTOCOL = Subprotocol(wire.SUBPROTOCOL)


class ChatConnection(ServerConnection):
    """A server connection that knows who is on the other end (set by the gate)."""

    identity: Identity
    handshake_trace: telemetry.RequestTrace | None = None  # set by the gate, not for /healthz

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
    """Decides every request on the client port: /healthz, or an upgrade to /ws/rooms/{room}
    with an allowed Origin and a user token for that room. Everything else is a 404."""

    def __init__(self, verifier: TokenVerifier, allowed_origins: frozenset[str]) -> None:
        self._verifier = verifier
        self._allowed_origins = allowed_origins

    async def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = paths.path_of(request.path)
        if path == wire.HEALTHZ_PATH:
            return conn.respond(HTTPStatus.OK, "ok\n")
        # Bound for the connection's whole life: the handler runs in this same task.
        request_id = telemetry.request_id(request.headers)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        assert isinstance(conn, ChatConnection)
        conn.handshake_trace = ht = telemetry.RequestTrace(
            "ws.handshake", request.headers, path, request_id
        )
        try:
            if (room := paths.room_of(path)) is None:
                raise AuthError(HTTPStatus.NOT_FOUND, "not_found", "not found")
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
