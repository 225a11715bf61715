"""POST /api/rooms/{name}/token: who gets a chat token, and what it says."""

from __future__ import annotations

from support import Client, MakeClient, describe, unique_room


async def test_token_response_shape(alice: Client, room: str) -> None:
    body = await alice.token(room)
    assert body["ws_url"] == f"/ws/rooms/{room}", body
    assert isinstance(body["expires_in"], int) and 0 < body["expires_in"] <= 120, body
    assert body["token"].count(".") == 2, "token is not a compact JWS"


async def test_token_needs_a_session(make_client: MakeClient, room: str) -> None:
    anonymous = await make_client()
    csrf = await anonymous.meta_csrf("/login")  # a valid anonymous CSRF token
    response = await anonymous.token_response(room, csrf=csrf)
    assert response.status_code == 401, describe(response)


async def test_token_needs_the_csrf_header(alice: Client, room: str) -> None:
    await alice.meta_csrf("/rooms")
    response = await alice.token_response(room, csrf="")
    assert response.status_code == 403, describe(response)
    response = await alice.token_response(room, csrf="not-the-token")
    assert response.status_code == 403, describe(response)


async def test_token_for_unknown_room_is_404(alice: Client) -> None:
    await alice.meta_csrf("/rooms")
    response = await alice.token_response(unique_room("missing"))
    assert response.status_code == 404, describe(response)
