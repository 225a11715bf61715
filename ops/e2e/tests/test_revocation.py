"""Revocation end to end (docs/design.md §4, "Notices"): logging out, changing the password and
deleting a room close the affected live sockets within 5 s, on the real stack through nginx;
the sockets of other sessions stay open, and a revoked session's token cannot reconnect.
Deactivation (an operator's command) is proven by checks/test_deactivation.py."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from websockets.exceptions import InvalidStatus

from support import (
    SESSION_ENDED,
    Client,
    Join,
    MakeClient,
    Settings,
    closed_with,
    describe,
    sensitive,
    still_open,
    ws_connect,
)


async def second_session(client: Client, make_client: MakeClient) -> Client:
    """The same person logged in on another device."""
    other = await make_client()
    await other.login(client.email, client.password)
    other.name = client.name
    return other


async def test_logout_closes_that_sessions_sockets_with_4401(
    alice: Client, bob: Client, room: str, join: Join, make_client: MakeClient
) -> None:
    phone = await second_session(alice, make_client)
    laptop_tab = await join(alice, room)
    phone_tab = await join(phone, room)
    bob_tab = await join(bob, room)
    await alice.logout()
    assert await closed_with(laptop_tab) == SESSION_ENDED
    # The same person's other session, and everyone else, keep talking.
    await still_open(phone_tab, bob_tab)
    await still_open(bob_tab, phone_tab)


async def test_a_logged_out_sessions_token_cannot_reconnect(
    alice: Client, room: str, settings: Settings
) -> None:
    token = await alice.token(room)
    await alice.logout()
    await asyncio.sleep(1.1)  # a token issued in the same second as the logout is refused too
    with pytest.raises(InvalidStatus) as info:
        ws = await ws_connect(settings, token["token"], token["ws_url"])
        await ws.close()
    assert info.value.response.status_code == 401


async def test_a_new_login_after_logout_connects_again(
    alice: Client, room: str, join: Join
) -> None:
    await alice.logout()
    await alice.login()
    peer = await join(alice, room)
    assert peer.me["name"] == alice.name


async def test_changing_the_password_closes_every_other_sessions_sockets(
    alice: Client, bob: Client, room: str, join: Join, make_client: MakeClient
) -> None:
    phone = await second_session(alice, make_client)
    here, there, bob_tab = await join(alice, room), await join(phone, room), await join(bob, room)
    new = sensitive(f"new passphrase {uuid.uuid4().hex[:8]}") or ""
    fields = await alice.form_fields("/account/password")
    data = {"current_password": alice.password, "new_password": new, "new_password_again": new}
    response = await alice.http.post("/account/password", data={**fields, **data})
    assert response.status_code == 200, describe(response)
    assert await closed_with(there) == SESSION_ENDED
    await still_open(here, bob_tab)  # the session that changed it stays


async def test_deleting_a_room_closes_every_member_within_5_s(
    alice: Client, bob: Client, room: str, join: Join
) -> None:
    tabs = [await join(bob, room), await join(bob, room), await join(alice, room)]
    await alice.delete_room(room)
    codes = await asyncio.gather(*(closed_with(tab) for tab in tabs))
    assert codes == [4404, 4404, 4404], codes
