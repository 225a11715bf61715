"""Upgrade gate of the client port: routing, Origin check and token authentication, all before
the upgrade, so rejected clients get a plain HTTP answer and no socket is opened for them
(docs/design.md §5, "Handshake")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from urllib.parse import urlsplit

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from . import metrics, paths, telemetry, wire
from .auth import AuthError, TokenVerifier, extract_token, unauthorized
from .caps import NodeCap
from .connection import ChatConnection
from .revocations import Revocations

log = structlog.get_logger(__name__)

SUBPROTOCOL = Subprotocol(wire.SUBPROTOCOL)
RETRY_AFTER_S = 10  # node_full: when to try again (another replica may have room sooner)
NODE_HEADER = "X-Parley-Node"  # on the 101: which replica holds the socket (ops, e2e tests)


def node_full() -> AuthError:
    return AuthError(HTTPStatus.SERVICE_UNAVAILABLE, "node_full", "too many connections")


class Gate:
    """Decides every request on the client port: /healthz (the process serves), /readyz
    (and it reaches the bus: 503 while not), or an upgrade to /ws/rooms/{room} on a node with
    room to spare, with an allowed Origin and an unrevoked user token for that room.
    Everything else is a 404."""

    def __init__(
        self,
        verifier: TokenVerifier,
        allowed_origins: frozenset[str],
        node_cap: NodeCap,
        revocations: Revocations,
        node: str,
        ready: Callable[[], bool],
    ) -> None:
        self._verifier = verifier
        self._allowed_origins = allowed_origins
        self._node_cap = node_cap
        self._revocations = revocations
        self._node = node
        self._ready = ready

    async def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = paths.path_of(request.path)
        if path == wire.HEALTHZ_PATH:
            return conn.respond(HTTPStatus.OK, "ok\n")
        if path == wire.READYZ_PATH:
            if self._ready():
                return conn.respond(HTTPStatus.OK, "ready\n")
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "bus down\n")
        # Bound for the connection's whole life: the handler runs in this same task.
        request_id = telemetry.request_id(request.headers)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        assert isinstance(conn, ChatConnection)
        conn.request_id = request_id
        conn.handshake_trace = ht = telemetry.RequestTrace(
            "ws.handshake", request.headers, path, request_id
        )
        try:
            if (room := paths.room_of(path)) is None:
                raise AuthError(HTTPStatus.NOT_FOUND, "not_found", "not found")
            structlog.contextvars.bind_contextvars(room=room)
            ht.span.set_attribute(telemetry.ROOM, room)
            if self._node_cap.full():  # before any work on the token
                raise node_full()
            if not self._origin_allowed(request.headers):
                raise AuthError(HTTPStatus.FORBIDDEN, "bad_origin", "origin not allowed")
            identity = await self._verifier.verify(extract_token(request.headers))
            if identity.room != room:
                raise AuthError(HTTPStatus.FORBIDDEN, "wrong_room", "token is for another room")
            if self._revocations.refuses(identity):
                raise unauthorized("token revoked", "revoked_token")
            # Taken last (the token check may have awaited the JWKS): released when the TCP
            # connection is gone, whatever happens to the upgrade from here on.
            if not self._node_cap.admit(conn):
                raise node_full()
        except AuthError as exc:
            metrics.HANDSHAKE_REJECTIONS.labels(exc.reason).inc()
            ht.span.set_attribute(telemetry.REASON, exc.reason)
            log.info("handshake rejected", reason=exc.reason, status=exc.status.value,
                     path=path[:200])  # fmt: skip
            response = conn.respond(exc.status, exc.detail + "\n")
            if exc.status == HTTPStatus.SERVICE_UNAVAILABLE:
                response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        structlog.contextvars.bind_contextvars(user_id=identity.user_id)
        conn.identity = identity
        return None

    def process_response(
        self, conn: ServerConnection, request: Request, response: Response
    ) -> None:
        if response.status_code == HTTPStatus.SWITCHING_PROTOCOLS:
            response.headers[NODE_HEADER] = self._node

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
        try:
            parts = urlsplit(origin)
        except ValueError:  # "http://[::1" and other unparseable origins: not ours
            return False
        return (
            parts.scheme in ("http", "https")
            and len(hosts) == 1
            and parts.netloc == hosts[0].strip().lower()
        )
