"""Slow consumers through nginx: STALLED raw clients complete the upgrade and never read, in a
room with steady traffic (two reading members, 10 messages/s each, ~1 KB of text). The chat
must cut every stalled client (4008) within 30 s while its memory stays bounded and the
readers' message latency stays normal.

nginx sits between: the stalled clients' kernel receive buffers, nginx's socket and proxy
buffers and the chat's own kernel send buffers absorb this traffic (~20 KB/s per client)
long before the chat's 64 KiB write-buffer bound is reached, so what cuts them is the pong
timeout: the chat's ping waits behind the unread data and is never answered, and a
connection pinged 10 s after it opened is cut 15 s later (±1 s ticks), ~26 s in all.

The scenario runs once (about 35 s); each test asserts one of its outcomes."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

import httpx
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import WAIT, Client, Json, Peer, Settings, unique_room, ws_address, ws_connect

STALLED = 20  # raw clients that never read
STALLED_USERS = 5  # 4 sockets each, well under the per-user cap of 16
RATE_PER_SENDER = 10.0  # messages/s from each of the two readers: the chat's rate limit
TEXT = "slow consumer load " + "x" * 1000
CUT_WITHIN_S = 30.0
RSS_GROWTH_BOUND = 48 * 2**20  # bytes over the chat's RSS before the stalled clients came
P99_BOUND_S = 0.050
CHAT_METRICS = "http://chat:9100/metrics"


async def scrape() -> dict[str, float]:
    async with httpx.AsyncClient(trust_env=False, timeout=WAIT) as http:
        response = await http.get(CHAT_METRICS)
    response.raise_for_status()
    return {
        sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


CUT_PONG = "chat_slow_consumers_total|reason=pong"
CUT_BUFFER = "chat_slow_consumers_total|reason=buffer"
RSS = "process_resident_memory_bytes"


class Stalled:
    """A WebSocket client that reads the 101 head byte by byte, then never reads again."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def open(cls, settings: Settings, token: str, path: str) -> Stalled:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        host, port = ws_address(settings)
        key = base64.b64encode(os.urandom(16)).decode()
        request = "\r\n".join([
            f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
            "Connection: Upgrade", "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Key: {key}",
            f"Authorization: Bearer {token}", "", "",
        ])  # fmt: skip
        async with asyncio.timeout(WAIT):
            address = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0][4]
            await loop.sock_connect(sock, address)
            await loop.sock_sendall(sock, request.encode())
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                chunk = await loop.sock_recv(sock, 1)
                assert chunk, f"closed during the upgrade: {head!r}"
                head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(sock)


@dataclass
class Outcome:
    stalled_user_ids: set[str] = field(default_factory=set)
    cut_at: dict[str, float] = field(default_factory=dict)  # user id → s after connecting
    cut_pong: float = 0.0
    cut_buffer: float = 0.0
    rss_before: float = 0.0
    rss_max_during: float = 0.0
    rss_after: float = 0.0
    all_cut_s: float | None = None  # when the metric showed every cut, s after connecting
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    errors: list[Json] = field(default_factory=list)
    connections_before: float = 0.0
    connections_after: float = 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def send_steadily(peer: Peer, sent_at: dict[str, float], stop: asyncio.Event,
                        outcome: Outcome) -> None:  # fmt: skip
    """RATE_PER_SENDER messages/s on an absolute schedule (the bucket's burst absorbs jitter)."""
    start = time.monotonic()
    n = 0
    while not stop.is_set():
        client_id = uuid.uuid4().hex
        sent_at[client_id] = time.perf_counter()
        await peer.send_json({"type": "message", "text": TEXT, "client_id": client_id})
        outcome.sent += 1
        n += 1
        await asyncio.sleep(max(0.0, start + n / RATE_PER_SENDER - time.monotonic()))


async def read_steadily(peer: Peer, sent_at: dict[str, float], outcome: Outcome,
                        started: float) -> None:  # fmt: skip
    """Every frame: own messages' latency (send → echo through nginx), leaves of the
    stalled users (when their last socket was cut), errors."""
    while True:
        frame = await peer.recv(timeout=CUT_WITHIN_S + 10)
        now = time.perf_counter()
        if frame["type"] == "message" and frame.get("client_id") in sent_at:
            outcome.latencies.append(now - sent_at.pop(frame["client_id"]))
        elif frame["type"] == "presence":
            for user in frame["left"]:
                if user["id"] in outcome.stalled_user_ids:
                    outcome.cut_at.setdefault(user["id"], time.monotonic() - started)
        elif frame["type"] == "error":
            outcome.errors.append(frame)


async def scenario(settings: Settings) -> Outcome:
    outcome = Outcome()
    clients = [Client(settings) for _ in range(2 + STALLED_USERS)]
    try:
        for client in clients:
            await client.register()
        alice, bob, *stalled_users = clients
        room = unique_room("slow")
        await alice.create_room(room)
        readers = []
        for client in (alice, bob):
            token = await client.token(room)
            peer = Peer(await ws_connect(settings, token["token"], token["ws_url"]), client.name)
            assert (await peer.recv())["type"] == "welcome"
            readers.append(peer)
        await asyncio.sleep(0.5)
        before = await scrape()
        outcome.rss_before = outcome.rss_max_during = before[RSS]
        outcome.connections_before = before["chat_connections_active"]

        stalled: list[Stalled] = []
        for i in range(STALLED):
            client = stalled_users[i % STALLED_USERS]
            token = await client.token(room)
            claims = jwt.decode(token["token"], options={"verify_signature": False})
            outcome.stalled_user_ids.add(claims["sub"])
            stalled.append(await Stalled.open(settings, token["token"], token["ws_url"]))
        started = time.monotonic()

        stop = asyncio.Event()
        tasks = []
        for peer in readers:
            sent_at: dict[str, float] = {}  # this reader's own messages in flight
            tasks.append(asyncio.create_task(send_steadily(peer, sent_at, stop, outcome)))
            tasks.append(asyncio.create_task(read_steadily(peer, sent_at, outcome, started)))
        try:
            deadline = started + CUT_WITHIN_S + 5
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                seen = await scrape()
                outcome.rss_max_during = max(outcome.rss_max_during, seen[RSS])
                cut = seen[CUT_PONG] + seen[CUT_BUFFER] - before[CUT_PONG] - before[CUT_BUFFER]
                if cut >= STALLED and outcome.all_cut_s is None:
                    outcome.all_cut_s = time.monotonic() - started
                    break
            # Traffic goes on until every stalled user's leave arrived (the transport is
            # aborted 1 s after the cut), and a little after.
            late = deadline
            while len(outcome.cut_at) < STALLED_USERS and time.monotonic() < late:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for s in stalled:
                s.sock.close()
        after = await scrape()
        outcome.cut_pong = after[CUT_PONG] - before[CUT_PONG]
        outcome.cut_buffer = after[CUT_BUFFER] - before[CUT_BUFFER]
        outcome.rss_after = after[RSS]
        outcome.connections_after = after["chat_connections_active"]
        for peer in readers:
            await peer.close()
    finally:
        for client in clients:
            await client.aclose()
    return outcome


@pytest.fixture(scope="module")
def outcome(settings: Settings) -> Outcome:
    result = asyncio.run(scenario(settings))
    mb = 2**20
    print(
        f"\nslow consumers: cut pong={result.cut_pong:.0f} buffer={result.cut_buffer:.0f}, "
        f"all cut after {result.all_cut_s}s, leaves at "
        f"{sorted(round(t, 1) for t in result.cut_at.values())}s; chat RSS before "
        f"{result.rss_before / mb:.1f} MiB, max during {result.rss_max_during / mb:.1f} MiB, "
        f"after {result.rss_after / mb:.1f} MiB; {len(result.latencies)} latencies: "
        f"p50 {result.quantile(0.5) * 1000:.1f} ms, p99 {result.quantile(0.99) * 1000:.1f} ms, "
        f"max {max(result.latencies) * 1000:.1f} ms"
    )
    return result


def test_every_stalled_client_is_cut_within_30_s(outcome: Outcome) -> None:
    assert outcome.all_cut_s is not None and outcome.all_cut_s <= CUT_WITHIN_S, outcome.all_cut_s


def test_the_pong_timeout_is_what_cuts_them_behind_nginx(outcome: Outcome) -> None:
    assert (outcome.cut_pong, outcome.cut_buffer) == (STALLED, 0)


def test_the_readers_see_every_stalled_user_leave(outcome: Outcome) -> None:
    assert set(outcome.cut_at) == outcome.stalled_user_ids
    assert max(outcome.cut_at.values()) <= CUT_WITHIN_S, outcome.cut_at


def test_chat_memory_stays_bounded(outcome: Outcome) -> None:
    assert outcome.rss_max_during - outcome.rss_before < RSS_GROWTH_BOUND, outcome
    assert outcome.rss_after - outcome.rss_before < RSS_GROWTH_BOUND, outcome


def test_readers_p99_latency_stays_under_50_ms(outcome: Outcome) -> None:
    assert len(outcome.latencies) >= 0.95 * outcome.sent - 4, (len(outcome.latencies), outcome.sent)
    assert outcome.quantile(0.99) < P99_BOUND_S, outcome.quantile(0.99)


def test_readers_were_never_refused_or_cut(outcome: Outcome) -> None:
    assert outcome.errors == []
    assert outcome.connections_after == outcome.connections_before
