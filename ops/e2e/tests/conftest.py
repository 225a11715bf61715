"""Fixtures: settings from the environment, fresh users and rooms, WebSocket peers.

Every test makes its own users and rooms with unique names, so the suite can run against a
stack that already holds data and the tests do not depend on each other."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from support import SENSITIVE, Client, Join, MakeClient, MakeUser, Peer, Settings, ws_connect

SETTINGS = Settings.from_env()


def pytest_report_header(config: pytest.Config) -> str:
    s = SETTINGS
    return f"parley e2e: BASE_URL={s.base_url} WS_BASE_URL={s.ws_base_url} RUN_ID={s.run_id}"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return SETTINGS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
    """Hand the values that must never be logged to checks/test_logs.py."""
    path = SETTINGS.artifacts_dir / "sensitive-values.txt"
    with contextlib.suppress(OSError):
        path.write_text("".join(f"{value}\n" for value in sorted(SENSITIVE) if "\n" not in value))


@pytest.fixture
async def make_client(settings: Settings) -> AsyncIterator[MakeClient]:
    """Factory for anonymous clients, closed after the test."""
    clients: list[Client] = []

    async def make() -> Client:
        client = Client(settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def make_user(make_client: MakeClient) -> MakeUser:
    """Factory for freshly registered, logged-in clients."""

    async def make(name: str | None = None) -> Client:
        client = await make_client()
        await client.register(name=name)
        return client

    return make


@pytest.fixture
async def alice(make_user: MakeUser) -> Client:
    return await make_user()


@pytest.fixture
async def bob(make_user: MakeUser) -> Client:
    return await make_user()


@pytest.fixture
async def room(alice: Client) -> str:
    """A fresh room owned by alice."""
    name, _ = await alice.create_room()
    return name


@pytest.fixture
async def join(settings: Settings) -> AsyncIterator[Join]:
    """Factory: connect a client to a room's chat and read its welcome frame."""
    peers: list[Peer] = []

    async def connect(client: Client, room: str, *, mode: str = "subprotocol") -> Peer:
        token = await client.token(room)
        ws = await ws_connect(settings, token["token"], token["ws_url"], mode=mode)
        peer = Peer(ws, f"{client.name}@{room}")
        peers.append(peer)
        welcome = await peer.recv()
        assert welcome["type"] == "welcome", welcome
        peer.welcome = welcome
        return peer

    yield connect
    for peer in peers:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await peer.ws.close()
