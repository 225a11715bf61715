"""`python -m chat` as operators run it: JSON logs on stdout, metrics port, SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers import TIMEOUT_S, FakeWebsite, recv_type

ROOT = Path(__file__).resolve().parent.parent
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
        return response.read().decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_closes_sockets_1001_exits_0_and_logs_json(
    website: FakeWebsite, sig: signal.Signals
) -> None:
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "CHAT_HOST": "127.0.0.1", "CHAT_PORT": str(port),
           "METRICS_PORT": str(metrics_port), "JWKS_URL": website.jwks_url}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[bytes] = []
    try:
        async with asyncio.timeout(10):
            while b"chat listening" not in (line := await proc.stdout.readline()):
                assert line, "chat exited before listening"
                lines.append(line)
            lines.append(line)

        uri = f"ws://127.0.0.1:{port}/ws/rooms/lobby"
        token, secret = website.mint(), "do-not-log-this-text"
        with pytest.raises(InvalidStatus):
            async with connect(uri, proxy=None, subprotocols=["parley.v1", "bearer.junk"]):
                pass
        async with connect(
            uri, proxy=None, subprotocols=["parley.v1", f"bearer.{token}"],
            additional_headers={"X-Request-ID": "req-42"},
        ) as ws:  # fmt: skip
            await recv_type(ws, "welcome")
            await ws.send(json.dumps({"type": "message", "text": secret}))
            assert (await recv_type(ws, "message"))["text"] == secret
            metrics = await asyncio.to_thread(scrape, metrics_port)
            assert "chat_connections_active 1.0" in metrics
            assert "chat_messages_received_total 1.0" in metrics

            proc.send_signal(sig)
            async with asyncio.timeout(TIMEOUT_S):
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.recv()
            assert ws.close_code == 1001

        async with asyncio.timeout(TIMEOUT_S):
            out, err = await proc.communicate()
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    assert err == b""  # everything goes to stdout, as JSON
    records = [json.loads(line) for line in [*lines, *out.splitlines()]]
    for record in records:
        assert record["service"] == "chat"
        assert {"ts", "level", "event"} <= record.keys()
        assert re.fullmatch(TS, record["ts"])
    text = b"".join(lines) + out
    for leak in (token.encode(), secret.encode(), b"@x.test", b"bearer."):
        assert leak not in text

    by_event = {r["event"]: r for r in records}
    assert by_event["handshake rejected"]["reason"] == "invalid_token"
    assert by_event["handshake rejected"]["status"] == 401
    opened, closed = by_event["connection opened"], by_event["connection closed"]
    for record in (opened, closed):
        assert record["request_id"] == "req-42"
        assert (record["room"], record["user_id"]) == ("lobby", "u1")
    assert closed["close_code"] == 1001 and closed["duration_s"] >= 0
    assert records[0]["event"] == "chat starting"
    assert records[-1]["event"] == "chat stopped"
