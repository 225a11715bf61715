"""`python -m chat` as operators run it: JSON logs on stdout, metrics port, SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from chat import channels, telemetry, wire
from chat.handshake import SUBPROTOCOL
from tests.helpers import TIMEOUT_S, FakeWebsite, http_get, publish, recv_type
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def chat_env(redis: RedisServer, website: FakeWebsite) -> dict[str, str]:
    """`python -m chat`'s environment: this Redis, this website, no OTLP export."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"CHAT_HOST": "127.0.0.1", "JWKS_URL": website.jwks_url, "REDIS_HOST": "127.0.0.1",
                "REDIS_PORT": str(redis.port), "REDIS_PASSWORD_FILE": str(redis.password_file),
                "BUS_BACKOFF_MAX_S": "0.5"})  # fmt: skip
    return env


async def until_ready(port: int, within_s: float = 10) -> None:
    """/readyz answers 200: the replica is on the bus."""
    async with asyncio.timeout(within_s):
        while True:
            try:
                if (await http_get(port, wire.READYZ_PATH))[0] == 200:
                    return
            except OSError:  # not listening yet
                pass
            await asyncio.sleep(0.05)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
        body: bytes = response.read()
        return body.decode()


class _Collector(ThreadingHTTPServer):
    bodies: list[bytes]


class _OTLPHandler(BaseHTTPRequestHandler):
    """A stand-in OTLP/HTTP collector: keeps what is POSTed to /v1/traces."""

    server: _Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.server.bodies.append(body)
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[_Collector]:
    httpd = _Collector(("127.0.0.1", 0), _OTLPHandler)
    httpd.bodies = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("sig", "otlp"),
    [(signal.SIGTERM, None), (signal.SIGINT, None),
     (signal.SIGTERM, "unreachable"), (signal.SIGTERM, "collector")],
    ids=["SIGTERM", "SIGINT", "SIGTERM-otlp-unreachable", "SIGTERM-otlp-collector"],
)  # fmt: skip
async def test_signal_closes_sockets_1001_exits_0_and_logs_json(
    website: FakeWebsite, redis: RedisServer, collector: _Collector, sig: signal.Signals,
    otlp: str | None,
) -> None:
    port, metrics_port = free_port(), free_port()
    env = chat_env(redis, website)
    env.update({"CHAT_PORT": str(port), "METRICS_PORT": str(metrics_port)})
    if otlp == "unreachable":  # nothing listens there: export fails, the service must not care
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9/"
    elif otlp == "collector":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{collector.server_address[1]}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[bytes] = []
    try:
        # The OTLP exporter's imports (protobuf, requests) are slow on a loaded machine.
        async with asyncio.timeout(10 if otlp is None else 30):
            while b"chat listening" not in (line := await proc.stdout.readline()):
                assert line, "chat exited before listening"
                lines.append(line)
            lines.append(line)

        uri = f"ws://127.0.0.1:{port}/ws/rooms/lobby"
        token, secret = website.mint(), "do-not-log-this-text"
        with pytest.raises(InvalidStatus):
            junk = [SUBPROTOCOL, Subprotocol(wire.BEARER_PREFIX + "junk")]
            async with connect(uri, proxy=None, subprotocols=junk):
                pass
        # Ready once on the bus, whose control channel it hears: a notice for a room nobody
        # is in closes nothing.
        await until_ready(port)
        notice = website.notice(wire.NOTICE_ROOM_DELETED, room="empty")
        message = json.dumps({"notice": notice}).encode()
        assert await publish(redis, channels.CONTROL, message) == 1
        async with connect(
            uri, proxy=None, subprotocols=[SUBPROTOCOL, Subprotocol(wire.BEARER_PREFIX + token)],
            additional_headers={"X-Request-ID": "req-42"},
        ) as ws:  # fmt: skip
            await recv_type(ws, wire.FRAME_WELCOME)
            await ws.send(json.dumps({"type": "message", "text": secret}))
            assert (await recv_type(ws, wire.FRAME_MESSAGE))["text"] == secret
            metrics = await asyncio.to_thread(scrape, metrics_port)
            assert "chat_connections_active 1.0" in metrics
            assert "chat_messages_received_total 1.0" in metrics

            proc.send_signal(sig)
            async with asyncio.timeout(TIMEOUT_S):
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.recv()
            assert ws.close_code == wire.CLOSE_GOING_AWAY

        # Plus the bounded flush of queued spans at exit (which fails when unreachable).
        async with asyncio.timeout(TIMEOUT_S + telemetry.SHUTDOWN_GRACE_S + 1):
            out, err = await proc.communicate()
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    assert err == b""  # everything goes to stdout, as JSON (the OTel SDK's own lines too)
    records = [json.loads(line) for line in [*lines, *out.splitlines()]]
    for record in records:
        assert record["service"] == "chat"
        assert {"ts", "level", "event"} <= record.keys()
        assert re.fullmatch(TS, record["ts"])
    text = b"".join(lines) + out
    for leak in (token.encode(), secret.encode(), notice.encode(), b"@x.test", b"bearer."):
        assert leak not in text

    by_event = {r["event"]: r for r in records}
    assert by_event["handshake rejected"]["reason"] == "invalid_token"
    assert by_event["handshake rejected"]["status"] == 401
    opened, closed = by_event["connection opened"], by_event["connection closed"]
    for record in (opened, closed):
        assert record["request_id"] == "req-42"
        assert (record["room"], record["user_id"]) == ("lobby", "u1")
    assert closed["close_code"] == wire.CLOSE_GOING_AWAY and closed["duration_s"] >= 0
    assert by_event["room deleted"]["connections_closed"] == 0
    listening = by_event["chat listening"]
    assert (listening["port"], listening["metrics_port"]) == (port, metrics_port)
    assert listening["loop"] == "uvloop" and listening["backlog"] == 4096  # as deployed
    assert by_event["bus up"]["node"] == listening["node"]
    assert redis.password not in text.decode()
    assert records[0]["event"] == "chat starting"
    assert records[0]["trace_export"] is (otlp is not None)
    assert records[-1]["event"] == "chat stopped"

    # Lines written in a span carry its ids; the connection's later lines do not.
    for record in (by_event["handshake rejected"], opened):
        assert re.fullmatch(r"[0-9a-f]{32}", record["trace_id"])
        assert re.fullmatch(r"[0-9a-f]{16}", record["span_id"])
    assert "trace_id" not in closed
    otel_lines = [r for r in records if r.get("logger", "").startswith("opentelemetry")]
    if otlp is None:
        assert otel_lines == []  # no exporter at all, nothing to complain about
    if otlp == "collector":
        assert otel_lines == []
        exported = b"".join(collector.bodies)
        for expected in (b"ws.handshake", b"chat.broadcast", b"service.name", b"chat",
                         b"invalid_token", bytes.fromhex(opened["trace_id"])):  # fmt: skip
            assert expected in exported
        for leak in (token.encode(), secret.encode(), b"bearer."):
            assert leak not in exported


@pytest.mark.parametrize(
    ("name", "value"),
    [("CHAT_PORT", "eighty"), ("REDIS_PORT", "-1"), ("LOG_LEVEL", "loud"), ("NODE_ID", "a:b")],
)
async def test_invalid_setting_stops_the_start_with_a_clear_message(name: str, value: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env[name] = value
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(10):
        out, err = await proc.communicate()
    assert proc.returncode == 1 and out == b""
    assert err.decode().startswith("invalid chat settings:")
    assert f"{name}: " in err.decode() and repr(value) in err.decode()


async def test_unreadable_redis_password_stops_the_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["REDIS_PASSWORD_FILE"] = str(tmp_path / "missing")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(10):
        out, err = await proc.communicate()
    assert proc.returncode == 1 and out == b""
    assert err.decode().startswith("invalid chat settings:\n  REDIS_PASSWORD_FILE: cannot read")
