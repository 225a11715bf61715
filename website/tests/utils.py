"""Helpers for the tests: a scripted browser, unique names, the shared password."""

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
from fastapi import FastAPI

from website.app import create_app
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


class ControlPort:
    """A real listener standing in for the chat's control port: records each request's path
    and notice claims (unverified: the chat's own tests check verification) and answers 200."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(5):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        path = request_line.split(" ")[1]
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        token = headers.get("authorization", headers.get("Authorization", "")).removeprefix(
            "Bearer "
        )
        self.calls.append((path, jwt.decode(token, options={"verify_signature": False})))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nclosed 0\n")
        await writer.drain()
        writer.close()

    def revoked(self) -> list[dict[str, Any]]:
        return [claims for path, claims in self.calls if path.startswith("/users/")]


@asynccontextmanager
async def control_port() -> AsyncIterator[ControlPort]:
    port = ControlPort()
    server = await asyncio.start_server(port._serve, "127.0.0.1", 0)
    host, number = server.sockets[0].getsockname()[:2]
    port.url = f"http://{host}:{number}"
    async with server:
        yield port


@asynccontextmanager
async def app_with(settings: Settings, **changes: Any) -> AsyncIterator[FastAPI]:
    """A separate app (own lifespan, throttles, hasher) with some settings changed."""
    async with running(create_app(settings.model_copy(update=changes))) as app:
        yield app
