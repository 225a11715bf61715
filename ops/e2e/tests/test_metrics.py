"""Metric values follow real activity (docs/design.md §8). The metrics ports are internal:
this runner reaches them on the compose network, as Prometheus does; nginx never routes them."""

from __future__ import annotations

import asyncio
import os

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support import Client, Join, MakeUser

CHAT_METRICS = os.environ.get("CHAT_METRICS_URL", "http://chat:9100/metrics")
WEBSITE_METRICS = os.environ.get("WEBSITE_METRICS_URL", "http://website:9100/metrics")


async def scrape(url: str) -> dict[str, float]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        response = await http.get(url)
    response.raise_for_status()
    return {
        sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def eventually(url: str, expected: dict[str, float], timeout: float = 5.0) -> None:
    """Gauges settle as the server notices opens and closes: poll, bounded."""
    seen: dict[str, float] = {}
    async with asyncio.timeout(timeout):
        while True:
            seen = await scrape(url)
            if all(seen.get(name) == value for name, value in expected.items()):
                return
            await asyncio.sleep(0.1)


async def test_chat_gauges_and_counters_follow_activity(
    alice: Client, bob: Client, make_user: MakeUser, join: Join
) -> None:
    carol = await make_user()
    room_a, _ = await alice.create_room()
    room_b, _ = await carol.create_room()
    await eventually(CHAT_METRICS, {"chat_connections_active": 0, "chat_rooms_active": 0})
    before = await scrape(CHAT_METRICS)

    a, b, c = await join(alice, room_a), await join(bob, room_a), await join(carol, room_b)
    await eventually(CHAT_METRICS, {"chat_connections_active": 3, "chat_rooms_active": 2})

    for _ in range(3):
        await a.say("metrics probe from alice")
        await b.recv_until(lambda f: f["type"] == "message")
        await a.recv_until(lambda f: f["type"] == "message")
    await c.say("metrics probe from carol")
    await c.recv_until(lambda f: f["type"] == "message")

    after = await scrape(CHAT_METRICS)
    received = "chat_messages_received_total"
    delivered = "chat_messages_delivered_total"
    assert after[received] - before[received] == 4  # 3 in room A, 1 in room B
    assert after[delivered] - before[delivered] == 3 * 2 + 1  # each to every connection
    count = "chat_broadcast_duration_seconds_count"
    assert after[count] - before[count] == 4

    for peer in (a, b, c):
        await peer.close()
    await eventually(CHAT_METRICS, {"chat_connections_active": 0, "chat_rooms_active": 0})


async def test_website_counts_tokens_and_logins(alice: Client, room: str) -> None:
    before = await scrape(WEBSITE_METRICS)
    await alice.token(room)
    await alice.token(room)
    await alice.logout()
    await alice.login(expect=400, password="not the password")
    after = await scrape(WEBSITE_METRICS)
    issued = "website_tokens_issued_total"
    assert after[issued] - before[issued] == 2
    failures = "website_logins_total|result=failure"
    assert after[failures] - before.get(failures, 0) == 1
    template = "http_requests_total|method=POST|route=/api/rooms/{name}/token|status=200"
    assert after[template] - before.get(template, 0) == 2
    assert not any(f"/api/rooms/{room}/token" in key for key in after)
