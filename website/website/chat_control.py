"""The chat's control client: tells every chat replica to close a deleted room's or a revoked
user's sockets, by publishing a signed notice on the bus's control channel (Redis pub/sub).

Each notice is short-lived and signed with the website's key, so nothing else on the bus can
close anyone's sockets; every replica verifies it before acting (docs/design.md §4, §5).
"""

import json
import uuid

import structlog
from opentelemetry import propagate
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from website.config import Settings
from website.logging import get_logger
from website.tokens import TokenIssuer

log = get_logger(__name__)

CONTROL_CHANNEL = "parley:control"  # chat/chat/channels.py CONTROL
BUS_TIMEOUT_S = 2
# redis-py's default pool has no bound: a burst of logouts would open a connection each. At the
# bound a notice waits for a free connection (at most BUS_TIMEOUT_S, then the usual warning).
BUS_CONNECTIONS = 4


def bus_client(settings: Settings) -> Redis:
    """A client for the bus; it connects on first use (the website starts without Redis)."""
    return Redis.from_pool(  # closing the client closes its pool
        BlockingConnectionPool(
            max_connections=BUS_CONNECTIONS,
            timeout=BUS_TIMEOUT_S,
            host=settings.redis_host,
            port=settings.redis_port,
            password=settings.redis_password(),
            socket_timeout=BUS_TIMEOUT_S,
            socket_connect_timeout=BUS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # best effort: one try, then a warning
            client_name="website",
        )
    )


class ChatControl:
    """Best effort: if the bus is unreachable, the chat's clients learn on their next token
    request (a deleted room answers 404, an ended session 401)."""

    def __init__(self, bus: Redis, issuer: TokenIssuer) -> None:
        self._bus = bus
        self._issuer = issuer

    async def room_deleted(self, room: str) -> None:
        """The room's sockets close with 4404."""
        notice = self._issuer.issue_room_deleted(room)
        await self._notify(notice, "room deletion", room=room)

    async def user_revoked(self, user_id: uuid.UUID, sid: str | None = None) -> None:
        """The user's sockets close with 4401: all of them, or with `sid` that session's."""
        notice = self._issuer.issue_user_revoked(user_id, sid)
        fields = {"user_id": str(user_id)} | ({"sid": sid} if sid else {})
        await self._notify(notice, "user revocation", **fields)

    async def _notify(self, notice: str, what: str, **fields: str) -> None:
        # The request id and trace context travel along, so every replica's lines and spans
        # join this request's.
        message: dict[str, str] = {"notice": notice}
        propagate.inject(message)  # traceparent (and tracestate) when a span is active
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if isinstance(request_id, str):
            message["request_id"] = request_id
        try:
            replicas = await self._bus.publish(CONTROL_CHANNEL, json.dumps(message))
        except (RedisError, OSError) as exc:
            log.warning(f"chat not told of {what}", error=type(exc).__name__, **fields)
            return
        if not replicas:  # published, but no chat replica was listening
            log.warning(f"chat not told of {what}", error="no_subscriber", **fields)
