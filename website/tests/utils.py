"""Helpers for the tests: a scripted browser, unique names, the shared password."""

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

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
async def open_browser(app: FastAPI) -> AsyncIterator[Browser]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Browser(client)
