"""The chat protocol through nginx: broadcast, room isolation, presence, input limits."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed

from support import WAIT, Client, Join, Json, MakeUser, Peer, Settings, is_rfc3339_utc, ws_connect


def is_message(text: str) -> Callable[[Json], bool]:
    return lambda f: f.get("type") == "message" and f.get("text") == text


def is_event(kind: str, name: str) -> Callable[[Json], bool]:
    """A presence frame naming this user in `kind` ("joined" or "left")."""
    return lambda f: f.get("type") == "presence" and name in {u["name"] for u in f[kind]}


def own_presence(peer: Peer) -> Callable[[Json], bool]:
    """A presence frame only about the peer's own user, which naming it would be harmless
    (set semantics), though the chat does not send it."""
    return lambda f: f.get("type") == "presence" and all(
        u == peer.me for u in f["joined"] + f["left"]
    )


def assert_message_frame(
    frame: Json, *, room: str, sender: Peer, sender_name: str, text: str
) -> None:
    assert frame["type"] == "message", frame
    assert frame["room"] == room, frame
    assert frame["text"] == text, frame
    assert frame["from"] == {"id": sender.me["id"], "name": sender_name}, frame
    assert frame.get("id"), f"message without id: {frame}"
    assert is_rfc3339_utc(frame["ts"]), f"ts is not RFC 3339 UTC: {frame['ts']!r}"


async def test_welcome_names_the_room_me_and_members(
    alice: Client, bob: Client, room: str, join: Join
) -> None:
    a = await join(alice, room)
    assert a.welcome["room"] == room
    assert a.welcome["you"]["name"] == alice.name
    assert a.welcome["you"]["id"], a.welcome

    b = await join(bob, room)
    assert b.welcome["you"]["name"] == bob.name
    assert b.welcome["you"]["id"] != a.welcome["you"]["id"]
    members = b.welcome["members"]
    assert all(set(m) >= {"id", "name"} for m in members), members
    assert {"id": a.me["id"], "name": alice.name} in [
        {"id": m["id"], "name": m["name"]} for m in members
    ], f"bob's welcome does not list alice as a member: {members}"


async def test_two_users_exchange_messages_and_other_rooms_hear_nothing(
    make_user: MakeUser, alice: Client, bob: Client, room: str, join: Join
) -> None:
    carol = await make_user()
    other_room, _ = await carol.create_room()
    c = await join(carol, other_room)
    a = await join(alice, room)
    b = await join(bob, room)

    hello = f"hello from alice {uuid.uuid4().hex[:6]}"
    client_id = await a.say(hello, client_id="a-1")
    got, _ = await b.recv_until(is_message(hello))
    assert_message_frame(got, room=room, sender=a, sender_name=alice.name, text=hello)
    echo, _ = await a.recv_until(is_message(hello))
    assert_message_frame(echo, room=room, sender=a, sender_name=alice.name, text=hello)
    assert echo.get("client_id") == client_id, f"client_id not echoed to the sender: {echo}"
    assert echo["id"] == got["id"], "sender and receiver disagree on the message id"

    reply = f"hi alice, bob here {uuid.uuid4().hex[:6]}"
    await b.say(reply)
    got, _ = await a.recv_until(is_message(reply))
    assert_message_frame(got, room=room, sender=b, sender_name=bob.name, text=reply)

    # Emails are never broadcast: no frame any of them received carries an address.
    for peer in (a, b):
        for raw in peer.raw:
            for client in (alice, bob):
                assert client.email.lower() not in raw.lower(), f"email leaked: {raw}"

    # Carol, alone in the other room, must hear none of that: the first thing she gets
    # after her welcome (other than her own presence) is the message she sends now.
    own = f"carol in {other_room}"
    await c.say(own)
    got, skipped = await c.recv_until(is_message(own))
    assert_message_frame(got, room=other_room, sender=c, sender_name=carol.name, text=own)
    leaked = [f for f in skipped if not own_presence(c)(f)]
    assert leaked == [], f"a client in another room received: {leaked}"


async def test_presence_is_per_user_not_per_tab(
    make_user: MakeUser, alice: Client, bob: Client, room: str, join: Join
) -> None:
    a = await join(alice, room)

    b1 = await join(bob, room)
    _, skipped = await a.recv_until(is_event("joined", bob.name))
    assert [f for f in skipped if not own_presence(a)(f)] == [], skipped

    # A second tab of bob: no second join for alice; both tabs get the room's messages.
    b2 = await join(bob, room)
    assert b2.me == b1.me, "two tabs of one user must be the same member"
    assert alice.name in {m["name"] for m in b2.welcome["members"]}, b2.welcome
    first = f"first from bob {uuid.uuid4().hex[:6]}"
    await b1.say(first)
    _, skipped = await a.recv_until(is_message(first))
    assert skipped == [], f"alice saw more than bob's message after bob's 2nd tab: {skipped}"
    await b2.recv_until(is_message(first))

    # Closing one of two tabs: bob is still there, so no leave.
    await b2.close()
    second = f"second from bob {uuid.uuid4().hex[:6]}"
    await b1.say(second)
    _, skipped = await a.recv_until(is_message(second))
    assert skipped == [], f"alice saw more than bob's message after a tab closed: {skipped}"

    # Closing the last tab: exactly one leave.
    await b1.close()
    leave, skipped = await a.recv_until(is_event("left", bob.name))
    assert skipped == [], skipped
    assert (leave["joined"], leave["left"]) == ([], [b1.me]), leave
    assert is_rfc3339_utc(leave["ts"]), leave

    carol = await make_user()
    await join(carol, room)
    joined, skipped = await a.recv_until(is_event("joined", carol.name))
    assert skipped == [], f"unexpected frames before carol's join (a 2nd leave?): {skipped}"
    assert is_rfc3339_utc(joined["ts"]), joined
    for raw in a.raw:
        assert bob.email.lower() not in raw.lower() and carol.email.lower() not in raw.lower()


async def test_text_limits_and_bad_input_keep_the_connection_usable(
    alice: Client, room: str, join: Join
) -> None:
    a = await join(alice, room)

    longest = "x" * 2000
    await a.say(longest)
    got, _ = await a.recv_until(lambda f: f.get("type") in {"message", "error"})
    assert got["type"] == "message" and got["text"] == longest, got

    cases = [
        (json.dumps({"type": "message", "text": "y" * 2001}), "too_long"),
        (json.dumps({"type": "message", "text": "  \n\t  "}), "bad_message"),
        ("this is not json", "bad_message"),
        (json.dumps({"type": "message"}), "bad_message"),
    ]
    for raw, code in cases:
        await a.send_raw(raw)
        got, _ = await a.recv_until(lambda f: f.get("type") in {"message", "error"})
        assert got["type"] == "error" and got["code"] == code, f"{raw[:40]!r} -> {got}"
        assert isinstance(got.get("detail"), str), got

    after = f"still here {uuid.uuid4().hex[:6]}"
    await a.say(after)
    got, _ = await a.recv_until(lambda f: f.get("type") in {"message", "error"})
    assert got["type"] == "message" and got["text"] == after, got


async def test_frame_over_16_kib_closes_with_1009(
    alice: Client, room: str, settings: Settings
) -> None:
    token = await alice.token(room)
    ws = await ws_connect(settings, token["token"], token["ws_url"], compression=None)
    peer = Peer(ws, "oversize")
    assert (await peer.recv())["type"] == "welcome"
    await peer.send_raw(json.dumps({"type": "message", "text": "z" * (17 * 1024)}))
    with pytest.raises(ConnectionClosed) as info:
        while True:  # anything sent before the close (e.g. presence) is skipped
            await peer.recv(timeout=WAIT)
    assert info.value.rcvd is not None, "closed without a close frame"
    assert info.value.rcvd.code == 1009, info.value


async def test_deleting_a_room_closes_its_sockets_with_4404(
    alice: Client, bob: Client, room: str, join: Join
) -> None:
    b = await join(bob, room)
    await alice.delete_room(room)
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await b.recv(timeout=2 * WAIT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4404, info.value
