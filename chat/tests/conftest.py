"""Fixtures: the fake website's JWKS served by stdlib http.server in a thread, a real Redis
(a throwaway redis-server), and real chat servers started in-process on random ports, as many
replicas as a test asks for, sharing that Redis."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chat.config import Settings
from chat.keys import KeyStore
from chat.server import build_servers
from tests.helpers import JWKS_PATH, Chat, FakeWebsite, service_logs, until
from tests.redis_server import RedisServer

# Short presence timings, so a crashed replica's users leave within seconds.
BUS_DEFAULTS = {"presence_ttl_s": 2.0, "presence_heartbeat_s": 0.5, "presence_sweep_s": 0.5,
                "bus_timeout_s": 1.0, "bus_backoff_max_s": 0.5}  # fmt: skip

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
    buf = io.StringIO()
    with service_logs(buf):
        yield buf


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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The Redis every replica of every test shares (emptied before each test)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    redis_server.client().flushall()
    return redis_server


StartChat = Callable[..., Awaitable[Chat]]


@pytest.fixture
async def start_chat(website: FakeWebsite, redis: RedisServer) -> AsyncIterator[StartChat]:
    """Starts a replica (on `redis_server=` another Redis) and waits for its bus to be up."""
    async with AsyncExitStack() as stack:

        async def start(keys: KeyStore | None = None, *, redis_server: RedisServer = redis,
                        wait_bus: bool = True, **overrides: Any) -> Chat:  # fmt: skip
            defaults = {"host": "127.0.0.1", "port": 0, "jwks_url": website.jwks_url,
                        "node_id": uuid.uuid4().hex[:8], **BUS_DEFAULTS,
                        **redis_server.settings()}  # fmt: skip
            settings = Settings(**{**defaults, **overrides})
            servers = await stack.enter_async_context(build_servers(settings, keys))
            if wait_bus:
                await until(lambda: servers.bus.up, "the bus to be up")
            return Chat(servers.chat, website, servers.node_cap, servers.revocations,
                        servers, redis_server)  # fmt: skip

        yield start


@pytest.fixture
async def chat(start_chat: StartChat) -> Chat:
    return await start_chat()
