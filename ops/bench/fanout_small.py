"""A small, bounded fan-out run through nginx: N sockets in one room, one sender per user
taking turns at a fixed total rate for a fixed time; prints deliveries/s, delivery latency
(p50/p99/max), lost and duplicated messages. Not the benchmark (that is ops/bench's job,
with Node `ws` beside it): a quick look at one chat replica against several on Redis, from
inside the compose network.

Usage (in the e2e image, on the stack's network):
    python fanout_small.py [--users 20] [--tabs 10] [--rate 50] [--seconds 10]
Bounded: at most 16 tabs per user (the chat's per-user cap), 100 msg/s, 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
import uuid
from collections import Counter

import httpx
from websockets.asyncio.client import ClientConnection, connect

BASE = "http://nginx"
WS_BASE = "ws://nginx"
PASSWORD = "fan-out bench passphrase"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def register(http: httpx.AsyncClient, name: str) -> None:
    page = await http.get("/register")
    match = CSRF.search(page.text)
    assert match, "no CSRF field on /register"
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    form = {"csrf_token": match.group(1), "email": email, "display_name": name,
            "password": PASSWORD}  # fmt: skip
    answer = await http.post("/register", data=form)
    assert answer.status_code == 303, answer.status_code


async def token(http: httpx.AsyncClient, room: str) -> str:
    page = await http.get("/rooms")
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert csrf
    answer = await http.post(f"/api/rooms/{room}/token", headers={"X-CSRF-Token": csrf.group(1)})
    answer.raise_for_status()
    return str(answer.json()["token"])


async def create_room(http: httpx.AsyncClient, room: str) -> None:
    page = await http.get("/rooms")
    match = CSRF.search(page.text)
    assert match
    form = {"csrf_token": match.group(1), "name": room, "title": "fan-out"}
    assert (await http.post("/rooms", data=form)).status_code == 303


async def main(users: int, tabs: int, rate: float, seconds: float) -> None:
    room = f"bench-{uuid.uuid4().hex[:8]}"
    clients = [httpx.AsyncClient(base_url=BASE, timeout=30) for _ in range(users)]
    for i, http in enumerate(clients):
        await register(http, f"Bench {i}")
    await create_room(clients[0], room)
    tokens = [await token(http, room) for http in clients]
    sockets: list[ClientConnection] = []
    nodes: Counter[str] = Counter()
    for i in range(users * tabs):
        ws = await connect(f"{WS_BASE}/ws/rooms/{room}", proxy=None,
                           subprotocols=["parley.v1", f"bearer.{tokens[i % users]}"])  # type: ignore[list-item]  # fmt: skip
        nodes[ws.response.headers.get("X-Parley-Node", "?") if ws.response else "?"] += 1
        sockets.append(ws)
        if i % 40 == 39:
            await asyncio.sleep(1)  # within nginx's handshake budget
    received: list[list[str]] = [[] for _ in sockets]
    latencies: list[float] = []

    async def reader(k: int, ws: ClientConnection) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "message":
                sent = float(frame["text"].split(" ", 1)[0])
                latencies.append(time.time() - sent)
                received[k].append(frame["client_id"])

    readers = [asyncio.create_task(reader(k, ws)) for k, ws in enumerate(sockets)]
    await asyncio.sleep(1)
    # One sender per user (a tab each), taking turns: each stays far below the chat's
    # per-connection rate limit (10/s) while the room gets `rate` messages a second.
    senders = sockets[:users]
    sent: list[str] = []
    started = time.monotonic()
    turn = 0
    while time.monotonic() - started < seconds:
        client_id = uuid.uuid4().hex[:12]
        frame = {"type": "message", "text": f"{time.time():.6f} bench", "client_id": client_id}
        await senders[turn % len(senders)].send(json.dumps(frame))
        sent.append(client_id)
        turn += 1
        await asyncio.sleep(1 / rate)
    await asyncio.sleep(3)  # let the last ones arrive
    elapsed = time.monotonic() - started
    expected = len(sent) * len(sockets)
    delivered = sum(len(r) for r in received)
    lost = sum(len(set(sent) - set(r)) for r in received)
    duplicated = sum(len(r) - len(set(r)) for r in received)
    lat = sorted(latencies)
    print(json.dumps({
        "sockets": len(sockets), "by_replica": dict(nodes), "sent": len(sent),
        "deliveries": delivered, "expected": expected, "lost": lost, "duplicated": duplicated,
        "deliveries_per_s": round(delivered / elapsed),
        "latency_ms": {"p50": round(statistics.median(lat) * 1000, 2),
                       "p99": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2),
                       "max": round(lat[-1] * 1000, 2)},
    }))  # fmt: skip
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    for http in clients:
        await http.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--tabs", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    asyncio.run(main(min(args.users, 50), min(args.tabs, 16), min(args.rate, 100),
                     min(args.seconds, 60)))  # fmt: skip
