"""What replicas on Swarm change, seen from inside the stack's network: every replica serves,
a session works on any website replica, and two users sharing a chat replica talk.

ops/checks/swarm runs this with the e2e image (mounted beside its tests, so it uses their
fixtures) on the stack's attachable overlay network, where `tasks.SERVICE` names every
replica (endpoint_mode dnsrr)."""

from __future__ import annotations

import os
import socket
import uuid

import httpx
import pytest

from support import WAIT, Client, Join

WEBSITE_REPLICAS = int(os.environ.get("WEBSITE_REPLICAS", "2"))
CHAT_REPLICAS = int(os.environ.get("CHAT_REPLICAS", "2"))
# Sockets are spread at random (nginx picks among the resolved addresses): with two chat
# replicas, 16 tries all missing the first user's replica has odds 2^-16.
SAME_REPLICA_TRIES = 16


def replicas(service: str) -> list[str]:
    """Every running replica's address, as Swarm's DNS lists them."""
    infos = socket.getaddrinfo(f"tasks.{service}", None, socket.AF_INET, socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@pytest.mark.parametrize(
    ("service", "port", "path", "count"),
    [
        ("website", 8000, "/readyz", WEBSITE_REPLICAS),
        ("chat", 8001, "/healthz", CHAT_REPLICAS),
    ],
)
async def test_every_replica_is_up_and_ready(
    service: str, port: int, path: str, count: int
) -> None:
    addresses = replicas(service)
    assert len(addresses) == count, f"{service}: {count} replicas expected, DNS lists {addresses}"
    async with httpx.AsyncClient(timeout=WAIT, trust_env=False) as http:
        for address in addresses:
            response = await http.get(f"http://{address}:{port}{path}")
            assert response.status_code == 200, f"{service} at {address}: {response.status_code}"


async def test_a_session_works_on_every_website_replica(alice: Client) -> None:
    """Sessions live in PostgreSQL, not in a replica: each one knows alice's cookie."""
    cookie = alice.session_cookie
    assert cookie, "registering set no session cookie"
    async with httpx.AsyncClient(
        timeout=WAIT, trust_env=False, cookies={"parley_session": cookie}
    ) as http:
        for address in replicas("website"):
            response = await http.get(f"http://{address}:8000/rooms", headers={"Host": "nginx"})
            assert response.status_code == 200, f"website at {address}: {response.status_code}"
            assert alice.name in response.text, f"website at {address} does not know alice"


async def test_two_users_on_one_chat_replica_talk(
    alice: Client, bob: Client, room: str, join: Join
) -> None:
    """Bob reconnects until his welcome lists alice, i.e. until he shares her replica (with
    the bus, every replica lists her at once), then they exchange messages both ways."""
    a = await join(alice, room)
    for _ in range(SAME_REPLICA_TRIES):
        b = await join(bob, room)
        if any(m.get("id") == a.me["id"] for m in b.welcome["members"]):
            break
        await b.close()
    else:
        pytest.fail(f"bob never landed on alice's replica in {SAME_REPLICA_TRIES} tries")

    hello = f"hello bob {uuid.uuid4().hex[:6]}"
    await a.say(hello)
    got, _ = await b.recv_until(lambda f: f.get("type") == "message" and f.get("text") == hello)
    assert got["from"]["id"] == a.me["id"], got
    reply = f"hi alice {uuid.uuid4().hex[:6]}"
    await b.say(reply)
    got, _ = await a.recv_until(lambda f: f.get("type") == "message" and f.get("text") == reply)
    assert got["from"]["id"] == b.me["id"], got
