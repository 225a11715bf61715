"""Fixtures: the fake website's JWKS served by stdlib http.server in a thread, and the real
chat server started in-process on a random port."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chat import log as logsetup
from chat.config import Settings
from chat.keys import KeyStore
from chat.server import build_servers
from tests.helpers import JWKS_PATH, Chat, FakeWebsite

_SPANS = InMemorySpanExporter()


@pytest.fixture(scope="session", autouse=True)
def _tracer_provider() -> None:
    """The real SDK for the whole session (a global provider can be set only once), with
    finished spans kept in memory instead of exported."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(_SPANS))
    trace.set_tracer_provider(provider)


@pytest.fixture(autouse=True)
def spans() -> Iterator[InMemorySpanExporter]:
    """This test's finished spans: `spans.get_finished_spans()`."""
    _SPANS.clear()
    yield _SPANS
    _SPANS.clear()


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The service's log configuration, writing to a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buf = io.StringIO()
    logsetup.configure("INFO", stream=buf)
    yield buf
    structlog.reset_defaults()
    root.handlers[:], level = saved
    root.setLevel(level)
    logging.getLogger("websockets").setLevel(logging.NOTSET)


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
            defaults = {"host": "127.0.0.1", "port": 0, "control_port": 0,
                        "jwks_url": website.jwks_url}  # fmt: skip
            settings = Settings(**{**defaults, **overrides})
            servers = await stack.enter_async_context(build_servers(settings, keys))
            return Chat(servers.chat, servers.control, website, servers.node_cap,
                        servers.revocations)  # fmt: skip

        yield start


@pytest.fixture
async def chat(start_chat: StartChat) -> Chat:
    return await start_chat()
