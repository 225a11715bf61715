"""Fixtures: the fake website's JWKS served by stdlib http.server in a thread, and the real
chat server started in-process on a random port."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chat.config import Settings
from chat.keys import KeyStore
from chat.server import build_server
from tests.helpers import JWKS_PATH, Chat, FakeWebsite


class _JWKSServer(ThreadingHTTPServer):
    fake: FakeWebsite


class _JWKSHandler(BaseHTTPRequestHandler):
    server: _JWKSServer

    def do_GET(self) -> None:
        fake = self.server.fake
        if self.path != JWKS_PATH:
            self.send_error(404)
            return
        fake.requests += 1
        body = json.dumps(fake.jwks()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def jwks_server() -> Iterator[_JWKSServer]:
    httpd = _JWKSServer(("127.0.0.1", 0), _JWKSHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def website(jwks_server: _JWKSServer) -> FakeWebsite:
    """A fresh fake website (new key, zero requests) for each test."""
    fake = FakeWebsite(port=jwks_server.server_address[1])
    fake.rotate()
    jwks_server.fake = fake
    return fake


StartChat = Callable[..., Awaitable[Chat]]


@pytest.fixture
async def start_chat(website: FakeWebsite) -> AsyncIterator[StartChat]:
    async with AsyncExitStack() as stack:

        async def start(keys: KeyStore | None = None, **overrides: Any) -> Chat:
            defaults = {"host": "127.0.0.1", "port": 0, "jwks_url": website.jwks_url}
            settings = replace(Settings(), **{**defaults, **overrides})
            server = await stack.enter_async_context(build_server(settings, keys))
            return Chat(server, website)

        yield start


@pytest.fixture
async def chat(start_chat: StartChat) -> Chat:
    return await start_chat()
