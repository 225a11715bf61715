"""The chat control client: the right notice on the bus's control channel (with the request's
id and trace context), and a warning (never an error) when the bus is away."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import structlog
from opentelemetry import trace

from tests.utils import ControlListener, control_listener
from website.chat_control import BUS_CONNECTIONS, BUS_TIMEOUT_S, ChatControl, bus_client
from website.config import Settings
from website.tokens import TokenIssuer


@pytest.fixture
async def chat(settings: Settings) -> AsyncIterator[ControlListener]:
    async with control_listener(settings) as listener:
        yield listener


@pytest.fixture
async def control(settings: Settings, issuer: TokenIssuer) -> AsyncIterator[ChatControl]:
    async with bus_client(settings) as bus:
        yield ChatControl(bus, issuer)


async def test_room_deleted_publishes_a_room_notice(
    chat: ControlListener, control: ChatControl
) -> None:
    await control.room_deleted("team-standup")
    (claims,) = await chat.notices()
    assert claims["purpose"] == "room_deleted" and claims["room"] == "team-standup"
    assert claims["sub"] == "parley-website" and claims["exp"] - claims["iat"] <= 30


async def test_user_revoked_publishes_a_user_notice_with_context(
    chat: ControlListener, control: ChatControl
) -> None:
    user_id = uuid.uuid4()
    structlog.contextvars.bind_contextvars(request_id="req-77")
    try:
        with trace.get_tracer("test").start_as_current_span("logout") as span:
            await control.user_revoked(user_id, "a1b2c3d4e5f60718")
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    (claims,) = await chat.notices()
    assert claims["purpose"] == "user_revoked" and claims["user"] == str(user_id)
    assert claims["sid"] == "a1b2c3d4e5f60718"
    (message,) = chat.messages
    assert message["request_id"] == "req-77"
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert message["traceparent"].split("-")[1] == trace_id


async def website_connections(listener: ControlListener) -> int:
    clients = await listener.bus.client_list()
    return sum(1 for c in clients if c["name"] == "website")


async def test_a_burst_of_notices_all_go_out_on_a_bounded_pool(
    chat: ControlListener, control: ChatControl
) -> None:
    """Ten times as many notices at once as the client has connections (a burst of logouts):
    every one reaches the bus, and the client never held more than its bound."""
    before = await website_connections(chat)  # the listener's own
    users = [uuid.uuid4() for _ in range(10 * BUS_CONNECTIONS)]
    await asyncio.gather(*(control.user_revoked(user) for user in users))
    assert sorted(c["user"] for c in await chat.revoked()) == sorted(map(str, users))
    opened = await website_connections(chat) - before
    assert 1 <= opened <= BUS_CONNECTIONS, opened


async def test_a_notice_waits_at_most_the_bus_timeout_for_a_connection(
    chat: ControlListener, settings: Settings, issuer: TokenIssuer
) -> None:
    """Every connection of the pool busy: the notice waits BUS_TIMEOUT_S for one, then gives
    up with the usual warning, instead of opening one more."""
    async with bus_client(settings) as bus:
        pool = bus.connection_pool
        held = [await pool.get_connection() for _ in range(BUS_CONNECTIONS)]  # type: ignore[no-untyped-call]
        try:
            started = time.monotonic()
            with structlog.testing.capture_logs() as logged:
                await ChatControl(bus, issuer).user_revoked(uuid.uuid4())
            waited = time.monotonic() - started
        finally:
            for connection in held:
                await pool.release(connection)
    assert BUS_TIMEOUT_S <= waited < BUS_TIMEOUT_S + 1, waited
    (warning,) = [line for line in logged if line["log_level"] == "warning"]
    assert warning["event"] == "chat not told of user revocation", warning
    assert warning["error"] == "ConnectionError", warning
    assert await chat.revoked() == []


async def test_failures_are_logged_not_raised(settings: Settings, issuer: TokenIssuer) -> None:
    # Nobody listens on the control channel in these tests but the listener fixture: without
    # it, a publish reaches no replica; an unreachable bus is a connection error.
    with structlog.testing.capture_logs() as logged:
        async with bus_client(settings) as bus:
            await ChatControl(bus, issuer).room_deleted("gone-room")
        away = settings.model_copy(update={"redis_host": "127.0.0.1", "redis_port": 9})
        async with bus_client(away) as bus:
            await ChatControl(bus, issuer).user_revoked(uuid.uuid4())
    warnings = [line for line in logged if line["log_level"] == "warning"]
    assert len(warnings) == 2
