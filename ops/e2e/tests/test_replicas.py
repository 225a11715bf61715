"""Chat replicas behind nginx (docs/design.md §5, "Bus" and "Presence"; the Scale-out part):
members held by two different replicas talk in order, see each other once, and are closed
together by a control notice. Each upgrade names its replica (X-Parley-Node), and the test
opens sockets until it holds members on two of them.

Only meaningful with several replicas, so it is the `replicas` suite, left out of the default
run: start the stack with `--scale chat=2` and run `pytest -m replicas`. With a single replica
it fails, saying so: it never passes without proving anything."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid

import pytest

from support import SESSION_ENDED, Client, Join, Json, MakeUser, Peer, closed_with

pytestmark = pytest.mark.replicas

NODE_HEADER = "X-Parley-Node"
ROOM_DELETED = 4404
ATTEMPTS = 24  # sockets opened at most to land on a wanted replica (nginx spreads them)


def chat_replicas() -> set[str]:
    """The addresses Docker's DNS gives for `chat`: one per replica."""
    try:
        infos = socket.getaddrinfo("chat", 8001, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise AssertionError(f"cannot resolve the chat service `chat`: {exc}") from None
    return {str(info[4][0]) for info in infos}


@pytest.fixture(scope="module", autouse=True)
def two_replicas() -> None:
    found = chat_replicas()
    assert len(found) >= 2, (
        f"the replica suite needs at least 2 chat replicas, DNS name `chat` has {len(found)}"
        f" ({', '.join(sorted(found))}): start the stack with `--scale chat=2`"
    )


def node_of(peer: Peer) -> str:
    response = peer.ws.response
    assert response is not None
    node = response.headers.get(NODE_HEADER)
    assert node, f"{peer.label}: no {NODE_HEADER} header on the upgrade"
    return node


async def on_node(join: Join, client: Client, room: str, *, want: str | None = None,
                  avoid: str | None = None) -> Peer:  # fmt: skip
    """A socket of `client` in `room` held by the replica `want` (or any but `avoid`); the
    sockets that landed elsewhere are closed on the way."""
    for _ in range(ATTEMPTS):
        peer = await join(client, room)
        node = node_of(peer)
        if (want is None or node == want) and node != avoid:
            return peer
        await peer.close()
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"no socket on the wanted replica in {ATTEMPTS} tries (want={want}, avoid={avoid}):"
        " is nginx spreading the upgrades?"
    )


async def drain_presence(peer: Peer, within_s: float = 0.7) -> list[Json]:
    """Frames arriving for a while (what should be nothing, or exactly one presence frame)."""
    frames: list[Json] = []
    with contextlib.suppress(AssertionError):
        while True:
            frames.append(await peer.recv(timeout=within_s))
    return frames


def presence_events(frames: list[Json]) -> list[tuple[str, str]]:
    """(join|leave, name) for each user named in the presence frames, in order."""
    keys = (("leave", "left"), ("join", "joined"))
    return [(kind, user["name"]) for f in frames if f.get("type") == "presence"
            for kind, key in keys for user in f[key]]  # fmt: skip


async def test_members_on_two_replicas_talk_in_order_and_see_each_other_once(
    make_user: MakeUser, join: Join
) -> None:
    alice, bob = await make_user(), await make_user()
    room, _ = await alice.create_room()
    alice_tab = await on_node(join, alice, room)
    here = node_of(alice_tab)
    await drain_presence(alice_tab, 0.3)  # the joins and leaves of the tries, if any
    bob_tab = await on_node(join, bob, room, avoid=here)
    there = node_of(bob_tab)
    assert {m["name"] for m in bob_tab.welcome["members"]} >= {alice.name, bob.name}
    # Bob's tries that landed on Alice's replica came and went (a join and a leave each, or
    # nothing within one presence tick); the one that stayed, on the other replica, is one
    # join: never two joins in a row.
    presence = presence_events(await drain_presence(alice_tab))
    assert {name for _, name in presence} == {bob.name}, presence
    kinds = [kind for kind, _ in presence]
    assert kinds == ["join", "leave"] * (len(kinds) // 2) + ["join"], kinds

    # Order per sender, across replicas (within the rate limit's burst).
    texts = [f"m{i} {uuid.uuid4().hex[:6]}" for i in range(15)]
    for text in texts:
        await alice_tab.say(text)
    got: list[str] = []
    while len(got) < len(texts):
        frame, _ = await bob_tab.recv_until(lambda f: f.get("type") == "message")
        assert frame["from"]["name"] == alice.name
        got.append(frame["text"])
    assert got == texts
    client_id = await bob_tab.say("and back")
    frame, _ = await alice_tab.recv_until(lambda f: f.get("client_id") == client_id)
    assert frame["text"] == "and back"

    # Bob's second tab on Alice's replica: no join for anyone; closing his first: no leave.
    await drain_presence(alice_tab, 0.3)
    bob_here = await on_node(join, bob, room, want=here)
    assert presence_events(await drain_presence(alice_tab)) == []
    await bob_tab.close()
    assert presence_events(await drain_presence(alice_tab)) == []
    # His last tab: one leave, heard on the other replica too.
    carol = await make_user()
    carol_there = await on_node(join, carol, room, want=there)
    await drain_presence(alice_tab, 0.3)
    await bob_here.close()
    for peer in (alice_tab, carol_there):
        leaves = presence_events(await drain_presence(peer))
        assert leaves == [("leave", bob.name)], (peer.label, leaves)


async def test_a_logout_and_a_deleted_room_close_sockets_on_every_replica(
    make_user: MakeUser, join: Join
) -> None:
    alice, bob = await make_user(), await make_user()
    room, _ = await alice.create_room()
    alice_here = await on_node(join, alice, room)
    here = node_of(alice_here)
    alice_there = await on_node(join, alice, room, avoid=here)
    there = node_of(alice_there)
    bob_here = await on_node(join, bob, room, want=here)
    bob_there = await on_node(join, bob, room, want=there)
    # Bob logs out: his sockets on both replicas close (one notice on the bus, within 5 s).
    await bob.logout()
    assert await closed_with(bob_here) == SESSION_ENDED
    assert await closed_with(bob_there) == SESSION_ENDED
    # Alice deletes her room: its sockets on both replicas close.
    await alice.delete_room(room)
    assert await closed_with(alice_here) == ROOM_DELETED
    assert await closed_with(alice_there) == ROOM_DELETED
