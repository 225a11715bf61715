"""Helpers for the tests: a scripted browser, unique names, the shared password."""

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from website.app import create_app
from website.chat_control import CONTROL_CHANNEL, bus_client
from website.config import Settings

PASSWORD = "correct horse battery"
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def unique_room() -> str:
    return f"room-{uuid.uuid4().hex[:10]}"


class Browser:
    """An httpx client that behaves like one person's browser: cookies plus CSRF tokens."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client
        self.email = ""
        self.name = ""

    async def csrf(self, path: str = "/") -> str:
        response = await self.http.get(path)
        match = _META_CSRF.search(response.text)
        assert match, f"no csrf meta tag on {path}"
        return match.group(1)

    async def register(
        self, email: str | None = None, name: str | None = None, password: str = PASSWORD
    ) -> httpx.Response:
        self.email = email or f"user-{uuid.uuid4().hex[:12]}@example.test"
        self.name = name or f"User {uuid.uuid4().hex[:6]}"
        data = {"email": self.email, "display_name": self.name, "password": password}
        return await self.http.post("/register", data={**data, "csrf_token": await self.csrf()})

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        data = {"email": email, "password": password, "csrf_token": await self.csrf()}
        return await self.http.post("/login", data=data)

    async def logout(self) -> httpx.Response:
        return await self.http.post("/logout", data={"csrf_token": await self.csrf()})

    async def create_room(self, name: str | None = None, title: str = "A room") -> httpx.Response:
        name = unique_room() if name is None else name
        data = {"name": name, "title": title, "csrf_token": await self.csrf()}
        return await self.http.post("/rooms", data=data)

    async def token(self, room: str) -> httpx.Response:
        headers = {"X-CSRF-Token": await self.csrf()}
        return await self.http.post(f"/api/rooms/{room}/token", headers=headers)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run the app's lifespan (httpx.ASGITransport does not)."""
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def open_browser(app: FastAPI, base_url: str = "http://testserver") -> AsyncIterator[Browser]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield Browser(client)


class ControlListener:
    """Subscribed to the bus's control channel like a chat replica: records each notice's
    claims (unverified: the chat's own tests check verification)."""

    def __init__(self, bus: Redis, pubsub: PubSub) -> None:
        self.bus = bus
        self._pubsub = pubsub
        self.messages: list[dict[str, Any]] = []
        self._markers: set[str] = set()

    async def read(self) -> None:
        while True:
            message = await self._pubsub.get_message(timeout=None)
            if message is None or message["type"] != "message":
                continue
            body = json.loads(message["data"])
            if "marker" in body:
                self._markers.add(body["marker"])
            else:
                self.messages.append(body)

    async def settle(self) -> None:
        """Returns once everything published before the call has arrived: Redis delivers in
        order, so a marker published now comes after all of it."""
        marker = uuid.uuid4().hex
        await self.bus.publish(CONTROL_CHANNEL, json.dumps({"marker": marker}))
        async with asyncio.timeout(5):
            while marker not in self._markers:  # noqa: ASYNC110 - the reader task fills it
                await asyncio.sleep(0.01)

    async def notices(self) -> list[dict[str, Any]]:
        await self.settle()
        return [jwt.decode(m["notice"], options={"verify_signature": False})
                for m in self.messages]  # fmt: skip

    async def revoked(self) -> list[dict[str, Any]]:
        return [c for c in await self.notices() if c["purpose"] == "user_revoked"]


@asynccontextmanager
async def control_listener(settings: Settings) -> AsyncIterator[ControlListener]:
    async with bus_client(settings) as bus, bus.pubsub() as pubsub:
        await pubsub.subscribe(CONTROL_CHANNEL)
        listener = ControlListener(bus, pubsub)
        reader = asyncio.create_task(listener.read())
        try:
            await listener.settle()  # subscribed for sure
            yield listener
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


@asynccontextmanager
async def app_with(settings: Settings, **changes: Any) -> AsyncIterator[FastAPI]:
    """A separate app (own lifespan, throttles, hasher) with some settings changed."""
    async with running(create_app(settings.model_copy(update=changes))) as app:
        yield app
