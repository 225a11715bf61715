"""Data that must survive `docker compose down` + `up`.

`pytest -m restart_setup` (part of the default run) creates a user and a room named after
RUN_ID; after the restart, `pytest -m restart_verify` with the same RUN_ID checks them."""

from __future__ import annotations

import pytest

from support import PASSWORD, MakeClient, Peer, Settings, describe, ws_connect

PERSIST_NAME = "Persistent Pat"


@pytest.mark.restart_setup
async def test_restart_setup_creates_user_and_room(
    make_client: MakeClient, settings: Settings
) -> None:
    email, room = settings.persist_email(), settings.persist_room()
    client = await make_client()
    response = await client.register(email=email, name=PERSIST_NAME, expect=None)
    if response.status_code != 303:  # a rerun with the same RUN_ID: the account exists
        assert response.status_code == 400, describe(response)
        await client.login(email, PASSWORD)
    if room not in await client.room_names():
        await client.create_room(name=room, title=f"Survives restarts ({settings.run_id})")
    assert room in await client.room_names()


@pytest.mark.restart_verify
async def test_restart_verify_user_and_room_survived(
    make_client: MakeClient, settings: Settings
) -> None:
    if not settings.run_id_from_env:
        pytest.fail("RUN_ID must be set to the value the restart_setup run used")
    email, room = settings.persist_email(), settings.persist_room()
    client = await make_client()
    await client.login(email, PASSWORD)
    whoami = (await client.page("/rooms")).by_id("whoami")
    assert whoami is not None and whoami.text.strip() == PERSIST_NAME
    rooms = {r["name"]: r for r in await client.api_rooms()}
    assert room in rooms, f"{room} is gone after the restart"
    assert (await client.page(f"/rooms/{room}")).by_id("delete-room") is not None, (
        "the owner lost ownership of the room"
    )

    # Chat tokens still verify after the restart (the signing key and JWKS survived).
    token = await client.token(room)
    peer = Peer(await ws_connect(settings, token["token"], token["ws_url"]), "persist")
    try:
        welcome = await peer.recv()
        assert welcome["type"] == "welcome" and welcome["you"]["name"] == PERSIST_NAME
    finally:
        await peer.close()
