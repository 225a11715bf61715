"""The chat control client: the right URL and notice, and a warning (never an error) on failure."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from website.chat_control import ChatControl
from website.tokens import TokenIssuer


class FakeChat:
    """The chat's control port: records each request, answers with the status it is given."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, text="closed 2\n")


@pytest.fixture
def chat() -> FakeChat:
    return FakeChat()


@pytest.fixture
async def control(chat: FakeChat, issuer: TokenIssuer) -> AsyncIterator[ChatControl]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(chat)) as http:
        yield ChatControl(http, issuer, "http://chat.test:8002/")


def _notice_claims(request: httpx.Request) -> dict[str, Any]:
    scheme, _, token = request.headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_room_deleted_calls_the_rooms_path(chat: FakeChat, control: ChatControl) -> None:
    await control.room_deleted("team-standup")
    (request,) = chat.requests
    assert request.method == "GET"
    assert str(request.url) == "http://chat.test:8002/rooms/team-standup/deleted"
    claims = _notice_claims(request)
    assert claims["purpose"] == "room_deleted" and claims["room"] == "team-standup"


async def test_user_revoked_calls_the_users_path(chat: FakeChat, control: ChatControl) -> None:
    user_id = uuid.uuid4()
    await control.user_revoked(user_id)
    (request,) = chat.requests
    assert request.method == "GET"
    assert str(request.url) == f"http://chat.test:8002/users/{user_id}/revoked"
    claims = _notice_claims(request)
    assert claims["purpose"] == "user_revoked" and claims["user"] == str(user_id)


async def test_failures_are_logged_not_raised(
    chat: FakeChat, control: ChatControl, issuer: TokenIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    chat.status = 503
    await control.room_deleted("gone-room")
    async with httpx.AsyncClient() as http:
        await ChatControl(http, issuer, "http://127.0.0.1:9").user_revoked(uuid.uuid4())
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
