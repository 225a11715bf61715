"""Faults under live traffic, through nginx (docs/design.md §10, "Chaos"): the database stopped
and started, the database killed, the chat stopped with SIGTERM. Each test asks the operator
(ops/checks/chaos, which runs beside this module with Docker at hand) for a fault, then
asserts what users see while it lasts and after it is repaired.

Run with `pytest -m chaos` only while ops/checks/chaos plays the operator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from test_replicas import chat_replicas, node_of, on_node
from websockets.exceptions import InvalidStatus

from support import (
    Client,
    Join,
    MakeClient,
    Peer,
    Settings,
    closed_with,
    describe,
    operator,
    still_open,
)

pytestmark = pytest.mark.chaos  # and the replica ones also replica_chaos

RECOVERY_S = 60.0  # a restarted database accepts connections well within this


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll `check` until it holds (bounded); returns how long it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, f"{what}: not within {within} s"
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def page_status(client: Client, path: str = "/rooms") -> int:
    try:
        return (await client.http.get(path, headers={"accept": "text/html"})).status_code
    except httpx.TransportError:
        return 0


async def website_ready() -> int:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
        try:
            return (await http.get("http://website:8000/readyz")).status_code
        except httpx.TransportError:
            return 0


async def test_database_stopped_then_started(alice: Client, settings: Settings) -> None:
    assert await page_status(alice) == 200
    await operator(settings, "stop-db")
    await eventually(lambda: _is(page_status(alice), 503), 15, "a 503 while the database is down")
    page = await alice.http.get("/rooms", headers={"accept": "text/html"})
    assert "Back in a moment" in page.text and "Traceback" not in page.text, describe(page)
    assert page.headers.get("retry-after") == "5", describe(page)
    assert await website_ready() == 503
    assert (await alice.http.get("/healthz")).status_code == 200  # the website itself lives

    await operator(settings, "start-db")
    took = await eventually(lambda: _is(page_status(alice), 200), RECOVERY_S, "pages back")
    assert await website_ready() == 200
    print(f"pages served again {took:.1f} s after the database was healthy")


async def test_committed_data_survives_a_database_crash(
    make_client: MakeClient, settings: Settings
) -> None:
    survivor = await make_client()
    await survivor.register()
    room, _ = await survivor.create_room()  # answered 303: committed

    await operator(settings, "kill-db")  # SIGKILL; the restart policy brings it back
    took = await eventually(lambda: _is(page_status(survivor), 200), RECOVERY_S, "database back")
    print(f"database back {took:.1f} s after the kill")
    fresh = await make_client()
    await fresh.login(survivor.email, survivor.password)
    assert room in await fresh.room_names(), "a committed room was lost in the crash"


async def test_chat_sigterm_closes_every_socket_with_1001_then_serves_again(
    alice: Client, bob: Client, room: str, join: Join, settings: Settings
) -> None:
    tabs = [await join(alice, room), await join(bob, room), await join(bob, room)]
    stopped = asyncio.create_task(operator(settings, "stop-chat"))
    codes = await asyncio.gather(*(closed_with(tab, timeout=15) for tab in tabs))
    assert codes == [1001, 1001, 1001], codes
    took = float(await stopped)
    assert took <= 10, f"the chat took {took:.1f} s to exit after SIGTERM"

    await operator(settings, "start-chat")
    again = [await join(alice, room), await join(bob, room)]  # fresh tokens, as the page does
    await still_open(again[0], again[1])


async def _is(status: Awaitable[int], expected: int) -> bool:
    return await status == expected


# ---------------------------------------------------------------- with two chat replicas
# Run by ./ops/test's replicas suite on a stack with `--scale chat=2`: pytest -m replica_chaos.


@pytest.mark.replica_chaos
async def test_a_killed_replicas_clients_reconnect_to_a_survivor(
    alice: Client, bob: Client, room: str, join: Join, settings: Settings
) -> None:
    assert len(chat_replicas()) >= 2, "needs `--scale chat=2`"
    doomed = await on_node(join, alice, room)
    victim = node_of(doomed)
    survivor = await on_node(join, bob, room, avoid=victim)

    killed_at = time.monotonic()
    await operator(settings, f"kill-chat-node {victim}")  # SIGKILL to that replica's process
    await closed_with(doomed, timeout=10)  # no close frame from a killed process

    async def rejoined() -> bool:
        try:
            peer = await join(alice, room)
        except (AssertionError, OSError, InvalidStatus):
            return False
        rejoined_peers.append(peer)
        return True

    rejoined_peers: list[Peer] = []
    await eventually(rejoined, 10, "alice back on a surviving replica")
    took = time.monotonic() - killed_at
    assert took <= 10, f"reconnected {took:.1f} s after the kill"
    # Bob, on the other replica, lost nothing: he hears alice's next message.
    await still_open(survivor, rejoined_peers[-1])
    # The restart policy brings the killed replica back.
    await eventually(_async(lambda: len(chat_replicas()) >= 2), 60, "the replica restarted")


@pytest.mark.replica_chaos
async def test_delivery_across_replicas_resumes_after_a_redis_restart(
    alice: Client, bob: Client, room: str, join: Join, settings: Settings
) -> None:
    assert len(chat_replicas()) >= 2, "needs `--scale chat=2`"
    here = await on_node(join, alice, room)
    there = await on_node(join, bob, room, avoid=node_of(here))
    await still_open(there, here)

    await operator(settings, "restart-redis")  # returns once Redis is running again
    restarted_at = time.monotonic()

    async def delivered() -> bool:
        client_id = await here.say(f"after the restart {time.monotonic():.3f}")
        try:
            frame, _ = await there.recv_until(lambda f: f.get("client_id") == client_id, 1.0)
        except AssertionError:
            return False
        return bool(frame["type"] == "message")

    await eventually(delivered, 15, "cross-replica delivery after the Redis restart")
    took = time.monotonic() - restarted_at
    assert took <= 10, f"delivery resumed {took:.1f} s after Redis was back"


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run
